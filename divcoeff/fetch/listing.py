"""Checkpoint-sheet rows for the checkpoint files of a Zenodo record or a Hub repo.

So that nobody has to guess file names: the rows carry the exact uri (the full file key: the
authors' code saves ``ckpt.pt`` in run folders, so base names repeat) and checksum. Family and
train set are filled in where the key shows them (:func:`infer_from_key`: ``maml`` / ``usl`` /
``sl`` words, dataset names, ``hdb4`` or ``micod``), and marked ``FILL-IN`` where it does not, a
value the sheet's schema refuses, so that a row nobody checked cannot run.
"""
from __future__ import annotations

import re

from ..config import SHEET_COLUMNS
from .hf import list_repo_files
from .zenodo import get_record
from .zenodo_members import member_rows

CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".ckpt")
UNKNOWN = "FILL-IN"  # what a key does not say; the sheet schema refuses it

# Words of a file key -> the family (REFERENCE section 2: PT is called USL / SL in the authors' runs).
FAMILY_WORDS = {"maml": "maml", "fomaml": "maml", "usl": "pt", "sl": "pt", "pretrain": "pt",
                "pretrained": "pt", "supervised": "pt"}
# Words -> the study's training sets (config/paper's train_sets; REFERENCE section 2). Mixture names
# first: a key naming hdb4 also names its datasets.
MIXTURE_WORDS = {"micod": "hdb4", "vggair": "hdb5"}
DATASET_WORDS = {
    "mi": "mini-imagenet", "mini": "mini-imagenet", "miniimagenet": "mini-imagenet", "mini_imagenet": "mini-imagenet",
    "cifarfs": "cifar-fs", "cifar_fs": "cifar-fs", "fc100": "fc100", "tiered": "tiered-imagenet",
    "tieredimagenet": "tiered-imagenet", "omniglot": "omniglot", "aircraft": "aircraft", "air": "aircraft",
    "flower": "vgg-flower", "flowers": "vgg-flower", "vggflower": "vgg-flower", "dtd": "dtd", "cub": "cub",
    "delaunay": "delaunay", "delauny": "delaunay",
}


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


# A key naming exactly the datasets of a mixture (REFERENCE section 2) is that mixture.
MIXTURES = {frozenset(v): k for k, v in {
    "hdb1": ("mini-imagenet", "omniglot"), "hdb4": ("mini-imagenet", "cifar-fs", "omniglot", "delaunay"),
    "hdb5": ("vgg-flower", "aircraft"), "hdb10": ("mini-imagenet", "cifar-fs", "omniglot", "vgg-flower", "aircraft"),
}.items()}


def _words(key: str) -> list[str]:
    """Lower-case words of a key, split at anything but letters and digits, plus joined neighbours
    (mini-imagenet -> mini, imagenet, miniimagenet; cifar_fs -> cifarfs, cifar_fs)."""
    text = re.sub(r"\.(pt|pth|ckpt)$", "", key.lower())  # the extension is not a word of the name
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w]
    pairs = [a + b for a, b in zip(words, words[1:])] + re.findall(r"[a-z0-9]+_[a-z0-9]+", text)
    return words + pairs


def infer_from_key(key: str) -> tuple[str, str]:
    """(family, train set) as far as a file key shows them; UNKNOWN where it does not or is ambiguous."""
    words = _words(key)
    families = {FAMILY_WORDS[w] for w in words if w in FAMILY_WORDS}
    family = families.pop() if len(families) == 1 else UNKNOWN
    mixtures = {f"hdb{m.group(1)}" for w in words for m in [re.fullmatch(r"hdb(\d+)\w*", w)] if m}
    mixtures |= {MIXTURE_WORDS[w] for w in words if w in MIXTURE_WORDS}
    if mixtures:
        train_set = mixtures.pop() if len(mixtures) == 1 else UNKNOWN
    else:
        datasets = frozenset(DATASET_WORDS[w] for w in words if w in DATASET_WORDS)
        train_set = next(iter(datasets)) if len(datasets) == 1 else MIXTURES.get(datasets, UNKNOWN)
        if "cifar" in words and not datasets & {"cifar-fs", "fc100"}:  # CIFAR-FS or FC100: the key cannot say
            train_set = UNKNOWN
    return family, train_set


def _row(name, source, uri, checksum, family, arch, train_set) -> dict:
    return {"name": name, "family": family, "arch": arch, "source": source, "uri": uri, "checksum": checksum,
            "train_set": train_set, "allow_pickle": "false"}


def zenodo_rows(record_id: str, settings: dict | None = None, *, family: str = "", arch: str = "resnet12_rfs",
                train_set: str = "", prefix: str = "", extensions=CHECKPOINT_EXTENSIONS) -> tuple[list[dict], dict]:
    """(rows, info) for the checkpoint files of a record; info has the record's title and file counts."""
    record = get_record(record_id, settings)
    files = sorted((f for f in record.files if is_checkpoint(f.key, extensions)), key=lambda f: f.key)
    names = _unique([sheet_name(f.key, prefix) for f in files])
    rows = []
    for n, f in zip(names, files):
        seen_family, seen_set = infer_from_key(f.key)
        rows.append(_row(n, "zenodo", f"{record_id}/{f.key}", f"md5:{f.md5}" if f.md5 else "",
                         family or seen_family, arch, train_set or seen_set))
    info = {"where": f"Zenodo record {record_id} ({record.api_url})", "title": record.title,
            "n_files": len(record.files), "n_rows": len(rows), "sizes": [f.size for f in files]}
    return rows, info


def zenodo_member_rows(record_id: str, settings: dict | None = None, *, family: str = "", arch: str = "resnet12_rfs",
                       train_set: str = "", prefix: str = "",
                       extensions=CHECKPOINT_EXTENSIONS) -> tuple[list[dict], dict]:
    """(rows, info) for the checkpoint files inside the record's zip/tar archives (each downloaded to a
    temporary folder): uri ``<record>/<archive key>#<member>``, checksum the member's md5; family and
    train set read from the archive key and the member path together."""
    found, archives, skipped = member_rows(record_id, settings, lambda name: is_checkpoint(name, extensions))
    names = _unique([sheet_name(f"{_archive_stem(m['archive'])}/{m['member']}", prefix) for m in found])
    rows = []
    for n, m in zip(names, found):
        seen_family, seen_set = infer_from_key(f"{_archive_stem(m['archive'])}/{m['member']}")
        rows.append(_row(n, "zenodo", m["uri"], f"md5:{m['md5']}", family or seen_family, arch,
                         train_set or seen_set))
    info = {"n_archives": len(archives), "archive_sizes": [f.size for f in archives],
            "sizes": [m["size"] for m in found], "n_rows": len(rows), "skipped": skipped}
    return rows, info


def _archive_stem(key: str) -> str:
    return re.sub(r"\.(zip|tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$", "", key, flags=re.I)


def hf_rows(repo_id: str, revision: str = "main", settings: dict | None = None, *, family: str = "",
            arch: str = "resnet12_rfs", train_set: str = "", prefix: str = "",
            extensions=CHECKPOINT_EXTENSIONS) -> tuple[list[dict], dict]:
    """(rows, info) for the checkpoint files of a Hub model repo; the uri pins the commit `revision` resolves to."""
    commit, all_files = list_repo_files(repo_id, revision, settings)
    files = sorted((f for f in all_files if is_checkpoint(f.path, extensions)), key=lambda f: f.path)
    names = _unique([sheet_name(f.path, prefix) for f in files])
    rows = []
    for n, f in zip(names, files):
        seen_family, seen_set = infer_from_key(f.path)
        rows.append(_row(n, "hf", f"{repo_id}/{f.path}@{commit}", f"sha256:{f.sha256}" if f.sha256 else "",
                         family or seen_family, arch, train_set or seen_set))
    info = {"where": f"Hub repo {repo_id} at {revision} = commit {commit}", "title": "",
            "n_files": len(all_files), "n_rows": len(rows), "sizes": [f.size for f in files]}
    return rows, info


def to_tsv(rows: list[dict], header: bool = True) -> str:
    lines = ["\t".join(SHEET_COLUMNS)] if header else []
    lines += ["\t".join(str(r.get(c, "")) for c in SHEET_COLUMNS) for r in rows]  # replicates: empty
    return "\n".join(lines) + ("\n" if lines else "")
