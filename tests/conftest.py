"""Shared test set-up: one thread per test process (the CI machine has 2 cores), repo paths."""
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO


def synthetic_dataset(out_dir: Path, n_domains: int = 3, classes_per_domain: int = 10, images_per_class: int = 10,
                      size: int = 16, channels: int = 1, seed: int = 0, test_fraction: float = 0.5):
    """A tiny indexed dataset of learnable classes: each class is a fixed random pattern plus noise.

    Domains differ in the pattern's statistics (blob density), so tasks from different domains are
    really different. The last `test_fraction` of each domain's classes is the test split.
    """
    from divcoeff.data.indexed import write_indexed_dataset
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    images, index, classes = [], [], []
    for d in range(n_domains):
        n_test = max(1, int(round(classes_per_domain * test_fraction)))
        for c in range(classes_per_domain):
            cid = d * classes_per_domain + c
            split = "test" if c >= classes_per_domain - n_test else "train"
            proto = (rng.random((size, size, channels)) < 0.15 + 0.25 * d).astype(np.float32)
            for _ in range(images_per_class):
                img = np.clip(proto * 200 + rng.normal(0, 30, proto.shape), 0, 255).astype(np.uint8)
                index.append((len(images), cid, d, -1, split))
                images.append(img)
            classes.append((cid, f"d{d}c{c}", d, f"dom{d}", split))
    index = pd.DataFrame(index, columns=["image_id", "class_id", "domain_id", "group_id", "split"])
    classes = pd.DataFrame(classes, columns=["class_id", "name", "domain_id", "domain", "split"])
    manifest = {"benchmark": out_dir.name, "domains": [f"dom{d}" for d in range(n_domains)], "groups": [],
                "sources": [], "build": {"synthetic": True, "seed": seed}}
    return write_indexed_dataset(out_dir, np.stack(images), index, classes, manifest)


def synthetic_view(tmp: Path, split: str = "train", domains="all", classes: int | None = None,
                   images_per_class: int | None = None, **dataset_kw):
    """Dataset + view in `tmp`; returns the loaded divcoeff.data.views.View."""
    from divcoeff.data.indexed import IndexedDataset
    from divcoeff.data.views import View, build_view, write_view

    ds_dir = tmp / "data" / "synth"
    if not (ds_dir / "manifest.json").exists():
        synthetic_dataset(ds_dir, **dataset_kw)
    ds = IndexedDataset.load(ds_dir)
    name = f"synth-{split}-{domains}"
    spec = {"benchmarks": ["synth"], "split": split, "domains": domains, "classes": classes,
            "images_per_class": images_per_class, "kind": "train" if split == "train" else "eval"}
    table, meta = build_view(name, {k: v for k, v in spec.items() if v is not None}, {"synth": ds}, seed=0)
    write_view(tmp / "views" / f"{name}.tsv", tmp / "views" / f"{name}.json", table, meta)
    return View.load(tmp / "views" / f"{name}.tsv")


@pytest.fixture
def make_view(tmp_path):
    """Factory: make_view(split="train"|"test", domains="all"|k, ...) -> View over a synthetic dataset."""
    return lambda **kw: synthetic_view(tmp_path, **kw)
