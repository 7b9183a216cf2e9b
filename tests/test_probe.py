"""The probe the workflow pretrains itself (rule train_probe): seeded, learns, and loads back as a probe."""
import pytest
import torch

from divcoeff.checkpoints import CheckpointError
from divcoeff.task2vec.probes import build_probe
from divcoeff.settings import ProbeSettings
from divcoeff.training.probe import probe_targets, train_probe, write_probe


def settings(**pool):
    return ProbeSettings.from_config({"kind": "torchvision", "arch": "resnet18", "weights": "pool", "image_size": 16,
                                      "pool": {"steps": 6, "batch_size": 16, **pool}})


def test_same_seed_same_probe_and_it_loads_back(make_view, tmp_path):
    view = make_view(split="train")
    a = train_probe(view, settings(), seed=3)
    b = train_probe(view, settings(), seed=3)
    c = train_probe(view, settings(), seed=4)
    assert a["state_dict"].keys() == b["state_dict"].keys() and "fc.weight" not in a["state_dict"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert not all(torch.equal(a["state_dict"][k], c["state_dict"][k]) for k in a["state_dict"]
                   if a["state_dict"][k].is_floating_point())
    history = a["meta"]["history"]["loss"]
    assert len(history) == 6 and history[-1] < history[0]  # it learns (6 steps on 15 easy classes)
    path = tmp_path / "probe.pt"
    write_probe(path, a)
    probe = build_probe(settings(), seed=0, checkpoint_path=str(path))
    assert probe.description["weights"] == "pool" and probe.feature_dim == 512 and probe.image_size == 16
    with torch.no_grad():
        assert probe.body(torch.zeros(2, 3, 16, 16)).shape == (2, 512)


def test_domain_labels_are_the_scripts(make_view):
    view = make_view(split="train")   # 3 synthetic domains
    y, n = probe_targets(view, "domains")
    assert n == 3 and y.shape == (len(view.table), 1) and set(y[:, 0].tolist()) == {0, 1, 2}
    y, n = probe_targets(view, "both")
    assert n == view.n_classes + 3 and y.shape == (len(view.table), 2)
    head = train_probe(view, settings(labels="domains"), seed=3)
    assert head["meta"]["settings"]["pool"]["labels"] == "domains"


def test_a_probe_with_non_finite_weights_is_not_written(make_view, tmp_path):
    payload = train_probe(make_view(split="train"), settings(), seed=3)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key].view(-1)[0] = float("nan")
    path = tmp_path / "probe.pt"
    with pytest.raises(CheckpointError, match=rf"write_probe {path}: refused: key {key!r} holds non-finite "
                                              r"values \(1 NaN of \d+\)"):
        write_probe(path, payload)
    assert not path.exists()
