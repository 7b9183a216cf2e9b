"""divcoeff.fetch against a real local HTTP server: Zenodo records, plain URLs, local files."""
import hashlib
import json
import logging

import pytest

from divcoeff.fetch import ChecksumError, FetchError, fetch, provenance_path
from divcoeff.fetch.checksums import parse_checksum
from divcoeff.fetch.http import partial_paths
from fake_servers import FakeServer, checkpoint_bytes, md5, sha256

DATA = checkpoint_bytes(1)
OTHER = checkpoint_bytes(2, 3000)


@pytest.fixture
def server():
    s = FakeServer().start()
    s.add_record("8247898", {"model_a.pt": DATA, "notes.txt": b"hello", "bad.pt": OTHER}, wrong_md5=("bad.pt",))
    yield s
    s.stop()


@pytest.fixture
def settings(server):
    # backoff_s tiny: the retries themselves are what is tested, not the waiting.
    return {"zenodo_url": server.url, "retries": 2, "timeout_s": 5, "backoff_s": 0.01, "zenodo_pace_file": None}


def only_dest_left(dest):
    """The folder holds the file and its provenance, nothing half-done."""
    return sorted(p.name for p in dest.parent.iterdir()) == sorted([dest.name, provenance_path(dest).name])


def assert_nothing_left(dest):
    assert not dest.exists()
    assert not provenance_path(dest).exists()


def test_zenodo_good_download_writes_file_and_provenance(server, settings, tmp_path):
    dest = tmp_path / "ckpt" / "a.pt"
    prov = fetch("zenodo", "8247898/model_a.pt", dest, settings=settings)
    assert dest.read_bytes() == DATA
    assert prov == json.loads(provenance_path(dest).read_text())
    assert prov["source"] == "zenodo" and prov["uri"] == "8247898/model_a.pt"
    assert prov["record"] == "8247898" and prov["key"] == "model_a.pt"
    assert prov["url"] == f"{server.url}/api/records/8247898/files/model_a.pt/content"
    assert prov["size"] == len(DATA)
    assert prov["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert prov["md5"] == hashlib.md5(DATA).hexdigest()
    assert prov["verified"] == [f"md5:{md5(DATA)} from the Zenodo record"]
    assert prov["time"].endswith("+00:00")
    assert only_dest_left(dest)


def test_zenodo_sheet_checksum_is_checked_too(server, settings, tmp_path):
    dest = tmp_path / "a.pt"
    prov = fetch("zenodo", "8247898/model_a.pt", dest, f"sha256:{sha256(DATA)}", settings=settings)
    assert len(prov["verified"]) == 2
    with pytest.raises(ChecksumError, match=r"the checkpoint sheet says sha256:0{64}"):
        fetch("zenodo", "8247898/model_a.pt", dest, "sha256:" + "0" * 64, settings=settings)
    assert_nothing_left(dest)  # the earlier good copy is gone too: a failed fetch leaves nothing to trust


def test_zenodo_record_md5_mismatch_is_refused_and_leaves_nothing(server, settings, tmp_path):
    dest = tmp_path / "bad.pt"
    with pytest.raises(ChecksumError) as e:
        fetch("zenodo", "8247898/bad.pt", dest, settings=settings)
    msg = str(e.value)
    assert "Zenodo record 8247898, file 'bad.pt'" in msg
    assert f"md5:{md5(OTHER + b'x')}" in msg and f"md5:{md5(OTHER)}" in msg
    assert_nothing_left(dest)
    assert list(tmp_path.iterdir()) == []  # no partial file either: corrupt bytes are not resumed


def test_corrupted_transfer_is_refused(server, settings, tmp_path):
    server.fail(server.record_file_path("8247898", "model_a.pt"), "corrupt")
    with pytest.raises(ChecksumError, match="md5 mismatch|checksum mismatch"):
        fetch("zenodo", "8247898/model_a.pt", tmp_path / "a.pt", settings=settings)
    assert list(tmp_path.iterdir()) == []


def test_missing_record_names_record_and_file(server, settings, tmp_path):
    with pytest.raises(FetchError) as e:
        fetch("zenodo", "1234/model_a.pt", tmp_path / "a.pt", settings=settings)
    assert "Zenodo record 1234, file 'model_a.pt': not found: HTTP 404" in str(e.value)
    assert f"{server.url}/api/records/1234" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_in_record_lists_what_is_there(server, settings, tmp_path):
    with pytest.raises(FetchError) as e:
        fetch("zenodo", "8247898/model_b.pt", tmp_path / "b.pt", settings=settings)
    msg = str(e.value)
    assert "Zenodo record 8247898, file 'model_b.pt'" in msg
    assert "bad.pt, model_a.pt, notes.txt" in msg and "list-zenodo 8247898" in msg


def test_file_404_names_record_file_and_url(server, settings, tmp_path):
    path = server.record_file_path("8247898", "model_a.pt")
    server.fail(path, "404")
    with pytest.raises(FetchError) as e:
        fetch("zenodo", "8247898/model_a.pt", tmp_path / "a.pt", settings=settings)
    msg = str(e.value)
    assert "Zenodo record 8247898, file 'model_a.pt'" in msg and "HTTP 404" in msg and path in msg
    assert len(server.seen("GET", path)) == 1  # a 404 is not retried
    assert list(tmp_path.iterdir()) == []


def test_retry_after_one_503(server, settings, tmp_path, caplog):
    path = server.record_file_path("8247898", "model_a.pt")
    server.fail(path, "503")
    server.fail("/api/records/8247898", "503")
    with caplog.at_level(logging.WARNING, logger="divcoeff.fetch"):
        prov = fetch("zenodo", "8247898/model_a.pt", tmp_path / "a.pt", settings=settings)
    assert (tmp_path / "a.pt").read_bytes() == DATA
    assert prov["attempts"] == 2
    assert len(server.seen("GET", path)) == 2 and len(server.seen("GET", "/api/records/8247898")) == 2
    assert sum("HTTP 503" in r.message for r in caplog.records) == 2


def test_persistent_503_gives_up_after_the_configured_retries(server, settings, tmp_path):
    path = server.record_file_path("8247898", "model_a.pt")
    server.fail(path, "503", "503", "503", "503")
    with pytest.raises(FetchError, match=r"giving up after 3 attempt\(s\): HTTP 503"):
        fetch("zenodo", "8247898/model_a.pt", tmp_path / "a.pt", settings=settings)
    assert len(server.seen("GET", path)) == 3
    assert list(tmp_path.iterdir()) == []


def test_cut_transfer_is_resumed_by_a_rerun(server, settings, tmp_path):
    path = server.record_file_path("8247898", "model_a.pt")
    dest = tmp_path / "a.pt"
    part, _ = partial_paths(dest)
    server.fail(path, "cut")
    with pytest.raises(FetchError) as e:
        fetch("zenodo", "8247898/model_a.pt", dest, settings={**settings, "retries": 0})
    assert f"ended at {len(DATA) // 2} of {len(DATA)} bytes" in str(e.value) and "a rerun resumes" in str(e.value)
    assert_nothing_left(dest)
    assert part.read_bytes() == DATA[: len(DATA) // 2]  # what arrived is kept, under a name nobody trusts

    prov = fetch("zenodo", "8247898/model_a.pt", dest, settings={**settings, "retries": 0})
    assert dest.read_bytes() == DATA and prov["md5"] == md5(DATA)
    last = server.seen("GET", path)[-1]
    assert last["headers"]["range"] == f"bytes={len(DATA) // 2}-"
    assert last["headers"]["if-range"] == f'"{md5(DATA)}"'
    assert only_dest_left(dest)


def test_cut_transfer_is_resumed_within_one_call(server, settings, tmp_path):
    path = server.record_file_path("8247898", "model_a.pt")
    server.fail(path, "cut", "cut")  # the resumed request is cut too: half of the rest arrives
    prov = fetch("zenodo", "8247898/model_a.pt", tmp_path / "a.pt", settings=settings)
    assert (tmp_path / "a.pt").read_bytes() == DATA and prov["attempts"] == 3
    ranges = [r["headers"].get("range") for r in server.seen("GET", path)]
    half = len(DATA) // 2
    assert ranges == [None, f"bytes={half}-", f"bytes={half + (len(DATA) - half) // 2}-"]


def test_server_ignoring_range_restarts_cleanly(server, settings, tmp_path):
    path = server.record_file_path("8247898", "model_a.pt")
    server.fail(path, "cut", "ignore-range")
    fetch("zenodo", "8247898/model_a.pt", tmp_path / "a.pt", settings=settings)
    assert (tmp_path / "a.pt").read_bytes() == DATA


def test_partial_file_of_another_url_is_not_resumed(server, settings, tmp_path):
    url = server.add_plain("x.bin", OTHER)
    dest = tmp_path / "a.pt"
    part, meta = partial_paths(dest)
    part.write_bytes(b"garbage from elsewhere")
    meta.write_text(json.dumps({"url": url, "url_id": "sha256:" + sha256(url.encode()), "validator": None,
                                "total": None}))
    fetch("zenodo", "8247898/model_a.pt", dest, settings=settings)
    assert dest.read_bytes() == DATA
    assert "range" not in server.seen("GET", server.record_file_path("8247898", "model_a.pt"))[-1]["headers"]


def test_url_source_needs_and_checks_a_checksum(server, settings, tmp_path):
    url = server.add_plain("weights.pth", OTHER)
    dest = tmp_path / "w.pt"
    with pytest.raises(FetchError, match="checksum .* is required for source 'url'"):
        fetch("url", url, dest, settings=settings)
    prov = fetch("url", url, dest, f"md5:{md5(OTHER)}", settings=settings)
    assert dest.read_bytes() == OTHER and prov["url"] == url and prov["sha256"] == sha256(OTHER)
    with pytest.raises(ChecksumError, match=f"URL {url}: checksum mismatch"):
        fetch("url", url, dest, f"sha256:{sha256(DATA)}", settings=settings)
    assert_nothing_left(dest)


def test_url_404_and_503_then_ok(server, settings, tmp_path):
    with pytest.raises(FetchError, match=rf"URL {server.url}/files/nope.pt: not found: HTTP 404"):
        fetch("url", f"{server.url}/files/nope.pt", tmp_path / "n.pt", f"md5:{md5(OTHER)}", settings=settings)
    url = server.add_plain("w.pth", OTHER)
    server.fail("/files/w.pth", "503")
    prov = fetch("url", url, tmp_path / "w.pt", f"md5:{md5(OTHER)}", settings=settings)
    assert prov["attempts"] == 2 and (tmp_path / "w.pt").read_bytes() == OTHER


def test_url_credentials_stay_out_of_provenance(server, settings, tmp_path):
    server.add_plain("w.pth", OTHER)
    url = server.url.replace("http://", "http://user:s3cret@") + "/files/w.pth"
    prov = fetch("url", url, tmp_path / "w.pt", f"md5:{md5(OTHER)}", settings=settings)
    assert "s3cret" not in provenance_path(tmp_path / "w.pt").read_text()
    assert prov["uri"] == server.url.replace("http://", "http://***@") + "/files/w.pth"


def test_connection_refused_is_retried_then_reported(settings, tmp_path):
    s = FakeServer().start()
    dead = s.url
    s.stop()  # nothing listens on this port any more
    with pytest.raises(FetchError, match=r"giving up after 2 attempt\(s\)"):
        fetch("url", f"{dead}/files/x.pt", tmp_path / "x.pt", f"md5:{md5(OTHER)}",
              settings={**settings, "retries": 1})
    assert list(tmp_path.iterdir()) == []


def test_file_source_copies_hashes_and_verifies(tmp_path):
    src = tmp_path / "src" / "mine.pt"
    src.parent.mkdir()
    src.write_bytes(OTHER)
    dest = tmp_path / "out" / "mine.pt"
    prov = fetch("file", str(src), dest)
    assert dest.read_bytes() == OTHER
    assert prov["path"] == str(src.resolve()) and prov["md5"] == md5(OTHER) and prov["verified"] == []
    prov = fetch("file", str(src), dest, f"md5:{md5(OTHER)}")
    assert prov["verified"] == [f"md5:{md5(OTHER)} from the checkpoint sheet"]
    with pytest.raises(ChecksumError, match=f"local file '{src}': checksum mismatch"):
        fetch("file", str(src), dest, f"md5:{md5(DATA)}")
    assert_nothing_left(dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == []
    with pytest.raises(FetchError, match="no such file"):
        fetch("file", str(tmp_path / "missing.pt"), dest)


@pytest.mark.parametrize("source, uri, checksum, message", [
    ("train", "", None, "made by the workflow"),
    ("zenodo", "model.pt", None, r"expected <record id>/<file key>"),
    ("url", "ftp://x/y.pt", "md5:" + "0" * 32, "expected an http"),
    ("file", "x.pt", "md5:123", "not a checksum"),
])
def test_bad_arguments_are_named(source, uri, checksum, message, tmp_path):
    with pytest.raises(FetchError, match=message):
        fetch(source, uri, tmp_path / "x.pt", checksum)


def test_parse_checksum():
    assert str(parse_checksum("MD5:" + "AB" * 16)) == "md5:" + "ab" * 16
    assert parse_checksum("") is None and parse_checksum(None) is None
    with pytest.raises(ValueError, match="sha256:<64 hex digits>"):
        parse_checksum("sha256:abc")
    with pytest.raises(ValueError):
        parse_checksum("sha1:" + "a" * 40)
