"""The inner loop: one policy-gradient step per task, for all tasks in one backward pass.

``theta'_i = theta - alpha * grad L_i(theta)`` with ``L_i = -mean_steps(log pi(a|s) * A)`` on task i's
episodes.  The gradient of ``sum_i L_i(theta_i)`` with respect to theta expanded to ``[T, ...]`` gives
every task's gradient at once.  ``create_graph=True`` keeps the adapted parameters differentiable in
theta to second order (exact MAML); first order detaches the inner gradients.

Two options of the same step:

* ``estimator="lvc"``: ProMP's low-variance curvature surrogate (Rothfuss et al. 2019, eq. 6),
  ``L_i = -mean_steps(pi(a|s) / pi_sampling(a|s) * A)`` with the sampling policy's log-probabilities
  held fixed.  At the sampling parameters its value and gradient equal the REINFORCE loss's, so the
  adapted parameters are the same; its second derivative (what the meta-gradient sees) has the extra
  ``grad log pi grad log pi^T`` term of the likelihood ratio and lower variance.
* per-parameter step sizes (Meta-SGD, Li et al. 2017): a step size may be a ``{name: tensor}`` dict of
  the parameters' shapes, ``theta'_i = theta - alpha (elementwise) grad L_i``.  A learner keeps them in
  its parameter dict under ``step_size.<name>`` (see :func:`split_step_sizes`), so they are saved,
  differentiated and updated with the policy's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import Tensor

from metarl.episodes import EpisodeBatch
from metarl.policy import GaussianMLPPolicy, Params, expand_params

ESTIMATORS = ("reinforce", "lvc")
STEP_SIZE_PREFIX = "step_size."
StepSize = Union[float, Params]


@dataclass
class AdaptationData:
    """One inner step's episodes and their (fixed) standardised advantages ``[T, E, H]``.

    ``sampling_log_prob [T, E*H]``, when given, is the log-probability of each action under the policy
    that sampled it (detached); the ``lvc`` estimator divides by it.  Without it, ``lvc`` divides by the
    current policy's probabilities with their gradient stopped (the same thing at the sampling parameters).
    """

    batch: EpisodeBatch
    advantages: Tensor
    sampling_log_prob: Tensor | None = None


def flat_steps(data: AdaptationData) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Episodes as ``[T, E*H, ...]`` for task-batched policy calls: obs, actions, mask, advantages."""
    b = data.batch
    T = b.num_tasks
    return (b.obs.reshape(T, -1, b.obs.shape[-1]), b.actions.reshape(T, -1, b.actions.shape[-1]),
            b.mask.reshape(T, -1), data.advantages.reshape(T, -1))


def policy_gradient_loss(policy: GaussianMLPPolicy, params: Params, data: AdaptationData,
                         estimator: str = "reinforce") -> Tensor:
    """Inner loss per task ``[T]``: ``-sum(w * A * mask) / sum(mask)``.

    ``w = log pi`` for ``reinforce`` (the paper's), ``w = pi / pi_sampling`` for ``lvc`` (ProMP's).
    """
    obs, actions, mask, adv = flat_steps(data)
    logp = policy.log_prob(params, obs, actions)
    if estimator == "reinforce":
        weight = logp
    elif estimator == "lvc":
        denominator = data.sampling_log_prob if data.sampling_log_prob is not None else logp.detach()
        weight = torch.exp(logp - denominator)
    else:
        raise ValueError(f"estimator: unknown inner-step estimator {estimator!r}; valid: {list(ESTIMATORS)}")
    return -(weight * adv * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def split_step_sizes(params: Params) -> tuple[Params, Params | None]:
    """``(policy parameters, Meta-SGD step sizes or None)`` of a learner's parameter dict."""
    policy_params = {k: v for k, v in params.items() if not k.startswith(STEP_SIZE_PREFIX)}
    sizes = {k[len(STEP_SIZE_PREFIX):]: v for k, v in params.items() if k.startswith(STEP_SIZE_PREFIX)}
    if not sizes:
        return policy_params, None
    missing = sorted(set(policy_params) - set(sizes))
    if missing:
        raise ValueError(f"params: Meta-SGD step sizes are missing for {missing}; every policy parameter needs one")
    return policy_params, sizes


def with_step_sizes(params: Params, initial: float) -> Params:
    """``params`` plus Meta-SGD step sizes ``step_size.<name>``, each of its parameter's shape, all ``initial``."""
    out = dict(params)
    for k, v in params.items():
        if k.startswith(STEP_SIZE_PREFIX):
            raise ValueError(f"params: {k!r} already is a step size; add step sizes to policy parameters only")
        out[STEP_SIZE_PREFIX + k] = torch.full_like(v, float(initial))
    return out


def adaptation_path(
    policy: GaussianMLPPolicy,
    params: Params,
    steps: Sequence[AdaptationData],
    step_sizes: Sequence[StepSize],
    first_order: bool = False,
    create_graph: bool = True,
    estimator: str = "reinforce",
) -> list[Params]:
    """Task-batched parameters before each inner step and after the last: ``len(steps) + 1`` dicts ``[T, ...]``.

    ``params`` are shared (no task dimension) or already task-batched.  ``step_sizes[k]`` is the step
    size of inner step k: a number, or a ``{name: tensor}`` of per-parameter step sizes broadcastable
    to the parameters (Meta-SGD).  The module's own parameters are never modified: new tensors are returned.
    """
    if not steps:
        raise ValueError("steps: adaptation needs at least one inner step's episodes")
    if len(step_sizes) != len(steps):
        raise ValueError(f"step_sizes: got {len(step_sizes)} step sizes for {len(steps)} inner steps")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: unknown inner-step estimator {estimator!r}; valid: {list(ESTIMATORS)}")
    T = steps[0].batch.num_tasks
    # differentiable in params only if the caller records a graph for them; otherwise the inner gradient
    # is taken with respect to fresh leaves (views made under no_grad still claim requires_grad)
    track = torch.is_grad_enabled() and any(v.requires_grad for v in params.values())
    theta = params if params["w0"].dim() == 3 else expand_params(params, T)
    path = [theta]
    for data, alpha in zip(steps, step_sizes):
        with torch.enable_grad():
            names = list(theta)
            if not track:
                theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
            loss = policy_gradient_loss(policy, theta, data, estimator).sum()
            keep = create_graph and not first_order
            grads = torch.autograd.grad(loss, [theta[k] for k in names], create_graph=keep)
        if first_order or not create_graph:
            grads = tuple(g.detach() for g in grads)
        if isinstance(alpha, dict):
            theta = {k: theta[k] - alpha[k] * g for k, g in zip(names, grads)}
        else:
            theta = {k: theta[k] - alpha * g for k, g in zip(names, grads)}
        path.append(theta)
    return path


def adapt(
    policy: GaussianMLPPolicy,
    params: Params,
    steps: Sequence[AdaptationData],
    step_sizes: Sequence[StepSize],
    first_order: bool = False,
    create_graph: bool = True,
    estimator: str = "reinforce",
) -> Params:
    """Adapted task-batched parameters ``{name: [T, ...]}`` after ``len(steps)`` inner steps.

    See :func:`adaptation_path` for the arguments; this is its last entry.
    """
    return adaptation_path(policy, params, steps, step_sizes, first_order, create_graph, estimator)[-1]
