"""The batched PT classifiers, calibration and metrics against independent computations."""
import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from divcoeff.fewshot.calibration import calibrated_loss, fit_scale, holdout_folds, split_fold
from divcoeff.fewshot.logreg import fit_logreg
from divcoeff.fewshot.metrics import episode_metrics, summarize
from divcoeff.fewshot.proto import proto_logits

sklearn_lm = pytest.importorskip("sklearn.linear_model")


@pytest.fixture(autouse=True)
def one_blas_thread():
    """scikit-learn's BLAS threads only fight over the 2 shared cores for these tiny problems."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def clustered_episodes(E, ways, shots, queries, dim, noise, seed=0):
    """Unit-norm features around one random centre per class (support (E, W, K, D), query (E, W*Q, D))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(E, ways, 1, dim))
    s = centres + noise * rng.normal(size=(E, ways, shots, dim))
    q = centres + noise * rng.normal(size=(E, ways, queries, dim))
    s /= np.linalg.norm(s, axis=-1, keepdims=True)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return s, q.reshape(E, ways * queries, dim)


@pytest.mark.parametrize("dim", [48, 12])  # wider than the support set (reduced basis), and narrower
def test_batched_logreg_matches_sklearn_per_episode(dim):
    E, W, K, Q = 20, 5, 5, 15
    s, q = clustered_episodes(E, W, K, Q, dim, noise=1.6)
    ys, yq = np.repeat(np.arange(W), K), np.repeat(np.arange(W), Q)
    fit = fit_logreg(torch.tensor(s.reshape(E, W * K, dim)), torch.tensor(ys).expand(E, -1), W, C=1.0)
    ours = fit.logits(torch.tensor(q)).argmax(-1).numpy()
    agree, acc_ref = 0, []
    for e in range(E):
        # The published settings; and a tight tolerance to check the objective itself.
        ref = sklearn_lm.LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000).fit(s[e].reshape(-1, dim), ys)
        pred = ref.predict(q[e])
        agree += (pred == ours[e]).sum()
        acc_ref.append((pred == yq).mean())
        tight = sklearn_lm.LogisticRegression(C=1.0, solver="lbfgs", max_iter=10000, tol=1e-12)
        tight.fit(s[e].reshape(-1, dim), ys)
        np.testing.assert_allclose(fit.weight[e].numpy(), tight.coef_.T, atol=2e-5)
        # sklearn's intercepts carry an arbitrary common shift (softmax ignores it); ours sum to 0.
        np.testing.assert_allclose(fit.bias[e].numpy(), tight.intercept_ - tight.intercept_.mean(), atol=2e-5)
    assert agree / ours.size >= 0.995
    acc_ours = (ours == yq).mean()
    assert 0.3 < acc_ours < 0.99  # a problem with errors to agree on
    assert abs(acc_ours - np.mean(acc_ref)) <= 0.005
    assert float(fit.grad_max.max()) <= 1e-9


def test_logreg_C_scales_the_penalty():
    s, _ = clustered_episodes(4, 3, 4, 1, 20, noise=1.0, seed=1)
    y = torch.arange(3).repeat_interleave(4).expand(4, -1)
    x = torch.tensor(s.reshape(4, 12, 20))
    weak, strong = fit_logreg(x, y, 3, C=10.0), fit_logreg(x, y, 3, C=0.1)
    assert float(weak.weight.norm()) > 5 * float(strong.weight.norm())
    ref = sklearn_lm.LogisticRegression(C=10.0, max_iter=10000, tol=1e-12).fit(s[0].reshape(12, 20), y[0].numpy())
    np.testing.assert_allclose(weak.weight[0].numpy(), ref.coef_.T, atol=1e-4)


def test_proto_logits_are_negative_squared_distances_to_class_means():
    rng = np.random.default_rng(2)
    s, q = rng.normal(size=(3, 4, 2, 6)), rng.normal(size=(3, 5, 6))
    got = proto_logits(torch.tensor(s), torch.tensor(q)).numpy()
    c = s.mean(2)
    want = -((q[:, :, None, :] - c[:, None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_fit_scale_minimises_the_cross_entropy():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(200, 5)) * 0.2
    y = rng.integers(0, 5, 200)
    z[np.arange(200), y] += 0.15  # weakly informative, under-confident logits
    s = fit_scale(torch.tensor(z), torch.tensor(y))

    def ce(scale):
        zz = scale * z
        return float((np.log(np.exp(zz).sum(1)) - zz[np.arange(200), y]).sum())

    ref = optimize.minimize_scalar(ce, bounds=(1e-3, 1e3), method="bounded", options={"xatol": 1e-10})
    assert s == pytest.approx(ref.x, rel=1e-5)
    assert s > 1  # under-confident logits are sharpened
    loss = calibrated_loss(torch.tensor(z).view(2, 100, 5), torch.tensor(y).view(2, 100), s).numpy()
    assert loss.mean() == pytest.approx(ce(s) / 200, rel=1e-9)


def test_folds_hold_out_one_shot_and_need_two():
    assert holdout_folds(5, 5) == [0, 1, 2, 3, 4]
    assert holdout_folds(5, 2) == [0, 1]
    assert holdout_folds(1, 5) == []
    x = torch.arange(2 * 3 * 4).view(2, 3, 4)
    train, held = split_fold(x, 1)
    assert train.shape == (2, 3, 3) and torch.equal(held, x[:, :, 1])
    assert not (train == held.unsqueeze(-1)).any()


def test_episode_metrics_and_t_interval_match_scipy():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]]])
    labels = torch.tensor([[0, 1, 1], [1, 1, 1]])
    acc, loss = episode_metrics(logits, labels)
    np.testing.assert_allclose(acc, [2 / 3, 2 / 3])
    lp = torch.log_softmax(logits.double(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    np.testing.assert_allclose(loss, (-lp).mean(-1).numpy())

    x = np.random.default_rng(4).uniform(0.4, 0.9, 37)
    s = summarize(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert s["mean"] == pytest.approx(x.mean()) and s["n"] == 37
    assert s["lo"] == pytest.approx(lo, rel=1e-12) and s["hi"] == pytest.approx(hi, rel=1e-12)
    assert s["ci95"] == pytest.approx(stats.t.ppf(0.975, 36) * x.std(ddof=1) / math.sqrt(37))
    assert summarize(np.full(5, np.nan)) is None
    with pytest.raises(ValueError, match="not finite"):
        summarize([0.5, np.nan, 0.7])
