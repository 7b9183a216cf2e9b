"""Checksums as the checkpoint sheet writes them (`md5:<hex>`, `sha256:<hex>`) and one-pass file hashing."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from .errors import ChecksumError

_HEX_LENGTH = {"md5": 32, "sha256": 64}
_CHECKSUM = re.compile(r"^(md5|sha256):([0-9a-f]+)$")


@dataclass(frozen=True)
class Checksum:
    algorithm: str  # md5 | sha256
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


def parse_checksum(text: str | None, where: str = "checksum") -> Checksum | None:
    """`md5:<32 hex>` or `sha256:<64 hex>` (case-insensitive hex); empty or None means no checksum."""
    if text is None or not str(text).strip():
        return None
    m = _CHECKSUM.match(str(text).strip().lower())
    if not m or len(m.group(2)) != _HEX_LENGTH[m.group(1)]:
        raise ValueError(f"{where}: {text!r} is not a checksum; expected md5:<32 hex digits> or sha256:<64 hex digits>")
    return Checksum(m.group(1), m.group(2))


def hash_file(path: str | os.PathLike, chunk: int = 1 << 20) -> dict:
    """size, sha256 and md5 of a file, read once."""
    sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            sha256.update(block)
            md5.update(block)
            size += len(block)
    return {"size": size, "sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def git_blob_sha1(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The git object id of a file (the Hub's ETag for files not stored with LFS)."""
    h = hashlib.sha1()
    h.update(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(hashes: dict, expected: list[tuple[str, Checksum]], what: str) -> list[str]:
    """Compare `hash_file` output with each (origin, checksum); raise ChecksumError naming both on a mismatch.

    Returns the list of checks passed, e.g. ["md5 from the Zenodo record"], for the provenance record.
    """
    passed = []
    for origin, want in expected:
        got = hashes[want.algorithm]
        if got != want.hexdigest:
            raise ChecksumError(f"{what}: checksum mismatch: {origin} says {want}, the downloaded bytes have "
                                f"{want.algorithm}:{got} ({hashes['size']} bytes); the file was deleted")
        passed.append(f"{want} from {origin}")
    return passed
