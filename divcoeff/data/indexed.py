"""The indexed on-disk dataset every benchmark is turned into (docs/formats.md section 1).

One folder: ``images.npy`` (uint8, N x H x W x C, memory-mapped when read), ``index.tsv``
(one row per image), ``classes.tsv`` (one row per class) and ``manifest.json``. The glyph
renderer and every benchmark reader write through :func:`write_indexed_dataset`, so the
later stages never care where the pixels came from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from divcoeff.io import atomic_save_npy, atomic_write_json, atomic_write_text, load_npy, read_json

FORMAT = "divcoeff-indexed/1"
INDEX_COLUMNS = ["image_id", "class_id", "domain_id", "group_id", "split"]
CLASS_COLUMNS = ["class_id", "name", "domain_id", "domain", "split"]
SPLITS = ("train", "val", "test")


class IndexedDatasetError(ValueError):
    """An indexed dataset whose files disagree with each other or with the format."""


def _check(where: str, images: np.ndarray, index: pd.DataFrame, classes: pd.DataFrame) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise IndexedDatasetError(f"{where}: images must be uint8 (N, H, W, 1|3), got {images.dtype} {images.shape}")
    for frame, cols, what in ((index, INDEX_COLUMNS, "index.tsv"), (classes, CLASS_COLUMNS, "classes.tsv")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise IndexedDatasetError(f"{where}/{what}: missing columns {missing} (expected {cols})")
    if len(index) != images.shape[0]:
        raise IndexedDatasetError(f"{where}: index.tsv has {len(index)} rows but images.npy has {images.shape[0]}")
    if not np.array_equal(index["image_id"].to_numpy(), np.arange(len(index))):
        raise IndexedDatasetError(f"{where}/index.tsv: image_id must be 0..N-1 in order (row i = image i)")
    bad = ~index["split"].isin(SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise IndexedDatasetError(f"{where}/index.tsv row {row}: split {index['split'].iloc[row]!r} not in {SPLITS}")
    unknown = ~index["class_id"].isin(classes["class_id"])
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise IndexedDatasetError(
            f"{where}/index.tsv row {row}: class_id {index['class_id'].iloc[row]} is not in classes.tsv")


def write_indexed_dataset(out_dir: str | Path, images: np.ndarray, index: pd.DataFrame, classes: pd.DataFrame,
                          manifest: dict[str, Any]) -> Path:
    """Write the four files atomically; the manifest is completed with shape facts and the format tag.

    The manifest goes last, so a folder with a manifest always has all its files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = np.ascontiguousarray(images)
    index = index[INDEX_COLUMNS].reset_index(drop=True)
    classes = classes[CLASS_COLUMNS].sort_values("class_id").reset_index(drop=True)
    _check(str(out), images, index, classes)
    atomic_save_npy(out / "images.npy", images)
    atomic_write_text(out / "index.tsv", index.to_csv(sep="\t", index=False, lineterminator="\n"))
    atomic_write_text(out / "classes.tsv", classes.to_csv(sep="\t", index=False, lineterminator="\n"))
    full = dict(manifest)
    full.update({
        "format": FORMAT,
        "image_size": [int(images.shape[1]), int(images.shape[2])],
        "channels": int(images.shape[3]),
        "n_images": int(images.shape[0]),
        "n_classes": int(len(classes)),
    })
    full.setdefault("domains", sorted(classes["domain"].unique().tolist()))
    full.setdefault("groups", [])
    full.setdefault("sources", [])
    atomic_write_json(out / "manifest.json", full)
    return out


@dataclass
class IndexedDataset:
    path: Path
    images: np.ndarray
    index: pd.DataFrame
    classes: pd.DataFrame
    manifest: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> "IndexedDataset":
        path = Path(path)
        for name in ("images.npy", "index.tsv", "classes.tsv", "manifest.json"):
            if not (path / name).is_file():
                raise IndexedDatasetError(f"{path}: missing {name} (not an indexed dataset, see docs/formats.md)")
        manifest = read_json(path / "manifest.json")
        if manifest.get("format") != FORMAT:
            raise IndexedDatasetError(f"{path}/manifest.json: format {manifest.get('format')!r}, expected {FORMAT!r}")
        images = load_npy(path / "images.npy", mmap=mmap)
        index = pd.read_csv(path / "index.tsv", sep="\t", dtype={"split": str})
        classes = pd.read_csv(path / "classes.tsv", sep="\t", dtype={"name": str, "domain": str, "split": str},
                              keep_default_na=False)
        _check(str(path), images, index, classes)
        return cls(path, images, index, classes, manifest)

    @property
    def name(self) -> str:
        return self.manifest.get("benchmark", self.path.name)
