"""FGVC-Aircraft 2013b as distributed (``fgvc-aircraft-2013b.tar.gz``).

Classes are the 100 variants, read from ``data/images_variant_{train,val,test}.txt``
(``<image id> <variant>`` per line; together they list all 10,000 images), images from
``data/images/<id>.jpg``. Split: the Meta-Dataset variants (published_splits.AIRCRAFT),
70 / 15 / 15. (learn2learn's loader reads the family files by mistake; we use variants, as
its split lists and Meta-Dataset do.) With `crop_boxes`, images are cropped to the box of
``data/images_box.txt`` first (Meta-Dataset does; learn2learn does not, the default here).
"""
from __future__ import annotations

from collections import defaultdict

from divcoeff.readers.common import IndexedBuilder, ReaderError, SourceFiles, progress
from divcoeff.readers.published_splits import AIRCRAFT, counts

NATIVE_SIZE = 84
NATIVE_CHANNELS = 3
PUBLISHED_SPLIT_COUNTS = counts(AIRCRAFT)


def _pairs(path) -> list[tuple[str, str]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            parts = line.strip().split(" ", 1)
            if len(parts) != 2:
                raise ReaderError(f"{path}, line {n}: expected '<image id> <label>', got {line!r}")
            out.append((parts[0], parts[1].strip()))
    return out


def read(src: SourceFiles, builder: IndexedBuilder, spec: dict) -> None:
    by_variant: dict[str, list[str]] = defaultdict(list)
    for part in ("train", "val", "test"):
        for image_id, variant in _pairs(src.file(f"data/images_variant_{part}.txt")):
            by_variant[variant].append(image_id)
    images_dir = src.folder("data/images")
    boxes = {}
    if spec["crop_boxes"]:
        for image_id, box in _pairs(src.file("data/images_box.txt")):
            x0, y0, x1, y1 = (int(v) for v in box.split())
            boxes[image_id] = (x0, y0, x1 + 1, y1 + 1)  # inclusive pixel box -> PIL's exclusive one
    strict = spec["strict"]
    for split, variants in AIRCRAFT.items():
        for variant in progress(variants, f"aircraft {split}"):
            ids = sorted(by_variant.get(variant, []))
            if not ids:
                if strict:
                    raise ReaderError(f"{builder.benchmark}: variant {variant!r} has no images in the label files")
                continue
            items = [images_dir / f"{i}.jpg" for i in ids]
            if boxes:
                items = [(p, boxes[i]) for p, i in zip(items, ids)]
            builder.add_encoded(builder.add_class(variant, split), items)
