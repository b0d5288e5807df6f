"""MAML with a TRPO meta-optimizer (Finn, Abbeel & Levine 2017, Algorithm 3 with TRPO as the outer step).

    for each meta-iteration:
        sample tasks T_i
        D_i   <- episodes of pi_theta on T_i                       (pre-adaptation)
        theta'_i = theta - alpha * grad L_i(theta; D_i)            (inner step, all tasks at once)
        D'_i  <- episodes of pi_theta'_i on T_i                    (post-adaptation)
        theta <- TRPO step on  sum_i L_i^surr(theta'_i(theta); D'_i)
                 subject to   mean_i KL(pi_theta'_i,old || pi_theta'_i(theta)) <= delta

The surrogate and the KL are differentiated through the inner step, so the meta-gradient and the
Hessian-vector products of the KL are exact (second order unless ``first_order``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

from metarl import curvature, trpo
from metarl.adaptation import AdaptationData, adapt
from metarl.baseline import LinearFeatureBaseline
from metarl.config import AlgoConfig, check_hvp_subsample
from metarl.episodes import EpisodeBatch, advantages
from metarl.policy import GaussianMLPPolicy, Params, flat, gaussian_kl, gaussian_log_prob, unflat


# The hyperparameters are defined once, in the run config; this name stays for scripts that build a learner
# by hand (``MAMLSettings(inner_step_size=0.1)``).
MAMLSettings = AlgoConfig


class MAMLTRPO:
    """The meta-learner: advantages, inner loop and the TRPO meta-update over functional parameters."""

    def __init__(self, policy: GaussianMLPPolicy, baseline: LinearFeatureBaseline, settings: AlgoConfig) -> None:
        self.policy, self.baseline, self.s = policy, baseline, settings

    def advantages(self, batch: EpisodeBatch) -> tuple[AdaptationData, float]:
        """Fit the baseline per task, compute GAE and standardise per task; also the explained variance."""
        adv, ev = advantages(batch, self.s, self.baseline)
        return AdaptationData(batch, adv), ev

    def adapt(self, params: Params, inner: Sequence[AdaptationData], create_graph: bool = True) -> Params:
        sizes = [self.s.inner_step_size] * len(inner)
        return adapt(self.policy, params, inner, sizes, self.s.first_order, create_graph)

    def objective(self, params: Params, inner: Sequence[AdaptationData], post: AdaptationData,
                  old: tuple[Tensor, Tensor, Tensor], create_graph: bool) -> tuple[Tensor, Tensor]:
        """Post-adaptation surrogate loss and mean KL, both averaged over tasks."""
        adapted = self.adapt(params, inner, create_graph)
        surrogate, kl, _, _ = self._post_adaptation_losses(adapted, post, old)
        return surrogate, kl

    def _post_adaptation_losses(self, adapted: Params, post: AdaptationData,
                                old: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        obs = _flat_steps(post)[0]
        mu, log_std = self.policy.moments(adapted, obs)  # one network call serves surrogate and KL
        surrogate, kl, _, weights = _losses(mu, log_std, post, old)
        return surrogate, kl, mu, weights

    def old_policy(self, params: Params, inner: Sequence[AdaptationData], post: AdaptationData) -> tuple[Tensor, Tensor, Tensor]:
        """``pi_theta'_old`` on the post-adaptation steps: log-probs, means and log-stds, detached.

        For the Gaussian ReLU MLP (shared ``params``) these are the moments :meth:`meta_update` takes from the
        linearization its products use (the same numbers bit for bit), so it does not adapt twice."""
        if self._written_out_products() and params["w0"].dim() == 2:
            return self._old_policy_of(self._linearization(params, inner, post), post)
        with torch.no_grad():
            adapted = {k: v.detach() for k, v in self.adapt(params, inner, create_graph=False).items()}
            obs, actions, _, _ = _flat_steps(post)
            mu, log_std = self.policy.moments(adapted, obs)
            return gaussian_log_prob(mu, log_std, actions), mu, log_std

    def _linearization(self, theta: Params, inner: Sequence[AdaptationData], post: AdaptationData) -> curvature.Linearization:
        """The adapted policies at ``theta`` with everything the written-out products need (computed without grad)."""
        sizes = [self.s.inner_step_size] * len(inner)
        return curvature.Linearization(self.policy, theta, inner, sizes, self.s.first_order, _flat_steps(post)[0])

    def _old_policy_of(self, lin: curvature.Linearization, post: AdaptationData) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`old_policy` read off a linearization at theta: its post-adaptation means and adapted log stds."""
        with torch.no_grad():
            mu = lin.post.mu
            log_std = self.policy.log_std(lin.adapted, mu)
            return gaussian_log_prob(mu, log_std, _flat_steps(post)[1]), mu, log_std

    def meta_gradients(self, theta: Params, inner: Sequence[AdaptationData], post: AdaptationData,
                       old: tuple[Tensor, Tensor, Tensor], tasks: Tensor | None = None, *,
                       linearization: curvature.Linearization | None = None,
                       ) -> tuple[Tensor, Tensor, Tensor, Callable[[Tensor], Tensor]]:
        """Surrogate, KL, the flat meta-gradient, and ``v -> H v`` for the exact Hessian H of the mean KL at theta.

        ``theta`` must require grad, and ``old`` must be the adapted policies at ``theta`` (``old_policy``).
        Both derivatives flow through the inner step.  At theta the KL and its gradient in the policy
        outputs vanish, so its Hessian is exactly ``J^T M J``: J the Jacobian of the adapted policies'
        outputs (means on the post-adaptation states, per-task log stds) in theta, M the Hessian of the
        Gaussian KL in those outputs (``1/sigma^2`` for means, 2 for log stds, weighted as the mean KL
        weighs each step).  For the Gaussian ReLU MLP the products are written out (``metarl.curvature``:
        tangent and adjoint passes through the inner step, everything fixed in ``v`` computed once); for
        any other policy ``Jv`` comes from differentiating autograd's ``J^T u`` in ``u``.  No third derivatives.

        ``tasks`` (indices into the task dimension) makes H the Hessian of the mean KL over those tasks
        only, each task's product still exact through its inner step; the surrogate, the KL and the
        meta-gradient are always over every task.  The mean over uniformly drawn subsets is the full H.

        ``linearization``: the written-out products' :class:`~metarl.curvature.Linearization` at ``theta``, if the
        caller already built it (:meth:`meta_update` does, for ``old``); otherwise it is built here.
        """
        if self._written_out_products():
            lin = self._linearization(theta, inner, post) if linearization is None else linearization
            log_std = self.policy.log_std(lin.adapted, lin.post.mu)
            surrogate, kl, ratio, weights = _losses(lin.post.mu, log_std, post, old)
            g = lin.gradient(*_surrogate_gradient(lin.post.mu, log_std, ratio, weights, post))
            if tasks is not None:  # the subset's tasks, sliced from the linearization of every task
                lin = lin.select(tasks)
                weights = _kl_weights(_flat_steps(post)[2][tasks.to(post.batch.mask.device)])
            hvp = lin.kl_hvp(weights, old[2] if tasks is None else old[2][tasks.to(old[2].device)])
            return surrogate, kl, g, hvp
        leaves = list(theta.values())
        adapted = self.adapt(theta, inner, create_graph=True)
        surrogate, kl, mu, weights = self._post_adaptation_losses(adapted, post, old)
        g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surrogate, leaves, retain_graph=tasks is None)])
        if tasks is None:
            hvp = _kl_hvp(leaves, (mu, adapted["log_std"]), weights, old[2])
        else:
            inner, post = [select_tasks(d, tasks) for d in inner], select_tasks(post, tasks)
            sub_adapted = self.adapt(theta, inner, create_graph=True)
            obs, _, mask, _ = _flat_steps(post)
            hvp = _kl_hvp(leaves, (self.policy.mean(sub_adapted, obs), sub_adapted["log_std"]), _kl_weights(mask),
                          old[2][tasks.to(old[2].device)])
        return surrogate.detach(), kl.detach(), g, hvp

    def finite_difference_hvp(self, params: Params, inner: Sequence[AdaptationData], post: AdaptationData,
                              old: tuple[Tensor, Tensor, Tensor], tasks: Tensor | None = None) -> Callable[[Tensor], Tensor]:
        """``v -> (grad KL(theta + eps v) - grad KL(theta - eps v)) / (2 eps)``, as the authors' released code did.

        rllab's ``FiniteDifferenceHvp`` (symmetric, ``eps = hvp_fd_eps / (|theta| + 1e-8)`` cast to the
        parameters' dtype): both gradients of the mean KL to ``old`` flow through the inner step.  In float32,
        ``theta +- eps v`` rounds back to ``theta`` wherever ``eps |v_i|`` is below half a unit in the last
        place of ``theta_i``, so the product is not the Hessian's (docs/training.md measures how far).
        ``tasks`` restricts the KL to those tasks, as for the exact products.
        """
        if tasks is not None:
            inner, post = [select_tasks(d, tasks) for d in inner], select_tasks(post, tasks)
            index = tasks.to(old[0].device)
            old = (old[0][index], old[1][index], old[2][index])
        center = flat({k: v.detach() for k, v in params.items()})
        eps = finite_difference_eps(center, self.s.hvp_fd_eps)

        def kl_gradient(point: Tensor) -> Tensor:
            theta = {k: v.detach().requires_grad_() for k, v in unflat(point, params).items()}
            with torch.enable_grad():
                adapted = self.adapt(theta, inner, create_graph=True)
                _, kl, _, _ = self._post_adaptation_losses(adapted, post, old)
                grads = torch.autograd.grad(kl, list(theta.values()))
            return torch.cat([x.reshape(-1) for x in grads])

        def product(v: Tensor) -> Tensor:
            step = (eps * v).to(center.dtype)
            return ((kl_gradient(center + step) - kl_gradient(center - step)) / (2 * eps)).to(v.dtype)

        return product

    def _written_out_products(self) -> bool:
        """The written-out products assume this class's inner step (one scalar step size) and this policy."""
        return curvature.supports(self.policy) and type(self).adapt is MAMLTRPO.adapt

    def meta_update(self, params: Params, inner: Sequence[AdaptationData], post: AdaptationData,
                    generator: torch.Generator | None = None) -> tuple[Params, dict[str, float]]:
        """One TRPO step on the meta-parameters; returns the new parameters (or the old ones, untouched).

        With ``hvp_subsample < 1`` the curvature uses a random subset of the tasks, drawn from ``generator``
        (a CPU generator; torch's default one if None); nothing is drawn when every task is used.
        """
        theta = {k: v.detach().requires_grad_() for k, v in params.items()}
        # the written-out products' linearization holds the adapted policies at theta: the old policy is read
        # off it, not adapted again
        lin = self._linearization(theta, inner, post) if self._written_out_products() else None
        old = self.old_policy(theta, inner, post) if lin is None else self._old_policy_of(lin, post)
        subset = curvature_tasks(post.batch.num_tasks, self.s.hvp_subsample, generator)
        surrogate, kl, g, hvp = self.meta_gradients(theta, inner, post, old, subset, linearization=lin)

        scale: Callable[..., Tensor | None] = trpo.max_step
        if self.s.hvp == "finite_difference":  # the released code's products, unguarded CG and step size
            hvp, scale = self.finite_difference_hvp(theta, inner, post, old, subset), trpo.rllab_step

        fisher_vector = _damped(hvp, self.s.cg_damping)
        direction, product = trpo.solve(fisher_vector, -g.detach(), self.s.cg_iters, guard=scale is trpo.max_step)
        # exact products are linear, so the step's s.As comes from the products CG made; the released
        # finite-difference products are not, and rllab took a fresh one
        full_step = scale(direction, product if scale is trpo.max_step else fisher_vector, self.s.max_kl)
        del lin, hvp, fisher_vector  # what the products kept is not needed by the line search: freed before it
        loss_before = surrogate.item()
        stats = {"surrogate_before": loss_before, "kl_before": kl.item(), "grad_norm": g.norm().item()}
        if full_step is None or not torch.isfinite(full_step).all():
            return params, {**stats, "accepted": 0.0, "line_search_steps": 0.0, "step_fraction": 0.0,
                            "surrogate_after": loss_before, "kl_after": 0.0, "surrogate_improvement": 0.0}

        def evaluate(candidate: Tensor) -> tuple[float, float]:
            with torch.no_grad():  # the inner gradient still runs: adapt() enables grad for it
                s, k = self.objective(unflat(candidate, params), inner, post, old, create_graph=False)
            return s.item(), k.item()

        new_flat, ls = trpo.backtracking_line_search(flat(theta).detach(), full_step, evaluate, loss_before,
                                                     self.s.max_kl, self.s.backtrack_ratio, self.s.max_backtracks)
        if not ls.accepted:
            return params, {**stats, "accepted": 0.0, "line_search_steps": float(ls.steps), "step_fraction": 0.0,
                            "surrogate_after": loss_before, "kl_after": 0.0, "surrogate_improvement": 0.0}
        new_params = {k: v.detach().clone() for k, v in unflat(new_flat, params).items()}
        return new_params, {**stats, "accepted": 1.0, "line_search_steps": float(ls.steps), "step_fraction": ls.fraction,
                            "surrogate_after": ls.loss, "kl_after": ls.kl, "surrogate_improvement": loss_before - ls.loss}


def _damped(hvp: Callable[[Tensor], Tensor], damping: float) -> Callable[[Tensor], Tensor]:
    """``v -> H v + damping v``: the products conjugate gradient solves with."""
    def fisher_vector(v: Tensor) -> Tensor:
        return hvp(v) + damping * v

    return fisher_vector


def finite_difference_eps(center: Tensor, base: float) -> float:
    """rllab's finite-difference step: ``base / (|theta| + 1e-8)``, rounded to the parameters' dtype."""
    return torch.tensor(base / (float(center.norm()) + 1e-8), dtype=center.dtype).item()


def _kl_weights(mask: Tensor) -> Tensor:
    """Weight of each step ``[T, N]`` in the mean over tasks of each task's mean over its steps."""
    return mask / mask.sum(-1).clamp(min=1).unsqueeze(-1) / mask.shape[0]


def _losses(mu: Tensor, log_std: Tensor, post: AdaptationData,
            old: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Surrogate and mean KL from the adapted policies' moments; also the likelihood ratios and step weights."""
    old_logp, old_mu, old_log_std = old
    _, actions, mask, adv = _flat_steps(post)
    ratio = torch.exp(gaussian_log_prob(mu, log_std, actions) - old_logp)
    n = mask.sum(-1).clamp(min=1)
    surrogate = -((ratio * adv * mask).sum(-1) / n).mean()
    kl = ((gaussian_kl(old_mu, old_log_std, mu, log_std) * mask).sum(-1) / n).mean()
    return surrogate, kl, ratio, mask / n.unsqueeze(-1) / mask.shape[0]


def _surrogate_gradient(mu: Tensor, log_std: Tensor, ratio: Tensor, weights: Tensor,
                        post: AdaptationData) -> tuple[Tensor, Tensor]:
    """Gradients of the surrogate in the post-adaptation means ``[T, N, act]`` and adapted log stds ``[T, act]``."""
    _, actions, _, adv = _flat_steps(post)
    kappa = (ratio * adv * weights).unsqueeze(-1)  # d surrogate / d log pi of each step, negated
    inv_var = torch.exp(-2 * log_std)
    resid = actions - mu
    grad_mu = -kappa * resid * inv_var
    grad_log_std = -(kappa * (resid * resid * inv_var - 1)).sum(1)
    return grad_mu, grad_log_std


def _kl_hvp(leaves: list[Tensor], outputs: tuple[Tensor, Tensor], weights: Tensor,
            old_log_std: Tensor) -> Callable[[Tensor], Tensor]:
    """``v -> J^T M J v`` for the outputs ``(means [T, N, act], log stds [T, act])`` of the adapted policies.

    ``weights [T, N]`` are the KL's weights of the steps; ``old_log_std [T, N, act]`` the old policies' log stds.
    """
    mu, log_std = outputs
    m_mu = weights.unsqueeze(-1) * torch.exp(-2 * old_log_std)  # [T, N, act]
    m_log_std = 2.0 * weights.sum(-1, keepdim=True).expand_as(log_std)  # [T, act]
    u = tuple(torch.zeros_like(o, requires_grad=True) for o in outputs)
    jt_u = torch.cat([x.reshape(-1) for x in torch.autograd.grad(outputs, leaves, u, create_graph=True)])

    def hvp(v: Tensor) -> Tensor:
        jv_mu, jv_log_std = torch.autograd.grad(jt_u @ v, u, retain_graph=True)
        h = torch.autograd.grad(outputs, leaves, (m_mu * jv_mu, m_log_std * jv_log_std), retain_graph=True)
        return torch.cat([x.reshape(-1) for x in h])

    return hvp


def subsample_size(num_tasks: int, fraction: float) -> int:
    """Tasks in a curvature subsample: ``fraction`` of ``num_tasks`` rounded to the nearest, at least one."""
    check_hvp_subsample(fraction, "hvp_subsample")
    return min(num_tasks, max(1, math.floor(fraction * num_tasks + 0.5)))


def curvature_tasks(num_tasks: int, fraction: float, generator: torch.Generator | None) -> Tensor | None:
    """Sorted indices of the tasks whose KL the products use, or None for every task (then nothing is drawn)."""
    k = subsample_size(num_tasks, fraction)
    if k == num_tasks:
        return None
    return torch.randperm(num_tasks, generator=generator)[:k].sort().values


def select_tasks(data: AdaptationData, tasks: Tensor) -> AdaptationData:
    """The episodes and advantages of the tasks ``tasks`` only."""
    b = data.batch
    idx = tasks.to(b.obs.device)
    batch = EpisodeBatch(b.obs[idx], b.actions[idx], b.rewards[idx], b.mask[idx], b.tasks[tasks.cpu().numpy()])
    return AdaptationData(batch, data.advantages[idx])


def _flat_steps(data: AdaptationData) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Episodes as ``[T, E*H, ...]`` for task-batched policy calls."""
    b = data.batch
    T = b.num_tasks
    return (b.obs.reshape(T, -1, b.obs.shape[-1]), b.actions.reshape(T, -1, b.actions.shape[-1]),
            b.mask.reshape(T, -1), data.advantages.reshape(T, -1))
