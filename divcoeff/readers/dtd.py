"""Describable Textures as distributed (``dtd-r1.0.1.tar.gz``: ``dtd/images/<category>/*.jpg``).

Split: the Meta-Dataset categories (published_splits.DTD), 33 / 7 / 7 classes of 120 images.
"""
from __future__ import annotations

from divcoeff.readers.common import IndexedBuilder, SourceFiles, read_named_class_folders
from divcoeff.readers.published_splits import DTD, counts

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = counts(DTD)


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    read_named_class_folders(builder, src.folder("dtd/images"), DTD, label="dtd", what="category",
                             strict=spec["strict"])
