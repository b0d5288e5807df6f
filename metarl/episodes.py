"""Episode batches shaped ``[T, E, H, ...]`` (tasks, episodes per task, steps), their returns and advantages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from metarl.baseline import LinearFeatureBaseline, explained_variance
from metarl.config import AdvantageConfig


@dataclass
class EpisodeBatch:
    """Episodes of T tasks x E episodes x H steps; ``mask`` is 1 on steps that happened.

    A step happened if its slot had not terminated before it: the terminating step counts, the steps
    after it (which the env reports frozen) do not.
    """

    obs: Tensor  # [T, E, H, obs_dim]
    actions: Tensor  # [T, E, H, act_dim], raw Gaussian samples (the env clips its copy)
    rewards: Tensor  # [T, E, H]
    mask: Tensor  # [T, E, H], float, 1 where the step happened
    tasks: np.ndarray  # [T, k]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    @property
    def env_steps(self) -> int:
        return int(self.mask.sum().item())

    def episode_returns(self) -> Tensor:
        """Undiscounted return of every episode ``[T, E]``."""
        return (self.rewards * self.mask).sum(-1)

    def average_return(self) -> Tensor:
        """Average undiscounted return per task ``[T]`` (the paper's ``average_return``), over the episodes that
        happened: an episode whose first step is masked (a batch filled to a number of env steps) is not one."""
        happened = self.mask[..., 0]
        if bool((happened > 0).all()):
            return self.episode_returns().mean(-1)
        return (self.episode_returns() * happened).sum(-1) / happened.sum(-1).clamp(min=1)


def discount_matrix(horizon: int, factor: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``M[t, k] = factor**(k - t)`` for ``k >= t``, else 0, so that ``x @ M.T`` discounts sums forward."""
    idx = torch.arange(horizon, device=device, dtype=torch.float64)
    powers = idx.unsqueeze(0) - idx.unsqueeze(1)  # k - t
    m = torch.where(powers >= 0, torch.tensor(factor, dtype=torch.float64, device=device) ** powers.clamp(min=0), 0.0)
    return m.to(dtype)


def discounted_returns(rewards: Tensor, mask: Tensor, discount: float) -> Tensor:
    """``R_t = sum_k discount^k r_{t+k}`` over the steps that happened; 0 on masked steps."""
    m = discount_matrix(rewards.shape[-1], discount, rewards.dtype, rewards.device)
    return ((rewards * mask) @ m.T) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, discount: float, lam: float) -> Tensor:
    """Generalised advantage estimates; the value after an episode's last step is 0 (no bootstrap).

    ``delta_t = r_t + discount * V_{t+1} - V_t`` and ``A_t = sum_k (discount * lam)^k delta_{t+k}``;
    with ``lam = 1`` this is the discounted return minus ``V_t``, as in the paper.
    """
    next_values = torch.zeros_like(values)
    next_values[..., :-1] = (values * mask)[..., 1:]
    deltas = (rewards + discount * next_values - values) * mask
    m = discount_matrix(rewards.shape[-1], discount * lam, rewards.dtype, rewards.device)
    return (deltas @ m.T) * mask


def standardize_per_task(adv: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit variance over the steps of each task ``[T, ...]`` that happened."""
    dims = tuple(range(1, adv.dim()))
    n = mask.sum(dims, keepdim=True).clamp(min=1)
    mean = (adv * mask).sum(dims, keepdim=True) / n
    var = (((adv - mean) * mask) ** 2).sum(dims, keepdim=True) / n
    return (adv - mean) / (var.sqrt() + eps) * mask


def advantages(batch: EpisodeBatch, settings: AdvantageConfig, baseline: LinearFeatureBaseline) -> tuple[Tensor, float]:
    """Advantages ``[T, E, H]`` of a batch (detached) and the baseline's explained variance.

    The baseline is fit per task on that task's discounted returns (``settings.baseline_fit``:
    ``per_task`` predicts each task with its own fit, ``previous_batch`` with the fit on the task processed
    before it, see :meth:`LinearFeatureBaseline.fit_predict_previous`), advantages are GAE with
    ``settings.gae_lambda`` and, if ``settings.normalize_advantages``, standardised per task.
    """
    returns = discounted_returns(batch.rewards, batch.mask, settings.discount)
    if settings.baseline_fit == "previous_batch":
        values, _ = baseline.fit_predict_previous(batch.obs, returns, batch.mask)
    else:
        values, _ = baseline.fit_predict(batch.obs, returns, batch.mask)
    adv = gae(batch.rewards, values, batch.mask, settings.discount, settings.gae_lambda)
    if settings.normalize_advantages:
        adv = standardize_per_task(adv, batch.mask)
    return adv.detach(), explained_variance(values, returns, batch.mask)
