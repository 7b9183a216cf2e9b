"""Readers for the study's benchmarks as distributed, into the indexed form (docs/formats.md section 1).

One module per format; each exposes ``read(src, builder, spec)``, its native image size and
channels, and the published number of classes per split. :func:`read_benchmark` extracts the
archives safely (divcoeff.archives) into a scratch folder, runs the reader, checks the split
against the published one, and writes the dataset with a manifest that lists every input file
with its sha256.

A benchmark's config entry (config/schemas/config.schema.yaml, non-glyph branch)::

    mini-imagenet:
      source: zenodo                # zenodo | hf | url | file
      format: mini-imagenet         # a key of READERS
      files: [{name: mini-imagenet-cache-train.pkl, uri: 7311663/mini-imagenet-cache-train.pkl}, ...]
      image_size: null              # null: the format's native size (84; 32 for CIFAR-FS/FC100; 28 Omniglot)
      resample, pixels              # how images are resized and stored (the published loaders: bilinear, Omniglot inverted)
      normalisation, task_rotations # recorded in the manifest, applied by views and episodes
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from types import ModuleType

from divcoeff.readers import (aircraft, cifar_fs, cub, delaunay, dtd, fc100, mini_imagenet, omniglot,
                              tiered_imagenet, vgg_flower)
from divcoeff.settings import reader_spec
from divcoeff.readers.common import (IndexedBuilder, ReaderError, SourceFiles, check_split_counts,
                                     describe_sources)

log = logging.getLogger("divcoeff.readers")

READERS: dict[str, ModuleType] = {
    "mini-imagenet": mini_imagenet,
    "cifar-fs": cifar_fs,
    "fc100": fc100,
    "tiered-imagenet": tiered_imagenet,
    "omniglot": omniglot,
    "aircraft": aircraft,
    "vgg-flower": vgg_flower,
    "dtd": dtd,
    "cub": cub,
    "delaunay": delaunay,
}
READER_VERSION = 2  # bump when a reader's output for the same files changes
RESIZE_NOTES = {"lanczos": "PIL Lanczos to a square, no crop (JPEGs decoded at >= 2x the size first)",
                "bilinear": "PIL bilinear to a square, no crop (torchvision's Resize((s, s)) on the decoded image)"}

__all__ = ["READERS", "ReaderError", "read_benchmark"]


def read_benchmark(benchmark: str, spec: dict, files: dict[str, str | os.PathLike], out_dir: str | os.PathLike, *,
                   workers: int = 1, provenance: dict[str, dict] | None = None,
                   scratch_parent: str | os.PathLike | None = None) -> Path:
    """Index one benchmark: `files` maps the config's file names to local paths; returns `out_dir`.

    `spec` is the benchmark's config entry (format, image_size, channels, seed, strict, ...);
    `provenance` (file name -> the fetch stage's provenance dict) is copied into the manifest.
    Scratch space (extracted archives, raw pixels) lives next to `out_dir` and is removed after.
    """
    spec = reader_spec(spec, f"benchmark {benchmark!r}")
    fmt = spec["format"]
    if fmt not in READERS:
        raise ReaderError(f"benchmark {benchmark!r}: unknown format {fmt!r} (known: {', '.join(READERS)})")
    reader = READERS[fmt]
    size = int(spec.get("image_size") or reader.NATIVE_SIZE)
    channels = int(spec.get("channels") or reader.NATIVE_CHANNELS)
    out = Path(out_dir)
    parent = Path(scratch_parent) if scratch_parent else out.parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{benchmark}.", suffix=".work", dir=parent) as work:
        src = SourceFiles(benchmark, files, Path(work) / "extracted")
        builder = IndexedBuilder(benchmark, size, channels, Path(work) / "pixels", workers=workers,
                                 resample=spec["resample"], pixels=spec["pixels"])
        try:
            reader.read(src, builder, spec)
        except BaseException:
            builder.close()
            raise
        found = builder.split_counts()
        check_split_counts(benchmark, found, reader.PUBLISHED_SPLIT_COUNTS, spec["strict"])
        log.info("%s: %d images, %d classes (train/val/test %s) at %dx%dx%d", benchmark, builder.n_images,
                 sum(found.values()), "/".join(str(found[s]) for s in ("train", "val", "test")), size, size, channels)
        manifest = {
            "sources": describe_sources({n: Path(p) for n, p in files.items()}, provenance),
            "build": {
                "reader": fmt,
                "reader_version": READER_VERSION,
                "image_size": size,
                "channels": channels,
                "resize": RESIZE_NOTES[spec["resample"]],
                "pixels": spec["pixels"],
                "split_counts": found,
                "published_split_counts": reader.PUBLISHED_SPLIT_COUNTS,
                "spec": {k: v for k, v in spec.items() if k != "files"},
            },
            # What the later stages apply to this benchmark's images (views copy them; docs/formats.md 1).
            "normalisation": spec["normalisation"],
            "task_rotations": {"degrees": list(spec["task_rotations"]), "scope": spec["rotation_scope"]},
        }
        return builder.write(out, manifest)
