"""Records that store archives of run folders: sheet rows point inside them (`<record>/<archive>#<member>`),
the archive is fetched once and extracted safely, the member's checksum is checked and recorded, and
`list-zenodo --members` prints those rows; against the loopback Zenodo of tests/fake_servers.py."""
import io
import json
import zipfile

import pytest
import yaml

from divcoeff.cli import main
from divcoeff.config import SHEET_COLUMNS, load_sheet
from divcoeff.fetch import ChecksumError, FetchError, fetch, provenance_path
from fake_servers import FakeServer, checkpoint_bytes, md5

MAML, USL, LOOSE = checkpoint_bytes(21, 4000), checkpoint_bytes(22, 3000), checkpoint_bytes(23, 500)
MAML_KEY, USL_KEY = "logs_maml_mi_seed1/ckpt.pt", "logs_usl_mi_seed1/ckpt.pt"


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


RUNS = zip_of({MAML_KEY: MAML, "logs_maml_mi_seed1/args.json": b"{}", USL_KEY: USL})


@pytest.fixture
def server():
    s = FakeServer().start()
    s.add_record("88", {"runs.zip": RUNS, "loose_usl_cifarfs.pt": LOOSE, "broken.zip": b"not a zip"})
    yield s
    s.stop()


@pytest.fixture
def settings(server, tmp_path):
    fast = [{"requests": 1000, "window_s": 1.0}]
    return {"zenodo_url": server.url, "retries": 2, "timeout_s": 10, "backoff_s": 0.01, "zenodo_pace": fast,
            "zenodo_token_pace": fast, "zenodo_pace_file": str(tmp_path / ".zenodo-pace")}


def archive_downloads(server):
    return len(server.seen("GET", server.record_file_path("88", "runs.zip")))


def test_a_member_of_an_archive_is_fetched_checked_and_recorded(server, settings, tmp_path):
    out = tmp_path / "resources" / "checkpoints"
    rec = fetch("zenodo", f"88/runs.zip#{MAML_KEY}", out / "maml.pt", f"md5:{md5(MAML)}", settings=settings)
    assert (out / "maml.pt").read_bytes() == MAML
    prov = json.loads(provenance_path(out / "maml.pt").read_text())
    assert prov == rec and prov["member"] == MAML_KEY and prov["key"] == "runs.zip"
    assert prov["md5"] == md5(MAML) and prov["size"] == len(MAML)
    assert prov["archive"]["md5"] == md5(RUNS) and prov["archive"]["size"] == len(RUNS)
    assert any("archive" in v and "Zenodo record" in v for v in prov["verified"])  # the record's md5 of the zip
    assert any("checkpoint sheet" in v for v in prov["verified"])
    # the second row of the same archive: no second download
    fetch("zenodo", f"88/runs.zip#{USL_KEY}", out / "usl.pt", f"md5:{md5(USL)}", settings=settings)
    assert (out / "usl.pt").read_bytes() == USL
    assert archive_downloads(server) == 1
    # the archive's bytes are not kept once extracted; nothing lands outside the cache folder
    assert not list(out.rglob("archive.zip"))
    assert sorted(p.name for p in out.iterdir()) == [".zenodo-archives", "maml.pt", "maml.pt.provenance.json",
                                                      "usl.pt", "usl.pt.provenance.json"]


def test_a_wrong_member_checksum_fails_and_leaves_nothing(server, settings, tmp_path):
    dest = tmp_path / "ck" / "x.pt"
    with pytest.raises(ChecksumError):
        fetch("zenodo", f"88/runs.zip#{USL_KEY}", dest, f"md5:{md5(MAML)}", settings=settings)
    assert not dest.exists() and not provenance_path(dest).exists()


@pytest.mark.parametrize("uri, message", [
    ("88/runs.zip#logs_usl_mi_seed1/missing.pt", r"no such file; its files are: .*logs_usl_mi_seed1/ckpt\.pt"),
    ("88/runs.zip#../../etc/passwd", r"relative path inside the archive"),
    ("88/runs.zip#", r"relative path inside the archive"),
    ("88/loose_usl_cifarfs.pt#a.pt", r"not a zip or tar archive"),
])
def test_bad_member_uris_are_refused_naming_what_is_wrong(server, settings, tmp_path, uri, message):
    with pytest.raises(FetchError, match=message):
        fetch("zenodo", uri, tmp_path / "ck" / "x.pt", settings=settings)
    assert not (tmp_path / "ck" / "x.pt").exists()


def rows(tsv):
    lines = tsv.strip().splitlines()
    assert lines[0].split("\t") == SHEET_COLUMNS
    return [dict(zip(SHEET_COLUMNS, line.split("\t"))) for line in lines[1:]]


def test_list_zenodo_members_lists_the_run_folders_inside_archives(server, capsys):
    assert main(["list-zenodo", "88", "--base-url", server.url]) == 0
    plain = rows(capsys.readouterr()[0])
    assert [r["uri"] for r in plain] == ["88/loose_usl_cifarfs.pt"]  # without --members: the archive is opaque
    assert main(["list-zenodo", "88", "--base-url", server.url, "--members"]) == 0
    out, err = capsys.readouterr()
    got = {r["uri"]: r for r in rows(out)}
    assert list(got) == ["88/loose_usl_cifarfs.pt", f"88/runs.zip#{MAML_KEY}", f"88/runs.zip#{USL_KEY}"]
    maml, usl = got[f"88/runs.zip#{MAML_KEY}"], got[f"88/runs.zip#{USL_KEY}"]
    assert (maml["checksum"], usl["checksum"]) == (f"md5:{md5(MAML)}", f"md5:{md5(USL)}")
    assert (maml["family"], maml["train_set"]) == ("maml", "mini-imagenet")
    assert (usl["family"], usl["train_set"]) == ("pt", "mini-imagenet")
    assert maml["name"] != usl["name"] and maml["name"].startswith("runs-logs_maml")
    assert "2 archive(s)" in err and "'broken.zip' not read" in err


def test_a_listed_member_row_loads_in_the_sheet_and_fetches_the_member(server, settings, capsys, tmp_path, repo):
    main(["list-zenodo", "88", "--base-url", server.url, "--members", "--train-set", "glyphs-4s-d0"])
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(capsys.readouterr()[0])
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    table = load_sheet(sheet, repo / "config/schemas/checkpoints.schema.yaml", config)
    row = next(r for r in table.to_dict("records") if r["uri"].endswith(USL_KEY))
    fetch(row["source"], row["uri"], tmp_path / "u.pt", row["checksum"], settings=settings)
    assert (tmp_path / "u.pt").read_bytes() == USL
