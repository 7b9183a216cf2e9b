"""Issue 15, sizes: a download is never read much past the size its record declares."""
import pytest

from divcoeff.fetch import ChecksumError, fetch
from divcoeff.fetch.http import partial_paths
from fake_servers import FakeServer, checkpoint_bytes

DECLARED = 99_709
HUGE = b"\0" * 50_000_000
# What a server can have pushed into the sockets' buffers before it notices the client has gone
# (loopback send + receive buffers are a few MB); far below the 50 MB it would send in full.
BUFFERS = 25_000_000


@pytest.fixture
def server():
    s = FakeServer().start()
    s.add_record("42", {"model.pt": HUGE, "small.pt": checkpoint_bytes(3, 5000)},
                 declared_sizes={"model.pt": DECLARED, "small.pt": 6000})
    yield s
    s.stop()


@pytest.fixture
def settings(server):
    return {"zenodo_url": server.url, "retries": 2, "timeout_s": 10, "backoff_s": 0.01, "zenodo_pace_file": None}


def assert_nothing_kept(tmp_path, dest):
    part, meta = partial_paths(dest)
    assert not dest.exists() and not part.exists() and not meta.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_larger_content_length_fails_before_the_body_is_read(server, settings, tmp_path):
    dest = tmp_path / "model.pt"
    with pytest.raises(ChecksumError) as e:
        fetch("zenodo", "42/model.pt", dest, settings=settings)
    msg = str(e.value)
    assert "Zenodo record 42, file 'model.pt'" in msg and "size mismatch" in msg
    assert f"declared at {DECLARED} bytes" in msg and f"announces {len(HUGE)}" in msg
    assert server.url + "/api/records/42/files/model.pt/content" in msg
    path = server.record_file_path("42", "model.pt")
    assert server.bytes_sent[path] < BUFFERS
    assert len(server.seen("GET", path)) == 1  # not retried: the same bytes would come again
    assert_nothing_kept(tmp_path, dest)


def test_a_body_without_length_is_read_to_one_byte_past_the_declared_size(server, settings, tmp_path):
    path = server.record_file_path("42", "model.pt")
    server.fail(path, "no-length")
    dest = tmp_path / "model.pt"
    with pytest.raises(ChecksumError) as e:
        fetch("zenodo", "42/model.pt", dest, settings=settings)
    assert f"more than {DECLARED} bytes arrived (stopped reading at {DECLARED + 1})" in str(e.value)
    assert server.bytes_sent[path] < BUFFERS
    assert_nothing_kept(tmp_path, dest)


def test_fewer_bytes_than_declared_fail_too_and_nothing_is_trusted(server, settings, tmp_path):
    dest = tmp_path / "small.pt"
    with pytest.raises(ChecksumError, match="declared at 6000 bytes, the server announces 5000"):
        fetch("zenodo", "42/small.pt", dest, settings=settings)
    assert_nothing_kept(tmp_path, dest)
