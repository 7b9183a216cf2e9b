"""Checkpoint-sheet rows for the checkpoint files of a Zenodo record or a Hub repo.

So that nobody has to guess file names: the rows carry the exact uri and checksum, and leave
to the user what a file list cannot say (family, train set; see the README).
"""
from __future__ import annotations

import re

from ..config import SHEET_COLUMNS
from .hf import list_repo_files
from .zenodo import get_record

CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".ckpt")


def is_checkpoint(name: str, extensions=CHECKPOINT_EXTENSIONS) -> bool:
    return name.lower().endswith(tuple(e.lower() for e in extensions))


def sheet_name(path: str, prefix: str = "") -> str:
    """A sheet name (^[A-Za-z0-9][A-Za-z0-9_.-]*$) from a file path: extension dropped, / and odd characters -> -."""
    stem = re.sub(r"\.(pt|pth|ckpt)$", "", path, flags=re.I)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{prefix}{stem}").strip("-._")
    return name or "checkpoint"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


def _row(name, source, uri, checksum, family, arch, train_set) -> dict:
    return {"name": name, "family": family, "arch": arch, "source": source, "uri": uri, "checksum": checksum,
            "train_set": train_set, "allow_pickle": "false"}


def zenodo_rows(record_id: str, settings: dict | None = None, *, family: str = "", arch: str = "resnet12_rfs",
                train_set: str = "", prefix: str = "", extensions=CHECKPOINT_EXTENSIONS) -> tuple[list[dict], dict]:
    """(rows, info) for the checkpoint files of a record; info has the record's title and file counts."""
    record = get_record(record_id, settings)
    files = sorted((f for f in record.files if is_checkpoint(f.key, extensions)), key=lambda f: f.key)
    names = _unique([sheet_name(f.key, prefix) for f in files])
    rows = [_row(n, "zenodo", f"{record_id}/{f.key}", f"md5:{f.md5}" if f.md5 else "", family, arch, train_set)
            for n, f in zip(names, files)]
    info = {"where": f"Zenodo record {record_id} ({record.api_url})", "title": record.title,
            "n_files": len(record.files), "n_rows": len(rows), "sizes": [f.size for f in files]}
    return rows, info


def hf_rows(repo_id: str, revision: str = "main", settings: dict | None = None, *, family: str = "",
            arch: str = "resnet12_rfs", train_set: str = "", prefix: str = "",
            extensions=CHECKPOINT_EXTENSIONS) -> tuple[list[dict], dict]:
    """(rows, info) for the checkpoint files of a Hub model repo; the uri pins the commit `revision` resolves to."""
    commit, all_files = list_repo_files(repo_id, revision, settings)
    files = sorted((f for f in all_files if is_checkpoint(f.path, extensions)), key=lambda f: f.path)
    names = _unique([sheet_name(f.path, prefix) for f in files])
    rows = [_row(n, "hf", f"{repo_id}/{f.path}@{commit}", f"sha256:{f.sha256}" if f.sha256 else "", family, arch,
                 train_set) for n, f in zip(names, files)]
    info = {"where": f"Hub repo {repo_id} at {revision} = commit {commit}", "title": "",
            "n_files": len(all_files), "n_rows": len(rows), "sizes": [f.size for f in files]}
    return rows, info


def to_tsv(rows: list[dict], header: bool = True) -> str:
    lines = ["\t".join(SHEET_COLUMNS)] if header else []
    lines += ["\t".join(str(r.get(c, "")) for c in SHEET_COLUMNS) for r in rows]  # replicates: empty
    return "\n".join(lines) + ("\n" if lines else "")
