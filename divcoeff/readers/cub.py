"""CUB-200-2011 as distributed (``CUB_200_2011.tgz``: ``CUB_200_2011/images/<NNN.Name>/*.jpg``).

Split: the Meta-Dataset classes (published_splits.CUB), 140 / 30 / 30. The 43 images that are
also in ILSVRC-2012 are left out unless `exclude_imagenet_duplicates: false` (learn2learn's
default, since the probe network is trained on ImageNet).
"""
from __future__ import annotations

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles, list_images, progress
from divcoeff.readers.published_splits import CUB, CUB_IMAGENET_DUPLICATES, counts

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = counts(CUB)


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    root = src.folder("CUB_200_2011/images")
    strict = spec.get("strict", True)
    exclude = spec.get("exclude_imagenet_duplicates", True)
    for split, names in CUB.items():
        skip = set(CUB_IMAGENET_DUPLICATES[split]) if exclude else set()
        for name in progress(names, f"cub {split}"):
            folder = root / name
            files = [f for f in list_images(folder) if f.name not in skip] if folder.is_dir() else []
            if not files:
                if strict:
                    raise ReaderError(f"{builder.benchmark}: no images for class {name!r} in {folder}")
                continue
            builder.add_encoded(builder.add_class(name, split), files)
