"""The one stopping rule (training.convergence): where it stops on known loss curves, that it flags a
cap, and that both training loops obey it and record what stopped them."""
import math

import pytest
import torch

from divcoeff.checkpoints import final_training_metrics, load_checkpoint
from divcoeff.training import TrainSettings
from divcoeff.training.convergence import CAP, CRITERION, StopRule
from divcoeff.training.run import train_checkpoint, write_trained_checkpoint


def rule(**kw):
    args = {"cap": 1000, "window": 10, "check_every": 5, "min_improvement": 0.01, "min_steps": 20}
    return StopRule(**{**args, **kw})


def feed(r, curve):
    for n, loss in enumerate(curve, 1):
        reason = r.update(loss)
        if reason:
            return n, reason
    return None


def test_stops_on_an_exponential_plateau_where_the_windows_stop_improving():
    # loss(t) = 1 + 2 exp(-t / 20): the first window's mean is known, and the drop between two
    # consecutive 10-step windows ending at n is 2 (1 - e^-0.5) * mean_{i<10} e^-(n-10-i)/20 ...
    # computed exactly below; the rule must stop at the first check step where it falls below 1%.
    curve = [1 + 2 * math.exp(-t / 20) for t in range(1, 1001)]
    scale = sum(curve[:10]) / 10
    expected = next(n for n in range(20, 1001, 5)
                    if sum(curve[n - 20:n - 10]) / 10 - sum(curve[n - 10:n]) / 10 < 0.01 * scale)
    assert feed(rule(), curve) == (expected, CRITERION)
    assert 80 <= expected <= 120  # the exponential's own time scale, not the minimum or a check artefact


def test_a_curve_still_falling_at_the_cap_is_flagged():
    curve = [5.0 - 0.004 * t for t in range(1000)]  # falls 0.04 a window, 0.8% of the scale 4.98: still learning?
    assert feed(rule(min_improvement=0.005), curve) == (1000, CAP)  # 0.8% > 0.5%: learning, runs to the cap
    assert feed(rule(min_improvement=0.01), curve) == (20, CRITERION)  # 0.8% < 1%: stops at the first check


def test_no_stop_before_the_minimum_nor_between_checks():
    flat = [1.0] * 200
    assert feed(rule(min_steps=57), flat) == (60, CRITERION)  # the first check step past the minimum
    assert feed(rule(min_steps=1, window=10), flat) == (20, CRITERION)  # two whole windows needed
    assert feed(rule(enabled=False, cap=30), flat) == (30, CAP)
    assert rule(min_steps=57).first_stop(flat) == (60, CRITERION)
    assert rule(cap=15).first_stop(flat) == (15, CAP)


def test_a_rising_loss_stops_by_the_criterion():
    curve = [1.0 + 0.01 * t for t in range(100)]
    assert feed(rule(), curve) == (20, CRITERION)


TINY = {"widths": [8, 8, 16, 16], "images_per_step": 50, "lr": 3e-3, "weight_decay": 0.0, "seed": 1,
        "maml": {"ways": 5, "shots": 2, "queries": 3, "meta_batch": 2, "inner_steps": 1, "inner_lr": 0.2,
                 "first_order": True, "bn_mode": "batch"}}


@pytest.mark.parametrize("family", ["pt", "maml"])
def test_training_stops_by_the_rule_and_records_it(make_view, tmp_path, family):
    view = make_view(split="train")
    # A rule that always holds: stops at the first check past the minimum.
    s = TrainSettings.from_config({**TINY, "steps": 50, "convergence": {"window": 2, "check_every": 3,
                                                                       "min_improvement": 1e6, "min_steps": 7}})
    trained = train_checkpoint(view, family, s, seed=3, name="a")
    m = trained.meta
    assert (m["steps"], m["train_steps"], m["stopped_by"], len(m["history"]["loss"])) == (9, 9, CRITERION, 9)
    assert m["images_seen"] == 9 * 50 and m["training"]["steps"] == 50
    # ... and one that never holds runs to the cap, which it says.
    # ... and one that cannot hold before the cap (two windows of 4 need 8 steps) runs to it, and says so.
    s = TrainSettings.from_config({**TINY, "steps": 6, "convergence": {"window": 4, "check_every": 1,
                                                                      "min_improvement": 1e6, "min_steps": 4}})
    capped = train_checkpoint(view, family, s, seed=3, name="b")
    assert (capped.meta["train_steps"], capped.meta["stopped_by"], len(capped.meta["history"]["loss"])) == (6, CAP, 6)
    path = tmp_path / f"{family}.pt"
    write_trained_checkpoint(path, trained)
    got = final_training_metrics(load_checkpoint(path, family=family).meta)
    assert (got["steps"], got["stopped_by"]) == (9, CRITERION)
    assert got["final_loss"] == pytest.approx(m["history"]["loss"][-1])  # last 10% of 9 steps: one step


def test_early_stopped_training_equals_the_same_prefix_of_a_longer_run(make_view):
    """Stopping early changes nothing before the stop: PT's weights after 9 steps stopped by the rule
    equal those of a run with the rule off and a cap of 9 (same seed, same batches). (MAML draws its
    tasks for the cap up front, and the sampler's draws depend on how many: there the cap matters.)"""
    view = make_view(split="train")
    for family in ("pt",):
        a = train_checkpoint(view, family, TrainSettings.from_config(
            {**TINY, "steps": 50, "convergence": {"window": 2, "check_every": 3, "min_improvement": 1e6,
                                                  "min_steps": 7}}), seed=4).model.state_dict()
        b = train_checkpoint(view, family, TrainSettings.from_config(
            {**TINY, "steps": 9, "convergence": {"enabled": False}}), seed=4).model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), family
