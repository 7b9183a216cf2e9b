"""Episode files: seeded, persisted N-way K-shot Q-query tasks (docs/formats.md section 3).

Every evaluation and every diversity estimate reads its tasks from one of these files, so all
checkpoints see exactly the same episodes. The JSON is written deterministically (one episode
per line) so the same config gives byte-identical files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from divcoeff.data.views import View
from divcoeff.io import atomic_write_text
from divcoeff.seeding import numpy_rng

FORMAT = "divcoeff-episodes/1"


class EpisodeError(ValueError):
    """An episode file that is malformed, or was drawn from another version of its view."""


@dataclass
class Episodes:
    """Episode arrays; `support[e, w]` are view rows of class `classes[e, w]` (local label w)."""

    support: np.ndarray    # (E, W, K) int64
    query: np.ndarray      # (E, W, Q) int64
    classes: np.ndarray    # (E, W) int64 view labels
    component: np.ndarray  # (E,) int64 index into `components`
    meta: dict

    @property
    def n_episodes(self) -> int:
        return int(self.support.shape[0])

    @property
    def ways(self) -> int:
        return int(self.support.shape[1])

    @property
    def shots(self) -> int:
        return int(self.support.shape[2])

    @property
    def queries(self) -> int:
        return int(self.query.shape[2])

    def rows(self) -> np.ndarray:
        """Every view row any episode uses, sorted, each once (features are computed once per image)."""
        return np.unique(np.concatenate([self.support.ravel(), self.query.ravel()]))


def _rotation_draw(view: View, comp_rows: pd.DataFrame) -> dict | None:
    """The rotations of a component's benchmark ({degrees, scope}), or None."""
    return view.rotations.get(str(comp_rows["benchmark"].iloc[0]))


def usable_classes(table: pd.DataFrame, component: str, per_image: int) -> tuple[list[int], list[np.ndarray]]:
    """The labels of `component`'s classes with at least `per_image` images, in label order, and each
    one's view rows, sorted: the pool one task of that component is drawn from."""
    sub = table[table["component"] == component]
    usable = [(lab, np.sort(sub["row"].to_numpy()[idx])) for lab, idx in sorted(sub.groupby("label").indices.items())
              if len(idx) >= per_image]
    return [lab for lab, _ in usable], [rows for _, rows in usable]


def draw_task(rng: np.random.Generator, pool: list[np.ndarray], ways: int, shots: int, queries: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One task from a component's class pool (usable_classes): `ways` distinct classes, then
    `shots + queries` distinct images of each. Returns (positions of the classes in the pool,
    support rows (ways, shots), query rows (ways, queries))."""
    picked = rng.choice(len(pool), ways, replace=False)
    support = np.empty((ways, shots), np.int64)
    query = np.empty((ways, queries), np.int64)
    for w, p in enumerate(picked):
        rows = rng.choice(pool[p], shots + queries, replace=False)
        support[w], query[w] = rows[:shots], rows[shots:]
    return picked, support, query


def sample_episodes(view: View, ways: int, shots: int, queries: int, n: int, seed: int) -> Episodes:
    """Draw `n` episodes mixture-style: a component uniformly, then `ways` classes in it, then
    `shots + queries` distinct images per class.

    In a component whose benchmark rotates classes (the published Omniglot), each class then gets a
    rotation drawn uniformly from its degrees, as learn2learn's RandomClassRotation draws one per
    class with `random.choice`; with scope ``task`` every image of the episode takes the last
    class's, which is what that transform's late-binding lambda makes of it. The rows of the
    episode then name the rotated images (View.rotated_row). Views without rotations draw exactly
    as before (the rotation draws come after the image draws, and only where there are rotations)."""
    per_image = shots + queries
    table = view.table
    comps = sorted(table["component"].unique())
    pools: list[list[np.ndarray]] = []  # per eligible component: row arrays of its usable classes
    labels: list[list[int]] = []
    rotations: list[dict | None] = []
    eligible = []
    for c, comp in enumerate(comps):
        comp_labels, pool = usable_classes(table, comp, per_image)
        if len(pool) >= ways:
            eligible.append(c)
            labels.append(comp_labels)
            pools.append(pool)
            rotations.append(_rotation_draw(view, table[table["component"] == comp]))
    if not eligible:
        raise EpisodeError(
            f"view {view.name!r}: no component has {ways} classes with at least {shots}+{queries} images each "
            f"(components: {len(comps)}, images per class: {table.groupby('label').size().min()}..."
            f"{table.groupby('label').size().max()})")
    rng = numpy_rng(seed, "episodes", view.name, ways, shots, queries, n)
    support = np.empty((n, ways, shots), np.int64)
    query = np.empty((n, ways, queries), np.int64)
    classes = np.empty((n, ways), np.int64)
    component = np.empty(n, np.int64)
    for e in range(n):
        k = int(rng.integers(len(eligible)))
        picked, support[e], query[e] = draw_task(rng, pools[k], ways, shots, queries)
        classes[e] = [labels[k][p] for p in picked]
        component[e] = eligible[k]
        rot = rotations[k]
        if rot:
            degrees = np.asarray(rot["degrees"])[rng.integers(len(rot["degrees"]), size=ways)]
            if rot["scope"] == "task":
                degrees[:] = degrees[-1]
            support[e] = view.rotated_row(support[e], degrees[:, None])
            query[e] = view.rotated_row(query[e], degrees[:, None])
    meta = {"format": FORMAT, "view": view.name, "view_sha256": view.sha256, "ways": ways, "shots": shots,
            "queries": queries, "n_episodes": n, "seed": seed, "components": comps}
    return Episodes(support, query, classes, component, meta)


def write_episodes(path: str | Path, episodes: Episodes) -> None:
    header = json.dumps(episodes.meta, sort_keys=True, separators=(", ", ": "))
    lines = []
    for e in range(episodes.n_episodes):
        ep = {"component": int(episodes.component[e]), "classes": episodes.classes[e].tolist(),
              "support": episodes.support[e].tolist(), "query": episodes.query[e].tolist()}
        lines.append(json.dumps(ep, sort_keys=True, separators=(",", ":")))
    text = header[:-1] + ', "episodes": [\n' + ",\n".join(lines) + "\n]}\n"
    atomic_write_text(path, text)


def load_episodes(path: str | Path, view: View | None = None) -> Episodes:
    """Read an episode file; with `view`, refuse a file drawn from another version of it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EpisodeError(f"{path}: episode file not found") from None
    except json.JSONDecodeError as e:
        raise EpisodeError(f"{path}: not valid JSON ({e})") from None
    if data.get("format") != FORMAT:
        raise EpisodeError(f"{path}: field 'format': expected {FORMAT!r}, got {data.get('format')!r}")
    try:
        eps = data["episodes"]
        support = np.asarray([ep["support"] for ep in eps], dtype=np.int64)
        query = np.asarray([ep["query"] for ep in eps], dtype=np.int64)
        classes = np.asarray([ep["classes"] for ep in eps], dtype=np.int64)
        component = np.asarray([ep["component"] for ep in eps], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise EpisodeError(f"{path}: malformed episode list ({type(e).__name__}: {e})") from None
    meta = {k: v for k, v in data.items() if k != "episodes"}
    expect = (meta.get("n_episodes"), meta.get("ways"), meta.get("shots"))
    if support.ndim != 3 or support.shape != expect or query.shape != (expect[0], expect[1], meta.get("queries")):
        raise EpisodeError(f"{path}: episode arrays of shape {support.shape}/{query.shape} do not match the header "
                           f"(n_episodes, ways, shots, queries) = {expect + (meta.get('queries'),)}")
    if view is not None:
        if meta.get("view") != view.name or meta.get("view_sha256") != view.sha256:
            raise EpisodeError(f"{path}: drawn from view {meta.get('view')!r} ({str(meta.get('view_sha256'))[:12]}), "
                               f"not from {view.path} ({view.sha256[:12]}); rebuild the episode file")
        if support.size and max(support.max(), query.max()) >= view.max_row:
            raise EpisodeError(f"{path}: refers to rows beyond the {view.max_row} rows of {view.path}"
                               + (" (rotated copies included)" if view.max_row > len(view.table) else ""))
    return Episodes(support, query, classes, component, meta)
