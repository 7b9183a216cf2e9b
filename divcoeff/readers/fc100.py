"""FC100 as distributed in ``fc100.zip`` (MetaOptNet's files, also on Zenodo 7978538).

``FC100_{train,val,test}.pickle``: a dict with ``data`` (uint8, N x 32 x 32 x 3) and
``labels`` (the CIFAR-100 label of each image), pickled by Python 2 (read with the restricted
unpickler, latin1 as learn2learn does). The split is by CIFAR-100 superclass (Oreshkin et al.):
60 / 20 / 20 classes of 600 images. Class names are ``label-<CIFAR-100 label>``.
"""
from __future__ import annotations

import numpy as np

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles
from divcoeff.readers.safe_pickle import load_data_pickle

NATIVE_SIZE = 32
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = {"train": 60, "val": 20, "test": 20}
FILES = {"train": "FC100_train.pickle", "val": "FC100_val.pickle", "test": "FC100_test.pickle"}


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    for split, filename in FILES.items():
        path = src.file(filename)
        data = load_data_pickle(path)
        if not isinstance(data, dict) or "data" not in data or "labels" not in data:
            raise ReaderError(f"{path}: expected a dict with 'data' and 'labels'")
        images = np.asarray(data["data"])
        labels = np.asarray(data["labels"])
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ReaderError(f"{path}: 'data' must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise ReaderError(f"{path}: 'labels' must be one integer per image ({len(images)}), got "
                              f"{labels.dtype} {labels.shape}")
        for label in np.unique(labels):
            cid = builder.add_class(f"label-{int(label)}", split)
            builder.add_pixels(cid, images[labels == label])
