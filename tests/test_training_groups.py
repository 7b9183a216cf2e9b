"""Replicates trained together (training.replicate_group): which job trains which replicate, and a
replicate trained after others in one process equals the same replicate trained alone, bit for bit."""
import pytest
import torch

from divcoeff.training import TrainSettings
from divcoeff.training.groups import replicate_groups
from divcoeff.training.run import train_checkpoint

TINY = {"widths": [8, 8, 16, 16], "steps": 4, "images_per_step": 50, "lr": 3e-3, "weight_decay": 0.0, "seed": 1,
        "drop_rate": 0.2, "dropblock_size": 2,
        "maml": {"ways": 5, "shots": 2, "queries": 3, "meta_batch": 2, "inner_steps": 1, "inner_lr": 0.2,
                 "first_order": True, "bn_mode": "batch"}}


def sheet(row, n):
    return [{"name": f"{row}-r{k}", "row": row, "replicate": k} for k in range(n)]


def test_groups_are_fixed_runs_of_replicate_indices():
    cks = sheet("pt-a", 5) + sheet("maml-a", 2)
    assert replicate_groups(cks, 2) == {"pt-a-g0": ["pt-a-r0", "pt-a-r1"], "pt-a-g1": ["pt-a-r2", "pt-a-r3"],
                                        "pt-a-g2": ["pt-a-r4"], "maml-a-g0": ["maml-a-r0", "maml-a-r1"]}
    assert replicate_groups(cks, 1)["pt-a-g3"] == ["pt-a-r3"]
    # A sixth replicate joins the last group; the first two groups stay exactly as they were.
    more = replicate_groups(sheet("pt-a", 6), 2)
    assert more["pt-a-g2"] == ["pt-a-r4", "pt-a-r5"] and more["pt-a-g0"] == ["pt-a-r0", "pt-a-r1"]
    with pytest.raises(ValueError, match="replicate_group must be at least 1"):
        replicate_groups(cks, 0)


@pytest.mark.parametrize("family", ["pt", "maml"])
def test_a_replicate_trained_after_others_equals_it_trained_alone(make_view, family):
    view = make_view(split="train")
    s = TrainSettings.from_config(TINY)  # dropout and DropBlock on: they draw from the seeded RNG too
    alone = train_checkpoint(view, family, s, seed=12, name="r1")
    train_checkpoint(view, family, s, seed=11, name="r0")  # the group's first member, in the same process
    after = train_checkpoint(view, family, s, seed=12, name="r1")
    a, b = alone.model.state_dict(), after.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert alone.meta["history"] == after.meta["history"]
