"""The small JSON written next to every fetched file: where it came from and what its bytes are."""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from .. import __version__
from ..io import atomic_write_json, read_json
from .redact import redact_obj

FORMAT = "divcoeff-provenance/1"


def provenance_path(dest: str | os.PathLike) -> Path:
    """`<dest>.provenance.json`, e.g. resources/checkpoints/x.pt.provenance.json."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".provenance.json")


def make_provenance(source: str, uri: str, details: dict) -> dict:
    """source, uri, the source's own details (resolved URL, revision, record, ...), size/sha256/md5, time."""
    return {
        "format": FORMAT,
        "source": source,
        "uri": uri,
        **details,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "divcoeff": __version__,
    }


def write_provenance(dest: str | os.PathLike, record: dict) -> Path:
    """Write the record (every string in it redacted: no credential of a URL reaches the file)."""
    path = provenance_path(dest)
    atomic_write_json(path, redact_obj(record))
    return path


def read_provenance(dest: str | os.PathLike) -> dict:
    return read_json(provenance_path(dest))
