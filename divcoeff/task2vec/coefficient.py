"""The Task2Vec diversity coefficient of a training set (docs/formats.md section 5).

Tasks are the first T episodes of the training set's diversity episode file (drawn
mixture-style by the data stage), each with all N*(K+Q) images and episode-local labels.
The coefficient is the mean pairwise normalised-cosine distance of their Task2Vec
embeddings (REFERENCE.md section 1), reported with two intervals, each labelled:

- ``ci_pairs_t``: the published one, t(0.975, P-1) * sem over the P = T(T-1)/2 pairs as if
  they were independent (they are not: each task is in T-1 pairs), hence very narrow;
- ``ci_bootstrap``: a percentile bootstrap over tasks (resample T tasks, recompute the mean
  over pairs of distinct draws), the honest one.

And the Vendi score (Friedman & Dieng 2023) of the tasks: exp of the entropy of the
eigenvalues of K/T, K = 1 - the distance matrix (K_ii = 1). The normalised cosine rescales
each pair separately, so K need not be exactly positive semi-definite: negative eigenvalues
(rounding-size in practice) are clipped to 0 before normalising.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from divcoeff.data.episodes import Episodes
from divcoeff.data.views import View
from divcoeff.task2vec.probes import Probe, build_probe
from divcoeff.seeding import numpy_rng
from divcoeff.settings import DiversityCompute, DiversitySettings
from divcoeff.task2vec import embed_tasks

log = logging.getLogger(__name__)
EPS = 1e-8  # as published (task_similarity.get_scaled_hessian)


def normalized_cosine_distances(emb: np.ndarray) -> np.ndarray:
    """(T, T) matrix of cosine distances between a/(a+b+1e-8) and b/(a+b+1e-8), element-wise."""
    e = np.asarray(emb, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings: expected a (T, D) array, got shape {e.shape}")
    if (e < 0).any():
        raise ValueError("embeddings: Fisher values must be non-negative")
    T = len(e)
    d = np.zeros((T, T))
    for i in range(T - 1):
        den = e[i] + e[i + 1:] + EPS
        a, b = e[i] / den, e[i + 1:] / den
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        # Two equal embeddings give 1 - cos a rounding error below 0 (-6e-17): a distance is >= 0.
        d[i, i + 1:] = d[i + 1:, i] = np.maximum(1.0 - cos, 0.0)
    return d


def upper_pairs(d: np.ndarray) -> np.ndarray:
    return d[np.triu_indices(len(d), k=1)]


def t_interval_over_pairs(pairs: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The published interval: mean +- t(0.975, P-1) * sem, pairs treated as independent."""
    m = float(pairs.mean())
    if len(pairs) < 2:
        return m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(pairs) - 1) * stats.sem(pairs))
    return m - half, m + half


def bootstrap_over_tasks(d: np.ndarray, resamples: int, rng: np.random.Generator,
                         level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of the coefficient over resampled task sets (pairs of one task with
    itself, which a resample with replacement creates, are left out)."""
    T = len(d)
    if resamples <= 0 or T < 3:
        return None
    values = np.empty(resamples)
    iu = np.triu_indices(T, k=1)
    for r in range(resamples):
        idx = rng.integers(0, T, T)
        keep = idx[iu[0]] != idx[iu[1]]
        values[r] = d[idx[iu[0]][keep], idx[iu[1]][keep]].mean() if keep.any() else 0.0
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def vendi_score(d: np.ndarray) -> float:
    """exp(entropy of the eigenvalues of K/T), K = 1 - d: between 1 (all tasks alike) and T."""
    k = 1.0 - np.asarray(d, dtype=np.float64)
    k = (k + k.T) / 2
    lam = np.clip(np.linalg.eigvalsh(k / len(k)), 0.0, None)
    lam = lam / lam.sum()
    lam = lam[lam > 0]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def coefficient_summary(emb: np.ndarray, bootstrap: int, rng: np.random.Generator) -> dict:
    """Coefficient, both labelled intervals and the Vendi score of (T, D) embeddings."""
    d = normalized_cosine_distances(emb)
    pairs = upper_pairs(d)
    ci_t = t_interval_over_pairs(pairs)
    ci_b = bootstrap_over_tasks(d, bootstrap, rng)
    return {"coefficient": float(pairs.mean()), "ci_pairs_t": list(ci_t),
            "ci_bootstrap": list(ci_b) if ci_b else None,
            "ci_notes": {"ci_pairs_t": "published: t(0.975, P-1) * sem over the P task pairs treated as independent",
                         "ci_bootstrap": f"percentile bootstrap over tasks ({bootstrap} resamples), 95%"},
            "distance_std": float(pairs.std(ddof=1)) if len(pairs) > 1 else 0.0,
            "pairs": int(len(pairs)), "vendi": vendi_score(d)}


def task_rows(episodes: Episodes, e: int) -> tuple[np.ndarray, np.ndarray]:
    """View rows and episode-local labels of all N*(K+Q) images of episode e, class by class."""
    rows = np.concatenate([episodes.support[e], episodes.query[e]], axis=1)  # (W, K+Q)
    labels = np.repeat(np.arange(rows.shape[0]), rows.shape[1])
    return rows.reshape(-1), labels


def task_images(view: View, episodes: Episodes, ids: Sequence[int], size: int, channels: int):
    """([0, 1] images (k, n, C, size, size), labels (k, n)) of episodes `ids`."""
    rows, labels = zip(*(task_rows(episodes, e) for e in ids))
    flat = np.concatenate(rows)
    images = view.images(flat, size=size, channels=channels)
    k = len(ids)
    return images.view(k, -1, *images.shape[1:]), torch.from_numpy(np.stack(labels)).long()


def paired_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised cosine distance between a[i] and b[i] for every i (the same task embedded twice);
    exactly 0 for identical embeddings, whose 1 - cos is otherwise a rounding error of ~1e-16."""
    return np.array([0.0 if np.array_equal(x, y) else normalized_cosine_distances(np.stack([x, y]))[0, 1]
                     for x, y in zip(a, b)])


def noise_floor(emb: np.ndarray, again: np.ndarray) -> dict:
    """The measurement's own noise: the mean distance between two embeddings of each of the first
    tasks, the second drawn with the task's random streams redrawn (probe and head init fixed, as
    they are for every task of a run). The exact method with exact label expectation and an
    untrained head draws nothing at random, so it is 0 there."""
    d = paired_distances(emb[:len(again)], again)
    return {"noise_floor": float(d.mean()), "noise_floor_sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "noise_floor_tasks": int(len(d))}


def diversity_of_episodes(view: View, episodes: Episodes, probe: Probe, settings: DiversitySettings,
                          compute: DiversityCompute, seed: int, tasks: int, bootstrap: int,
                          device: torch.device | str = "cpu",
                          progress: bool = True, noise_floor_tasks: int = 0) -> tuple[dict, np.ndarray]:
    """Embed the first `tasks` episodes and summarise; returns (result fields, embeddings (T, D)).
    With `noise_floor_tasks` > 0, the first ones are embedded a second time for the noise floor."""
    if episodes.n_episodes < tasks:
        raise ValueError(f"episode file of view {view.name!r} has {episodes.n_episodes} episodes, "
                         f"diversity.tasks asks for {tasks}")
    if tasks < 2:
        raise ValueError("diversity.tasks: the coefficient needs at least 2 tasks")
    ids = list(range(tasks))
    t0 = time.perf_counter()

    def load(b):
        return task_images(view, episodes, b, probe.image_size, probe.channels)

    emb = embed_tasks(probe, load, ids, seed, settings, compute, device, progress)
    seconds = time.perf_counter() - t0
    rng = numpy_rng(seed, "bootstrap")
    summary = coefficient_summary(emb, bootstrap, rng)
    m = min(int(noise_floor_tasks), tasks)
    if m > 0:
        again = embed_tasks(probe, load, ids[:m], seed, settings, compute, device, progress, replica=1)
        summary.update(noise_floor(emb, again))
        log.info("%s: noise floor %.4g (mean distance between two embeddings of the same task, %d tasks)",
                 view.name, summary["noise_floor"], m)
    else:
        summary.update({"noise_floor": None, "noise_floor_sd": None, "noise_floor_tasks": 0})
    summary.update({"embedding_dim": int(emb.shape[1]), "tasks": tasks, "embed_seconds": seconds,
                    "seconds_per_task": seconds / tasks})
    log.info("%s: coefficient %.4f (bootstrap CI %s), Vendi %.2f, %.2f s/task", view.name,
             summary["coefficient"], summary["ci_bootstrap"], summary["vendi"], seconds / tasks)
    return summary, emb


def run_diversity(train_set: str, view_tsv: str, episodes_path: str, out_json: str, out_npy: str,
                  div: DiversitySettings, compute: DiversityCompute, master_seed: int,
                  checkpoint_path: str | None = None, progress: bool = True, code_version: str = "") -> dict:
    """The diversity rule: embed the train set's diversity tasks, write the JSON and the .npy.

    Seeds: the probe's init and the tasks' random streams depend on the master and
    diversity seeds only, not on the train set: every train set is measured with the same
    probe, the same head init for every task, and the same label draws per task index (common
    random numbers)."""
    from divcoeff.data.episodes import load_episodes
    from divcoeff.device import pick_device, set_threads
    from divcoeff.io import atomic_save_npy, atomic_write_json
    from divcoeff.seeding import derive_seed

    set_threads(compute.threads)
    device = pick_device(compute.device)
    view = View.load(view_tsv)
    episodes = load_episodes(episodes_path, view)
    probe = build_probe(div.probe, derive_seed(master_seed, div.seed, "diversity-probe"), checkpoint_path).to(device)
    seed = derive_seed(master_seed, div.seed, "diversity-tasks")
    t0 = time.perf_counter()
    summary, emb = diversity_of_episodes(view, episodes, probe, div, compute, seed, div.tasks, div.bootstrap, device,
                                         progress, noise_floor_tasks=div.noise_floor_tasks)
    result = {"train_set": train_set, "method": div.method, "probe": probe.description,
              "tasks": div.tasks, "seed": div.seed, "master_seed": int(master_seed),
              "episodes": str(episodes_path), "ways": episodes.ways, "shots": episodes.shots,
              "queries": episodes.queries, "settings": div.as_dict(), "compute": compute.as_dict(),
              "device": str(device), "threads": torch.get_num_threads(), "code_version": code_version, **summary,
              "seconds": time.perf_counter() - t0}
    atomic_save_npy(out_npy, emb)
    atomic_write_json(out_json, result)
    return result
