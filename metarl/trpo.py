"""TRPO's numerical pieces, each small and pure: conjugate gradient, step scaling, backtracking line search."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


def conjugate_gradient(avp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10,
                       guard: bool = True) -> Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given as ``avp(v) = A v``.

    A zero right-hand side returns zero; a non-positive curvature ``p.Ap`` stops the iteration with the
    current iterate (guarding the division).  ``guard=False`` divides by ``p.Ap`` whatever its sign, as
    rllab's ``krylov.cg`` did (for ``algo.hvp: finite_difference``, whose products need not be positive).
    """
    return solve(avp, b, iters, residual_tol, guard)[0]


def solve(avp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10,
          guard: bool = True) -> tuple[Tensor, Tensor]:
    """:func:`conjugate_gradient`'s ``x`` and ``A x`` with it, from the products the iteration already made.

    ``x`` is a sum ``sum_k alpha_k p_k`` of the search directions, so for a linear ``avp`` its product is
    ``sum_k alpha_k A p_k``: the same vector as ``avp(x)`` up to float rounding, without another product.
    """
    x = torch.zeros_like(b)
    ax = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    if rr <= residual_tol:
        return x, ax
    for _ in range(iters):
        ap = avp(p)
        pap = torch.dot(p, ap)
        if guard and (not torch.isfinite(pap) or pap <= 0):
            break
        alpha = rr / pap
        x = x + alpha * p
        ax = ax + alpha * ap
        r = r - alpha * ap
        rr_new = torch.dot(r, r)
        if rr_new <= residual_tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, ax


def max_step(direction: Tensor, avp: Callable[[Tensor], Tensor] | Tensor, max_kl: float) -> Tensor | None:
    """Scale ``direction`` so that the quadratic KL model ``0.5 s.As`` equals ``max_kl``; None if impossible.

    ``avp`` is the product function, or the product ``A direction`` itself when it is known (:func:`solve`)."""
    shs = torch.dot(direction, avp if isinstance(avp, Tensor) else avp(direction))
    if not torch.isfinite(shs) or shs <= 0:
        return None
    return direction * math.sqrt(2.0 * max_kl / float(shs))


def rllab_step(direction: Tensor, avp: Callable[[Tensor], Tensor], max_kl: float) -> Tensor:
    """The step size of rllab's ``ConjugateGradientOptimizer``: ``sqrt(2 delta / (s.As + 1e-8))``, 1 where NaN.

    Unlike :func:`max_step` it never refuses: a negative ``s.As`` (possible with finite-difference products)
    gives a NaN size in rllab, which it replaced by 1.
    """
    shs = float(torch.dot(direction, avp(direction))) + 1e-8
    if shs == math.inf:
        size = 0.0  # sqrt(2 delta / inf): rllab's step is zero, and its line search then rejects it
    else:
        size = math.sqrt(2.0 * max_kl / shs) if shs > 0 else 1.0  # negative or NaN: 1, as rllab's NaN check
    return direction * size


@dataclass
class LineSearchResult:
    accepted: bool
    steps: int  # backtracking steps tried (1 = the full step)
    fraction: float  # fraction of the full step taken (0 when rejected)
    loss: float
    kl: float


def backtracking_line_search(
    params: Tensor,
    full_step: Tensor,
    evaluate: Callable[[Tensor], tuple[float, float]],
    loss_before: float,
    max_kl: float,
    ratio: float = 0.8,
    max_backtracks: int = 15,
) -> tuple[Tensor, LineSearchResult]:
    """Try ``params + ratio^k * full_step`` for k = 0, 1, ...; accept the first finite, improving, KL-feasible one.

    ``evaluate(candidate) -> (loss, kl)``.  On failure the original ``params`` tensor is returned
    unchanged, so the caller's parameters are restored bit for bit.
    """
    loss, kl = loss_before, 0.0
    for k in range(max_backtracks):
        frac = ratio**k
        candidate = params + frac * full_step
        loss, kl = evaluate(candidate)
        if math.isfinite(loss) and math.isfinite(kl) and loss < loss_before and kl <= max_kl:
            return candidate, LineSearchResult(True, k + 1, frac, loss, kl)
    return params, LineSearchResult(False, max_backtracks, 0.0, loss, kl)
