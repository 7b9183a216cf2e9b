"""divcoeff.fetch source 'hf' through huggingface_hub, against a local server speaking the Hub's file API."""
import logging

import pytest

from divcoeff.fetch import ChecksumError, FetchError, fetch, provenance_path
from divcoeff.logs import log_to
from fake_servers import FakeServer, checkpoint_bytes, git_blob_id, md5, sha256

DATA = checkpoint_bytes(7, 40_000)
SMALL = b"{'note': 'a small non-LFS file'}"
TOKEN = "hf_test_token_never_in_logs"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    s = FakeServer().start()
    s.commit = s.add_repo("brando/rfs-models", {"mini/usl.pt": DATA, "mini/small.ckpt": SMALL, "README.md": b"# x"},
                          lfs=("mini/usl.pt",))
    monkeypatch.setenv("HF_ENDPOINT", s.url)   # how a user points the workflow at a mirror
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield s
    s.stop()


@pytest.fixture
def settings(tmp_path):
    return {"retries": 2, "timeout_s": 5, "backoff_s": 0.01, "hf_cache": str(tmp_path / "hf-cache")}


def test_good_download_by_commit(hub, settings, tmp_path):
    dest = tmp_path / "out" / "usl.pt"
    prov = fetch("hf", f"brando/rfs-models/mini/usl.pt@{hub.commit}", dest, settings=settings)
    assert dest.read_bytes() == DATA
    assert prov["commit"] == hub.commit and prov["revision"] == hub.commit
    assert prov["repo_id"] == "brando/rfs-models" and prov["path"] == "mini/usl.pt"
    assert prov["url"] == f"{hub.url}/brando/rfs-models/resolve/{hub.commit}/mini/usl.pt"
    assert prov["sha256"] == sha256(DATA) and prov["md5"] == md5(DATA) and prov["size"] == len(DATA)
    assert prov["verified"] == [f"sha256:{sha256(DATA)} from the Hub (LFS sha256)"]
    # huggingface_hub's cache was used (and filled), in the folder the settings name
    assert any((tmp_path / "hf-cache").rglob(sha256(DATA)))
    # the token reached the server, as huggingface_hub sends it
    assert hub.seen("GET")[-1]["headers"].get("authorization") == f"Bearer {TOKEN}"


def test_token_never_reaches_logs_or_provenance(hub, settings, tmp_path):
    dest = tmp_path / "usl.pt"
    log = tmp_path / "fetch.log"
    with log_to(str(log)):
        fetch("hf", "brando/rfs-models/mini/usl.pt@main", dest, settings=settings)
    assert "branch or tag" in log.read_text()  # something was logged ...
    assert TOKEN not in log.read_text()            # ... but not the token
    assert TOKEN not in provenance_path(dest).read_text()


def test_branch_is_accepted_with_a_warning_and_the_commit_recorded(hub, settings, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="divcoeff.fetch"):
        prov = fetch("hf", "brando/rfs-models/mini/small.ckpt@main", tmp_path / "s.pt", settings=settings)
    assert "'main' is a branch or tag, not a commit hash" in caplog.text
    assert prov["revision"] == "main" and prov["commit"] == hub.commit
    assert prov["verified"] == [f"git blob {git_blob_id(SMALL)} from the Hub"]  # small files: git blob id checked
    assert (tmp_path / "s.pt").read_bytes() == SMALL


def test_sheet_checksum_mismatch_is_refused(hub, settings, tmp_path):
    dest = tmp_path / "usl.pt"
    with pytest.raises(ChecksumError, match=r"Hub repo 'brando/rfs-models', file 'mini/usl.pt'.*checksum mismatch"):
        fetch("hf", f"brando/rfs-models/mini/usl.pt@{hub.commit}", dest, f"md5:{md5(b'other')}", settings=settings)
    assert not dest.exists() and not provenance_path(dest).exists()
    assert list(tmp_path.glob("*usl*")) == []


def test_corrupt_bytes_from_the_hub_are_refused_and_not_kept_in_the_cache(hub, settings, tmp_path):
    uri = f"brando/rfs-models/mini/usl.pt@{hub.commit}"
    hub.fail(hub.resolve_path("brando/rfs-models", hub.commit, "mini/usl.pt"), "corrupt")
    with pytest.raises(ChecksumError, match="the Hub \\(LFS sha256\\) says sha256:"):
        fetch("hf", uri, tmp_path / "usl.pt", settings=settings)
    assert not (tmp_path / "usl.pt").exists()
    prov = fetch("hf", uri, tmp_path / "usl.pt", settings=settings)  # the rerun downloads again
    assert (tmp_path / "usl.pt").read_bytes() == DATA and prov["sha256"] == sha256(DATA)


@pytest.mark.parametrize("uri, message", [
    ("brando/nope/mini/usl.pt@main", "Hub repo 'brando/nope', file 'mini/usl.pt', revision 'main'.*repository not found"),
    ("brando/rfs-models/mini/gone.pt@main", "Hub repo 'brando/rfs-models', file 'mini/gone.pt', revision 'main'.*file not found"),
    ("brando/rfs-models/mini/usl.pt@" + "a" * 40, "file 'mini/usl.pt', revision '" + "a" * 40 + "'.*revision not found"),
])
def test_not_found_names_repo_file_and_revision(hub, settings, tmp_path, uri, message):
    with pytest.raises(FetchError, match=message):
        fetch("hf", uri, tmp_path / "x.pt", settings=settings)
    assert list(tmp_path.glob("x.pt*")) == []


def test_retry_after_one_503(hub, settings, tmp_path):
    path = hub.resolve_path("brando/rfs-models", hub.commit, "mini/usl.pt")
    hub.fail(path, "503", method="HEAD")
    hub.fail(path, "503", method="GET")
    prov = fetch("hf", f"brando/rfs-models/mini/usl.pt@{hub.commit}", tmp_path / "usl.pt", settings=settings)
    assert prov["sha256"] == sha256(DATA)
    assert len(hub.seen("GET", path)) == 2


def test_cut_transfer_is_completed(hub, settings, tmp_path):
    # huggingface_hub retries a cut transfer itself after a 1 s pause, from the last whole chunk it
    # received (here none: the test file is smaller than its 10 MB chunks, so it starts over).
    path = hub.resolve_path("brando/rfs-models", hub.commit, "mini/usl.pt")
    hub.fail(path, "cut")
    prov = fetch("hf", f"brando/rfs-models/mini/usl.pt@{hub.commit}", tmp_path / "usl.pt", settings=settings)
    assert prov["sha256"] == sha256(DATA) and (tmp_path / "usl.pt").read_bytes() == DATA
    assert len(hub.seen("GET", path)) == 2


def test_failed_download_leaves_no_blob_and_a_rerun_succeeds(hub, settings, tmp_path):
    path = hub.resolve_path("brando/rfs-models", hub.commit, "mini/usl.pt")
    uri = f"brando/rfs-models/mini/usl.pt@{hub.commit}"
    hub.fail(path, "404")  # the HEAD succeeds, the GET fails for good
    with pytest.raises(FetchError):
        fetch("hf", uri, tmp_path / "usl.pt", settings=settings)
    assert not (tmp_path / "usl.pt").exists()
    assert not any(p.is_file() for p in (tmp_path / "hf-cache").rglob("*") if "blobs" in p.parts)
    prov = fetch("hf", uri, tmp_path / "usl.pt", settings=settings)
    assert prov["sha256"] == sha256(DATA)


@pytest.mark.parametrize("uri", ["brando/rfs-models/mini/usl.pt", "rfs-models@main", "brando/rfs-models@main"])
def test_malformed_hf_uri(uri, tmp_path):
    with pytest.raises(FetchError, match=r"expected <namespace>/<repo>/<path/in/repo>@<revision>"):
        fetch("hf", uri, tmp_path / "x.pt")
