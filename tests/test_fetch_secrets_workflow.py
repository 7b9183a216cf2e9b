"""Issue 15, secrets: the tiny study with a checkpoint sheet row whose url carries user:password@ and
?token=..., against a local server that insists on both: the secret is in no file under logs/,
results/, resources/ or .snakemake/ (params, console log) and not in Snakemake's console output, on success
and on failure."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fake_servers import FakeServer, md5

pytestmark = pytest.mark.workflow

PASSWORD = "Secr3t-pw-0f-the-row"
TOKEN = "row-token-9c41d2"


def tiny_checkpoint(path: Path) -> bytes:
    """An untrained ResNet-12 in our format, shaped like config/tiny's trained ones."""
    from divcoeff.checkpoints import save_checkpoint
    from divcoeff.models.resnet12 import ResNet12

    model = ResNet12(widths=(8, 8, 16, 16), in_channels=1, num_classes=10)
    save_checkpoint(path, model, "pt", {"image_size": 28, "channels": 1, "mean": [0.5], "std": [0.5]},
                    meta={"train_set": "tiny-1s"})
    return path.read_bytes()


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            hits += [f"{p.relative_to(root)}: {n.decode()}" for n in needles if n in data]
    return hits


def test_tiny_study_with_a_credentialed_url_row_leaks_the_secret_nowhere(repo, tmp_path):
    server = FakeServer().start()
    try:
        data = tiny_checkpoint(tmp_path / "tiny-url.pt")
        server.add_plain("tiny-url.pt", data, auth=("user", PASSWORD), token=TOKEN)
        server.add_plain("broken.pt", data, auth=("user", PASSWORD), token=TOKEN)
        server.fail("/files/broken.pt", "503", "cut")   # a retry logged, then a transfer cut short

        def url(name):
            return server.url.replace("http://", f"http://user:{PASSWORD}@") + f"/files/{name}?token={TOKEN}"

        tiny = (repo / "config/tiny/checkpoints.tsv").read_text()
        good = tiny + f"url-tiny\tpt\tresnet12\turl\t{url('tiny-url.pt')}\tmd5:{md5(data)}\ttiny-1s\tfalse\n"
        bad = good + f"url-broken\tpt\tresnet12\turl\t{url('broken.pt')}\tmd5:{md5(data)}\ttiny-1s\tfalse\n"
        (tmp_path / "good.tsv").write_text(good)
        (tmp_path / "bad.tsv").write_text(bad)
        config = yaml.safe_load((repo / "config/tiny/config.yaml").read_text())
        config.update(checkpoint_sheet=str(tmp_path / "good.tsv"),
                      fetch={"retries": 1, "backoff_s": 0.01, "timeout_s": 10})
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        work = tmp_path / "work"

        def snakemake(*args):
            cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(work),
                   "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", *args]
            return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                                  env={**os.environ, "PYTHONPATH": str(repo)})

        ok = snakemake()
        assert ok.returncode == 0, ok.stderr[-4000:]
        assert (work / "resources/checkpoints/url-tiny.pt").read_bytes() == data
        assert (work / "results/eval/url-tiny.json").exists()
        fetch_log = (work / "logs/fetch/fetch_checkpoint_url-tiny.log").read_text()
        assert "checkpoint url-tiny: url http://***@127.0.0.1" in fetch_log and "token=***" in fetch_log

        failed = snakemake("resources/checkpoints/url-broken.pt", "--config",
                           f"checkpoint_sheet={tmp_path / 'bad.tsv'}")
        assert failed.returncode != 0
        broken_log = (work / "logs/fetch/fetch_checkpoint_url-broken.log").read_text()
        assert "HTTP 503" in broken_log and "a rerun resumes" in broken_log  # the failure is explained ...
        assert (work / "resources/checkpoints/url-broken.pt.part.json").exists()  # ... and the part kept

        needles = [PASSWORD.encode(), TOKEN.encode()]
        # .snakemake holds the params of every job (metadata) and the console log (log): redacted too.
        for folder in ("logs", "results", "resources", ".snakemake"):
            assert files_holding(work / folder, needles) == [], folder
        for out in (ok, failed):
            assert PASSWORD not in out.stdout + out.stderr and TOKEN not in out.stdout + out.stderr
        assert len(server.seen("GET", "/files/tiny-url.pt")) == 1
    finally:
        server.stop()
