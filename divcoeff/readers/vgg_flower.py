"""Oxford 102 Flowers as distributed (``102flowers.tgz`` with ``jpg/image_NNNNN.jpg``, and
``imagelabels.mat`` with ``labels``: the class 1..102 of image N at position N-1).

Split: the Meta-Dataset class ids (published_splits.VGG_FLOWER), 71 / 15 / 16. Class names
are the three-digit label ids (the archive has no names). ``imagelabels.mat`` is a MATLAB
file read with scipy.io.loadmat (plain numeric data; no code is run).
"""
from __future__ import annotations

import numpy as np

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles, progress
from divcoeff.readers.published_splits import VGG_FLOWER, counts

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = counts(VGG_FLOWER)


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    import scipy.io  # only this reader needs it

    labels_path = src.file("imagelabels.mat")
    try:
        labels = np.asarray(scipy.io.loadmat(labels_path)["labels"]).ravel().astype(np.int64)
    except (KeyError, ValueError, OSError) as e:
        raise ReaderError(f"{labels_path}: not a MATLAB file with a 'labels' array ({e})") from None
    images_dir = src.folder("jpg")
    strict = spec["strict"]
    for split, ids in VGG_FLOWER.items():
        for label in progress(ids, f"vgg-flower {split}"):
            rows = np.flatnonzero(labels == label)
            files = [images_dir / f"image_{r + 1:05d}.jpg" for r in rows]
            missing = [f for f in files if not f.is_file()]
            if missing:
                raise ReaderError(f"{builder.benchmark}: {len(missing)} images of class {label} are missing, "
                                  f"e.g. {missing[0]}")
            if not files:
                if strict:
                    raise ReaderError(f"{labels_path}: class {label} has no images")
                continue
            builder.add_encoded(builder.add_class(f"{label:03d}", split), files)
