"""Multinomial logistic regression for many episodes at once: the published PT classifier.

Objective per episode (the one scikit-learn's ``LogisticRegression(C=C, solver="lbfgs")``
minimises for a multinomial problem, there written as C * sum + 1/2 ||W||^2)::

    sum_i CE(W^T x_i + b, y_i) + 1/(2C) ||W||^2        (bias b not penalised)

Solved exactly rather than with lbfgs, for all episodes in one batched computation:

* Reduction. The penalised optimum W lies in the span of the episode's support features
  (the data term only sees X W, and any component of W orthogonal to the rows of X only adds
  to the penalty). With an orthonormal basis Vh (n x D) of that span (from a QR of X^T),
  W = Vh^T Z and ||W|| = ||Z||, so the problem is the same logistic regression on the
  n x min(n, D) features X Vh^T: 26 x 5 unknowns for a 5-way 5-shot episode whatever the
  backbone width.
* Newton's method with Armijo backtracking on that small problem, batched over episodes, run
  to a gradient of ``tol`` in float64: it converges in a handful of iterations. Each Newton
  system is solved by conjugate gradients with Hessian-vector products (preconditioned by the
  Hessian's diagonal), so no (p+1)K x (p+1)K Hessian is ever formed: with C=1 on unit-norm
  features the Hessian is well conditioned and a few dozen cheap batched products suffice.
* The bias is defined only up to a common shift of all classes (softmax ignores it); the
  term 1/2 (sum_k b_k)^2 fixes that shift to zero without moving the optimum (the gradient
  of the data term along the shift is always zero), which makes the Hessian positive definite.

The solution is unique, so predictions agree with scikit-learn's up to lbfgs's own tolerance.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

# Bytes of working memory per chunk of episodes (a few (n, p+1, K)-sized tensors each).
MEMORY_BUDGET = 256 << 20


@dataclass
class LogRegFit:
    """Fitted classifiers of E episodes, in the original feature space."""

    weight: torch.Tensor     # (E, D, K) float64
    bias: torch.Tensor       # (E, K) float64, summing to 0 per episode
    iterations: torch.Tensor  # (E,) Newton iterations used
    grad_max: torch.Tensor   # (E,) largest |gradient| entry at the end

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(E, m, D) features -> (E, m, K) logits (float64)."""
        return torch.baddbmm(self.bias.unsqueeze(1), x.to(self.weight.dtype), self.weight)


def fit_logreg(x: torch.Tensor, y: torch.Tensor, n_classes: int, C: float = 1.0, *, tol: float = 1e-9,
               max_iter: int = 100) -> LogRegFit:
    """Fit one multinomial logistic regression per episode.

    x (E, n, D) support features, y (E, n) int64 labels in 0..n_classes-1. Computation happens
    on x's device in float64.
    """
    if x.dim() != 3 or y.shape != x.shape[:2]:
        raise ValueError(f"fit_logreg: expected x (E, n, D) and y (E, n), got {tuple(x.shape)} and {tuple(y.shape)}")
    if C <= 0:
        raise ValueError(f"fit_logreg: C must be positive, got {C}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"fit_logreg: labels must lie in 0..{n_classes - 1}")
    x = x.double()
    E, n, D = x.shape
    p = min(n, D)
    per_episode = 8 * (n * (p + 1) * 4 + (p + 1) * n_classes * 12 + n * D)
    chunk = max(1, MEMORY_BUDGET // per_episode)
    parts = [_fit_chunk(x[s:s + chunk], y[s:s + chunk], n_classes, 1.0 / C, tol, max_iter) for s in range(0, E, chunk)]
    fit = LogRegFit(*(torch.cat([getattr(f, k) for f in parts]) for k in ("weight", "bias", "iterations", "grad_max")))
    bad = int((fit.grad_max > tol).sum())
    if bad:
        log.warning("logistic regression: %d of %d episodes did not reach |grad| <= %g in %d Newton iterations "
                    "(worst %.3g)", bad, E, tol, max_iter, float(fit.grad_max.max()))
    return fit


def _reduce(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features in an orthonormal basis of the support's row space (see the module docstring).

    Householder QR of X^T = Q R gives Q with orthonormal columns spanning (at least) the rows of
    X, even when X is rank deficient; the reduced features are X Q = R^T.
    """
    n, D = x.shape[1:]
    if D <= n:
        return x, None
    basis, r = torch.linalg.qr(x.transpose(1, 2))  # (E, D, n), (E, n, n)
    return r.transpose(1, 2), basis.transpose(1, 2)


def _fit_chunk(x: torch.Tensor, y: torch.Tensor, K: int, lam: float, tol: float, max_iter: int) -> LogRegFit:
    E, n, _ = x.shape
    f, vh = _reduce(x)
    p = f.shape[2]
    q = p + 1
    fa = torch.cat([f, torch.ones(E, n, 1, dtype=f.dtype, device=f.device)], 2)  # (E, n, q): bias column last
    fat = fa.transpose(1, 2)
    onehot = torch.nn.functional.one_hot(y, K).to(f.dtype)
    penal = torch.ones(q, 1, dtype=f.dtype, device=f.device)
    penal[p] = 0.0  # the bias is not penalised

    def objective(theta: torch.Tensor) -> torch.Tensor:
        z = fa @ theta
        data = (torch.logsumexp(z, -1) - (z * onehot).sum(-1)).sum(-1)
        return data + 0.5 * lam * (theta[:, :p] ** 2).sum((1, 2)) + 0.5 * theta[:, p].sum(-1) ** 2

    def gradient(theta: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        g = fat @ (prob - onehot) + lam * penal * theta
        g[:, p] += theta[:, p].sum(-1, keepdim=True)
        return g

    def hess_vec(prob: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # H v without forming H: data term sum_i a_i (diag(p_i) - p_i p_i^T)(a_i^T v), penalty, gauge.
        pz = prob * (fa @ v)
        out = fat @ (pz - prob * pz.sum(-1, keepdim=True)) + lam * penal * v
        out[:, p] += v[:, p].sum(-1, keepdim=True)
        return out

    def newton_step(prob: torch.Tensor, g: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Solve H d = -g by conjugate gradients preconditioned with H's diagonal (batched, masked)."""
        diag = (fa * fa).transpose(1, 2) @ (prob * (1 - prob)) + lam * penal
        diag[:, p] += 1.0
        gnorm = g.flatten(1).norm(dim=1)
        # Inexact Newton: relative residual min(0.1, |g|) keeps the outer convergence superlinear.
        target = (gnorm * gnorm.clamp(max=0.1)).clamp_min(1e-3 * tol) * active
        d = torch.zeros_like(g)
        r = -g * active.view(E, 1, 1)
        z = r / diag
        direction = z
        rz = (r * z).sum((1, 2))
        for _ in range(4 * q * K):
            todo = r.flatten(1).norm(dim=1) > target
            if not bool(todo.any()):
                break
            hd = hess_vec(prob, direction)
            curv = (direction * hd).sum((1, 2))
            alpha = torch.where(todo & (curv > 0), rz / curv.clamp_min(1e-300), torch.zeros_like(rz))
            d = d + alpha.view(E, 1, 1) * direction
            r = r - alpha.view(E, 1, 1) * hd
            z = r / diag
            rz_new = (r * z).sum((1, 2))
            beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-300), torch.zeros_like(rz))
            direction = z + beta.view(E, 1, 1) * direction
            rz = rz_new
        return d

    theta = torch.zeros(E, q, K, dtype=f.dtype, device=f.device)
    iters = torch.zeros(E, dtype=torch.long, device=f.device)
    value = objective(theta)
    prob = torch.softmax(fa @ theta, -1)
    g = gradient(theta, prob)
    for _ in range(max_iter):
        active = g.abs().amax((1, 2)) > tol
        if not bool(active.any()):
            break
        step = newton_step(prob, g, active)
        slope = (g * step).sum((1, 2))
        t = torch.ones(E, dtype=f.dtype, device=f.device)
        # Near the optimum the decrease drops below the objective's rounding error; allow for it,
        # or the test would fail on noise and shrink the step to nothing.
        slack = 64 * torch.finfo(f.dtype).eps * value.abs().clamp_min(1.0)
        for _ in range(40):  # Armijo backtracking, per episode
            new = objective(theta + t.view(E, 1, 1) * step)
            ok = (new <= value + 1e-4 * t * slope + slack) | ~active
            if bool(ok.all()):
                break
            t = torch.where(ok, t, t * 0.5)
        theta = theta + t.view(E, 1, 1) * step
        iters += active.long()
        value = torch.where(active, new, value)
        prob = torch.softmax(fa @ theta, -1)
        g = gradient(theta, prob)
    gmax = g.abs().amax((1, 2))
    w = theta[:, :p]
    if vh is not None:
        w = vh.transpose(1, 2) @ w  # back to the D original features
    return LogRegFit(w, theta[:, p], iters, gmax)
