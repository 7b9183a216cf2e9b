"""`fetch(source, uri, dest, checksum)`: one entry point for every checkpoint and benchmark source.

| source | uri | checked against |
|---|---|---|
| zenodo | `<record id>/<file key>` | the record's md5 (always), the sheet's checksum |
| zenodo | `<record id>/<archive key>#<member path>` | the archive's md5 from the record, the sheet's checksum of the member (zenodo_members) |
| hf | `<namespace>/<repo>/<path>@<revision>` | the Hub's ETag (LFS sha256 / git blob id), the sheet's checksum |
| url | `http(s)://...` | the sheet's checksum (required); at most `fetch.max_bytes`, or exactly the row's `size` |
| file | a local path | the sheet's checksum, if given (the file is hashed and recorded either way) |

The file lands at `dest` atomically and `<dest>.provenance.json` records where it came from and
its size, sha256 and md5. A failure leaves neither of the two behind. A `size` given (the sheet's
column) must match for every source; for a url it also bounds what is read.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from ..io import atomic_path
from .checksums import Checksum, hash_file, parse_checksum, verify
from .errors import ChecksumError, FetchError
from .hf import fetch_hf
from .http import HttpSettings, download, session
from .provenance import make_provenance, provenance_path, write_provenance
from .redact import redact, redact_obj, register_url_secrets
from .zenodo_members import fetch_zenodo_uri
from ..settings import FetchSettings, fetch_settings

log = logging.getLogger("divcoeff.fetch")
_URL = re.compile(r"^https?://\S+$")


def fetch_url(uri: str, dest: Path, expected: Checksum | None, settings: FetchSettings, *,
              size: int | None = None, max_bytes: int | None = None) -> dict:
    """`size` (the row's, exact) or else `max_bytes` (default `fetch.max_bytes`) bounds what is read: an
    endless or oversized stream stops one byte past it and nothing is kept."""
    what = f"URL {redact(uri)}"
    if not _URL.match(uri):
        raise FetchError(f"url {uri!r}: expected an http:// or https:// URL")
    if expected is None:
        raise FetchError(f"{what}: a checksum (md5:... or sha256:...) is required for source 'url'; "
                         "without one nothing says the bytes are the right ones")
    result = download(uri, dest, what=what, settings=HttpSettings.from_settings(settings),
                      expected=[("the checkpoint sheet", expected)], http=session(settings.contact),
                      expected_size=size, max_bytes=settings.max_bytes if max_bytes is None else max_bytes)
    return {"url": result.url, "size": result.size, "sha256": result.sha256, "md5": result.md5,
            "verified": result.verified, "attempts": result.attempts}


def fetch_file(uri: str, dest: Path, expected: Checksum | None, settings: FetchSettings) -> dict:
    src = Path(os.path.expanduser(uri)).resolve()
    what = f"local file {uri!r}"
    if not src.is_file():
        raise FetchError(f"{what}: no such file ({src})")
    if src == dest.resolve():
        raise FetchError(f"{what}: source and destination are the same file")
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        hashes = hash_file(tmp)  # hash the copy: that is the file later stages read
        passed = verify(hashes, [("the checkpoint sheet", expected)] if expected else [], what)
    return {"url": src.as_uri(), "path": str(src), "size": hashes["size"], "sha256": hashes["sha256"],
            "md5": hashes["md5"], "verified": passed}


HANDLERS = {"zenodo": fetch_zenodo_uri, "hf": fetch_hf, "url": fetch_url, "file": fetch_file}


def fetch(source: str, uri: str, dest: str | os.PathLike, checksum: str | None = None, *,
          settings: FetchSettings | dict | None = None, size: int | None = None, max_bytes: int | None = None,
          label: str | None = None) -> dict:
    """Download or copy `uri` to `dest` atomically, verify it, write `<dest>.provenance.json`, return that record.

    `checksum` is `md5:<hex>` or `sha256:<hex>` (or empty); `settings` is the config's `fetch:`
    section (zenodo_url, retries, timeout_s, backoff_s, hf_endpoint, hf_cache, max_bytes).
    `size` (bytes) must match exactly; `max_bytes` caps a url download (default `fetch.max_bytes`).
    Raises FetchError (ChecksumError for wrong bytes, SizeLimitError past the cap) naming the
    record, repo, file or URL, after `label` (e.g. the sheet row) when given.
    """
    if source not in HANDLERS:
        hint = " ('train' checkpoints are made by the workflow, not fetched)" if source == "train" else ""
        raise FetchError(f"unknown source {source!r} for {uri!r}; expected one of {', '.join(HANDLERS)}{hint}")
    dest = Path(dest)
    register_url_secrets(uri)  # its password is masked wherever a library might quote it, decoded or not
    settings = fetch_settings(settings)
    try:
        expected = parse_checksum(checksum, f"checksum of {source} {uri!r}")
    except ValueError as e:
        raise FetchError(str(e)) from None
    prov_path = provenance_path(dest)
    # A failed fetch must not leave the previous run's file looking current.
    dest.unlink(missing_ok=True)
    prov_path.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if source == "url":
            details = fetch_url(uri, dest, expected, settings, size=size, max_bytes=max_bytes)
        else:
            details = HANDLERS[source](uri, dest, expected, settings)
        if size is not None and details["size"] != size:
            dest.unlink(missing_ok=True)
            raise ChecksumError(f"{source} {redact(uri)}: size mismatch: expected {size} bytes, got "
                                f"{details['size']}; the file was deleted")
    except FetchError as e:
        if label:
            raise type(e)(f"{label}: {e}") from None
        raise
    shown = redact(uri)  # user:password@, token=... and the like stay out of files and logs
    record = redact_obj(make_provenance(source, shown, details))
    try:
        write_provenance(dest, record)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    log.info("%s %s -> %s (%d bytes, sha256 %s; verified: %s)", source, shown, dest, record["size"],
             record["sha256"], "; ".join(record.get("verified") or []) or "nothing to compare with")
    return record
