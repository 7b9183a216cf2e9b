"""Zenodo records through the records API (`GET <base>/api/records/<id>`), at zenodo.org or a mirror.

A record lists its files with key, size, `checksum: "md5:<hex>"` and a download link; the md5
is always checked. The base URL comes from the config (`fetch.zenodo_url`) so that a mirror or
a test server can stand in for zenodo.org.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .checksums import Checksum, parse_checksum
from .errors import FetchError
from .http import HttpSettings, download, get_json

log = logging.getLogger("divcoeff.fetch")

DEFAULT_BASE_URL = "https://zenodo.org"
_URI = re.compile(r"^(\d+)/(.+)$")


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


def record_api_url(record_id: str, base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{base_url.rstrip('/')}/api/records/{record_id}"


def _entries(files) -> list[dict]:
    """The legacy serialiser gives a list; InvenioRDM's gives {"entries": [...] or {key: {...}}}."""
    if isinstance(files, dict):
        files = files.get("entries", [])
        if isinstance(files, dict):
            files = [{"key": k, **v} for k, v in files.items()]
    return files if isinstance(files, list) else []


def _file(entry: dict, api_url: str, record_id: str) -> ZenodoFile:
    key = entry.get("key") or entry.get("filename")
    if not key:
        raise FetchError(f"Zenodo record {record_id}: a file entry without a key in {api_url}")
    checksum = entry.get("checksum") or ""
    md5 = None
    if checksum:
        try:
            parsed = parse_checksum(checksum if ":" in checksum else f"md5:{checksum}",
                                    f"Zenodo record {record_id}, file {key!r}")
        except ValueError as e:
            raise FetchError(str(e)) from None
        md5 = parsed.hexdigest if parsed.algorithm == "md5" else None
    # Legacy records link the bytes as "self"; InvenioRDM's "self" is the entry's metadata and
    # "content" the bytes.
    links = entry.get("links") or {}
    url = links.get("content") or links.get("self") or f"{api_url}/files/{quote(key)}/content"
    return ZenodoFile(key=key, size=entry.get("size") or entry.get("filesize"), md5=md5, url=url)


def get_record(record_id: str, settings: dict | None = None, what: str | None = None) -> ZenodoRecord:
    """The record's metadata and file list; a missing record raises FetchError naming it (and `what`)."""
    settings = settings or {}
    base = settings.get("zenodo_url") or DEFAULT_BASE_URL
    api_url = record_api_url(record_id, base)
    what = what or f"Zenodo record {record_id}"
    try:
        data = get_json(api_url, what, HttpSettings.from_settings(settings))
    except FetchError as e:
        if "not found" in str(e):
            raise FetchError(f"{e} (no such record at {base}, or it is not public)") from None
        raise
    files = [_file(e, api_url, record_id) for e in _entries(data.get("files"))]
    if not files and "files" not in data:
        # Newer InvenioRDM instances leave the list to a sub-resource.
        listing = get_json(f"{api_url}/files", f"Zenodo record {record_id}, file list",
                           HttpSettings.from_settings(settings))
        files = [_file(e, api_url, record_id) for e in _entries(listing)]
    title = (data.get("metadata") or {}).get("title") or data.get("title") or ""
    return ZenodoRecord(record_id=str(record_id), resolved_id=str(data.get("id", record_id)), title=title,
                        api_url=api_url, files=files)


def fetch_zenodo(uri: str, dest: Path, expected: Checksum | None, settings: dict) -> dict:
    """Download one file of a record to `dest`, checking the record's md5 (and the sheet's checksum)."""
    record_id, key = parse_uri(uri)
    what = f"Zenodo record {record_id}, file {key!r}"
    record = get_record(record_id, settings, what)
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
    result = download(f.url, dest, what=what, settings=HttpSettings.from_settings(settings), expected=checks,
                      expected_size=f.size)
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
