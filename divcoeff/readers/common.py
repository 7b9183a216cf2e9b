"""What every benchmark reader shares: the fetched files (archives extracted safely), the image
conversion, and a builder that collects classes and pixels and writes the indexed dataset.

Pixels are appended to a raw scratch file as they are decoded rather than kept in memory, so
that a benchmark larger than RAM (tiered-ImageNet: 779k images) can be indexed; the final
`images.npy` is written from a memory map of that file.
"""
from __future__ import annotations

import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from divcoeff.archives import is_archive, safe_extract
from divcoeff.data.indexed import write_indexed_dataset
from divcoeff.io import sha256_file

log = logging.getLogger("divcoeff.readers")

SPLITS = ("train", "val", "test")
# Resize filters: torchvision's Resize on a PIL image is PIL's bilinear (the 2023 published loaders).
RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}
PIXELS = ("as_stored", "inverted", "byte_wrapped")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_DECODE_CHUNK = 512


class ReaderError(ValueError):
    """Benchmark files that do not have the layout or content the format promises."""


class SourceFiles:
    """A benchmark's fetched files by their config name; archives among them are extracted.

    Readers look files and folders up by the end of their path (``splits/bertinetto/train.txt``),
    so the same reader works on the archive as distributed, on a tar that wraps it one folder
    deeper, or on the loose files.
    """

    def __init__(self, benchmark: str, files: dict[str, str | os.PathLike], work_dir: str | os.PathLike):
        self.benchmark = benchmark
        self.files = {name: Path(p) for name, p in files.items()}
        work = Path(work_dir)
        self.roots: list[Path] = []
        for i, (name, path) in enumerate(self.files.items()):
            if not path.is_file():
                raise ReaderError(f"{benchmark}: file {name!r} not found at {path}")
            if is_archive(path):
                log.info("%s: extracting %s", benchmark, path)
                self.roots.append(safe_extract(path, work / f"{i:02d}-{name}"))
        self._paths: list[Path] | None = None

    def _all(self) -> list[Path]:
        if self._paths is None:
            paths = [p for p in self.files.values() if not is_archive(p)]
            for root in self.roots:
                paths.extend(sorted(root.rglob("*")))
            self._paths = paths
        return self._paths

    def _matches(self, suffix: str, want_dir: bool) -> list[Path]:
        suffix = suffix.strip("/")
        out = []
        for p in self._all():
            posix = p.as_posix()
            if (posix == suffix or posix.endswith("/" + suffix)) and (p.is_dir() if want_dir else p.is_file()):
                out.append(p)
        return out

    def _one(self, suffix: str, want_dir: bool, required: bool) -> Path | None:
        found = self._matches(suffix, want_dir)
        what = "folder" if want_dir else "file"
        if not found:
            if required:
                raise ReaderError(f"{self.benchmark}: no {what} named {suffix!r} in {self.describe()}")
            return None
        if len(found) > 1:
            raise ReaderError(f"{self.benchmark}: {len(found)} {what}s named {suffix!r} "
                              f"({', '.join(str(p) for p in found[:4])}); expected one")
        return found[0]

    def file(self, suffix: str, required: bool = True) -> Path | None:
        return self._one(suffix, False, required)

    def folder(self, suffix: str, required: bool = True) -> Path | None:
        return self._one(suffix, True, required)

    def describe(self) -> str:
        return ", ".join(f"{n} ({p})" for n, p in self.files.items())


def list_images(folder: Path) -> list[Path]:
    """Image files of a class folder, sorted by name (hidden files and other files skipped)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_named_class_folders(builder: "IndexedBuilder", root: Path, splits: dict[str, list[str]], *, label: str,
                             what: str, strict: bool, skip: dict[str, list[str]] | None = None) -> None:
    """Add one class per folder `root/<name>` for the names of each split (a published class list).

    A missing or empty folder is an error naming the `what` (class, category) when `strict`, else
    the class is left out. `skip[split]` lists file names to leave out (e.g. ImageNet duplicates)."""
    for split, names in splits.items():
        excluded = set((skip or {}).get(split, ()))
        for name in progress(names, f"{label} {split}"):
            folder = root / name
            files = [f for f in list_images(folder) if f.name not in excluded] if folder.is_dir() else []
            if not files:
                if strict:
                    raise ReaderError(f"{builder.benchmark}: no images for {what} {name!r} in {folder}")
                continue
            builder.add_encoded(builder.add_class(name, split), files)


class IndexedBuilder:
    """Collects classes and their images, converted to one size and channel count, then writes
    the indexed dataset (docs/formats.md section 1) with :func:`write_indexed_dataset`."""

    def __init__(self, benchmark: str, image_size: int, channels: int, scratch_dir: str | os.PathLike,
                 workers: int = 1, resample: str = "lanczos", pixels: str = "as_stored"):
        if channels not in (1, 3):
            raise ValueError(f"{benchmark}: channels must be 1 or 3, got {channels}")
        if resample not in RESAMPLE:
            raise ValueError(f"{benchmark}: resample must be one of {sorted(RESAMPLE)}, got {resample!r}")
        if pixels not in PIXELS:
            raise ValueError(f"{benchmark}: pixels must be one of {PIXELS}, got {pixels!r}")
        self.benchmark = benchmark
        self.size = int(image_size)
        self.channels = int(channels)
        self.workers = max(1, int(workers))
        self.resample = resample
        self.pixels = pixels
        scratch = Path(scratch_dir)
        scratch.mkdir(parents=True, exist_ok=True)
        self._raw_path = scratch / "pixels.u8"
        self._raw = open(self._raw_path, "wb")
        self.n_images = 0
        self._index: list[tuple[int, int, int, int, str]] = []
        self._classes: list[tuple[int, str, int, str, str]] = []
        self._class_names: set[str] = set()
        self.domains: dict[str, int] = {}
        self.groups: dict[str, int] = {}

    # --- classes -------------------------------------------------------------------------
    def add_class(self, name: str, split: str, domain: str | None = None) -> int:
        if split not in SPLITS:
            raise ValueError(f"{self.benchmark}: class {name!r}: split {split!r} not in {SPLITS}")
        if name in self._class_names:
            raise ReaderError(f"{self.benchmark}: class {name!r} appears twice")
        domain = domain or self.benchmark
        domain_id = self.domains.setdefault(domain, len(self.domains))
        class_id = len(self._classes)
        self._classes.append((class_id, name, domain_id, domain, split))
        self._class_names.add(name)
        return class_id

    def group_id(self, name: str | None) -> int:
        if name is None:
            return -1
        return self.groups.setdefault(name, len(self.groups))

    def split_counts(self) -> dict[str, int]:
        counts = {s: 0 for s in SPLITS}
        for _, _, _, _, split in self._classes:
            counts[split] += 1
        return counts

    # --- images --------------------------------------------------------------------------
    def _append(self, class_id: int, pixels: np.ndarray, groups: Sequence[int] | None) -> None:
        split = self._classes[class_id][4]
        domain_id = self._classes[class_id][2]
        self._raw.write(np.ascontiguousarray(transform_pixels(pixels, self.pixels), dtype=np.uint8).tobytes())
        for i in range(len(pixels)):
            g = -1 if groups is None else int(groups[i])
            self._index.append((self.n_images, class_id, domain_id, g, split))
            self.n_images += 1

    def convert(self, img: Image.Image) -> np.ndarray:
        """One PIL image -> uint8 (size, size, channels): colour mode, then a plain resize (no crop)."""
        if img.mode == "P":
            img = img.convert("RGBA")  # palette transparency is only honoured through RGBA
        img = img.convert("L" if self.channels == 1 else "RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), RESAMPLE[self.resample])
        arr = np.asarray(img, dtype=np.uint8)
        return arr[:, :, None] if arr.ndim == 2 else arr

    def add_pixels(self, class_id: int, pixels: np.ndarray, groups: Sequence[int] | None = None) -> None:
        """Images already decoded, uint8 (n, H, W[, C]); converted only when size or channels differ."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8:
            raise ReaderError(f"{self.benchmark}: class {self._classes[class_id][1]!r}: images are {pixels.dtype}, "
                              "expected uint8")
        if pixels.ndim == 3:
            pixels = pixels[..., None]
        if pixels.shape[1:] == (self.size, self.size, self.channels):
            self._append(class_id, pixels, groups)
            return
        converted = np.stack([self.convert(Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p)) for p in pixels]) \
            if len(pixels) else np.empty((0, self.size, self.size, self.channels), np.uint8)
        self._append(class_id, converted, groups)

    def _load(self, item: Any) -> np.ndarray:
        """Decode one image: a path, or (path, crop box), or encoded bytes."""
        box = None
        if isinstance(item, tuple):
            item, box = item
        src = io.BytesIO(item) if isinstance(item, (bytes, bytearray, memoryview)) else item
        try:
            with Image.open(src) as img:
                if box is not None:
                    img = img.crop(box)
                elif img.format == "JPEG" and self.resample == "lanczos":
                    # Decode large JPEGs at a reduced scale (still at least twice the target size); not
                    # for bilinear, which stands for torchvision's Resize of a fully decoded image.
                    img.draft("RGB" if self.channels == 3 else "L", (2 * self.size, 2 * self.size))
                return self.convert(img)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            name = item if not isinstance(item, (bytes, bytearray, memoryview)) else "an encoded image"
            raise ReaderError(f"{self.benchmark}: cannot decode {name} ({e})") from None

    def add_encoded(self, class_id: int, items: Sequence[Any], groups: Sequence[int] | None = None) -> None:
        """Image files (paths, (path, box) pairs or encoded bytes), decoded on `workers` threads in order."""
        for start in range(0, len(items), _DECODE_CHUNK):
            chunk = items[start:start + _DECODE_CHUNK]
            if self.workers > 1:
                with ThreadPoolExecutor(self.workers) as pool:
                    arrays = list(pool.map(self._load, chunk))
            else:
                arrays = [self._load(x) for x in chunk]
            g = None if groups is None else groups[start:start + _DECODE_CHUNK]
            self._append(class_id, np.stack(arrays), g)

    # --- output --------------------------------------------------------------------------
    def close(self) -> None:
        if not self._raw.closed:
            self._raw.close()

    def write(self, out_dir: str | os.PathLike, manifest: dict) -> Path:
        self.close()
        if self.n_images == 0:
            raise ReaderError(f"{self.benchmark}: no images were read")
        images = np.memmap(self._raw_path, dtype=np.uint8, mode="r",
                           shape=(self.n_images, self.size, self.size, self.channels))
        index = pd.DataFrame(self._index, columns=["image_id", "class_id", "domain_id", "group_id", "split"])
        classes = pd.DataFrame(self._classes, columns=["class_id", "name", "domain_id", "domain", "split"])
        full = dict(manifest)
        full["benchmark"] = self.benchmark
        full["domains"] = sorted(self.domains, key=self.domains.get)
        full["groups"] = sorted(self.groups, key=self.groups.get)
        try:
            return write_indexed_dataset(out_dir, images, index, classes, full)
        finally:
            del images


def transform_pixels(pixels: np.ndarray, how: str) -> np.ndarray:
    """uint8 pixels as stored: unchanged; inverted (255 - p: the published Omniglot's 1 - x after ToTensor,
    exact in uint8); byte_wrapped ((256 - p) mod 256: torchvision's ToPILImage multiplies a float tensor
    by 255 and casts to uint8, which on learn2learn's 0-255 MiniImageNet floats wraps around)."""
    if how == "as_stored":
        return pixels
    p = np.asarray(pixels, dtype=np.uint8)
    if how == "inverted":
        return 255 - p
    if how == "byte_wrapped":
        return (256 - p.astype(np.int32)).astype(np.uint8)  # 0 stays 0, p -> 256 - p
    raise ValueError(f"pixels: unknown transform {how!r} (known: {', '.join(PIXELS)})")


def check_split_counts(benchmark: str, found: dict[str, int], published: dict[str, int] | None,
                       strict: bool) -> None:
    """Compare the classes per split with the published split; an error when `strict`."""
    if not published:
        return
    if all(found.get(s, 0) == published.get(s, 0) for s in SPLITS):
        return
    fmt = lambda c: "/".join(str(c.get(s, 0)) for s in SPLITS)  # noqa: E731
    msg = (f"{benchmark}: found {fmt(found)} classes (train/val/test), the published split has {fmt(published)}")
    if strict:
        raise ReaderError(msg + "; the files are incomplete or not the published ones "
                          "(set `strict: false` for this benchmark to index what is there)")
    log.warning("%s (strict: false, indexing what is there)", msg)


def proportional_counts(n: int, published: dict[str, int]) -> dict[str, int]:
    """Split n classes in the published proportions (exactly the published counts when n matches)."""
    total = sum(published.values())
    if n == total:
        return dict(published)
    counts = {s: int(round(n * published[s] / total)) for s in SPLITS}
    for s in ("val", "test"):  # a split that exists in the source stays non-empty when there is room
        if counts[s] == 0 and published[s] and n >= 3:
            counts[s] = 1
    counts["train"] = n - counts["val"] - counts["test"]
    return counts


def describe_sources(files: dict[str, Path], provenance: dict[str, dict] | None = None) -> list[dict]:
    """The manifest's `sources`: every input file with its sha256 (and where it came from)."""
    out = []
    for name, path in files.items():
        entry = {"name": name, "path": str(path), "sha256": sha256_file(path), "size": Path(path).stat().st_size}
        for key, value in ((provenance or {}).get(name) or {}).items():
            entry.setdefault(key, value)
        out.append(entry)
    return out


def progress(items: Iterable, desc: str, total: int | None = None):
    return tqdm(items, desc=desc, total=total, unit="class", mininterval=5.0)
