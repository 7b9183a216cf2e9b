"""Domain distances and selection by diversity: the matrix, the predicted coefficient of a mixture,
the exact and greedy search, and the domain tasks' draw."""
import itertools

import numpy as np
import pytest

from divcoeff.task2vec.coefficient import normalized_cosine_distances, upper_pairs
from divcoeff.domains import (DomainMatrixError, domain_matrix, finite_coefficient, mixture_coefficient,
                              read_matrix, sample_domain_tasks, write_matrix)
from divcoeff.selection import SelectionError, select_domains
from tests.conftest import synthetic_view


def synthetic_tasks(counts, seed=0, dim=30):
    """Embeddings of tasks of len(counts) domains: each domain a Gamma profile, each task jittered."""
    rng = np.random.default_rng(seed)
    emb, comp = [], []
    for a, n in enumerate(counts):
        centre = rng.gamma(0.5, 1e-3, dim)
        for _ in range(n):
            emb.append(centre * rng.gamma(4.0, 0.25, dim))
            comp.append(a)
    return np.asarray(emb), np.asarray(comp)


def test_domain_matrix_blocks_are_the_means_of_the_task_distances():
    emb, comp = synthetic_tasks([3, 4, 2])
    d = normalized_cosine_distances(emb)
    D = domain_matrix(d, comp, 3)
    # By hand: domain 0 is tasks 0-2, domain 1 tasks 3-6, domain 2 tasks 7-8.
    assert D[0, 0] == pytest.approx(np.mean([d[0, 1], d[0, 2], d[1, 2]]), abs=0)
    assert D[1, 2] == pytest.approx(d[3:7, 7:9].mean(), abs=0)
    np.testing.assert_array_equal(D, D.T)
    assert np.isnan(domain_matrix(d[:4, :4], np.array([0, 0, 0, 1]), 2)[1, 1])  # one task: no distinct pair


@pytest.mark.parametrize("counts", [[3, 4, 2], [5, 1, 6, 2], [2, 2], [7, 0, 3]])
def test_finite_form_equals_the_mean_pairwise_distance_of_those_tasks(counts):
    emb, comp = synthetic_tasks(counts, seed=len(counts))
    d = normalized_cosine_distances(emb)
    D = domain_matrix(d, comp, len(counts))
    # Exact identity (a regrouping of one sum): only float rounding separates the two.
    assert finite_coefficient(D, counts) == pytest.approx(upper_pairs(d).mean(), rel=1e-12, abs=0)


def test_mixture_coefficient_is_the_expected_distance_of_two_independent_tasks():
    D = np.array([[0.1, 0.5, 0.3], [0.5, 0.2, 0.4], [0.3, 0.4, 0.05]])
    # (1/k^2) sum over ordered pairs of chosen domains, by hand
    assert mixture_coefficient(D, [0, 1]) == pytest.approx((0.1 + 0.2 + 2 * 0.5) / 4, abs=1e-15)
    assert mixture_coefficient(D, [2]) == 0.05
    # With n_a tasks each and n large the finite form tends to the mixture form.
    big = finite_coefficient(D, [10**6, 10**6, 0])
    assert big == pytest.approx(mixture_coefficient(D, [0, 1]), rel=1e-5)


def test_matrix_file_round_trip_and_errors_name_the_file(tmp_path):
    D = np.array([[0.1, 0.5], [0.5, np.nan]])
    write_matrix(tmp_path / "m.tsv", D, ["Latin", "Greek"])
    back, names = read_matrix(tmp_path / "m.tsv")
    assert names == ["Latin", "Greek"] and back[0, 1] == 0.5 and np.isnan(back[1, 1])
    (tmp_path / "bad.tsv").write_text("domain\tLatin\tGreek\nLatin\t0.1\t0.5\nGreek\t0.4\t0.2\n")
    with pytest.raises(DomainMatrixError, match="bad.tsv: not symmetric"):
        read_matrix(tmp_path / "bad.tsv")
    with pytest.raises(DomainMatrixError, match="not found"):
        read_matrix(tmp_path / "none.tsv")


HAND = np.array([  # five domains; {0, 3, 4} is the most diverse triple, {1, 2, x} the least
    [0.10, 0.20, 0.20, 0.90, 0.80],
    [0.20, 0.05, 0.06, 0.30, 0.30],
    [0.20, 0.06, 0.05, 0.30, 0.30],
    [0.90, 0.30, 0.30, 0.10, 0.85],
    [0.80, 0.30, 0.30, 0.85, 0.10],
])
NAMES = ["A", "B", "C", "D", "E"]


def brute(k, sign):
    return max(itertools.combinations(range(5), k), key=lambda c: sign * mixture_coefficient(HAND, c))


@pytest.mark.parametrize("limit", [10**6, 1])  # exact, then greedy (C(5, 3) = 10 > 1)
def test_select_finds_the_known_best_sets(limit):
    mx = select_domains(HAND, NAMES, 3, "max", exact_limit=limit)[0]
    mn = select_domains(HAND, NAMES, 3, "min", exact_limit=limit)[0]
    assert mx.domains == ("A", "D", "E") and mx.search == ("exact" if limit > 1 else "greedy")
    assert mx.predicted == pytest.approx(mixture_coefficient(HAND, [0, 3, 4]), abs=1e-15)
    assert [NAMES.index(n) for n in mx.domains] == list(brute(3, 1))
    assert [NAMES.index(n) for n in mn.domains] == list(brute(3, -1))
    assert mn.domains == ("A", "B", "C")


def test_select_top_pool_and_random():
    top = select_domains(HAND, NAMES, 2, "max", top=3)
    values = [s.predicted for s in top]
    assert values == sorted(values, reverse=True) and top[0].domains == ("A", "D")
    pooled = select_domains(HAND, NAMES, 2, "max", pool=["B", "C", "E"])[0]
    assert pooled.domains == ("B", "E")
    r1 = select_domains(HAND, NAMES, 3, "random", seed=5, draw=0)[0]
    assert r1 == select_domains(HAND, NAMES, 3, "random", seed=5, draw=0)[0]
    draws = {select_domains(HAND, NAMES, 3, "random", seed=5, draw=d)[0].domains for d in range(8)}
    assert len(draws) > 1 and all(len(s) == 3 for s in draws)


def test_select_errors_name_what_is_wrong():
    with pytest.raises(SelectionError, match="train set 'x': domains 6 is more than the 5 eligible"):
        select_domains(HAND, NAMES, 6, "max", where="train set 'x'")
    with pytest.raises(SelectionError, match=r"\['Z'\] are not in the domain matrix"):
        select_domains(HAND, NAMES, 2, "max", pool=["A", "Z"])
    with pytest.raises(SelectionError, match="select must be one of"):
        select_domains(HAND, NAMES, 2, "best")


def test_domain_tasks_are_drawn_per_domain_from_its_own_classes(tmp_path):
    view = synthetic_view(tmp_path, n_domains=3, classes_per_domain=10, images_per_class=10)
    eps = sample_domain_tasks(view, ways=3, shots=2, queries=3, per_domain=4, seed=1)
    assert eps.n_episodes == 12 and list(np.bincount(eps.component)) == [4, 4, 4]
    comp_of_label = dict(zip(view.table["label"], view.table["component"]))
    for e in range(eps.n_episodes):
        comps = {comp_of_label[c] for c in eps.classes[e]}
        assert comps == {eps.meta["components"][eps.component[e]]}
        rows = np.concatenate([eps.support[e].ravel(), eps.query[e].ravel()])
        assert len(set(rows)) == len(rows)
        assert (view.table["label"].to_numpy()[eps.support[e]] == eps.classes[e][:, None]).all()
    again = sample_domain_tasks(view, ways=3, shots=2, queries=3, per_domain=4, seed=1)
    np.testing.assert_array_equal(again.support, eps.support)


def test_select_command_prints_the_best_sets(tmp_path, capsys):
    from divcoeff.cli import main

    write_matrix(tmp_path / "m.tsv", HAND, NAMES)
    assert main(["select", "--matrix", str(tmp_path / "m.tsv"), "--domains", "3", "--select", "max",
                 "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rank\tpredicted_coefficient\tdomains"
    assert out[1] == f"1\t{mixture_coefficient(HAND, [0, 3, 4]):.6f}\tA,D,E" and len(out) == 3
    assert main(["select", "--matrix", str(tmp_path / "m.tsv"), "--domains", "2", "--select", "min",
                 "--pool", "A,D,E"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("\tA,E")
    assert main(["select", "--matrix", str(tmp_path / "m.tsv"), "--domains", "9"]) == 1
    assert "domains 9 is more than the 5 eligible" in capsys.readouterr().err


def test_a_view_with_select_takes_the_chosen_domains_and_records_them(tmp_path):
    from divcoeff.data.indexed import IndexedDataset
    from divcoeff.data.views import ViewError, build_view

    synthetic_view(tmp_path, n_domains=4, classes_per_domain=10, images_per_class=10)
    ds = {"synth": IndexedDataset.load(tmp_path / "data" / "synth")}
    names = ["dom0", "dom1", "dom2", "dom3"]
    D = np.array([[0.1, 0.2, 0.6, 0.3], [0.2, 0.1, 0.5, 0.2], [0.6, 0.5, 0.1, 0.7], [0.3, 0.2, 0.7, 0.1]])
    spec = {"benchmarks": ["synth"], "domains": 2, "classes": 8, "images_per_class": 10, "select": "max"}
    table, meta = build_view("hi", spec, ds, seed=0, domain_matrix=(D, names))
    assert meta["components"] == ["synth/dom2", "synth/dom3"]
    assert sorted(table["component"].unique()) == ["synth/dom2", "synth/dom3"] and meta["n_classes"] == 8
    sel = meta["selection"]
    assert sel["domains"] == ["dom2", "dom3"] and sel["search"] == "exact"
    assert sel["predicted_coefficient"] == pytest.approx((0.1 + 0.1 + 2 * 0.7) / 4, abs=1e-15)
    _, low = build_view("lo", {**spec, "select": "min"}, ds, seed=0, domain_matrix=(D, names))
    assert low["components"] == ["synth/dom0", "synth/dom1"]
    with pytest.raises(ViewError, match="train set 'hi': select: max needs the domain matrix of 'synth'"):
        build_view("hi", spec, ds, seed=0)
    with pytest.raises(ViewError, match=r"train set 'hi': select: max needs domains: k \(a number\)"):
        build_view("hi", {**spec, "domains": "all"}, ds, seed=0, domain_matrix=(D, names))
    # A domain that cannot give its share of the budget (5 classes of the train split each; 8 / 1 > 5) is not eligible.
    with pytest.raises(ViewError, match="domains 1 is more than the 0 eligible"):
        build_view("hi", {**spec, "domains": 1}, ds, seed=0, domain_matrix=(D, names))


def test_select_specs_are_checked_before_any_job_naming_set_and_field():
    from divcoeff.selection import check_select_specs

    ok = {"a": {"benchmarks": ["glyphs"], "domains": 4, "select": "max", "mixture_over": "domain"},
          "b": {"benchmarks": ["glyphs"], "domains": "all", "select": None}}
    check_select_specs(ok, "config.yaml")
    with pytest.raises(SelectionError, match=r"config.yaml: train_sets.c.select: min needs domains: k .* got domains: 'all'"):
        check_select_specs({"c": {"benchmarks": ["glyphs"], "domains": "all", "select": "min"}}, "config.yaml")
    with pytest.raises(SelectionError, match=r"train_sets.d.select: max chooses domains of one benchmark"):
        check_select_specs({"d": {"benchmarks": ["a", "b"], "domains": 2, "select": "max"}}, "config.yaml")


def test_domain_settings_match_their_schema_section_and_take_its_defaults():
    import dataclasses

    from divcoeff import settings as st
    from divcoeff.settings import DomainSettings

    assert {f.name for f in dataclasses.fields(DomainSettings)} == set(st.subschema("domains")["properties"])
    assert DomainSettings.from_config({"tasks": 3}) == DomainSettings(tasks=3, seed=33, exact_limit=20000)
