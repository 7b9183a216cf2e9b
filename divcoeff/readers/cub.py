"""CUB-200-2011 as distributed (``CUB_200_2011.tgz``: ``CUB_200_2011/images/<NNN.Name>/*.jpg``).

Split: the Meta-Dataset classes (published_splits.CUB), 140 / 30 / 30. The 43 images that are
also in ILSVRC-2012 are left out unless `exclude_imagenet_duplicates: false` (learn2learn's
default, since the probe network is trained on ImageNet).
"""
from __future__ import annotations

from divcoeff.readers.common import IndexedBuilder, SourceFiles, read_named_class_folders
from divcoeff.readers.published_splits import CUB, CUB_IMAGENET_DUPLICATES, counts

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = counts(CUB)


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    skip = CUB_IMAGENET_DUPLICATES if spec["exclude_imagenet_duplicates"] else None
    read_named_class_folders(builder, src.folder("CUB_200_2011/images"), CUB, label="cub", what="class",
                             strict=spec["strict"], skip=skip)
