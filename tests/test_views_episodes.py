"""Views (training sets matched in size, the held-out set) and the persisted episode files."""
import numpy as np
import pytest

from divcoeff.data.episodes import EpisodeError, load_episodes, sample_episodes, write_episodes
from divcoeff.data.indexed import IndexedDataset
from divcoeff.data.views import View, ViewError, build_view, write_view
from divcoeff.io import sha256_file

from conftest import synthetic_dataset


@pytest.fixture
def dataset(tmp_path):
    return IndexedDataset.load(synthetic_dataset(tmp_path / "data" / "synth", n_domains=4, classes_per_domain=20))


def _view(tmp_path, ds, name, **spec):
    spec = {"benchmarks": ["synth"], **spec}
    table, meta = build_view(name, spec, {"synth": ds}, seed=0)
    write_view(tmp_path / f"{name}.tsv", tmp_path / f"{name}.json", table, meta)
    return View.load(tmp_path / f"{name}.tsv")


def test_training_sets_of_rising_diversity_are_matched_in_size(tmp_path, dataset):
    views = {k: _view(tmp_path, dataset, f"v{k}", split="train", domains=k, classes=10, images_per_class=8)
             for k in (1, 2, "all")}
    for v in views.values():
        assert v.n_classes == 10 and len(v.table) == 80
        assert v.table.groupby("label").size().eq(8).all()
    assert [len(v.meta["components"]) for v in views.values()] == [1, 2, 2]  # "all" fits 10 // 5 scripts
    assert sorted(views[1].table["label"].unique()) == list(range(10))


def test_draws_pick_different_domains_and_are_reproducible(tmp_path, dataset):
    a = _view(tmp_path, dataset, "a", domains=1, draw=0, classes=5)
    a2 = _view(tmp_path, dataset, "a2", domains=1, draw=0, classes=5)
    comps = {tuple(_view(tmp_path, dataset, f"d{d}", domains=1, draw=d, classes=5).meta["components"])
             for d in range(6)}
    assert a.meta["components"] == a2.meta["components"]
    assert len(comps) > 1


def test_held_out_view_shares_no_class_with_training_views(tmp_path, dataset):
    train = _view(tmp_path, dataset, "train", split="train", domains="all")
    test = _view(tmp_path, dataset, "test", split="test", domains="all")
    assert not set(train.table["class_name"]) & set(test.table["class_name"])
    assert not set(train.table["image_id"]) & set(test.table["image_id"])


def test_asking_for_more_domains_than_exist_names_the_view(tmp_path, dataset):
    with pytest.raises(ViewError, match="view 'big'.*6 domain"):
        _view(tmp_path, dataset, "big", domains=6, classes=30)


def test_view_serves_resized_rgb_pixels(tmp_path, dataset):
    v = _view(tmp_path, dataset, "v", domains=1)
    x = v.images([0, 1], size=32, channels=3)
    assert x.shape == (2, 3, 32, 32) and x.dtype.is_floating_point
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    raw = np.asarray(dataset.images[v.table["image_id"].iloc[0]])[..., 0] / 255
    np.testing.assert_allclose(v.images([0])[0, 0].numpy(), raw, atol=1e-6)


def test_episode_files_are_byte_identical_for_a_seed_and_differ_across_seeds(tmp_path, dataset):
    v = _view(tmp_path, dataset, "v", domains="all")
    paths = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_episodes(tmp_path / f"{name}.json", sample_episodes(v, 5, 2, 3, 20, seed=seed))
        paths.append(tmp_path / f"{name}.json")
    assert sha256_file(paths[0]) == sha256_file(paths[1])
    assert sha256_file(paths[0]) != sha256_file(paths[2])


def test_episodes_hold_disjoint_images_of_their_classes_inside_one_component(tmp_path, dataset):
    v = _view(tmp_path, dataset, "v", domains="all")
    write_episodes(tmp_path / "e.json", sample_episodes(v, 5, 2, 3, 30, seed=1))
    ep = load_episodes(tmp_path / "e.json", v)
    assert ep.support.shape == (30, 5, 2) and ep.query.shape == (30, 5, 3)
    labels = v.table["label"].to_numpy()
    comps = v.table["component"].to_numpy()
    for e in range(30):
        rows = np.concatenate([ep.support[e], ep.query[e]], 1)
        assert len(np.unique(rows)) == rows.size                       # no image twice
        assert (labels[rows] == ep.classes[e][:, None]).all()          # each row of its class
        assert len(np.unique(ep.classes[e])) == 5
        assert len(set(comps[rows.ravel()])) == 1                      # one mixture component


def test_episodes_of_a_rebuilt_view_are_refused(tmp_path, dataset):
    v = _view(tmp_path, dataset, "v", domains="all")
    write_episodes(tmp_path / "e.json", sample_episodes(v, 5, 1, 1, 3, seed=1))
    other = _view(tmp_path, dataset, "w", domains=1)
    with pytest.raises(EpisodeError, match="e.json"):
        load_episodes(tmp_path / "e.json", other)


def test_all_domains_with_a_budget_larger_than_any_one_domain(tmp_path, dataset):
    # 4 domains of 10 training classes; 20 classes must come from 4 domains x 5, not fail
    v = _view(tmp_path, dataset, "all20", split="train", domains="all", classes=20, images_per_class=8)
    assert v.n_classes == 20 and len(v.meta["components"]) == 4


def test_a_degenerate_level_is_refused_with_a_clear_error(tmp_path):
    """3 domains x 5 classes of 10 images: with 5-way tasks of all 10 images, each domain offers
    one task only; with 5+4 images per class there are 10 per class, so tasks can differ."""
    from divcoeff.data.views import ViewError

    ds_dir = tmp_path / "data" / "synth"
    synthetic_dataset(ds_dir, n_domains=3, classes_per_domain=10, images_per_class=10, test_fraction=0.5)
    ds = IndexedDataset.load(ds_dir)
    spec = {"benchmarks": ["synth"], "domains": "all", "classes": 15}
    with pytest.raises(ViewError, match=r"degenerate: component 'synth/dom0' holds 5 classes of at most 10 images.*"
                                        r"5 classes x 10 images"):
        build_view("all-15", spec, {"synth": ds}, seed=0, task_shape=(5, 10))
    table, _ = build_view("all-15", spec, {"synth": ds}, seed=0, task_shape=(5, 9))
    assert table["component"].nunique() == 3
    table, _ = build_view("one-5", {**spec, "domains": 1, "classes": 5}, {"synth": ds}, seed=0, task_shape=(4, 10))
    assert table["label"].nunique() == 5


def test_nested_draws_give_levels_that_hold_each_other(dataset, tmp_path):
    """domains 1 < 2 < 4 of one draw: each set's components and classes hold the smaller set's
    share of them (a prefix), the class budget is the same, and another draw is another chain."""
    def view(k, draw=0):
        table, meta = build_view(f"n{k}-{draw}", {"benchmarks": ["synth"], "domains": k, "draw": draw, "classes": 8,
                                                  "nested": True}, {"synth": dataset}, seed=0)
        return table, meta

    tables = {k: view(k) for k in (1, 2, 4)}
    comps = {k: meta["components"] for k, (_, meta) in tables.items()}
    assert comps[2][:1] == comps[1] and comps[4][:2] == comps[2] and len(set(comps[4])) == 4
    classes = {k: {c: set(t.loc[t["component"] == c, "class_name"]) for c in comps[k]} for k, (t, _) in tables.items()}
    assert all(t["label"].nunique() == 8 for t, _ in tables.values())
    assert classes[2][comps[1][0]] < classes[1][comps[1][0]]              # 4 of the 8 classes of level 1
    assert classes[4][comps[2][1]] < classes[2][comps[2][1]]
    assert view(2, draw=1)[1]["components"] != comps[2] or view(4, draw=1)[1]["components"] != comps[4]
    # Not nested: each level is drawn on its own (the default).
    flat = build_view("f4", {"benchmarks": ["synth"], "domains": 4, "classes": 8}, {"synth": dataset}, seed=0)[0]
    assert flat["label"].nunique() == 8


def test_too_many_ways_is_named_as_the_cause(dataset):
    """20 classes per domain: 50-way tasks fit nowhere, and the hint names `ways`, not `classes`."""
    with pytest.raises(ViewError, match=r"at least 50 usable classes each.*lower the largest `ways` \(50"):
        build_view("w", {"benchmarks": ["synth"], "domains": 1, "classes": 10}, {"synth": dataset}, seed=0,
                   min_classes_per_component=50)
    with pytest.raises(ViewError, match=r"at least 30 usable classes.*lower `classes` / `domains`"):
        build_view("c", {"benchmarks": ["synth"], "domains": 2, "classes": 60}, {"synth": dataset}, seed=0)


def test_a_held_out_view_that_shares_data_with_a_training_set_is_refused(dataset):
    from divcoeff.data.views import check_held_out, overlap

    train, _ = build_view("tr", {"benchmarks": ["synth"], "split": "train", "domains": "all"}, {"synth": dataset},
                          seed=0)
    test, _ = build_view("te", {"benchmarks": ["synth"], "split": "test", "domains": "all"}, {"synth": dataset},
                         seed=0)
    same, _ = build_view("te2", {"benchmarks": ["synth"], "split": "train", "domains": 1, "classes": 5},
                         {"synth": dataset}, seed=0)
    assert overlap(test, train) == {"images": 0, "classes": 0}
    assert check_held_out("te", test, {"tr": train}, allow_overlap=False) == {}
    found = overlap(same, train)
    assert found == {"images": len(same), "classes": 5}
    with pytest.raises(ViewError, match=r"held-out view 'te2' shares data .*tr: \d+ images, 5 classes.*allow_overlap"):
        check_held_out("te2", same, {"tr": train, "other": test}, allow_overlap=False)
    assert check_held_out("te2", same, {"tr": train, "other": test}, allow_overlap=True) == {"tr": found}


# --- what the published loaders do to their inputs: normalisation per benchmark, class rotations ---

def _with_inputs(tmp_path, dataset, normalisation=None, rotations=None):
    """The synthetic dataset with a manifest that records a normalisation and task rotations, as a
    published benchmark's does (divcoeff.readers)."""
    import json
    import shutil

    d = tmp_path / "data" / "synth-inputs"
    shutil.copytree(dataset.path, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["normalisation"] = normalisation
    manifest["task_rotations"] = rotations or {"degrees": [], "scope": "task"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return IndexedDataset.load(d)


def test_views_record_and_apply_each_benchmarks_normalisation(tmp_path, dataset):
    import torch

    norm = {"mean": [0.3], "std": [0.2]}
    ds = _with_inputs(tmp_path, dataset, normalisation=norm)
    view = _view(tmp_path, ds, "n", split="test")
    assert view.normalisation == {"synth": norm} and not view.normalises_by_default
    raw = view.images([0, 1])
    torch.testing.assert_close(view.images([0, 1], normalise=True), (raw - 0.3) / 0.2)
    # a view's own entry replaces the benchmark's (the 2022 CIFAR-FS statistics); null: none
    over = _view(tmp_path, ds, "o", split="test", normalisation={"synth": None})
    torch.testing.assert_close(over.images([0, 1], normalise=True), raw)
    # the train set views a dataset-normalised probe reads hand out normalised images by default
    table, meta = build_view("d", {"benchmarks": ["synth"], "split": "test"}, {"synth": ds}, seed=0, inputs="normalised")
    write_view(tmp_path / "d.tsv", tmp_path / "d.json", table, meta)
    torch.testing.assert_close(View.load(tmp_path / "d.tsv").images([0, 1]), (raw - 0.3) / 0.2)
    with pytest.raises(ViewError, match="3/3 values .* 1 channel"):
        _view(tmp_path, ds, "bad", split="test", normalisation={"synth": {"mean": [0, 0, 0], "std": [1, 1, 1]}})


@pytest.mark.parametrize("scope", ["task", "class"])
def test_episodes_rotate_classes_as_random_class_rotation_does(tmp_path, dataset, scope):
    import torch

    ds = _with_inputs(tmp_path, dataset, rotations={"degrees": [0, 90, 180, 270], "scope": scope})
    view = _view(tmp_path, ds, f"r-{scope}", split="test")
    N = len(view.table)
    eps = sample_episodes(view, 5, 2, 3, 200, seed=1)
    rows = np.concatenate([eps.support, eps.query], axis=2)        # (E, W, K+Q)
    turns = rows // N
    assert rows.max() < 4 * N and view.max_row == 4 * N
    # every image of a class shares one rotation; under "task" (what learn2learn's late-binding lambda
    # does) one rotation serves the whole episode
    assert (turns == turns[:, :, :1]).all()
    per_episode = np.array([len(set(turns[e, :, 0])) for e in range(len(turns))])
    assert (per_episode == 1).all() if scope == "task" else (per_episode > 1).any()
    counts = np.bincount(turns[:, :, 0].ravel(), minlength=4) / turns[:, :, 0].size
    assert np.all(np.abs(counts - 0.25) < 0.06)                    # uniform over 0/90/180/270
    # a rotated row is the image of its row turned counter-clockwise (torchvision's sense)
    e = int(np.flatnonzero(turns[:, 0, 0] == 1)[0])
    r = int(eps.support[e, 0, 0])
    torch.testing.assert_close(view.images([r])[0], torch.rot90(view.images([r % N])[0], 1, dims=(1, 2)))
    torch.testing.assert_close(view.labels([r]), view.labels([r % N]))
    # the file round-trips and refuses rows past the rotated copies
    write_episodes(tmp_path / "e.json", eps)
    assert np.array_equal(load_episodes(tmp_path / "e.json", view).support, eps.support)
    plain = _view(tmp_path, dataset, "plain", split="test")
    with pytest.raises(EpisodeError, match="beyond"):
        load_episodes(tmp_path / "e.json", View(plain.path, view.table, {**plain.meta, "name": view.name,
                                                                          "sha256": view.sha256}))


def test_views_without_rotations_draw_the_same_episodes_as_before(tmp_path, dataset):
    """Rotation draws happen only where there are rotations: other episode files are unchanged."""
    view = _view(tmp_path, dataset, "same", split="test")
    eps = sample_episodes(view, 5, 2, 3, 20, seed=1)
    assert eps.support.max() < len(view.table)
    digest = __import__("hashlib").sha256(np.concatenate([eps.support.ravel(), eps.query.ravel()]).tobytes())
    assert digest.hexdigest()[:16] == EXPECTED_PLAIN_DRAW


EXPECTED_PLAIN_DRAW = "762c684e22b3f6f9"  # sample_episodes before rotations existed (commit 2c65521)
