"""Issue 25, point 2: url downloads are bounded (fetch.max_bytes, or a row's exact size) and keep nothing past it."""
import os
import subprocess
import sys

import pytest
import yaml

from divcoeff.config import ConfigError, expand_sheet, load_sheet
from divcoeff.fetch import ChecksumError, SizeLimitError, fetch
from divcoeff.fetch.http import partial_paths
from fake_servers import FakeServer, checkpoint_bytes, md5

ENDLESS = b"\0" * 50_000_000     # far more than any cap below
CAP = 1_000_000
# What a server can push into the sockets' buffers before it notices the client has gone.
BUFFERS = 25_000_000
SMALL = checkpoint_bytes(7, 3000)


@pytest.fixture
def server():
    s = FakeServer().start()
    yield s
    s.stop()


@pytest.fixture
def settings():
    return {"retries": 2, "timeout_s": 10, "backoff_s": 0.01}


def assert_nothing_kept(folder, dest):
    part, meta = partial_paths(dest)
    assert not dest.exists() and not part.exists() and not meta.exists()
    assert list(folder.iterdir()) == []


def test_an_endless_stream_stops_one_byte_past_the_configured_cap_and_is_deleted(server, settings, tmp_path):
    url = server.add_plain("endless.pt", ENDLESS)
    path = "/files/endless.pt"
    server.fail(path, "no-length")  # no Content-Length: only the bytes read can tell
    dest = tmp_path / "m.pt"
    with pytest.raises(SizeLimitError) as e:
        fetch("url", url, dest, f"md5:{md5(ENDLESS)}", settings={**settings, "max_bytes": CAP},
              label="checkpoint sheet s.tsv, row 'u-endless'")
    msg = str(e.value)
    assert msg.startswith("checkpoint sheet s.tsv, row 'u-endless': URL ")
    assert f"larger than the limit of {CAP} bytes" in msg and f"stopped reading at {CAP + 1}" in msg
    assert server.bytes_sent[path] < BUFFERS
    assert len(server.seen("GET", path)) == 1  # not retried: the same stream would come again
    assert_nothing_kept(tmp_path, dest)


def test_a_larger_content_length_fails_before_the_body_is_read(server, settings, tmp_path):
    url = server.add_plain("big.pt", ENDLESS)
    dest = tmp_path / "m.pt"
    with pytest.raises(SizeLimitError, match=rf"limit of {CAP} bytes .*the server announces {len(ENDLESS)}"):
        fetch("url", url, dest, f"md5:{md5(ENDLESS)}", settings={**settings, "max_bytes": CAP})
    assert server.bytes_sent["/files/big.pt"] < BUFFERS
    assert_nothing_kept(tmp_path, dest)


def test_the_default_cap_is_the_schemas_and_a_file_under_it_is_fetched(server, settings, tmp_path):
    from divcoeff.settings import fetch_settings

    assert fetch_settings({}).max_bytes == 2 * 1024**3
    url = server.add_plain("small.pt", SMALL)
    record = fetch("url", url, tmp_path / "m.pt", f"md5:{md5(SMALL)}", settings=settings)
    assert record["size"] == len(SMALL) and (tmp_path / "m.pt").read_bytes() == SMALL
    # A cap of exactly the file's size passes; one byte less fails.
    fetch("url", url, tmp_path / "n.pt", f"md5:{md5(SMALL)}", settings={**settings, "max_bytes": len(SMALL)})
    with pytest.raises(SizeLimitError):
        fetch("url", url, tmp_path / "o.pt", f"md5:{md5(SMALL)}", settings={**settings, "max_bytes": len(SMALL) - 1})
    assert not (tmp_path / "o.pt").exists()


@pytest.mark.parametrize("size", [len(SMALL) - 1, len(SMALL) + 1])
def test_a_rows_size_is_enforced_exactly_for_url_rows(server, settings, tmp_path, size):
    url = server.add_plain("small.pt", SMALL)
    dest = tmp_path / "m.pt"
    with pytest.raises(ChecksumError, match=rf"size mismatch: the file is declared at {size} bytes"):
        fetch("url", url, dest, f"md5:{md5(SMALL)}", settings=settings, size=size)
    assert_nothing_kept(tmp_path, dest)
    assert fetch("url", url, dest, f"md5:{md5(SMALL)}", settings=settings, size=len(SMALL))["size"] == len(SMALL)


def test_a_rows_size_is_enforced_for_local_files_too(tmp_path):
    src = tmp_path / "src" / "m.pt"
    src.parent.mkdir()
    src.write_bytes(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ChecksumError, match=rf"size mismatch: expected {len(SMALL) + 5} bytes, got {len(SMALL)}"):
        fetch("file", str(src), out / "m.pt", size=len(SMALL) + 5)
    assert list(out.iterdir()) == []


HEAD = "name\tfamily\tarch\tsource\turi\tchecksum\ttrain_set\tallow_pickle\tsize"


@pytest.fixture
def config(repo):
    return yaml.safe_load((repo / "config/config.yaml").read_text())


def test_the_sheets_size_column_is_read_as_an_integer_and_checked(repo, config, tmp_path):
    schema = repo / "config/schemas/checkpoints.schema.yaml"
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"{HEAD}\nu\tpt\tresnet12\turl\thttps://x.org/m.pt\tmd5:{'0' * 32}\tglyphs-4s-d0\tfalse\t1234\n"
                     f"v\tpt\tresnet12\turl\thttps://x.org/n.pt\tmd5:{'0' * 32}\tglyphs-4s-d0\tfalse\t\n")
    ckpts = expand_sheet(load_sheet(sheet, schema, config), {"pt": 1, "maml": 1, "control": 1})
    assert ckpts.loc["u", "size"] == 1234 and ckpts.loc["v", "size"] is None
    for size, problem in (("big", "size"), ("0", "size"), ("-3", "size")):
        sheet.write_text(f"{HEAD}\nu\tpt\tresnet12\turl\thttps://x.org/m.pt\tmd5:{'0' * 32}\tglyphs-4s-d0\tfalse\t"
                         f"{size}\n")
        with pytest.raises(ConfigError, match=rf"line 2 \(row 'u'\): {problem}"):
            load_sheet(sheet, schema, config)
    sheet.write_text(f"{HEAD}\nt\tpt\tresnet12\ttrain\t\t\tglyphs-4s-d0\tfalse\t10\n")
    with pytest.raises(ConfigError, match=r"line 2 \(row 't'\): size"):
        load_sheet(sheet, schema, config)


@pytest.mark.workflow
def test_the_fetch_rule_names_the_row_and_the_limit_and_keeps_nothing(repo, config, server, tmp_path):
    url = server.add_plain("endless.pt", ENDLESS)
    server.fail("/files/endless.pt", "no-length")
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"{HEAD}\nu-endless\tpt\tresnet12\turl\t{url}\tmd5:{md5(ENDLESS)}\tglyphs-4s-d0\tfalse\t\n")
    config.update(checkpoint_sheet=str(sheet), fetch={"retries": 0, "timeout_s": 10, "max_bytes": CAP})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "resources/checkpoints/u-endless.pt", "-s", str(repo / "Snakefile"),
           "-d", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "1"]
    out = subprocess.run(cmd, cwd=tmp_path, env=os.environ, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    log = (tmp_path / "logs/fetch/fetch_checkpoint_u-endless.log").read_text()
    assert f"checkpoint sheet {sheet}, row 'u-endless': URL " in log
    assert f"larger than the limit of {CAP} bytes" in log
    assert not list(tmp_path.glob("resources/checkpoints/*"))  # neither the file nor a partial one
    assert server.bytes_sent["/files/endless.pt"] < BUFFERS
