"""DELAUNAY abstract-art images (Gontier et al. 2022), classes = 53 artists.

Two layouts are read: the study's split folders (Zenodo 7756788, made by its
``create_your_splits``) ``delauny_{train,validation,test}_split_dir/<artist>/*``, or the
original ``DELAUNAY/<artist>/*`` folder, which is split as the study did it: artists in sorted
order, the first 34 train, the next 8 val, the last 11 test.
"""
from __future__ import annotations

from divcoeff.readers.common import (IndexedBuilder, ReaderError, SourceFiles, class_folders, list_images,
                                     progress, proportional_counts)
from divcoeff.readers.published_splits import DELAUNAY_COUNTS

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = dict(DELAUNAY_COUNTS)
SPLIT_DIRS = {"train": "delauny_train_split_dir", "val": "delauny_validation_split_dir",
              "test": "delauny_test_split_dir"}


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    split_dirs = {s: src.folder(d, required=False) for s, d in SPLIT_DIRS.items()}
    if all(split_dirs.values()):
        assignment = [(split, folder) for split, root in split_dirs.items() for folder in class_folders(root)]
    elif any(split_dirs.values()):
        missing = [SPLIT_DIRS[s] for s, d in split_dirs.items() if d is None]
        raise ReaderError(f"{builder.benchmark}: split folders {missing} are missing in {src.describe()}")
    else:
        root = src.folder("DELAUNAY")
        artists = class_folders(root)
        c = proportional_counts(len(artists), PUBLISHED_SPLIT_COUNTS)
        assignment = [("train" if i < c["train"] else "val" if i < c["train"] + c["val"] else "test", folder)
                      for i, folder in enumerate(artists)]
    for split, folder in progress(assignment, "delaunay"):
        files = list_images(folder)
        if not files:
            raise ReaderError(f"{folder}: no images")
        builder.add_encoded(builder.add_class(folder.name, split), files)
