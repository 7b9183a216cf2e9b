"""CIFAR-FS as distributed in ``cifar100.zip`` (learn2learn's file, also on Zenodo 7978538).

Layout: ``cifar100/data/<class>/*.png`` (32 x 32 RGB) and the Bertinetto et al. split files
``cifar100/splits/bertinetto/{train,val,test}.txt`` (one class folder name per line):
64 / 16 / 20 classes of 600 images.
"""
from __future__ import annotations

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles, list_images, progress

NATIVE_SIZE = 32
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = {"train": 64, "val": 16, "test": 20}


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    data = src.folder("cifar100/data")
    for split in ("train", "val", "test"):
        split_file = src.file(f"cifar100/splits/bertinetto/{split}.txt")
        names = [line.strip() for line in split_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        for name in progress(names, f"cifar-fs {split}"):
            folder = data / name
            if not folder.is_dir():
                raise ReaderError(f"{split_file}: class {name!r} has no folder {folder}")
            files = list_images(folder)
            if not files:
                raise ReaderError(f"{folder}: no images")
            builder.add_encoded(builder.add_class(name, split), files)
