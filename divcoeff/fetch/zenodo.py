"""Zenodo records through the records API (`GET <base>/api/records/<id>`), at zenodo.org or a mirror.

A record lists its files with key (older serialisers: filename), size, checksum (`md5:<hex>`
or bare hex) and a download link; the md5 is always checked. The base URL comes from the config
(`fetch.zenodo_url`) so that a mirror or a test server can stand in for zenodo.org.

Zenodo's rules (since its InvenioRDM migration), as `ZenodoClient` follows them:
* one `requests.Session` per process, with a User-Agent naming the project (divcoeff.fetch.http);
* at most `fetch.zenodo_pace` requests per window (guests: 60 a minute, 2,000 an hour), or
  `fetch.zenodo_token_pace` when $ZENODO_TOKEN is set (100 a minute, 5,000 an hour); the token
  goes as `Authorization: Bearer`, to the Zenodo host only, and is never logged;
* a 429's `Retry-After` (seconds or an HTTP date) and `X-RateLimit-Remaining: 0` hold back every
  fetch job of the run: the pace lives in `fetch.zenodo_pace_file` (resources/.zenodo-pace),
  shared under a file lock by the parallel jobs of `snakemake --cores N` (divcoeff.fetch.pace).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from .checksums import Checksum, parse_checksum
from .errors import FetchError
from .http import Download, HttpSettings, download, get_json, session
from .pace import Pacer, windows_from
from .redact import register_secret
from ..settings import FetchSettings, fetch_settings

log = logging.getLogger("divcoeff.fetch")

TOKEN_ENV = "ZENODO_TOKEN"
# The pace (Zenodo's published limits for guests and token holders) and the base URL default
# in the schema's fetch: section (divcoeff.settings.fetch_settings).
_URI = re.compile(r"^(\d+)/(.+)$")


class ZenodoClient:
    """Requests to one Zenodo instance by Zenodo's rules (see the module docstring).

    `settings` is the config's `fetch:` section: zenodo_url, retries, timeout_s, backoff_s,
    zenodo_pace, zenodo_token_pace, zenodo_pace_file (None: pace this process only),
    zenodo_max_wait_s, contact. $ZENODO_TOKEN is read when the client is made.
    """

    def __init__(self, settings: FetchSettings | dict | None = None):
        s = fetch_settings(settings)
        self.base_url = s.zenodo_url.rstrip("/")
        self.http_settings = HttpSettings.from_settings(s)
        self._token = os.environ.get(TOKEN_ENV) or None
        register_secret(self._token)
        key = "zenodo_token_pace" if self._token else "zenodo_pace"
        windows = windows_from(getattr(s, key), f"fetch.{key}")
        self.pacer = Pacer(f"Zenodo ({self.base_url})", windows, s.zenodo_pace_file,
                           max_wait_s=float(s.zenodo_max_wait_s))
        self.session = session(s.contact)
        self._host = urlsplit(self.base_url).netloc.lower()

    @property
    def authenticated(self) -> bool:
        return self._token is not None

    def headers_for(self, url: str) -> dict:
        """The Authorization header, for URLs on the Zenodo host only (never for a link elsewhere)."""
        if self._token and urlsplit(url).netloc.lower() == self._host:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def get_json(self, url: str, what: str) -> dict:
        return get_json(url, what, self.http_settings, self.session, pace=self.pacer, headers=self.headers_for(url))

    def download(self, url: str, dest: Path, *, what: str, expected, expected_size: int | None) -> Download:
        return download(url, dest, what=what, settings=self.http_settings, expected=expected,
                        expected_size=expected_size, http=self.session, pace=self.pacer,
                        headers=self.headers_for(url))


@dataclass(frozen=True)
class ZenodoFile:
    key: str
    size: int | None
    md5: str | None     # hex, from the record's "md5:<hex>"
    url: str


@dataclass(frozen=True)
class ZenodoRecord:
    record_id: str      # as asked
    resolved_id: str    # the record the API answered with (a concept id resolves to its latest version)
    title: str
    api_url: str
    files: list


def parse_uri(uri: str) -> tuple[str, str]:
    """`<record id>/<file key>` -> (record id, key)."""
    m = _URI.match(uri.strip())
    if not m:
        raise FetchError(f"zenodo uri {uri!r}: expected <record id>/<file key>, e.g. 8247898/model.pt")
    return m.group(1), m.group(2)


def record_api_url(record_id: str, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/api/records/{record_id}"


def _entries(files) -> list[dict]:
    """The legacy serialiser gives a list; InvenioRDM's gives {"entries": [...] or {key: {...}}}."""
    if isinstance(files, dict):
        files = files.get("entries", [])
        if isinstance(files, dict):
            files = [{"key": k, **v} for k, v in files.items()]
    return files if isinstance(files, list) else []


def _file(entry: dict, api_url: str, record_id: str) -> ZenodoFile:
    """One file entry: `key` (or `filename`), size (or filesize), checksum `md5:<hex>` or bare hex."""
    if not isinstance(entry, dict):
        raise FetchError(f"Zenodo record {record_id}: a file entry that is not an object in {api_url}")
    key = entry.get("key") or entry.get("filename")
    if not key or not isinstance(key, str):
        raise FetchError(f"Zenodo record {record_id}: a file entry without a key or filename in {api_url}")
    checksum = str(entry.get("checksum") or "").strip()
    md5 = None
    if checksum:
        try:
            parsed = parse_checksum(checksum if ":" in checksum else f"md5:{checksum}",
                                    f"Zenodo record {record_id}, file {key!r}")
        except ValueError as e:
            raise FetchError(str(e)) from None
        md5 = parsed.hexdigest if parsed.algorithm == "md5" else None
    # Legacy records link the bytes as "self"; InvenioRDM's "self" is the entry's metadata and
    # "content" the bytes; deposition-style entries (with "filename") call them "download".
    links = entry.get("links") or {}
    url = links.get("content") or links.get("download") or links.get("self") \
        or f"{api_url}/files/{quote(key, safe='')}/content"
    size = entry.get("size", entry.get("filesize"))
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise FetchError(f"Zenodo record {record_id}, file {key!r}: size {size!r} is not a byte count ({api_url})")
    return ZenodoFile(key=key, size=size, md5=md5, url=url)


def get_record(record_id: str, settings: FetchSettings | dict | None = None, what: str | None = None,
               client: ZenodoClient | None = None) -> ZenodoRecord:
    """The record's metadata and file list; a missing record raises FetchError naming it (and `what`)."""
    client = client or ZenodoClient(settings)
    base = client.base_url
    api_url = record_api_url(record_id, base)
    what = what or f"Zenodo record {record_id}"
    try:
        data = client.get_json(api_url, what)
    except FetchError as e:
        if "not found" in str(e):
            raise FetchError(f"{e} (no such record at {base}, or it is not public)") from None
        raise
    if not isinstance(data, dict):
        raise FetchError(f"{what}: {api_url} did not answer with a record object")
    raw = data.get("files")
    files = [_file(e, api_url, record_id) for e in _entries(raw)]
    if not files and (raw is None or (isinstance(raw, dict) and "entries" not in raw)):
        # Newer InvenioRDM instances leave the list to a sub-resource.
        listing = client.get_json(f"{api_url}/files", f"Zenodo record {record_id}, file list")
        files = [_file(e, api_url, record_id) for e in _entries(listing)]
    title = (data.get("metadata") or {}).get("title") or data.get("title") or ""
    return ZenodoRecord(record_id=str(record_id), resolved_id=str(data.get("id", record_id)), title=title,
                        api_url=api_url, files=files)


def fetch_zenodo(uri: str, dest: Path, expected: Checksum | None, settings: FetchSettings) -> dict:
    """Download one file of a record to `dest`, checking the record's md5 (and the sheet's checksum)."""
    record_id, key = parse_uri(uri)
    what = f"Zenodo record {record_id}, file {key!r}"
    client = ZenodoClient(settings)
    record = get_record(record_id, settings, what, client=client)
    by_key = {f.key: f for f in record.files}
    if key not in by_key:
        listing = ", ".join(sorted(by_key)) or "(no files)"
        raise FetchError(f"{what}: the record has no such file; its files are: {listing} "
                         f"(python -m divcoeff list-zenodo {record_id} prints sheet rows for them)")
    f = by_key[key]
    checks = []
    if f.md5:
        checks.append(("the Zenodo record", Checksum("md5", f.md5)))
    elif expected is None:
        raise FetchError(f"{what}: the record gives no md5 for this file; put a checksum in the sheet")
    else:
        log.warning("%s: the record gives no md5; only the sheet's checksum is checked", what)
    if expected is not None:
        checks.append(("the checkpoint sheet", expected))
    result = client.download(f.url, dest, what=what, expected=checks, expected_size=f.size)
    return {
        "url": result.url,
        "record": record_id,
        "record_resolved": record.resolved_id,
        "record_api_url": record.api_url,
        "key": key,
        "size": result.size,
        "sha256": result.sha256,
        "md5": result.md5,
        "verified": result.verified,
        "attempts": result.attempts,
    }
