"""divcoeff.report.paired: the least vs the most diverse level on the shared episodes."""
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from divcoeff.report.paired import (PAIRED_COLUMNS, load_episode_arrays, npz_paths_by_checkpoint, paired_bootstrap,
                                    paired_comparison_table, paired_t)
from divcoeff.report.summary import ResultFileError, build_summary, result_paths
from report_data import DESIGN_CONTROL, DESIGN_EPISODES, DESIGN_SEEDS, design_npz_paths, write_design_results

# Two checkpoints per level, five episodes (accuracies as fractions of 75 queries would do; any numbers do).
LOW = np.array([[0.50, 0.60, 0.40, 0.70, 0.55],
                [0.52, 0.58, 0.44, 0.66, 0.50]])
HIGH = np.array([[0.60, 0.62, 0.50, 0.80, 0.58],
                 [0.58, 0.70, 0.46, 0.76, 0.60]])


def test_paired_t_equals_ttest_rel_and_a_hand_computed_interval():
    res = paired_t(LOW, HIGH)
    # per-episode level means and differences, by hand
    a = np.array([0.51, 0.59, 0.42, 0.68, 0.525])
    b = np.array([0.59, 0.66, 0.48, 0.78, 0.59])
    d = b - a                                       # 0.08, 0.07, 0.06, 0.10, 0.065
    assert d == pytest.approx([0.08, 0.07, 0.06, 0.10, 0.065])
    mean = 0.375 / 5                                # 0.075
    sd = math.sqrt(((d - mean) ** 2).sum() / 4)     # deviations 5, -5, -15, 25, -10 (1e-3): sqrt(0.001 / 4)
    assert sd == pytest.approx(0.0158114, abs=1e-7)
    half = 2.7764451 * sd / math.sqrt(5)            # t(0.975, 4) = 2.7764451
    assert (res.diff, res.lo, res.hi) == pytest.approx((mean, mean - half, mean + half), rel=1e-7)
    assert (res.mean_low, res.mean_high) == pytest.approx((a.mean(), b.mean()))
    assert (res.n_low, res.n_high, res.n_episodes) == (2, 2, 5)
    ref = sps.ttest_rel(HIGH.mean(axis=0), LOW.mean(axis=0))   # the same numbers: equal to the last bit
    assert res.p_value == ref.pvalue
    # t = 0.075 / (0.0158114 / sqrt 5) = 10.6066, 4 degrees of freedom
    assert res.p_value == pytest.approx(2 * sps.t.sf(10.6066, 4), rel=1e-4)
    ci = ref.confidence_interval(0.95)
    assert (res.lo, res.hi) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert "ttest_rel" in res.ci_method and "ignores seed-to-seed variance" in res.ci_method


def test_paired_bootstrap_carries_the_seed_variance():
    rng = np.random.default_rng(0)
    episode = rng.normal(0, 0.1, 300)
    # seeds differ a lot (+-0.05) within each level; the level gap is 0.03
    low = 0.5 + episode + np.array([[-0.05], [0.0], [0.05]]) + rng.normal(0, 0.02, (3, 300))
    high = 0.53 + episode + np.array([[-0.05], [0.0], [0.05]]) + rng.normal(0, 0.02, (3, 300))
    t = paired_t(low, high)
    boot = paired_bootstrap(low, high, n_boot=2000, rng=np.random.default_rng(1))
    assert boot.diff == t.diff and boot.mean_low == t.mean_low and boot.n_episodes == 300
    assert boot.lo < boot.diff < boot.hi
    # The t-interval over episodes sees only the per-episode noise: sd of a difference of two means
    # of 3 seeds 0.02 * sqrt(2/3) = 0.016, / sqrt(300): width ~ 0.004. Resampling the seeds adds
    # their spread: a resampled mean of 3 offsets (sd 0.041) has sd 0.024 per level, 0.033 for the
    # difference: width ~ 0.13, some 35x wider.
    assert (boot.hi - boot.lo) > 5 * (t.hi - t.lo)
    again = paired_bootstrap(low, high, n_boot=2000, rng=np.random.default_rng(1))
    assert (again.lo, again.hi, again.p_value) == (boot.lo, boot.hi, boot.p_value)
    assert "within each level" in boot.ci_method and "episodes with replacement" in boot.ci_method
    # bootstrap p: (k + 1) / (B + 1), twice the smaller tail
    assert 2 / 2001 <= boot.p_value <= 1.0


def test_one_checkpoint_per_level_bootstrap_is_the_episode_bootstrap():
    rng = np.random.default_rng(2)
    low = rng.normal(0.5, 0.1, (1, 400))
    high = low + 0.02 + rng.normal(0, 0.05, (1, 400))
    t = paired_t(low, high)
    boot = paired_bootstrap(low, high, n_boot=4000, rng=np.random.default_rng(3))
    # no seed variance to carry: close to the t-interval (within the bootstrap's own noise)
    assert (boot.hi - boot.lo) == pytest.approx(t.hi - t.lo, rel=0.1)
    assert "single checkpoint" in boot.note
    # a difference of zero gives a large p, an obvious one the smallest the resamples allow
    assert paired_bootstrap(low, low + rng.normal(0, 0.05, (1, 400)), n_boot=999,
                            rng=np.random.default_rng(4)).p_value > 0.05
    # (t ~ 8 here: no resample crosses 0, so p = 2 (0 + 1) / (4000 + 1))
    assert boot.p_value == pytest.approx(2 / 4001)


def test_mismatched_episodes_are_refused():
    with pytest.raises(ValueError, match="different numbers of episodes"):
        paired_t(LOW, HIGH[:, :4])


@pytest.fixture
def design(tmp_path):
    rows = write_design_results(tmp_path)
    evals, divs = result_paths(rows)
    return rows, build_summary(rows, evals, divs)


def test_table_compares_level_1_with_level_4_from_the_npz_files(design):
    rows, summary = design
    arrays = load_episode_arrays(design_npz_paths(rows))
    table = paired_comparison_table(summary, arrays, n_boot=300, seed=4)
    assert list(table.columns) == PAIRED_COLUMNS
    assert len(table) == 2 * 2 * 2       # family x metric x (t, bootstrap)
    assert set(table["level_low"]) == {"1"} and set(table["level_high"]) == {"4"}
    pt_acc = table[(table["family"] == "pt") & (table["metric"] == "accuracy")]
    assert pt_acc["n_checkpoints_low"].tolist() == [2 * DESIGN_SEEDS["pt"]] * 2      # two draws x 3 seeds
    assert pt_acc["n_episodes"].tolist() == [DESIGN_EPISODES] * 2
    # by hand from the files: the logreg accuracies of the level's checkpoints, averaged per episode
    low = np.mean([np.load(Path(r["eval"]).with_suffix(".npz"))["logreg_accuracy"] for r in rows
                   if r["family"] == "pt" and r["level"] == "1"], axis=0)
    high = np.mean([np.load(Path(r["eval"]).with_suffix(".npz"))["logreg_accuracy"] for r in rows
                    if r["family"] == "pt" and r["level"] == "4"], axis=0)
    t_row, boot_row = pt_acc.iloc[0], pt_acc.iloc[1]
    assert t_row["diff"] == pytest.approx((high - low).mean(), rel=1e-12)
    assert t_row["p_value"] == sps.ttest_rel(high, low).pvalue
    assert boot_row["diff"] == t_row["diff"] and boot_row["p_value"] >= 1 / 301
    assert t_row["ci_method"].startswith("paired t") and boot_row["ci_method"].startswith("hierarchical")
    maml = table[table["family"] == "maml"]
    assert (maml["n_checkpoints_high"] == 2 * DESIGN_SEEDS["maml"]).all()
    assert (table.loc[table["metric"] == "loss_calibrated", "diff"] < 0).all()  # more diverse: lower loss


def test_levels_with_names_order_by_coefficient_and_one_level_gives_nan(design):
    rows, summary = design
    arrays = load_episode_arrays(design_npz_paths(rows))
    named = summary.assign(level=summary["level"].map({"1": "narrow", "2": "mid", "4": "broad", "": ""}))
    table = paired_comparison_table(named, arrays, n_boot=50)
    assert set(table["level_low"]) == {"narrow"} and set(table["level_high"]) == {"broad"}
    one = summary[summary["level"].isin(["2", ""])]
    table = paired_comparison_table(one, arrays, n_boot=50)
    assert table["diff"].isna().all() and table["note"].str.contains("1 diversity level").all()


def test_a_stale_or_missing_npz_is_named(design, tmp_path):
    rows, summary = design
    paths = design_npz_paths(rows)
    arrays = load_episode_arrays(paths)
    name = "pt-glyphs-L4-d1-s2"
    arrays[name] = {**arrays[name], "logreg_accuracy": arrays[name]["logreg_accuracy"] * 0.9}
    with pytest.raises(ResultFileError, match=rf"{name}\.npz: logreg_accuracy: mean .* not from one evaluation"):
        paired_comparison_table(summary, arrays, n_boot=10)
    del arrays[name]
    with pytest.raises(ResultFileError, match=rf"no per-episode values for checkpoint '{name}'"):
        paired_comparison_table(summary, arrays, n_boot=10)
    # the control's file is not needed
    arrays = load_episode_arrays({k: v for k, v in paths.items() if k != DESIGN_CONTROL})
    assert len(paired_comparison_table(summary, arrays, n_boot=10)) == 8
    # checkpoints evaluated on other episodes are refused (the summary says so)
    other = summary.copy()
    other.loc[other["checkpoint"] == name, "eval_seed"] = 99
    with pytest.raises(ResultFileError, match="'eval_seed' differs .* not evaluated on the same episodes"):
        paired_comparison_table(other, load_episode_arrays(paths), n_boot=10)


def test_npz_paths_by_checkpoint():
    got = npz_paths_by_checkpoint(["results/eval/pt-a.npz", "results/eval/maml.b.npz"])
    assert got == {"pt-a": Path("results/eval/pt-a.npz"), "maml.b": Path("results/eval/maml.b.npz")}
    with pytest.raises(ValueError, match="expected an evaluation's .npz"):
        npz_paths_by_checkpoint(["results/eval/pt-a.json"])
    with pytest.raises(ValueError, match="two per-episode files for checkpoint 'pt-a'"):
        npz_paths_by_checkpoint(["a/pt-a.npz", "b/pt-a.npz"])


def test_paired_bootstrap_resamples_training_sets_not_only_checkpoints():
    """Seeds of one training set share its data, so they are not independent draws of the level.
    Simulated designs with no level effect, 4 training sets per level whose means differ (sd 0.03)
    and 3 seeds each that hardly do (sd 0.003): resampling training sets, then seeds, covers the
    true difference 0 at about the nominal rate; resampling the 12 checkpoints as if independent
    takes the 3 near-copies of a set for 3 draws and covers it far less often."""
    sim = np.random.default_rng(11)
    sets, seeds, episodes, trials = 4, 3, 40, 150
    groups = [f"set{s}" for s in range(sets) for _ in range(seeds)]
    covered = {"sets": 0, "checkpoints": 0}
    for trial in range(trials):
        shared = sim.normal(0, 0.05, episodes)       # episode difficulty, shared by every checkpoint

        def level():
            set_effect = np.repeat(sim.normal(0, 0.03, sets), seeds)[:, None]
            seed_effect = sim.normal(0, 0.003, (sets * seeds, 1))
            return 0.7 + shared + set_effect + seed_effect + sim.normal(0, 0.01, (sets * seeds, episodes))

        low, high = level(), level()
        by_sets = paired_bootstrap(low, high, groups_low=groups, groups_high=groups, n_boot=400,
                                   rng=np.random.default_rng(trial))
        flat = paired_bootstrap(low, high, n_boot=400, rng=np.random.default_rng(trial))
        covered["sets"] += by_sets.lo <= 0 <= by_sets.hi
        covered["checkpoints"] += flat.lo <= 0 <= flat.hi
    # Nominal 95%; a percentile bootstrap over 4 sets runs short of it (0.83-0.89 over simulation
    # seeds 11-14; 0.89 here). Ignoring the sets leaves an interval ~sqrt(3) too narrow (0.53-0.67;
    # 0.63 here).
    assert covered["sets"] / trials >= 0.80, covered
    assert covered["checkpoints"] / trials <= 0.72, covered


def test_paired_bootstrap_orders_rows_by_training_set_whatever_their_order():
    rng = np.random.default_rng(5)
    low, high = rng.normal(0.6, 0.05, (6, 30)), rng.normal(0.62, 0.05, (6, 30))
    groups = ["a", "b", "a", "c", "b", "c"]
    order = [0, 2, 1, 4, 3, 5]                       # the same rows, listed set after set
    shuffled = paired_bootstrap(low, high, groups_low=groups, groups_high=groups, n_boot=500,
                                rng=np.random.default_rng(6))
    listed = paired_bootstrap(low[order], high[order], groups_low=sorted(groups), groups_high=sorted(groups),
                              n_boot=500, rng=np.random.default_rng(6))
    assert (shuffled.lo, shuffled.hi, shuffled.p_value) == (listed.lo, listed.hi, listed.p_value)
    with pytest.raises(ValueError, match="5 group labels for 6 checkpoints"):
        paired_bootstrap(low, high, groups_low=groups[:5], n_boot=10)
    one_set = paired_bootstrap(low, high, groups_low=["a"] * 6, groups_high=groups, n_boot=10)
    assert "single training set" in one_set.note
