"""Batched MAML evaluation equals a plain per-episode loop (deepcopy, autograd, SGD)."""
import copy

import pytest
import torch
import torch.nn.functional as F

from divcoeff.maml.evaluate import maml_logits
from divcoeff.settings import MamlEvalSettings
from divcoeff.models.resnet12 import ResNet12, bn_mode


def loop_reference(model, images, support_pos, target_pos, steps, lr, bn):
    """One episode at a time: copy the network, SGD on the support set, predict the targets."""
    out = []
    E, W, K = support_pos.shape
    for e in range(E):
        net = copy.deepcopy(model)
        x, y = images[support_pos[e].reshape(-1)], torch.arange(W).repeat_interleave(K)
        with bn_mode(net, bn):
            for _ in range(steps):
                grads = torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()))
                with torch.no_grad():
                    for p, g in zip(net.parameters(), grads):
                        p -= lr * g
            with torch.no_grad():
                out.append(net(images[target_pos[e]]))
    return torch.stack(out)


@pytest.mark.parametrize("bn", ["batch", "running"])
@pytest.mark.parametrize("vectorize", [True, None])  # vmapped over episodes; the CPU default
def test_batched_maml_equals_per_episode_loop(bn, vectorize):
    torch.manual_seed(0)
    model = ResNet12([4, 6, 8, 8], in_channels=1, num_classes=3).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(60, 1, 16, 16, generator=g)
    E, W, K, Q = 5, 3, 2, 2
    perm = torch.randperm(60, generator=g)[: E * W * (K + Q)].view(E, W, K + Q)
    support_pos, target_pos = perm[:, :, :K], perm[:, :, K:].reshape(E, -1)
    # A small inner lr keeps the adaptation well-conditioned (a random network at lr 0.1 amplifies
    # rounding differences chaotically), so float tolerance is meaningful.
    settings = MamlEvalSettings.from_config({"inner_steps": 3, "inner_lr": 0.02, "bn_mode": bn})
    ref = loop_reference(copy.deepcopy(model), images, support_pos, target_pos, 3, 0.02, bn)
    got = maml_logits(copy.deepcopy(model), images, support_pos, target_pos, settings, chunk_size=2,
                      vectorize=vectorize, progress=False)
    assert got.shape == (E, W * Q, W)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    # Adaptation changed something: the result differs from the unadapted network's.
    with torch.no_grad(), bn_mode(model, bn):
        before = torch.stack([model(images[target_pos[e]]) for e in range(E)])
    assert (got - before).abs().max() > 1e-3


def test_maml_head_must_match_ways():
    model = ResNet12([4, 4, 4, 4], in_channels=1, num_classes=5)
    pos = torch.zeros(1, 3, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="5 outputs but the episodes are 3-way"):
        maml_logits(model, torch.rand(2, 1, 8, 8), pos, pos.view(1, 3),
                    MamlEvalSettings.from_config({"inner_steps": 1}), progress=False)
