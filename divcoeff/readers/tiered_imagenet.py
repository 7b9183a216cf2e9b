"""tiered-ImageNet as distributed by Ren et al. (learn2learn's ``tiered-imagenet`` tar; Zenodo 7978538).

Zenodo 7978538 holds the files one by one as ``tiered-imagenet-{train,val,test}_{images_png,labels}.pkl``
(plus ``tiered-imagenet-class_names.txt`` and ``-synsets.txt``, not needed); learn2learn's
download strips the ``tiered-imagenet-`` prefix, the tar has the bare names. Either name is read.

``{train,val,test}_images_png.pkl``: a list of PNG-encoded images (uint8 arrays or bytes);
``{train,val,test}_labels.pkl``: a dict with ``label_specific`` (class per image) and, when
present, ``label_specific_str`` (class names), ``label_general`` and ``label_general_str``
(the ImageNet category of each class, used here as the domain). Both read with the restricted
unpickler. Split by category: 351 / 97 / 160 classes (779,165 images, 84 x 84).
"""
from __future__ import annotations

import numpy as np

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles, progress
from divcoeff.readers.safe_pickle import load_data_pickle

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = {"train": 351, "val": 97, "test": 160}


def _as_bytes(item, path, i: int) -> bytes:
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    raise ReaderError(f"{path}: image {i} is {type(item).__name__}, expected PNG bytes (a uint8 array)")


def _file(src: SourceFiles, name: str):
    """The Zenodo name (tiered-imagenet-<name>) or the tar's (<name>)."""
    return src.file(f"tiered-imagenet-{name}", required=False) or src.file(name)


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    for split in ("train", "val", "test"):
        images_path = _file(src, f"{split}_images_png.pkl")
        labels_path = _file(src, f"{split}_labels.pkl")
        images = load_data_pickle(images_path)
        labels = load_data_pickle(labels_path)
        if not isinstance(labels, dict) or "label_specific" not in labels:
            raise ReaderError(f"{labels_path}: expected a dict with 'label_specific'")
        specific = np.asarray(labels["label_specific"]).astype(np.int64)
        if len(specific) != len(images):
            raise ReaderError(f"{labels_path}: {len(specific)} labels for {len(images)} images in {images_path}")
        names = labels.get("label_specific_str")
        general = labels.get("label_general")
        general_names = labels.get("label_general_str")
        for label in progress(np.unique(specific), f"tiered-imagenet {split}"):
            rows = np.flatnonzero(specific == label)
            name = str(names[label]) if names is not None and label < len(names) else f"{split}-{int(label)}"
            domain = None
            if general is not None and general_names is not None:
                g = int(np.asarray(general)[rows[0]])
                domain = str(general_names[g]) if g < len(general_names) else None
            cid = builder.add_class(name, split, domain)
            builder.add_encoded(cid, [_as_bytes(images[i], images_path, i) for i in rows])
