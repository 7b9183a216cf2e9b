"""The domain matrix as a heatmap (results/figures/<benchmark>_domains.png): domains ordered by
their mean distance to the others, so the far-out ones sit together at one end."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from divcoeff.domains import read_matrix  # noqa: E402
from divcoeff.io import atomic_path  # noqa: E402


def domain_order(D: np.ndarray) -> np.ndarray:
    """Indices by mean distance to the other domains (ascending)."""
    off = np.where(np.eye(len(D), dtype=bool), np.nan, D)
    return np.argsort(np.nanmean(off, axis=1) if len(D) > 1 else np.zeros(1), kind="stable")


def save_domain_heatmap(tsv: str | Path, png: str | Path, dpi: int = 200) -> None:
    D, names = read_matrix(tsv)
    order = domain_order(D)
    M = D[np.ix_(order, order)]
    n = len(names)
    size = max(4.0, 0.32 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(M, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(n), [names[i] for i in order], rotation=90, fontsize=7)
    ax.set_yticks(range(n), [names[i] for i in order], fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mean Task2Vec distance")
    ax.set_title(f"{Path(tsv).name}: between tasks of two domains\n(diagonal: distinct tasks of one)", fontsize=9)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
