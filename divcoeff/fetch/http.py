"""HTTP downloads a rerun can trust: resumable, retried, verified, then renamed into place.

Bytes arrive in `<dest>.part`; `<dest>.part.json` remembers which URL (and which version of
it, by ETag or Last-Modified) they belong to, so that a later attempt, in this process or in a
rerun after a crash, asks only for the rest (`Range: bytes=N-`, guarded by `If-Range`). The
finished file is hashed and compared with every expected checksum before it is renamed onto
`dest`; a mismatch deletes the partial file, because resuming corrupt bytes cannot help.
Transient failures (connection errors, timeouts, a transfer cut short, HTTP 408/429/5xx) are
retried with exponential backoff; other HTTP errors fail at once with the URL in the message.

When the size of the file is known in advance (a Zenodo record declares it), a larger
Content-Length fails before the body is read, and a body without one is read to at most one byte
past the declared size: a server sending 50 MB for a 100 kB file costs 100 kB, not 50 MB. When it
is not, a cap (`max_bytes`; `fetch.max_bytes` for url rows) bounds it the same way: an endless
stream stops one byte past the cap and its partial file is deleted.

Every process uses one `requests.Session` (`session()`), whose User-Agent names this project,
its version and, when configured (`fetch.contact`), who runs it. URLs and messages go through
divcoeff.fetch.redact before they reach a log, an error or a file.
"""
from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from .. import __version__
from .checksums import Checksum, hash_file, verify
from .errors import ChecksumError, FetchError, SizeLimitError
from .pace import Pacer
from ..settings import FetchSettings, fetch_settings
from .redact import redact

log = logging.getLogger("divcoeff.fetch")

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 18
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class HttpSettings:
    """The `fetch:` section of the config, as far as HTTP is concerned (defaults: the schema's)."""

    retries: int                # attempts after the first one
    timeout_s: float            # connect and read timeout of one request
    backoff_s: float            # wait before retry k is backoff_s * 2**k
    max_backoff_s: float

    @classmethod
    def from_settings(cls, settings: FetchSettings | dict | None) -> "HttpSettings":
        s = fetch_settings(settings)
        return cls(retries=s.retries, timeout_s=s.timeout_s, backoff_s=s.backoff_s, max_backoff_s=s.max_backoff_s)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        wait = self.backoff_s * 2 ** attempt
        if retry_after is not None:
            wait = max(wait, retry_after)  # the server knows best when it will be back
        return min(wait, self.max_backoff_s)


class TransientError(Exception):
    """A failure worth another attempt."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(redact(message))
        self.retry_after = retry_after


@dataclass(frozen=True)
class Download:
    url: str        # the URL asked for (redirects are followed)
    size: int
    sha256: str
    md5: str
    verified: list
    attempts: int
    resumed_from: int  # bytes already on disk when the first attempt of this call started


PROJECT = "divcoeff"
_SESSIONS: dict[int, requests.Session] = {}
_SESSIONS_LOCK = threading.Lock()


def user_agent(contact: str | None = None) -> str:
    """`divcoeff/<version> (research data workflow; <contact>) python-requests/<version>`."""
    who = f"; {contact.strip()}" if contact and contact.strip() else ""
    return f"{PROJECT}/{__version__} (research data workflow{who}) python-requests/{requests.__version__}"


def session(contact: str | None = None) -> requests.Session:
    """This process's one Session (connection reuse, one User-Agent); a forked child gets its own."""
    pid = os.getpid()
    with _SESSIONS_LOCK:
        s = _SESSIONS.get(pid)
        if s is None:
            _SESSIONS.clear()  # sessions inherited from a parent process are not used in a child
            s = _SESSIONS[pid] = requests.Session()
        s.headers["User-Agent"] = user_agent(contact or os.environ.get("DIVCOEFF_CONTACT"))
    return s


def retry_after(response: requests.Response, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (delay-seconds or an HTTP date); None when absent or unreadable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _rate_limit_reset(response: requests.Response) -> float | None:
    """Seconds until `X-RateLimit-Reset` when `X-RateLimit-Remaining` says nothing is left."""
    if (response.headers.get("X-RateLimit-Remaining") or "").strip() != "0":
        return None
    try:
        reset = float(response.headers.get("X-RateLimit-Reset", ""))
    except ValueError:
        return None
    wait = reset - time.time() if reset > 1e9 else reset  # a Unix time, or (some servers) seconds
    return wait if wait > 0 else None


def _observe(response: requests.Response, pace: Pacer | None, what: str) -> None:
    """Tell the pacer what the server said about its limits (429 Retry-After, an exhausted budget)."""
    if pace is None:
        return
    if response.status_code == 429:
        wait = retry_after(response)
        if wait is None:
            wait = min((w.seconds for w in pace.windows), default=60.0)
            pace.hold(wait, what, "HTTP 429 Too Many Requests (no Retry-After)")
        else:
            pace.hold(wait, what, f"HTTP 429 Too Many Requests, Retry-After {response.headers.get('Retry-After')}")
        return
    reset = _rate_limit_reset(response)
    if reset is not None:
        pace.hold(reset, what, "X-RateLimit-Remaining: 0")


def _get(http: requests.Session, url: str, what: str, settings: HttpSettings, *, pace: Pacer | None,
         headers: dict, stream: bool = False) -> requests.Response:
    """One paced GET; the pacer's slot is stamped when the response headers are in."""
    if pace is None:
        return http.get(url, headers=headers, stream=stream, timeout=settings.timeout_s)
    with pace.request(what):
        r = http.get(url, headers=headers, stream=stream, timeout=settings.timeout_s)
    try:
        _observe(r, pace, what)
    except BaseException:
        r.close()
        raise
    return r


def with_retries(call, what: str, settings: HttpSettings):
    """Run `call()` until it stops raising TransientError, at most 1 + settings.retries times."""
    attempt = 0
    while True:
        try:
            return call(), attempt + 1
        except TransientError as e:
            if attempt >= settings.retries:
                raise FetchError(f"{what}: giving up after {attempt + 1} attempt(s): {e}") from None
            wait = settings.delay(attempt, e.retry_after)
            log.warning("%s: %s; attempt %d of %d in %.1f s", what, e, attempt + 2, settings.retries + 1, wait)
            time.sleep(wait)
            attempt += 1


def _check_status(response: requests.Response, what: str, url: str) -> None:
    code = response.status_code
    if code in RETRY_STATUS:
        raise TransientError(f"HTTP {code} {response.reason} from {redact(url)}", retry_after(response))
    if code in (404, 410):
        raise FetchError(f"{what}: not found: HTTP {code} {response.reason} from {redact(url)}")
    if code in (401, 403):
        raise FetchError(f"{what}: access refused: HTTP {code} {response.reason} from {redact(url)}")
    if code >= 400:
        raise FetchError(f"{what}: HTTP {code} {response.reason} from {redact(url)}")


def get_json(url: str, what: str, settings: HttpSettings, http: requests.Session | None = None, *,
             pace: Pacer | None = None, headers: dict | None = None) -> dict:
    """GET a JSON document with retries; 404 and friends raise FetchError naming `what` and the URL.

    `pace` paces the request (and learns from 429s); `headers` are added (e.g. Authorization)."""
    http = http or session()
    sent = {"Accept": "application/json", **(headers or {})}

    def attempt():
        try:
            r = _get(http, url, what, settings, pace=pace, headers=sent)
        except requests.exceptions.SSLError as e:
            raise FetchError(f"{what}: TLS error talking to {redact(url)}: {e}") from None
        except (requests.ConnectionError, requests.Timeout) as e:
            raise TransientError(f"{type(e).__name__} for {redact(url)}: {e}") from None
        _check_status(r, what, url)
        try:
            return r.json()
        except ValueError:
            raise FetchError(f"{what}: {redact(url)} did not answer with JSON "
                             f"(Content-Type {r.headers.get('Content-Type')!r})") from None

    return with_retries(attempt, what, settings)[0]


def partial_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


def _url_id(url: str) -> str:
    """What the partial file's note records about its URL: a hash, so no credential of it lands on disk."""
    return "sha256:" + hashlib.sha256(url.encode("utf-8")).hexdigest()


class _Resumable:
    """The partial file of one destination and what it is a part of."""

    def __init__(self, dest: Path, url: str):
        self.part, self.meta_path = partial_paths(dest)
        self.url = url

    def bytes_on_disk(self) -> tuple[int, str | None]:
        """(bytes, validator) of a partial download of this same URL; anything else is discarded."""
        if not self.part.exists():
            self.meta_path.unlink(missing_ok=True)
            return 0, None
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if not isinstance(meta, dict) or meta.get("url_id") != _url_id(self.url):
            self.discard()
            return 0, None
        return self.part.stat().st_size, meta.get("validator")

    def start(self, validator: str | None, total: int | None) -> None:
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self.meta_path.write_text(json.dumps({"url_id": _url_id(self.url), "validator": validator, "total": total}),
                                  encoding="utf-8")

    def discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)


def _validator(response: requests.Response) -> str | None:
    """What If-Range may carry: a strong ETag, else Last-Modified (RFC 9110, 13.1.5)."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


def _too_large(partial: _Resumable, what: str, url: str, limit: int, detail: str) -> ChecksumError:
    partial.discard()
    return ChecksumError(f"{what}: size mismatch: the file is declared at {limit} bytes, {detail} "
                         f"from {redact(url)}; nothing was kept")


def _over_cap(partial: _Resumable, what: str, url: str, cap: int, detail: str) -> SizeLimitError:
    partial.discard()
    return SizeLimitError(f"{what}: larger than the limit of {cap} bytes (fetch.max_bytes, or the row's size): "
                          f"{detail} from {redact(url)}; the partial file was deleted")


def _transfer(http: requests.Session, partial: _Resumable, what: str, settings: HttpSettings,
              limit: int | None = None, pace: Pacer | None = None, extra_headers: dict | None = None,
              cap: int | None = None) -> None:
    """One GET: continue the partial file (or start it) and stop when the server stops sending.

    With `limit` (the declared size), a larger announced size fails before the body is read and
    at most limit + 1 bytes are read in all. With `cap` (the most a file of unknown size may
    have), a larger announced size fails before the body and at most cap + 1 bytes are read."""
    if limit is not None:
        cap = None  # the exact size is the stricter bound
    have, validator = partial.bytes_on_disk()
    bound = limit if limit is not None else cap
    if bound is not None and have > bound:
        partial.discard()
        have, validator = 0, None
    url = partial.url
    headers = {"Accept-Encoding": "identity", **(extra_headers or {})}  # the bytes on disk must be the file's bytes
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator:
            headers["If-Range"] = validator
    try:
        with _get(http, url, what, settings, pace=pace, headers=headers, stream=True) as r:
            if r.status_code == 416 and have:
                m = re.match(r"^bytes \*/(\d+)$", r.headers.get("Content-Range", ""))
                if m and int(m.group(1)) == have:
                    return  # the partial file is already whole; the checksums will tell
                partial.discard()
                raise TransientError(f"{redact(url)} refused to resume at byte {have}; starting again")
            _check_status(r, what, url)
            encoded = r.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
            if r.status_code == 206 and have:
                m = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != have:
                    partial.discard()
                    raise TransientError(f"{redact(url)} answered Range bytes={have}- with "
                                         f"Content-Range {r.headers.get('Content-Range')!r}; starting again")
                total = None if m.group(3) == "*" else int(m.group(3))
                mode = "ab"
                log.info("%s: resuming at byte %d of %s", what, have, total if total is not None else "?")
            else:
                if have:
                    log.info("%s: the server sent the whole file again (it changed or ignores Range)", what)
                have, mode = 0, "wb"
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() and not encoded else None
            if limit is not None and total is not None and total != limit:
                raise _too_large(partial, what, url, limit, f"the server announces {total}")
            if cap is not None and total is not None and total > cap:
                raise _over_cap(partial, what, url, cap, f"the server announces {total}")
            partial.start(_validator(r) or validator, total)
            # Keep every byte that arrives, even when the connection drops before Content-Length
            # is reached (urllib3 would otherwise discard the last read); the size check below
            # then reports the cut and the next attempt resumes after those bytes.
            r.raw.enforce_content_length = False
            budget = None if bound is None else bound + 1 - have  # one byte past the bound proves it too long
            with open(partial.part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                      desc=partial.part.name.removesuffix(".part")[-40:], mininterval=5,
                                                      leave=False) as bar:
                while budget is None or budget > 0:
                    chunk = r.raw.read(_CHUNK if budget is None else min(_CHUNK, budget), decode_content=True)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
                    if budget is not None:
                        budget -= len(chunk)
            if budget is not None and budget <= 0:
                stopped = f"more than {bound} bytes arrived (stopped reading at {bound + 1})"
                if limit is not None:
                    raise _too_large(partial, what, url, limit, stopped)
                raise _over_cap(partial, what, url, cap, stopped)
    except requests.exceptions.SSLError as e:
        raise FetchError(f"{what}: TLS error talking to {redact(url)}: {e}") from None
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError) as e:
        got = partial.part.stat().st_size if partial.part.exists() else 0
        raise TransientError(f"transfer from {redact(url)} broke off after {got} bytes "
                             f"({type(e).__name__})") from None
    got = partial.part.stat().st_size
    if total is not None and got != total:
        raise TransientError(f"transfer from {redact(url)} ended at {got} of {total} bytes")


def download(url: str, dest: str | os.PathLike, *, what: str, settings: HttpSettings,
             expected: list[tuple[str, Checksum]] = (), expected_size: int | None = None,
             http: requests.Session | None = None, pace: Pacer | None = None,
             headers: dict | None = None, max_bytes: int | None = None) -> Download:
    """Download `url` to `dest` (atomically, resuming a partial file of an earlier attempt).

    `expected` lists (origin, checksum) pairs, e.g. ("the Zenodo record", md5:...); each is
    checked before the rename. `expected_size` (the declared size) bounds what is read: more
    bytes fail the download at once. `max_bytes` caps a file of unknown size: past it the download
    fails at once (SizeLimitError). On any failure `dest` does not exist; a partial file is kept
    only when the failure was in transfer (so a rerun resumes), never after a mismatch or a cap.
    `pace` paces every request; `headers` are sent with each (e.g. Authorization).
    """
    dest = Path(dest)
    http = http or session()
    partial = _Resumable(dest, url)
    resumed_from = partial.bytes_on_disk()[0]
    if resumed_from:
        log.info("%s: %d bytes of an earlier attempt in %s", what, resumed_from, partial.part)
    try:
        _, attempts = with_retries(lambda: _transfer(http, partial, what, settings, expected_size, pace, headers,
                                                     max_bytes), what, settings)
    except (ChecksumError, SizeLimitError):
        raise
    except FetchError as e:
        kept = partial.part.stat().st_size if partial.part.exists() else 0
        note = f"; {kept} bytes kept in {partial.part}, a rerun resumes from there" if kept else ""
        raise FetchError(f"{e}{note}") from None
    hashes = hash_file(partial.part)
    try:
        if expected_size is not None and hashes["size"] != expected_size:
            raise ChecksumError(f"{what}: size mismatch: expected {expected_size} bytes, got {hashes['size']}; "
                                "the file was deleted")
        passed = verify(hashes, list(expected), what)
    except ChecksumError:
        partial.discard()
        raise
    dest.unlink(missing_ok=True)
    os.replace(partial.part, dest)
    partial.meta_path.unlink(missing_ok=True)
    return Download(url=redact(url), size=hashes["size"], sha256=hashes["sha256"],
                    md5=hashes["md5"], verified=passed, attempts=attempts, resumed_from=resumed_from)
