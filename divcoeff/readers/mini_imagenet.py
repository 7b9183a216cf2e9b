"""MiniImageNet as learn2learn distributes it: ``mini-imagenet-cache-{train,validation,test}.pkl``.

Each pickle is a dict with ``image_data`` (uint8, N x 84 x 84 x 3) and ``class_dict``
(ImageNet wnid -> list of row indices into image_data). Read with the restricted unpickler
(safe_pickle): only arrays and containers, never code. Classes keep the pickle's order.
Split (Ravi & Larochelle): 64 / 16 / 20 classes of 600 images.
"""
from __future__ import annotations

import numpy as np

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles
from divcoeff.readers.safe_pickle import load_data_pickle

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = {"train": 64, "val": 16, "test": 20}
FILES = {"train": "mini-imagenet-cache-train.pkl", "val": "mini-imagenet-cache-validation.pkl",
         "test": "mini-imagenet-cache-test.pkl"}


def _load(path) -> tuple[np.ndarray, dict]:
    data = load_data_pickle(path)
    if not isinstance(data, dict) or "image_data" not in data or "class_dict" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ReaderError(f"{path}: expected a dict with 'image_data' and 'class_dict', got {keys}")
    images = data["image_data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ReaderError(f"{path}: 'image_data' must be uint8 (N, H, W, 3), got "
                          f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
    if not isinstance(data["class_dict"], dict):
        raise ReaderError(f"{path}: 'class_dict' must map class names to lists of indices")
    return images, data["class_dict"]


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    for split, filename in FILES.items():
        path = src.file(filename)
        images, class_dict = _load(path)
        for name, idxs in class_dict.items():
            idx = np.asarray(list(idxs), dtype=np.int64)
            if idx.size == 0:
                raise ReaderError(f"{path}: class {name!r} has no images")
            if idx.min() < 0 or idx.max() >= len(images):
                raise ReaderError(f"{path}: class {name!r} has indices outside 0..{len(images) - 1}")
            cid = builder.add_class(str(name), split)
            builder.add_pixels(cid, images[idx])
