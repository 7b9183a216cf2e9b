"""Issue 16: the Zenodo client follows Zenodo's rules (one identified session, pacing under the guest
or token limits, Retry-After honoured across parallel jobs, both file-entry variants), against a
local server speaking the records API."""
import json
import logging
import os
import subprocess
import sys
import time

import pytest

from divcoeff import __version__
from divcoeff.fetch import FetchError, fetch, provenance_path
from divcoeff.fetch.http import session
from divcoeff.fetch.zenodo import ZenodoClient, get_record
from fake_servers import FakeServer, checkpoint_bytes, md5

A, B, C = checkpoint_bytes(11, 3000), checkpoint_bytes(12, 2500), checkpoint_bytes(13, 100)
TOKEN = "zenodo-token-7f3e91ab"
FAST = [{"requests": 1000, "window_s": 1.0}]  # a pace that never binds, where pacing is not the point


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("ZENODO_TOKEN", raising=False)
    monkeypatch.delenv("DIVCOEFF_CONTACT", raising=False)
    s = FakeServer().start()
    s.add_record("77", {"run1/ckpt.pt": A, "run2/ckpt.pt": B, "notes.txt": C})
    yield s
    s.stop()


@pytest.fixture
def settings(server, tmp_path):
    return {"zenodo_url": server.url, "retries": 3, "timeout_s": 10, "backoff_s": 0.01,
            "zenodo_pace": FAST, "zenodo_token_pace": FAST, "zenodo_pace_file": str(tmp_path / ".zenodo-pace")}


RECORD = "/api/records/77"


def arrivals(server, path=RECORD):
    return [r["time"] for r in server.seen("GET", path)]


def test_one_session_per_process_with_an_identifying_user_agent(server, settings, tmp_path):
    assert session() is session()
    get_record("77", {**settings, "contact": "mailto:lab@example.org"})
    fetch("zenodo", "77/notes.txt", tmp_path / "out" / "notes.txt",
          settings={**settings, "contact": "mailto:lab@example.org"})
    agents = {r["headers"]["user-agent"] for r in server.requests}
    assert len(agents) == 1
    agent = agents.pop()
    assert agent.startswith(f"divcoeff/{__version__} (") and "mailto:lab@example.org" in agent
    assert all("authorization" not in r["headers"] for r in server.requests)  # guests send no token


def test_the_token_goes_as_bearer_to_zenodo_only_and_is_never_logged(server, settings, tmp_path, monkeypatch,
                                                                       caplog):
    monkeypatch.setenv("ZENODO_TOKEN", TOKEN)
    dest = tmp_path / "ckpt.pt"
    with caplog.at_level(logging.DEBUG):
        fetch("zenodo", "77/run1/ckpt.pt", dest, settings=settings)
    assert dest.read_bytes() == A
    assert {r["headers"].get("authorization") for r in server.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN not in caplog.text and TOKEN not in provenance_path(dest).read_text()
    client = ZenodoClient(settings)
    assert client.headers_for(f"{server.url}/api/records/77") == {"Authorization": f"Bearer {TOKEN}"}
    assert client.headers_for("https://files.example.org/77/ckpt.pt") == {}  # a link elsewhere: no token
    assert TOKEN not in str(FetchError(f"headers {client.headers_for(server.url)}"))


def test_a_token_has_its_own_larger_budget(server, settings, monkeypatch):
    tight = {**settings, "zenodo_pace": [{"requests": 1, "window_s": 600}],
             "zenodo_token_pace": [{"requests": 5, "window_s": 600}], "zenodo_max_wait_s": 5}
    get_record("77", tight)
    with pytest.raises(FetchError, match=r"1 requests per 600 s\) would wait \d+ s, more than the 5 s allowed"):
        get_record("77", tight)  # a guest's second request would wait ten minutes: refused at once
    assert len(server.seen("GET", RECORD)) == 1
    monkeypatch.setenv("ZENODO_TOKEN", TOKEN)
    for _ in range(4):
        get_record("77", tight)
    assert len(server.seen("GET", RECORD)) == 5


def test_a_429_with_retry_after_seconds_is_waited_out(server, settings, caplog):
    server.fail(RECORD, "429:1")
    with caplog.at_level(logging.WARNING, logger="divcoeff.fetch"):
        record = get_record("77", settings)
    assert len(record.files) == 3
    first, second = arrivals(server)
    assert second - first >= 1.0
    assert "HTTP 429" in caplog.text and "Retry-After 1" in caplog.text


def test_a_429_with_an_http_date_is_waited_out(server, settings):
    until = int(time.time()) + 2
    server.fail(RECORD, f"429-date:{until}")
    get_record("77", settings)
    first, second = arrivals(server)
    assert second >= until


def test_an_exhausted_rate_limit_holds_the_next_request_until_the_reset(server, settings):
    reset = int(time.time()) + 2
    server.fail(RECORD, f"ratelimit-reset:{reset}")
    get_record("77", settings)      # answered, but with X-RateLimit-Remaining: 0
    get_record("77", settings)
    first, second = arrivals(server)
    assert second >= reset


def test_a_retry_after_longer_than_allowed_fails_at_once_and_holds_other_jobs(server, settings, tmp_path):
    server.fail(RECORD, "429:7200")
    started = time.time()
    with pytest.raises(FetchError, match=r"Retry-After 7200.*asks to wait 7200 s, more than the 60 s allowed"):
        get_record("77", {**settings, "zenodo_max_wait_s": 60})
    assert json.loads(open(settings["zenodo_pace_file"]).read())["blocked_until"] >= started + 7200
    with pytest.raises(FetchError, match="would wait"):   # the next job does not even ask
        get_record("77", {**settings, "zenodo_max_wait_s": 60})
    assert len(server.seen("GET", RECORD)) == 1


def test_100_quick_listings_stay_under_the_pace(server, settings):
    windows = [{"requests": 10, "window_s": 0.3}, {"requests": 25, "window_s": 1.0}]
    paced = {**settings, "zenodo_pace": windows}
    for _ in range(100):
        get_record("77", paced)
    times = sorted(arrivals(server))
    assert len(times) == 100
    for w in windows:
        n, span = w["requests"], w["window_s"]
        # in no window [t, t + span) did the server see more than n requests (1 ms for float rounding)
        worst = max(sum(1 for u in times if t <= u < t + span - 1e-3) for t in times)
        assert worst <= n, (w, worst)


@pytest.mark.parametrize("style", ["key", "filename", "entries"])
def test_both_file_entry_variants_parse_and_download(server, settings, tmp_path, style):
    server.add_record("78", {"run1/ckpt.pt": A, "run2/ckpt.pt": B}, style=style)
    record = get_record("78", settings)
    assert sorted((f.key, f.size, f.md5) for f in record.files) == [("run1/ckpt.pt", len(A), md5(A)),
                                                                    ("run2/ckpt.pt", len(B), md5(B))]
    listing = server.seen("GET", "/api/records/78")[-1]
    assert style != "filename" or "md5:" not in json.dumps(listing)  # (the checksums really were bare)
    prov = fetch("zenodo", "78/run2/ckpt.pt", tmp_path / "b.pt", settings=settings)
    assert (tmp_path / "b.pt").read_bytes() == B and prov["verified"] == [f"md5:{md5(B)} from the Zenodo record"]


CHILD = r"""
import json, pathlib, sys, time
from divcoeff.fetch.zenodo import get_record
settings, go, ready = json.loads(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.write_text("ready")
deadline = time.time() + 60
while not go.exists():
    if time.time() > deadline:
        sys.exit(3)
    time.sleep(0.005)
started = time.time()
record = get_record("77", settings)
print(json.dumps({"started": started, "files": len(record.files)}))
"""


def test_two_processes_sharing_the_pace_file_both_respect_one_429(server, settings, tmp_path, repo):
    retry_after = 2
    server.fail(RECORD, f"429:{retry_after}")
    pace = tmp_path / ".zenodo-pace"
    env = {**os.environ, "PYTHONPATH": str(repo)}
    procs = {}
    for name in ("a", "b"):
        procs[name] = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(settings), str(tmp_path / f"go-{name}"),
             str(tmp_path / f"ready-{name}")], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
    try:
        deadline = time.time() + 60
        while not all((tmp_path / f"ready-{n}").exists() for n in procs):
            assert time.time() < deadline, "the child processes did not start"
            time.sleep(0.01)
        (tmp_path / "go-a").write_text("go")   # a asks first and is told to wait
        while True:
            assert time.time() < deadline, "no 429 reached the pace file"
            state = json.loads(pace.read_text() or "{}") if pace.exists() else {}
            if state.get("blocked_until", 0) > time.time():
                break
            time.sleep(0.01)
        (tmp_path / "go-b").write_text("go")   # b starts while a's 429 is in force
        results = {}
        for name, p in procs.items():
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            results[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    times = arrivals(server)
    assert len(times) == 3 and all(r["files"] == 3 for r in results.values())
    the_429 = times[0]
    assert results["b"]["started"] < the_429 + retry_after  # b really asked during the wait ...
    assert all(t >= the_429 + retry_after for t in times[1:])  # ... and nobody reached the server in it
