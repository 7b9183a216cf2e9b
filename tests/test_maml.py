"""divcoeff.maml.inner: the functional inner loop against a computation by hand, vmap vs loop, BN modes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from divcoeff.maml import adapt, adapt_and_predict, meta_forward, predict, split_state
from divcoeff.models import ResNet12

ALPHA = 0.3


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _hand_maml(theta, xs, ys, xq, yq, alpha, second_order):
    """One inner SGD step of softmax regression and the meta-gradient, in numpy by hand.

    theta = [W | b] (C x D+1); inputs are augmented with a 1. The support gradient is
    G^T x~ with G = (softmax - onehot)/n; the Hessian of the mean cross-entropy is
    (1/n) sum_i kron(diag(p_i) - p_i p_i^T, x~_i x~_i^T) (row-major vec of theta)."""
    C = theta.shape[0]
    xs1 = np.hstack([xs, np.ones((len(xs), 1))])
    xq1 = np.hstack([xq, np.ones((len(xq), 1))])
    ps = _softmax(xs1 @ theta.T)
    g_s = (ps - np.eye(C)[ys]).T @ xs1 / len(xs)
    adapted = theta - alpha * g_s
    pq = _softmax(xq1 @ adapted.T)
    q_logits = xq1 @ adapted.T
    g_q = (pq - np.eye(C)[yq]).T @ xq1 / len(xq)  # gradient of the query loss at the adapted theta
    if not second_order:
        return q_logits, g_q
    H = sum(np.kron(np.diag(p) - np.outer(p, p), np.outer(x, x)) for p, x in zip(ps, xs1)) / len(xs)
    meta = (np.eye(H.shape[0]) - alpha * H) @ g_q.ravel()
    return q_logits, meta.reshape(theta.shape)


@pytest.mark.parametrize("second_order", [False, True])
@pytest.mark.parametrize("vectorize", [False, True])
def test_one_inner_step_matches_hand_computation(second_order, vectorize):
    g = torch.Generator().manual_seed(0)
    D, C, n, m = 4, 3, 6, 5
    model = nn.Linear(D, C).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(C, D, generator=g, dtype=torch.float64))
        model.bias.copy_(torch.randn(C, generator=g, dtype=torch.float64))
    xs = torch.randn(1, n, D, generator=g, dtype=torch.float64)
    ys = torch.tensor([[0, 1, 2, 0, 1, 2]])
    xq = torch.randn(1, m, D, generator=g, dtype=torch.float64)
    yq = torch.tensor([[2, 1, 0, 0, 2]])
    params, buffers = split_state(model)
    logits = meta_forward(model, params, buffers, xs, ys, xq, steps=1, inner_lr=ALPHA,
                          first_order=not second_order, bn_mode=None, vectorize=vectorize)
    F.cross_entropy(logits[0], yq[0]).backward()

    theta = torch.cat([model.weight, model.bias[:, None]], 1).detach().numpy()
    want_logits, want_grad = _hand_maml(theta, xs[0].numpy(), ys[0].numpy(), xq[0].numpy(), yq[0].numpy(), ALPHA,
                                        second_order)
    np.testing.assert_allclose(logits[0].detach().numpy(), want_logits, rtol=1e-10, atol=1e-12)
    got_grad = torch.cat([model.weight.grad, model.bias.grad[:, None]], 1).numpy()
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=1e-12)


def test_first_and_second_order_differ():
    """The Hessian term is not negligible here, so the test above really tells the two apart."""
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(3, 5, generator=g, dtype=torch.float64).numpy()
    xs, xq = torch.randn(6, 4, generator=g).double().numpy(), torch.randn(5, 4, generator=g).double().numpy()
    ys, yq = np.array([0, 1, 2, 0, 1, 2]), np.array([2, 1, 0, 0, 2])
    _, fo = _hand_maml(theta, xs, ys, xq, yq, ALPHA, False)
    _, so = _hand_maml(theta, xs, ys, xq, yq, ALPHA, True)
    assert np.abs(fo - so).max() > 1e-3


def _tiny_resnet(seed=0, num_classes=5):
    torch.manual_seed(seed)
    return ResNet12(widths=(4, 4, 6, 6), in_channels=1, num_classes=num_classes)


def _tasks(T=3, ways=5, shots=2, queries=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(T, ways * shots, 1, size, size, generator=g)
    qx = torch.randn(T, ways * queries, 1, size, size, generator=g)
    sy = torch.arange(ways).repeat_interleave(shots).expand(T, -1)
    return sx, sy, qx


@pytest.mark.parametrize("bn", ["batch", "running"])
@pytest.mark.parametrize("first_order", [True, False])
def test_vmap_and_loop_compute_the_same(bn, first_order):
    model = _tiny_resnet()
    sx, sy, qx = _tasks()
    grads = []
    outs = []
    for vectorize in (True, False):
        model.zero_grad()
        p, b = split_state(model)
        out = meta_forward(model, p, b, sx, sy, qx, steps=2, inner_lr=0.1, first_order=first_order, bn_mode=bn,
                           vectorize=vectorize)
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({k: v.grad.clone() for k, v in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-3, atol=1e-5, msg=k)


def test_batch_mode_leaves_running_stats_alone_and_uses_batch_statistics():
    model = _tiny_resnet().train()
    sx, sy, qx = _tasks(T=2)
    before = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad():
        logits = adapt_and_predict(model, sx, sy, qx, steps=0, inner_lr=0.1, bn_mode="batch")
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k
    # No adaptation + batch statistics = a train-mode forward of each query set on its own.
    for t in range(2):
        ref = _tiny_resnet().train()
        torch.testing.assert_close(logits[t], ref(qx[t]), rtol=1e-5, atol=1e-6)


def test_adapt_then_predict_equals_meta_forward_and_chunks_agree():
    model = _tiny_resnet().eval()
    sx, sy, qx = _tasks(T=4)
    with torch.no_grad():
        p, b = split_state(model)
        adapted = adapt(model, p, b, sx, sy, steps=3, inner_lr=0.2)
        assert all(v.shape[0] == 4 for v in adapted.values())
        two_step = predict(model, adapted, b, qx)
        whole = adapt_and_predict(model, sx, sy, qx, steps=3, inner_lr=0.2)
        chunked = adapt_and_predict(model, sx, sy, qx, steps=3, inner_lr=0.2, chunk_size=3)
    assert whole.shape == (4, 15, 5)
    torch.testing.assert_close(two_step, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


def test_adaptation_lowers_the_support_loss():
    model = _tiny_resnet().eval()
    sx, sy, _ = _tasks(T=2)
    with torch.no_grad():
        p, b = split_state(model)
        losses = []
        for steps in (0, 5):
            logits = adapt_and_predict(model, sx, sy, sx, steps=steps, inner_lr=0.1)
            losses.append(F.cross_entropy(logits.flatten(0, 1), sy.flatten()).item())
    assert losses[1] < 0.8 * losses[0]


def test_shape_errors_are_clear():
    model = _tiny_resnet()
    sx, sy, qx = _tasks(T=2)
    p, b = split_state(model)
    with pytest.raises(ValueError, match="support_x must be"):
        meta_forward(model, p, b, sx, sy[:, :3], qx, steps=1, inner_lr=0.1)
    with pytest.raises(ValueError, match="2 support sets but 1 query sets"):
        meta_forward(model, p, b, sx, sy, qx[:1], steps=1, inner_lr=0.1)
