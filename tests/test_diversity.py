"""The diversity coefficient: distances, intervals, Vendi score, and the ordering on synthetic domains."""
import json

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cosine

from divcoeff.data.episodes import sample_episodes, write_episodes
from divcoeff.task2vec.coefficient import (bootstrap_over_tasks, coefficient_summary, diversity_of_episodes,
                                normalized_cosine_distances, run_diversity, t_interval_over_pairs, task_images,
                                task_rows, upper_pairs, vendi_score)
from divcoeff.task2vec.probes import torchvision_probe
from divcoeff.settings import DiversitySettings, compute_settings
from task2vec_settings import t2v


def random_embeddings(T=5, D=40, seed=0):
    return np.random.default_rng(seed).gamma(0.5, 1e-3, size=(T, D)).astype(np.float32)


def test_distance_matches_published_formula_symmetric_zero_diagonal():
    e = random_embeddings()
    d = normalized_cosine_distances(e)
    for i in range(5):
        for j in range(5):
            a, b = e[i].astype(np.float64), e[j].astype(np.float64)
            ref = cosine(a / (a + b + 1e-8), b / (a + b + 1e-8))
            assert d[i, j] == pytest.approx(ref, abs=1e-9)
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0)


def test_identical_embeddings_have_distance_zero_and_copies_coefficient_zero():
    e = np.repeat(random_embeddings(1), 6, axis=0)
    d = normalized_cosine_distances(e)
    np.testing.assert_allclose(d, 0, atol=1e-12)
    s = coefficient_summary(e, bootstrap=20, rng=np.random.default_rng(0))
    assert s["coefficient"] == pytest.approx(0, abs=1e-12)
    assert s["vendi"] == pytest.approx(1.0, abs=1e-6)


def test_intervals_and_vendi():
    e = random_embeddings(8)
    d = normalized_cosine_distances(e)
    pairs = upper_pairs(d)
    assert len(pairs) == 28
    lo, hi = t_interval_over_pairs(pairs)
    half = stats.t.ppf(0.975, 27) * pairs.std(ddof=1) / np.sqrt(28)
    assert (lo, hi) == pytest.approx((pairs.mean() - half, pairs.mean() + half))
    b1 = bootstrap_over_tasks(d, 200, np.random.default_rng(1))
    assert b1 == bootstrap_over_tasks(d, 200, np.random.default_rng(1))
    assert b1[0] < pairs.mean() < b1[1]
    # Vendi of T mutually orthogonal tasks (distance 1, kernel = identity) is T
    assert vendi_score(1 - np.eye(4)) == pytest.approx(4.0)
    assert 1.0 < vendi_score(d) < 8.0


def test_task_rows_are_all_images_with_local_labels(make_view):
    view = make_view(domains="all")
    eps = sample_episodes(view, ways=3, shots=2, queries=3, n=2, seed=0)
    rows, labels = task_rows(eps, 1)
    assert len(rows) == 3 * 5 and labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert set(rows[:2]) == set(eps.support[1, 0]) and set(rows[2:5]) == set(eps.query[1, 0])
    assert (view.table["label"].to_numpy()[rows[:5]] == eps.classes[1, 0]).all()
    images, lab = task_images(view, eps, [0, 1], 32, 3)
    assert tuple(images.shape) == (2, 15, 3, 32, 32) and lab.shape == (2, 15)


SMALL_FAITHFUL = {"head_epochs": 2, "epoch_images": 320, "batch_size": 32}
SMALL_EXACT = {"head_epochs": 0, "label_draws": 0}


@pytest.fixture(scope="module")
def probe():
    return torchvision_probe("resnet18", "random", 32, seed=0)


def test_tasks_of_one_domain_are_closer_than_tasks_of_two_and_same_seed_same_value(make_view, probe):
    """What the coefficient is built on: on a view of every domain (3 x 10 classes), tasks drawn
    from the same domain are nearer to each other than tasks from different domains.

    (A 1-domain view against an all-domain view of the same class budget is not a fair unit test:
    with 30 classes in one domain against 10 per domain, the class pool alone moves the
    coefficient as much as the domains do; README "Known limits".)"""
    settings = t2v("exact", faithful=SMALL_FAITHFUL, exact=SMALL_EXACT, task_batch=8)
    view = make_view(domains="all", classes=30, classes_per_domain=60)
    assert len(view.meta["components"]) == 3
    eps = sample_episodes(view, ways=5, shots=5, queries=5, n=12, seed=0)
    s, emb = diversity_of_episodes(view, eps, probe, *settings, seed=3, tasks=12, bootstrap=50, progress=False)
    assert emb.shape == (12, 9600) and np.isfinite(emb).all()
    d = normalized_cosine_distances(emb)
    i, j = np.triu_indices(12, 1)
    same = eps.component[i] == eps.component[j]
    assert same.any() and (~same).any()
    within, across = d[i, j][same].mean(), d[i, j][~same].mean()
    assert within < 0.85 * across, (within, across)
    again, _ = diversity_of_episodes(view, eps, probe, *settings, seed=3, tasks=12, bootstrap=50, progress=False)
    assert again["coefficient"] == s["coefficient"]


def test_run_diversity_writes_contract_files(make_view, tmp_path):
    view = make_view(domains="all")
    eps = sample_episodes(view, ways=3, shots=1, queries=1, n=3, seed=0)
    ep_path = tmp_path / "eps.json"
    write_episodes(ep_path, eps)
    div = DiversitySettings.from_config({
        "tasks": 3, "seed": 31, "method": "exact", "bootstrap": 20,
        "probe": {"kind": "torchvision", "arch": "resnet18", "weights": "random", "image_size": 32},
        "faithful": {"epoch_images": 64, "batch_size": 8}, "exact": {"head_epochs": 1, "label_draws": 1}})
    compute = compute_settings({"device": "cpu", "diversity": {"task_batch": 2}}).diversity
    out = run_diversity("synth", str(view.path), str(ep_path), str(tmp_path / "d.json"), str(tmp_path / "d.npy"),
                        div, compute, master_seed=0, progress=False)
    written = json.loads((tmp_path / "d.json").read_text())
    for key in ("train_set", "method", "probe", "tasks", "seed", "coefficient", "ci_pairs_t", "ci_bootstrap",
                "vendi", "embedding_dim", "episodes", "seconds"):
        assert key in written, key
    assert written["coefficient"] == out["coefficient"] and written["embedding_dim"] == 9600
    emb = np.load(tmp_path / "d.npy", allow_pickle=False)
    assert emb.dtype == np.float32 and emb.shape == (3, 9600)
    assert written["coefficient"] == pytest.approx(upper_pairs(normalized_cosine_distances(emb)).mean())


def test_noise_floor_is_zero_for_the_exact_method_and_positive_for_the_published_one(make_view, probe):
    """The coefficient's own noise: the same task embedded with its random draws redrawn. The exact
    Fisher with exact label expectation and the untrained shared head draws nothing: 0. The
    published Monte-Carlo Fisher (sampled labels, resampled batches, a trained head) does not."""
    view = make_view(domains="all")
    eps = sample_episodes(view, ways=5, shots=2, queries=2, n=3, seed=0)
    exact = t2v("exact", faithful=SMALL_FAITHFUL, exact=SMALL_EXACT, task_batch=8)
    s, emb = diversity_of_episodes(view, eps, probe, *exact, seed=3, tasks=3, bootstrap=0, progress=False,
                                   noise_floor_tasks=2)
    assert s["noise_floor"] == 0.0 and s["noise_floor_tasks"] == 2
    # Sampled labels are random draws: the floor is no longer 0 but stays below the distances
    # between different tasks.
    sampled = t2v("exact", faithful=SMALL_FAITHFUL, exact={**SMALL_EXACT, "label_draws": 1}, task_batch=8)
    s, emb = diversity_of_episodes(view, eps, probe, *sampled, seed=3, tasks=3, bootstrap=0, progress=False,
                                   noise_floor_tasks=3)
    assert 0 < s["noise_floor"] < s["coefficient"], (s["noise_floor"], s["coefficient"])
    faithful = t2v("faithful", faithful={"head_epochs": 1, "epoch_images": 64, "batch_size": 16},
                   exact=SMALL_EXACT, task_batch=8)
    s, _ = diversity_of_episodes(view, eps, probe, *faithful, seed=3, tasks=2, bootstrap=0, progress=False,
                                 noise_floor_tasks=1)
    assert s["noise_floor"] > 0 and s["noise_floor_tasks"] == 1
    s, _ = diversity_of_episodes(view, eps, probe, *exact, seed=3, tasks=2, bootstrap=0, progress=False)
    assert s["noise_floor"] is None and s["noise_floor_tasks"] == 0


def test_a_task_is_at_distance_zero_from_itself_never_below():
    """1 - cos of two equal vectors is a rounding error that can fall below 0 (it did, -6e-17, on
    real glyph embeddings, and the summary refused the negative noise floor): distances are >= 0."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        e = rng.gamma(0.5, 1e-3, size=(1, 9600))
        d = normalized_cosine_distances(np.concatenate([e, e, rng.gamma(0.5, 1e-3, size=(1, 9600))]))
        assert 0.0 <= d[0, 1] < 1e-12 and (d >= 0).all()
