"""Omniglot as distributed (``images_background.zip``, ``images_evaluation.zip``; Lake et al.).

Layout: ``images_{background,evaluation}/<alphabet>/<character>/<id>_<drawer>.png``
(105 x 105 binary). Classes are characters (background then evaluation, each in sorted
alphabet/character order, as learn2learn's FullOmniglot concatenates them), domains are
alphabets, groups are the 20 drawers. learn2learn's benchmark splits the 1,623 classes
1100 / 100 / 423 after shuffling with Python's global `random` (not reproducible); here the
shuffle is seeded from the benchmark's `seed`. Stored as black strokes on white, resized to
28 x 28 with Lanczos as learn2learn does (it also inverts, 1 - x, at load time; we keep the
pixels as drawn).
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
    order = numpy_rng(int(spec["seed"]), "omniglot-class-split").permutation(len(characters))
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
