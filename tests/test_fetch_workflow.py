"""The fetch_checkpoint rule and the sheet's per-source uri checks, with snakemake against a local server."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from divcoeff.config import ConfigError, load_sheet
from fake_servers import FakeServer, checkpoint_bytes, md5, sha256

A, B, C, D = (checkpoint_bytes(i, 2000 + i) for i in range(4))
HEAD = "name\tfamily\tarch\tsource\turi\tchecksum\ttrain_set\tallow_pickle"


@pytest.fixture
def config(repo):
    return yaml.safe_load((repo / "config/config.yaml").read_text())


def sheet_file(tmp_path, rows):
    p = tmp_path / "sheet.tsv"
    p.write_text("\n".join([HEAD] + ["\t".join(r) for r in rows]) + "\n")
    return p


@pytest.mark.parametrize("source, uri, checksum, field", [
    ("zenodo", "model.pt", "", "uri"),
    ("hf", "brando/repo/model.pt", "", "uri"),          # no @revision
    ("url", "ftp://example.org/m.pt", "md5:" + "0" * 32, "uri"),
    ("url", "https://example.org/m.pt", "", "checksum"),
    ("file", "", "", "uri"),
    ("train", "1/x.pt", "", "uri"),
    ("zenodo", "1/x.pt", "md5:abc", "checksum"),       # too short for md5
])
def test_sheet_rejects_a_uri_or_checksum_that_does_not_fit_its_source(repo, config, tmp_path, source, uri,
                                                                       checksum, field):
    p = sheet_file(tmp_path, [["m1", "pt", "resnet12_rfs", source, uri, checksum, "glyphs-4s-d0", "false"]])
    with pytest.raises(ConfigError, match=rf"line 2 \(row 'm1'\).*{field}"):
        load_sheet(p, repo / "config/schemas/checkpoints.schema.yaml", config)


def test_sheet_accepts_each_source(repo, config, tmp_path):
    rows = [["z", "pt", "resnet12_rfs", "zenodo", "8247898/a b.pt", "", "glyphs-4s-d0", "false"],
            ["h", "maml", "resnet12_rfs", "hf", "brando/r/dir/m.pt@" + "a" * 40, "", "glyphs-4s-d0", "false"],
            ["u", "pt", "resnet12", "url", "https://x.org/m.pt", "sha256:" + "0" * 64, "glyphs-4s-d0", "false"],
            ["f", "pt", "resnet12", "file", "ckpt/m.pt", "", "glyphs-4s-d0", "false"]]
    table = load_sheet(sheet_file(tmp_path, rows), repo / "config/schemas/checkpoints.schema.yaml", config)
    assert list(table["source"]) == ["zenodo", "hf", "url", "file"]


@pytest.mark.workflow
def test_fetch_checkpoint_rule_fetches_every_source(repo, config, tmp_path):
    server = FakeServer().start()
    try:
        server.add_record("8247898", {"usl.pt": A})
        url = server.add_plain("maml.pth", B)
        commit = server.add_repo("brando/rfs", {"m/x.pt": C}, lfs=("m/x.pt",))
        local = tmp_path / "mine.pt"
        local.write_bytes(D)
        sheet = sheet_file(tmp_path, [
            ["z-usl", "pt", "resnet12_rfs", "zenodo", "8247898/usl.pt", "", "glyphs-4s-d0", "false"],
            ["u-maml", "maml", "resnet12_rfs", "url", url, f"md5:{md5(B)}", "glyphs-4s-d0", "false"],
            ["h-x", "pt", "resnet12_rfs", "hf", f"brando/rfs/m/x.pt@{commit}", "", "glyphs-4s-d0", "false"],
            ["f-mine", "pt", "resnet12", "file", str(local), "", "glyphs-4s-d0", "false"],
        ])
        config.update(checkpoint_sheet=str(sheet),
                      fetch={"zenodo_url": server.url, "retries": 1, "backoff_s": 0.01, "timeout_s": 10,
                             "hf_cache": str(tmp_path / "hf-cache"),
                             "local_roots": [str(tmp_path)]})  # the run in other/ copies from its parent too
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        names = ["z-usl", "u-maml", "h-x", "f-mine"]
        targets = [f"resources/checkpoints/{n}.pt" for n in names]
        (tmp_path / "cache").mkdir()
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": "hf_secret_for_test",
               "SNAKEMAKE_OUTPUT_CACHE": str(tmp_path / "cache")}

        def snakemake(workdir, targets, *extra):
            cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(repo / "Snakefile"), "-d", str(workdir),
                   "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", *extra]
            return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

        out = snakemake(tmp_path, targets, "--cache")
        assert out.returncode == 0, out.stdout + out.stderr
        for name, data in zip(names, (A, B, C, D)):
            ckpt = tmp_path / "resources/checkpoints" / f"{name}.pt"
            assert ckpt.read_bytes() == data
            prov = json.loads((tmp_path / f"resources/checkpoints/{name}.pt.provenance.json").read_text())
            assert prov["sha256"] == sha256(data)
            log = (tmp_path / f"logs/fetch/fetch_checkpoint_{name}.log").read_text()
            assert f"checkpoint {name}" in log and "hf_secret_for_test" not in log
        # A local file that changes makes its copy out of date; the downloads stay as they are.
        local.write_bytes(D + b"more")
        os.utime(local, (local.stat().st_atime + 10, local.stat().st_mtime + 10))
        dry = snakemake(tmp_path, targets, "-n")
        assert dry.returncode == 0, dry.stderr
        assert re.search(r"^fetch_checkpoint\s+1$", dry.stdout, re.M), dry.stdout
        assert "output: resources/checkpoints/f-mine.pt," in dry.stdout, dry.stdout
        # cache: "omit-software": another workflow with the same row takes the file from the cache.
        requests_before = len(server.requests)
        other = snakemake(tmp_path / "other", targets[:1], "--cache")
        assert other.returncode == 0, other.stderr
        assert (tmp_path / "other/resources/checkpoints/z-usl.pt").read_bytes() == A
        assert len(server.requests) == requests_before  # nothing downloaded
    finally:
        server.stop()
