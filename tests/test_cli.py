"""`python -m divcoeff list-zenodo` / `list-hf`: checkpoint-sheet rows from a record or repo on a local server."""
import re
import subprocess
import sys

import pytest
import yaml

from divcoeff.cli import main
from divcoeff.config import SHEET_COLUMNS, load_sheet
from fake_servers import FakeServer, checkpoint_bytes, md5, sha256

A, B, C = checkpoint_bytes(1, 1000), checkpoint_bytes(2, 1200), checkpoint_bytes(3, 900)


@pytest.fixture
def server():
    s = FakeServer().start()
    s.add_record("8247898", {"mini_usl_resnet12.pt": A, "maml 5way (v2).PTH": B, "logs.zip": b"z",
                             "hdb1/model.ckpt": C}, title="Curse of low task diversity checkpoints")
    s.commit = s.add_repo("brando/rfs", {"a/usl.pt": A, "b.pth": B, "config.json": b"{}"}, lfs=("a/usl.pt",))
    yield s
    s.stop()


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows(tsv):
    lines = tsv.strip().splitlines()
    assert lines[0].split("\t") == SHEET_COLUMNS
    return [dict(zip(SHEET_COLUMNS, line.split("\t"))) for line in lines[1:]]


def test_list_zenodo_prints_rows_for_checkpoint_files_with_md5(server, capsys):
    code, out, err = run(capsys, "list-zenodo", "8247898", "--base-url", server.url)
    assert code == 0
    got = rows(out)
    assert [r["uri"] for r in got] == ["8247898/hdb1/model.ckpt", "8247898/maml 5way (v2).PTH",
                                       "8247898/mini_usl_resnet12.pt"]
    assert [r["name"] for r in got] == ["hdb1-model", "maml-5way-v2", "mini_usl_resnet12"]
    assert [r["checksum"] for r in got] == [f"md5:{md5(C)}", f"md5:{md5(B)}", f"md5:{md5(A)}"]
    assert {r["source"] for r in got} == {"zenodo"} and {r["arch"] for r in got} == {"resnet12_rfs"}
    # family and train_set where the key shows them, FILL-IN (refused by the sheet) where it does not
    assert [(r["family"], r["train_set"]) for r in got] == [("FILL-IN", "hdb1"), ("maml", "FILL-IN"),
                                                             ("pt", "mini-imagenet")]
    assert "3 checkpoint file(s) of 4" in err and "Curse of low task diversity" in err
    assert "hdb1-model: fill in family" in err and "maml-5way-v2: fill in train_set" in err


def test_list_zenodo_keeps_full_keys_when_files_share_a_base_name(capsys):
    s = FakeServer().start()
    try:
        s.add_record("8247898", {"runs/hdb4_micod/maml/ckpt.pt": A, "runs/hdb4_micod/usl/ckpt.pt": B,
                                 "runs/mi/sl/ckpt.pt": C, "runs/other/ckpt.pt": A + b"x"})
        code, out, err = run(capsys, "list-zenodo", "8247898", "--base-url", s.url)
    finally:
        s.stop()
    assert code == 0
    got = {r["uri"]: r for r in rows(out)}
    assert set(got) == {"8247898/runs/hdb4_micod/maml/ckpt.pt", "8247898/runs/hdb4_micod/usl/ckpt.pt",
                        "8247898/runs/mi/sl/ckpt.pt", "8247898/runs/other/ckpt.pt"}
    assert len({r["name"] for r in got.values()}) == 4  # names from the whole key, so they do not collide
    assert (got["8247898/runs/hdb4_micod/maml/ckpt.pt"]["family"], got["8247898/runs/hdb4_micod/maml/ckpt.pt"][
        "train_set"]) == ("maml", "hdb4")
    assert got["8247898/runs/hdb4_micod/usl/ckpt.pt"]["family"] == "pt"
    assert (got["8247898/runs/mi/sl/ckpt.pt"]["family"], got["8247898/runs/mi/sl/ckpt.pt"]["train_set"]) == (
        "pt", "mini-imagenet")
    assert (got["8247898/runs/other/ckpt.pt"]["family"], got["8247898/runs/other/ckpt.pt"]["train_set"]) == (
        "FILL-IN", "FILL-IN")
    assert "runs-other-ckpt: fill in family and train_set" in err


def test_unchecked_rows_are_refused_by_the_sheet(repo, tmp_path):
    from divcoeff.config import ConfigError

    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("\t".join(SHEET_COLUMNS[:8]) + "\n" +
                     "a\tFILL-IN\tresnet12_rfs\tzenodo\t8247898/a/ckpt.pt\t\tmini-imagenet\tfalse\n")
    config = yaml.safe_load((repo / "config/paper/config.yaml").read_text())
    with pytest.raises(ConfigError, match=r"row 'a'.*family"):
        load_sheet(sheet, repo / "config/schemas/checkpoints.schema.yaml", config)


def test_list_zenodo_names_are_valid_sheet_names(server, capsys):
    _, out, _ = run(capsys, "list-zenodo", "8247898", "--base-url", server.url)
    for r in rows(out):
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", r["name"]), r["name"]


def test_filled_rows_load_as_a_checkpoint_sheet(server, capsys, repo, tmp_path):
    _, out, _ = run(capsys, "list-zenodo", "8247898", "--base-url", server.url, "--family", "pt",
                    "--train-set", "glyphs-4s-d0", "--prefix", "z-")
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(out)
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    table = load_sheet(sheet, repo / "config/schemas/checkpoints.schema.yaml", config)
    assert list(table["name"]) == ["z-hdb1-model", "z-maml-5way-v2", "z-mini_usl_resnet12"]
    assert set(table["family"]) == {"pt"}


def test_list_zenodo_no_header_appends_rows_only(server, capsys):
    _, out, _ = run(capsys, "list-zenodo", "8247898", "--base-url", server.url, "--no-header")
    assert len(out.strip().splitlines()) == 3 and not out.startswith("name\t")


def test_list_zenodo_missing_record_is_a_clear_error(server, capsys):
    code, out, err = run(capsys, "list-zenodo", "999", "--base-url", server.url, "--retries", "0")
    assert code == 1 and out == ""
    assert "Zenodo record 999" in err and "HTTP 404" in err


def test_list_zenodo_retries_a_503(server, capsys):
    server.fail("/api/records/8247898", "503")
    code, out, _ = run(capsys, "list-zenodo", "8247898", "--base-url", server.url)
    assert code == 0 and len(rows(out)) == 3


def test_list_hf_pins_the_commit_and_gives_lfs_sha256(server, capsys):
    code, out, err = run(capsys, "list-hf", "brando/rfs", "--endpoint", server.url)
    assert code == 0
    got = rows(out)
    assert [r["uri"] for r in got] == [f"brando/rfs/a/usl.pt@{server.commit}", f"brando/rfs/b.pth@{server.commit}"]
    assert [r["checksum"] for r in got] == [f"sha256:{sha256(A)}", ""]  # a non-LFS file has only a git id
    assert [r["name"] for r in got] == ["a-usl", "b"]
    assert f"commit {server.commit}" in err
    assert server.seen("GET")[-1]["path"].startswith("/api/models/brando/rfs/revision/main?")


def test_list_hf_reads_hf_endpoint_and_reports_missing_repo(server, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    code, _, err = run(capsys, "list-hf", "brando/none", "--retries", "0")
    assert code == 1 and "Hub repo 'brando/none'" in err and "repository not found" in err


def test_module_entry_point(server, repo):
    out = subprocess.run([sys.executable, "-m", "divcoeff", "list-zenodo", "8247898", "--base-url", server.url],
                         cwd=repo, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"8247898/mini_usl_resnet12.pt\tmd5:{md5(A)}" in out.stdout


@pytest.mark.parametrize("style", ["key", "filename", "entries"])
def test_list_zenodo_shows_full_keys_of_files_sharing_a_base_name(server, capsys, style):
    server.add_record("8247899", {"hdb1/usl/ckpt.pt": A, "hdb1/maml/ckpt.pt": B, "ckpt.pt": C}, style=style)
    code, out, err = run(capsys, "list-zenodo", "8247899", "--base-url", server.url)
    assert code == 0, err
    got = rows(out)
    assert [r["uri"] for r in got] == ["8247899/ckpt.pt", "8247899/hdb1/maml/ckpt.pt", "8247899/hdb1/usl/ckpt.pt"]
    assert [r["name"] for r in got] == ["ckpt", "hdb1-maml-ckpt", "hdb1-usl-ckpt"]
    assert [r["checksum"] for r in got] == [f"md5:{md5(C)}", f"md5:{md5(B)}", f"md5:{md5(A)}"]
    assert "3 checkpoint file(s) of 3" in err
