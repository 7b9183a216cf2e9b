"""Task2Vec on real glyphs (DejaVu only, so it runs on any machine): tasks from one script are
nearer to each other than tasks from two scripts, the property the diversity coefficient of a
multi-script training set rests on."""
import numpy as np
import pytest

from divcoeff.data.episodes import sample_episodes
from divcoeff.data.indexed import IndexedDataset
from divcoeff.data.views import View, build_view, write_view
from divcoeff.task2vec.coefficient import diversity_of_episodes, normalized_cosine_distances
from divcoeff.glyphs.build import render_benchmark
from divcoeff.task2vec.probes import torchvision_probe
from task2vec_settings import t2v

SPEC = {"source": "glyphs", "image_size": 28, "font_dirs": ["/usr/share/fonts/truetype/dejavu"],
        "images_per_class": 10, "heldout_class_fraction": 0.3, "heldout_family_fraction": 0.34,
        "max_classes_per_script": 30, "jitter": {"rotate_deg": 8.0, "translate": 0.06, "scale": 0.08}, "seed": 11}


@pytest.fixture(scope="module")
def glyph_view(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("glyph-diversity")
    ds = IndexedDataset.load(render_benchmark("glyphs", SPEC, tmp / "glyphs"))
    table, meta = build_view("all-scripts", {"benchmarks": ["glyphs"], "domains": "all", "images_per_class": 10},
                             {"glyphs": ds}, seed=0)
    write_view(tmp / "v.tsv", tmp / "v.json", table, meta)
    return View.load(tmp / "v.tsv")


def test_glyph_tasks_of_one_script_are_nearer_than_tasks_of_two(glyph_view):
    assert len(glyph_view.meta["components"]) >= 5
    T = 16
    eps = sample_episodes(glyph_view, ways=5, shots=5, queries=5, n=T, seed=1)
    probe = torchvision_probe("resnet18", "random", 32, seed=0)
    settings = t2v("exact", exact={"head_epochs": 0, "label_draws": 0})  # the embedded default
    _, emb = diversity_of_episodes(glyph_view, eps, probe, *settings, seed=3, tasks=T, bootstrap=10, progress=False)
    d = normalized_cosine_distances(emb)
    i, j = np.triu_indices(T, 1)
    same = eps.component[i] == eps.component[j]
    assert same.sum() >= 5
    within, across = d[i, j][same].mean(), d[i, j][~same].mean()
    assert within < 0.9 * across, (within, across)
