"""The inner loop: one policy-gradient step per task, for all tasks in one backward pass.

``theta'_i = theta - alpha * grad L_i(theta)`` with ``L_i = -mean_steps(log pi(a|s) * A)`` on task i's
episodes.  The gradient of ``sum_i L_i(theta_i)`` with respect to theta expanded to ``[T, ...]`` gives
every task's gradient at once.  ``create_graph=True`` keeps the adapted parameters differentiable in
theta to second order (exact MAML); first order detaches the inner gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from metarl.episodes import EpisodeBatch
from metarl.policy import GaussianMLPPolicy, Params, expand_params


@dataclass
class AdaptationData:
    """One inner step's episodes and their (fixed) standardised advantages ``[T, E, H]``."""

    batch: EpisodeBatch
    advantages: Tensor


def policy_gradient_loss(policy: GaussianMLPPolicy, params: Params, data: AdaptationData) -> Tensor:
    """REINFORCE loss per task ``[T]``: ``-sum(log pi * A * mask) / sum(mask)``."""
    b = data.batch
    T = b.num_tasks
    obs = b.obs.reshape(T, -1, b.obs.shape[-1])
    actions = b.actions.reshape(T, -1, b.actions.shape[-1])
    logp = policy.log_prob(params, obs, actions)
    mask = b.mask.reshape(T, -1)
    adv = data.advantages.reshape(T, -1)
    return -(logp * adv * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def adapt(
    policy: GaussianMLPPolicy,
    params: Params,
    steps: Sequence[AdaptationData],
    step_sizes: Sequence[float],
    first_order: bool = False,
    create_graph: bool = True,
) -> Params:
    """Adapted task-batched parameters ``{name: [T, ...]}`` after ``len(steps)`` inner steps.

    ``params`` are shared (no task dimension) or already task-batched.  ``step_sizes[k]`` is the step
    size of inner step k.  The module's own parameters are never modified: new tensors are returned.
    """
    if not steps:
        raise ValueError("steps: adaptation needs at least one inner step's episodes")
    if len(step_sizes) != len(steps):
        raise ValueError(f"step_sizes: got {len(step_sizes)} step sizes for {len(steps)} inner steps")
    T = steps[0].batch.num_tasks
    # differentiable in params only if the caller records a graph for them; otherwise the inner gradient
    # is taken with respect to fresh leaves (views made under no_grad still claim requires_grad)
    track = torch.is_grad_enabled() and any(v.requires_grad for v in params.values())
    theta = params if params["w0"].dim() == 3 else expand_params(params, T)
    for data, alpha in zip(steps, step_sizes):
        with torch.enable_grad():
            names = list(theta)
            if not track:
                theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
            loss = policy_gradient_loss(policy, theta, data).sum()
            keep = create_graph and not first_order
            grads = torch.autograd.grad(loss, [theta[k] for k in names], create_graph=keep)
        if first_order or not create_graph:
            grads = tuple(g.detach() for g in grads)
        theta = {k: theta[k] - alpha * g for k, g in zip(names, grads)}
    return theta
