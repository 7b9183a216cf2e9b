"""Omniglot as distributed (``images_background.zip``, ``images_evaluation.zip``; Lake et al.).

Layout: ``images_{background,evaluation}/<alphabet>/<character>/<id>_<drawer>.png``
(105 x 105 binary). Classes are characters (background then evaluation, each in sorted
alphabet/character order, as learn2learn's FullOmniglot concatenates them), domains are
alphabets, groups are the 20 drawers.

Class split 1100 / 100 / 423 (`shuffle_classes`):
- true (default): learn2learn's benchmark shuffles the 1,623 classes with Python's global
  `random` before the cut (not reproducible); here the shuffle is seeded from `seed`;
- false: no shuffle, the first 1,100 / next 100 / rest, as ultimate-utils' omniglot_l2l.py does
  since commit 26070c8 (2022-10-13), the published runs (REFERENCE section 7). Its "FullOmniglot
  order" is torchvision's Omniglot, which lists folders with os.listdir, unsorted, so the exact
  order depended on the authors' file system; sorted order is the reproducible reading.

Pixels: stored as drawn (black strokes on white) at 28 x 28 with Lanczos, as learn2learn's
loader resizes them; the published runs take RGB, bilinear 84 x 84 and invert (1 - x): the
benchmark's `channels: 3`, `image_size: 84`, `resample: bilinear`, `pixels: inverted`.
"""
from __future__ import annotations

from divcoeff.readers.common import (IndexedBuilder, ReaderError, SourceFiles, class_folders, list_images,
                                     progress, proportional_counts)
from divcoeff.seeding import numpy_rng

NATIVE_SIZE = 28
NATIVE_CHANNELS = 1
PUBLISHED_SPLIT_COUNTS = {"train": 1100, "val": 100, "test": 423}


def _drawer(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0]
    return f"drawer{stem.rsplit('_', 1)[-1]}" if "_" in stem else "drawer?"


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    characters = []  # (alphabet, character folder), background first
    for part in ("images_background", "images_evaluation"):
        root = src.folder(part)
        for alphabet in class_folders(root):
            characters.extend((alphabet.name, c) for c in class_folders(alphabet))
    if not characters:
        raise ReaderError(f"{builder.benchmark}: no character folders in {src.describe()}")
    counts = proportional_counts(len(characters), PUBLISHED_SPLIT_COUNTS)
    if spec["shuffle_classes"]:
        order = numpy_rng(int(spec["seed"]), "omniglot-class-split").permutation(len(characters))
    else:  # ultimate-utils since 26070c8: classes[:1100] / [1100:1200] / [1200:], no shuffle
        order = range(len(characters))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[int(i)] = "train" if rank < counts["train"] else "val" if rank < counts["train"] + counts["val"] \
            else "test"
    for i, (alphabet, folder) in enumerate(progress(characters, "omniglot")):
        files = list_images(folder)
        if not files:
            raise ReaderError(f"{folder}: no images")
        cid = builder.add_class(f"{alphabet}/{folder.name}", split_of[i], alphabet)
        builder.add_encoded(cid, files, groups=[builder.group_id(_drawer(f.name)) for f in files])
