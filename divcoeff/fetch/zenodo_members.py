"""Files inside an archive of a Zenodo record: ``<record id>/<archive key>#<member path>``.

A record may store zips or tars of whole run folders (the authors' code saves ``ckpt.pt`` in run
folders) rather than the checkpoint files themselves. A sheet row then points inside the archive:
``8247898/runs.zip#run1/ckpt.pt``. The archive is downloaded once (the record's md5 checked) and
extracted with :func:`divcoeff.archives.safe_extract` into a cache next to the destination,
``<dest folder>/.zenodo-archives/<record>/<key digest>/``, under a file lock, so that the rows of
one archive share one download even when their jobs run in parallel; the archive's bytes are
removed once extracted (its provenance is kept). Each row copies its member out, hashes the copy,
checks the sheet's checksum (that of the member, as ``list-zenodo --members`` prints it) and
records the member's size, sha256 and md5 next to the archive's.

:func:`member_rows` lists the checkpoint files inside a record's archives (``list-zenodo
--members``): it downloads each archive to a temporary folder, which is removed afterwards.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator

from ..archives import ARCHIVE_SUFFIXES, UnsafeArchiveError, is_archive, safe_extract
from ..io import atomic_path
from .checksums import Checksum, hash_file, verify
from .errors import FetchError
from .provenance import make_provenance, provenance_path, write_provenance
from .zenodo import fetch_zenodo, get_record, parse_uri

log = logging.getLogger("divcoeff.fetch")
MEMBER_SEPARATOR = "#"
CACHE_DIR = ".zenodo-archives"


def split_member_uri(uri: str) -> tuple[str, str, str]:
    """``<record>/<archive key>#<member>`` -> (record id, archive key, member path, normalised)."""
    archive_uri, _, member = uri.partition(MEMBER_SEPARATOR)
    record_id, key = parse_uri(archive_uri)
    where = f"zenodo uri {uri!r}"
    if not is_archive(key):
        raise FetchError(f"{where}: {key!r} is not a zip or tar archive (its name must end in one of "
                         f"{', '.join(ARCHIVE_SUFFIXES)}); only archives have members after '#'")
    norm = posixpath.normpath(member.strip())
    if not member.strip() or norm in (".", "") or norm.startswith(("/", "../")) or norm == "..":
        raise FetchError(f"{where}: member {member!r} must be a relative path inside the archive "
                         "(e.g. run1/ckpt.pt), without '..'")
    return record_id, key, norm


def _suffix(key: str) -> str:
    name = key.lower()
    return next(s for s in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True) if name.endswith(s))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created), held inside the block: one job downloads, the others wait."""
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def extracted_archive(record_id: str, key: str, cache_root: Path, settings: dict) -> tuple[Path, dict]:
    """(folder of the extracted archive, the archive's provenance): downloaded and extracted at most once."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = cache_root / CACHE_DIR / record_id / digest
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"archive{_suffix(key)}"
    members = cache / "members"
    with _locked(cache / ".lock"):
        if not (members.is_dir() and provenance_path(archive).is_file()):
            provenance_path(archive).unlink(missing_ok=True)
            details = fetch_zenodo(f"{record_id}/{key}", archive, None, settings)  # the record's md5 checked
            safe_extract(archive, members, overwrite=True)
            write_provenance(archive, make_provenance("zenodo", f"{record_id}/{key}", details))
            archive.unlink()  # extracted: the members are what later rows read
            log.info("Zenodo record %s, archive %r: %d bytes, extracted to %s", record_id, key, details["size"],
                     members)
        prov = json.loads(provenance_path(archive).read_text())
    return members, prov


def _files_under(root: Path, keep: Callable[[str], bool] = lambda name: True) -> list[str]:
    out = []
    for folder, _, names in os.walk(root):
        for n in names:
            rel = Path(folder, n).relative_to(root).as_posix()
            if keep(rel) and not Path(folder, n).is_symlink():
                out.append(rel)
    return sorted(out)


def fetch_zenodo_member(uri: str, dest: Path, expected: Checksum | None, settings: dict) -> dict:
    """Copy one member of a record's archive to `dest`, checking the sheet's checksum of the member."""
    record_id, key, member = split_member_uri(uri)
    what = f"Zenodo record {record_id}, archive {key!r}, member {member!r}"
    root, archive = extracted_archive(record_id, key, Path(dest).parent, settings)
    src = root / member
    real, top = Path(os.path.realpath(src)), Path(os.path.realpath(root))
    if top not in real.parents or not real.is_file():
        listing = _files_under(root)
        shown = ", ".join(listing[:20]) + (f", ... ({len(listing)} files)" if len(listing) > 20 else "")
        raise FetchError(f"{what}: the archive has no such file; its files are: {shown or '(none)'} "
                         f"(python -m divcoeff list-zenodo {record_id} --members prints sheet rows for them)")
    with atomic_path(dest) as tmp:
        shutil.copyfile(real, tmp)
        hashes = hash_file(tmp)  # the copy is what later stages read
        passed = verify(hashes, [("the checkpoint sheet", expected)] if expected else [], what)
    return {"url": f"{archive['url']}{MEMBER_SEPARATOR}{member}", "record": record_id,
            "record_resolved": archive.get("record_resolved"), "record_api_url": archive.get("record_api_url"),
            "key": key, "member": member,
            "archive": {k: archive.get(k) for k in ("size", "sha256", "md5", "verified")},
            "size": hashes["size"], "sha256": hashes["sha256"], "md5": hashes["md5"],
            "verified": [f"archive: {v}" for v in archive.get("verified") or []] + passed}


def fetch_zenodo_uri(uri: str, dest: Path, expected: Checksum | None, settings: dict) -> dict:
    """Source ``zenodo``: a file of the record, or a member of one of its archives (``...#member``)."""
    if MEMBER_SEPARATOR in uri:
        return fetch_zenodo_member(uri, dest, expected, settings)
    return fetch_zenodo(uri, dest, expected, settings)


def member_rows(record_id: str, settings: dict | None,
                is_wanted: Callable[[str], bool]) -> tuple[list[dict], list, dict[str, str]]:
    """([{archive, member, uri, md5, size}], archive files, {archive key: why it was not read}) for the
    wanted members of the record's archives; an archive that is not a readable, safe zip or tar is
    reported, not fatal to the listing."""
    record = get_record(record_id, settings)
    archives = sorted((f for f in record.files if is_archive(f.key)), key=lambda f: f.key)
    out, skipped = [], {}
    for f in archives:
        with tempfile.TemporaryDirectory(prefix="divcoeff-list-") as tmp:
            path = Path(tmp) / f"archive{_suffix(f.key)}"
            fetch_zenodo(f"{record_id}/{f.key}", path, None, settings or {})
            try:
                root = safe_extract(path, Path(tmp) / "members")
            except (UnsafeArchiveError, zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
                skipped[f.key] = str(e)
                continue
            path.unlink()
            for m in _files_under(root, is_wanted):
                h = hash_file(root / m)
                out.append({"archive": f.key, "member": m, "uri": f"{record_id}/{f.key}{MEMBER_SEPARATOR}{m}",
                            "md5": h["md5"], "size": h["size"]})
    return out, archives, skipped
