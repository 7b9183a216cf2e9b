"""Describable Textures as distributed (``dtd-r1.0.1.tar.gz``: ``dtd/images/<category>/*.jpg``).

Split: the Meta-Dataset categories (published_splits.DTD), 33 / 7 / 7 classes of 120 images.
"""
from __future__ import annotations

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles, list_images, progress
from divcoeff.readers.published_splits import DTD, counts

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = counts(DTD)


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    root = src.folder("dtd/images")
    strict = spec.get("strict", True)
    for split, names in DTD.items():
        for name in progress(names, f"dtd {split}"):
            folder = root / name
            files = list_images(folder) if folder.is_dir() else []
            if not files:
                if strict:
                    raise ReaderError(f"{builder.benchmark}: no images for category {name!r} in {folder}")
                continue
            builder.add_encoded(builder.add_class(name, split), files)
