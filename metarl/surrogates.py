"""Small pure pieces shared by the PPO-style outer loops (maml_ppo, promp): the clipped surrogate, masked
per-task means, the adaptive KL coefficient and a functional Adam whose state is a plain dict."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metarl.policy import Params


def task_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over the steps that happened, per task: ``[T, N] -> [T]``."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def clipped_surrogate(logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, clip_eps: float) -> Tensor:
    """PPO's clipped objective as a loss per task ``[T]`` (Schulman et al. 2017, eq. 7, negated).

    ``r = exp(logp - old_logp)``; ``-mean_steps(min(r A, clip(r, 1 - eps, 1 + eps) A))``.  Where the
    clipped term is the smaller one (``A > 0, r > 1 + eps`` or ``A < 0, r < 1 - eps``) the step's gradient is 0.
    """
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -task_mean(torch.minimum(ratio * adv, clipped * adv), mask)


def clip_fraction(logp: Tensor, old_logp: Tensor, mask: Tensor, clip_eps: float) -> float:
    """Fraction of the steps that happened whose ratio lies outside ``[1 - eps, 1 + eps]``."""
    outside = ((torch.exp(logp - old_logp) - 1.0).abs() > clip_eps).to(mask.dtype)
    return float((outside * mask).sum() / mask.sum().clamp(min=1))


def adapt_kl_coefficient(coefficient: float, kl: float, target: float) -> float:
    """ProMP's rule: halve when ``kl < target / 1.5``, double when ``kl > target * 1.5``, else keep (strict bounds)."""
    if kl < target / 1.5:
        return coefficient / 2.0
    if kl > target * 1.5:
        return coefficient * 2.0
    return coefficient


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def adam_init(params: Params) -> dict[str, Any]:
    """Zero moments of every parameter and step 0."""
    return {"step": 0, "m": {k: torch.zeros_like(v) for k, v in params.items()},
            "v": {k: torch.zeros_like(v) for k, v in params.items()}}


def adam_step(params: Params, grads: Params, state: dict[str, Any], lr: float) -> tuple[Params, dict[str, Any]]:
    """One Adam step (Kingma & Ba 2015, Algorithm 1): new parameters and new state; the inputs are left alone."""
    b1, b2 = ADAM_BETAS
    t = int(state["step"]) + 1
    m = {k: b1 * state["m"][k] + (1 - b1) * grads[k] for k in params}
    v = {k: b2 * state["v"][k] + (1 - b2) * grads[k] * grads[k] for k in params}
    c1, c2 = 1 - b1**t, 1 - b2**t
    new = {k: params[k] - lr * (m[k] / c1) / (torch.sqrt(v[k] / c2) + ADAM_EPS) for k in params}
    return new, {"step": t, "m": m, "v": v}


def adam_state_fits(state: dict[str, Any], params: Params) -> bool:
    return set(state.get("m", {})) == set(params) and all(state["m"][k].shape == v.shape for k, v in params.items())
