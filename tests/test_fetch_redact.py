"""Issue 15, secrets: one redaction for every log line, error and file the fetch stage writes."""
import json
import logging

import pytest

from divcoeff.fetch import FetchError, fetch, provenance_path
from divcoeff.fetch.http import partial_paths
from divcoeff.fetch.redact import redact, redact_obj, register_secret
from divcoeff.logs import log_to
from fake_servers import FakeServer, checkpoint_bytes, md5

DATA = checkpoint_bytes(5, 20_000)
PASSWORD = "pa55-w0rd-in-url"
TOKEN = "tok-3f9a1c77e0"


@pytest.mark.parametrize("text, hidden, kept", [
    ("https://user:pa55@example.org/x.pt", ["user", "pa55"], ["https://***@example.org/x.pt"]),
    ("http://alice@127.0.0.1:8080/f?x=1", ["alice"], ["http://***@127.0.0.1:8080/f?x=1"]),
    ("https://h/x.pt?token=abc123&download=1", ["abc123"], ["?token=***&download=1"]),
    ("https://h/x?access_token=a1&X-Amz-Signature=s1&X-Amz-Credential=c1&api_key=k1",
     ["a1", "s1", "c1", "k1"], ["access_token=***", "X-Amz-Signature=***"]),
    ("HTTPConnectionPool(host='h', port=1): Max retries exceeded with url: /f.pt?token=zz9 (Caused by x)",
     ["zz9"], ["url: /f.pt?token=*** (Caused"]),
    ("Authorization: Bearer eyJhbGciOi.J9", ["eyJhbGciOi.J9"], ["Authorization: Bearer ***"]),
    ("{'Authorization': 'token ghp_abcdef012345', 'Accept': '*/*'}", ["ghp_abcdef012345"],
     ["'Authorization': 'token ***'", "'Accept': '*/*'"]),
    ("sent Basic dXNlcjpzZWNyZXQ= upstream", ["dXNlcjpzZWNyZXQ="], ["Basic ***"]),
])
def test_redact_hides_credentials_in_any_text(text, hidden, kept):
    out = redact(text)
    for h in hidden:
        assert h not in out, out
    for k in kept:
        assert k in out, out
    assert redact(out) == out  # idempotent


@pytest.mark.parametrize("text", [
    "Zenodo record 8247898, file 'run1/ckpt.pt': not found: HTTP 404 from https://zenodo.org/api/records/8247898",
    "tokens_used=3 mytoken=4 basic checks passed; md5:0123456789abcdef0123456789abcdef",
    "local file '/home/me/ckpt@2/x.pt'",
])
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_registered_secrets_are_hidden_even_percent_decoded():
    register_secret("p%40ss-registered-1")
    assert redact("user said p@ss-registered-1 and p%40ss-registered-1") == "user said *** and ***"
    assert redact_obj({"a": ["x p@ss-registered-1"], "n": 3}) == {"a": ["x ***"], "n": 3}


@pytest.fixture
def server():
    s = FakeServer().start()
    yield s
    s.stop()


def secret_url(server, name):
    return server.url.replace("http://", f"http://user:{PASSWORD}@") + f"/files/{name}?token={TOKEN}&v=1"


def assert_clean(*texts):
    for t in texts:
        assert PASSWORD not in t and TOKEN not in t, t


def test_a_credentialed_url_is_fetched_and_its_secrets_written_nowhere(server, tmp_path):
    server.add_plain("w.pt", DATA, auth=("user", PASSWORD), token=TOKEN)
    log = tmp_path / "fetch.log"
    dest = tmp_path / "out" / "w.pt"
    with log_to(str(log)):
        logging.getLogger("urllib3").setLevel(logging.DEBUG)  # urllib3 logs every request line at DEBUG
        try:
            prov = fetch("url", secret_url(server, "w.pt"), dest, f"md5:{md5(DATA)}",
                         settings={"retries": 0, "timeout_s": 5})
        finally:
            logging.getLogger("urllib3").setLevel(logging.WARNING)
    assert dest.read_bytes() == DATA  # the credentials were sent: the server accepts nothing else
    assert "/files/w.pt" in log.read_text()  # urllib3's request line is in the log, redacted
    assert_clean(log.read_text(), provenance_path(dest).read_text(), json.dumps(prov))
    assert prov["uri"].endswith("/files/w.pt?token=***&v=1") and "***@" in prov["uri"]


def test_errors_retries_and_partial_files_carry_no_secret(server, tmp_path, caplog):
    server.add_plain("big.pt", DATA, auth=("user", PASSWORD), token=TOKEN)
    server.fail("/files/big.pt", "503", "cut")
    dest = tmp_path / "big.pt"
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(FetchError) as e:
            fetch("url", secret_url(server, "big.pt"), dest, f"md5:{md5(DATA)}",
                  settings={"retries": 1, "timeout_s": 5, "backoff_s": 0.01})
    assert "broke off" in str(e.value) or "ended at" in str(e.value)
    part, meta = partial_paths(dest)
    assert part.exists() and meta.exists()  # kept for a resume, under a name nobody trusts
    assert_clean(str(e.value), caplog.text, meta.read_text())
    assert "HTTP 503" in caplog.text  # the retry was logged, with the redacted URL
    # 404 and a bad URL form name the URL, redacted
    with pytest.raises(FetchError) as e:
        fetch("url", secret_url(server, "nope.pt"), tmp_path / "n.pt", f"md5:{md5(DATA)}", settings={"retries": 0})
    assert "HTTP 404" in str(e.value) and "token=***" in str(e.value)
    assert_clean(str(e.value))
    with pytest.raises(FetchError) as e:
        fetch("url", f"ftp://user:{PASSWORD}@h/x?token={TOKEN}", tmp_path / "f.pt", f"md5:{md5(DATA)}")
    assert_clean(str(e.value))


def test_connection_errors_quoting_the_url_are_redacted(tmp_path):
    s = FakeServer().start()
    dead = s.url
    s.stop()
    url = dead.replace("http://", f"http://user:{PASSWORD}@") + f"/files/x.pt?token={TOKEN}"
    with pytest.raises(FetchError) as e:
        fetch("url", url, tmp_path / "x.pt", f"md5:{md5(DATA)}", settings={"retries": 0, "timeout_s": 2})
    assert "giving up" in str(e.value)
    assert_clean(str(e.value))
