"""A picture of the rendered benchmark: one row per script, a few training and held-out classes."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from divcoeff.data.indexed import IndexedDataset  # noqa: E402
from divcoeff.io import atomic_path  # noqa: E402


def montage_grid(ds: IndexedDataset, per_split: tuple[int, int] = (8, 4), gap: int = 4) -> tuple[np.ndarray, list[str]]:
    """uint8 grid (rows = domains): the first image of the first classes of each split, a gap between splits."""
    h, w = ds.manifest["image_size"]
    n_cols = sum(per_split)
    rows, labels = [], []
    first_image = ds.index.groupby("class_id")["image_id"].min()
    for domain_id, domain in enumerate(ds.manifest["domains"]):
        row = np.zeros((h, n_cols * w + gap), dtype=np.uint8)
        col = 0
        for split, n in zip(("train", "test"), per_split):
            cls = ds.classes[(ds.classes["domain_id"] == domain_id) & (ds.classes["split"] == split)]
            for cid in cls["class_id"].head(n):
                img = np.asarray(ds.images[first_image[cid]])[..., 0]
                row[:, col * w + (gap if split == "test" else 0):][:, :w] = img
                col += 1
            col = per_split[0]  # held-out classes start after the gap, whatever the count above
        rows.append(row)
        counts = ds.classes[ds.classes["domain_id"] == domain_id]["split"].value_counts()
        labels.append(f"{domain} ({counts.get('train', 0)}+{counts.get('test', 0)})")
    return np.concatenate(rows, 0), labels


def save_montage(dataset_dir: str | Path, out_png: str | Path) -> None:
    ds = IndexedDataset.load(dataset_dir)
    grid, labels = montage_grid(ds)
    h = ds.manifest["image_size"][0]
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 28 * 0.45 + 2.5, grid.shape[0] / 28 * 0.45 + 0.8), dpi=150)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks(np.arange(len(labels)) * h + h / 2, labels, fontsize=7)
    ax.set_xticks([])
    ax.set_title(f"{ds.name}: {ds.manifest['n_classes']} classes, {len(labels)} scripts "
                 "(left: training classes, right: held-out classes in held-out fonts)", fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
