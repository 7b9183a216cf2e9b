"""Domain distances: the Task2Vec distance between tasks of one domain (script) and of two, and
the coefficient they predict for any mixture of domains (docs/formats.md section 5b).

Every candidate domain of a benchmark gets T tasks (N-way, K+Q images a class, the diversity
tasks' shape) drawn from its classes of one split, embedded with the study's probe and method
(:func:`divcoeff.diversity.diversity_of_episodes`, the coefficient's own code path). ``D[a, b]``
is the mean distance between a task of domain a and a task of domain b; ``D[a, a]`` the mean
over pairs of distinct tasks of domain a.

A training set's tasks are drawn mixture-style (a domain uniformly, then a task in it), so two
independent tasks of a set S of k domains come from domains (a, b) with probability 1/k^2 each,
and the expected coefficient is ``(1/k^2) * sum_{a, b in S} D[a, b]`` (:func:`mixture_coefficient`).
For given task counts n_a the mean over the C(T, 2) pairs of distinct tasks is exactly
``(n^T D n - sum_a n_a D[a, a]) / (T (T - 1))`` when D is measured on those tasks
(:func:`finite_coefficient`).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from divcoeff.data.episodes import FORMAT, Episodes, draw_task, usable_classes
from divcoeff.data.views import View
from divcoeff.seeding import numpy_rng
from divcoeff.selection import mixture_coefficient
from divcoeff.settings import DomainSettings

log = logging.getLogger(__name__)


class DomainMatrixError(ValueError):
    """A domain matrix file that is malformed, or a domain it does not hold."""


def domain_matrix(d: np.ndarray, component: np.ndarray, n: int) -> np.ndarray:
    """(n, n) mean of the task distances `d` between domains; the diagonal over distinct tasks of
    one domain (NaN where a domain has fewer than 2 tasks, or none)."""
    d = np.asarray(d, dtype=np.float64)
    component = np.asarray(component)
    m = np.full((n, n), np.nan)
    for a in range(n):
        ia = np.flatnonzero(component == a)
        for b in range(a, n):
            ib = np.flatnonzero(component == b)
            block = d[np.ix_(ia, ib)]
            if a == b:
                block = block[~np.eye(len(ia), dtype=bool)]
            if block.size:
                m[a, b] = m[b, a] = block.mean()
    return m


def finite_coefficient(D: np.ndarray, counts) -> float:
    """Mean distance over the pairs of distinct tasks of a set holding counts[a] tasks of domain a,
    D being measured on those tasks: the exact finite-T form of :func:`mixture_coefficient`."""
    n = np.asarray(counts, dtype=np.float64)
    T = n.sum()
    if T < 2:
        raise ValueError("finite_coefficient: needs at least 2 tasks")
    D = np.array(D, dtype=np.float64)
    # A domain with fewer than 2 tasks has no pair of distinct tasks inside it (its diagonal, NaN
    # then, has weight 0), a domain with no task none with the others.
    np.fill_diagonal(D, np.where(n > 1, np.diag(D), 0.0))
    D[n == 0, :] = 0.0
    D[:, n == 0] = 0.0
    diag = np.diag(D)
    return float((n @ D @ n - (n * diag).sum()) / (T * (T - 1)))


# ------------------------------------------------------------------------------------ tasks

def sample_domain_tasks(view: View, ways: int, shots: int, queries: int, per_domain: int, seed: int) -> Episodes:
    """`per_domain` tasks of every component (domain) of `view` that holds `ways` classes of at
    least `shots + queries` images: `ways` classes of it, then `shots + queries` distinct images
    per class, by the draw :func:`divcoeff.data.episodes.sample_episodes` uses for one task
    (:func:`divcoeff.data.episodes.draw_task`; components in sorted order, their tasks in a row). Components with fewer classes are left out (logged)."""
    if view.rotations:
        raise ValueError(f"view {view.name!r}: the domain matrix does not support benchmarks with task rotations")
    per_image = shots + queries
    table = view.table
    comps = sorted(table["component"].unique())
    rng = numpy_rng(seed, "domain-tasks", view.name, ways, shots, queries, per_domain)
    support, query, classes, component, kept = [], [], [], [], []
    for comp in comps:
        labels, pool = usable_classes(table, comp, per_image)
        if len(pool) < ways:
            log.info("%s: left out (%d classes of at least %d images, a task takes %d)", comp, len(pool),
                     per_image, ways)
            continue
        c = len(kept)
        kept.append(comp)
        for _ in range(per_domain):
            picked, s, q = draw_task(rng, pool, ways, shots, queries)
            support.append(s)
            query.append(q)
            classes.append([labels[p] for p in picked])
            component.append(c)
    if len(kept) < 1:
        raise ValueError(f"view {view.name!r}: no component has {ways} classes of at least {per_image} images")
    n = len(component)
    meta = {"format": FORMAT, "view": view.name, "view_sha256": view.sha256, "ways": ways, "shots": shots,
            "queries": queries, "n_episodes": n, "seed": seed, "components": kept, "per_domain": per_domain}
    return Episodes(np.stack(support), np.stack(query), np.asarray(classes, np.int64),
                    np.asarray(component, np.int64), meta)


def domain_names(components: list[str]) -> list[str]:
    """Component names without their benchmark ("glyphs/Latin" -> "Latin")."""
    return [c.split("/", 1)[-1] for c in components]


# ------------------------------------------------------------------------------------ files

def matrix_frame(D: np.ndarray, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(D), index=pd.Index(names, name="domain"), columns=names)


def write_matrix(path: str | Path, D: np.ndarray, names: list[str]) -> None:
    from divcoeff.io import atomic_write_text

    text = matrix_frame(D, names).to_csv(sep="\t", float_format="%.6g", lineterminator="\n")
    atomic_write_text(path, text)


def read_matrix(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """(D, domain names) of a domain matrix TSV (docs/formats.md section 5b), checked: square, the
    same names on both axes, symmetric, finite off the diagonal."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, sep="\t", index_col=0, keep_default_na=True)
    except FileNotFoundError:
        raise DomainMatrixError(f"{path}: domain matrix not found (rule domain_distances writes it)") from None
    if frame.index.name != "domain":
        raise DomainMatrixError(f"{path}: first column must be 'domain', got {frame.index.name!r}")
    names = [str(n) for n in frame.index]
    if [str(c) for c in frame.columns] != names:
        raise DomainMatrixError(f"{path}: the columns must name the rows' domains in the same order "
                                f"(rows {names[:3]}..., columns {list(frame.columns)[:3]}...)")
    try:
        D = frame.to_numpy(dtype=np.float64)
    except ValueError as e:
        raise DomainMatrixError(f"{path}: a non-numeric distance ({e})") from None
    off = ~np.eye(len(names), dtype=bool)
    if not np.isfinite(D[off]).all():
        raise DomainMatrixError(f"{path}: every distance between two domains must be a number")
    if not np.allclose(D, D.T, equal_nan=True, atol=1e-5):
        raise DomainMatrixError(f"{path}: not symmetric")
    return D, names


# ------------------------------------------------------------------------------------ the rule

def run_domain_distances(benchmark: str, dataset_path: str, split: str, out_tsv: str, out_npy: str, out_json: str,
                         out_view_tsv: str, div, compute, domains: DomainSettings, master_seed: int,
                         checkpoint_path: str | None = None, progress: bool = True, code_version: str = "") -> dict:
    """Rule domain_distances: the view of every domain of `split`, T tasks each, their embeddings
    with the diversity probe and method (the coefficient's seeds), the matrix and a JSON record."""
    import dataclasses

    import torch

    from divcoeff.data.indexed import IndexedDataset
    from divcoeff.data.views import build_view, write_view
    from divcoeff.device import pick_device, set_threads
    from divcoeff.io import atomic_save_npy, atomic_write_json
    from divcoeff.seeding import derive_seed
    from divcoeff.task2vec.coefficient import diversity_of_episodes, normalized_cosine_distances
    from divcoeff.task2vec.probes import build_probe

    set_threads(compute.threads)
    device = pick_device(compute.device)
    ds = IndexedDataset.load(dataset_path)
    spec = {"kind": "domains", "benchmarks": [benchmark], "split": split, "domains": "all"}
    table, meta = build_view(f"{benchmark}-domains", spec, {benchmark: ds}, seed=master_seed,
                             min_classes_per_component=div.ways)
    write_view(out_view_tsv, Path(out_view_tsv).with_suffix(".json"), table, meta)
    view = View.load(out_view_tsv)
    eps = sample_domain_tasks(view, div.ways, div.shots, div.queries, domains.tasks,
                              derive_seed(master_seed, domains.seed, "domain-tasks", benchmark))
    if div.probe.image_size is None:  # as rule diversity: the view's size
        div = dataclasses.replace(div, probe=dataclasses.replace(div.probe, image_size=view.image_size))
    probe = build_probe(div.probe, derive_seed(master_seed, div.seed, "diversity-probe"), checkpoint_path).to(device)
    seed = derive_seed(master_seed, div.seed, "diversity-tasks")
    log.info("%s: %d domains x %d tasks (split %s), probe %s, method %s", benchmark, len(eps.meta["components"]),
             domains.tasks, split, probe.description, div.method)
    t0 = time.perf_counter()
    _, emb = diversity_of_episodes(view, eps, probe, div, compute, seed, eps.n_episodes, 0, device, progress)
    names = domain_names(eps.meta["components"])
    D = domain_matrix(normalized_cosine_distances(emb), eps.component, len(names))
    off = ~np.eye(len(names), dtype=bool)
    result = {"benchmark": benchmark, "split": split, "domains": names, "tasks_per_domain": domains.tasks,
              "task_domain": [names[c] for c in eps.component], "method": div.method, "probe": probe.description,
              "ways": div.ways, "shots": div.shots, "queries": div.queries, "master_seed": int(master_seed),
              "settings": {"domains": domains.as_dict(), "diversity": div.as_dict()},
              "within_mean": float(np.nanmean(np.diag(D))), "across_mean": float(D[off].mean()) if off.any() else None,
              "device": str(device), "threads": torch.get_num_threads(), "code_version": code_version,
              "seconds": time.perf_counter() - t0}
    log.info("%s: within a domain %.4f, across domains %s (%.1f s)", benchmark, result["within_mean"],
             f"{result['across_mean']:.4f}" if result["across_mean"] is not None else "-", result["seconds"])
    atomic_save_npy(out_npy, emb)
    write_matrix(out_tsv, D, names)
    atomic_write_json(out_json, result)
    return result


def predicted_for_components(D: np.ndarray, names: list[str], components: list[str], where: str) -> float:
    """The mixture coefficient of a view's components ("bench/Domain") on a matrix of `names`."""
    index = {n: i for i, n in enumerate(names)}
    missing = [c for c in domain_names(components) if c not in index]
    if missing:
        raise DomainMatrixError(f"{where}: domain(s) {missing} not in the domain matrix ({', '.join(names)})")
    return mixture_coefficient(D, [index[c] for c in domain_names(components)])
