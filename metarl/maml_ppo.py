"""MAML with a PPO outer loop: a clipped surrogate on the post-adaptation episodes, several Adam steps per batch.

    for each meta-iteration (episodes D_i, D'_i sampled as for MAML-TRPO with theta_old):
        pi_old   = pi_theta'_i(theta_old) on D'_i                               (fixed)
        repeat outer_steps times, without re-sampling:
            theta'_i = theta - alpha * grad L_i(theta; D_i)                     (differentiable inner step)
            r        = pi_theta'_i(a|s) / pi_old(a|s)                           on D'_i
            J(theta) = mean_i -mean_t min(r A, clip(r, 1 - eps, 1 + eps) A)
            theta   <- Adam step on grad_theta J                                 (through the inner step)

The Adam moments persist across meta-iterations (as one optimiser object does in the released ProMP
code) and are saved in the checkpoints.  ``first_order`` drops the inner step's second-order term as for
MAML-TRPO.  With Meta-SGD the step sizes are parameters of the same Adam.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from metarl.adaptation import AdaptationData, flat_steps
from metarl.meta_sgd import InnerStepLearner
from metarl.policy import Params, gaussian_kl, gaussian_log_prob
from metarl.surrogates import adam_init, adam_state_fits, adam_step, clip_fraction, clipped_surrogate, task_mean

OldPolicy = tuple[Tensor, Tensor, Tensor]  # log-probs, means, log-stds of pi_old on the post-adaptation steps


class MAMLPPO(InnerStepLearner):
    """The outer loop above; ``meta_update(params, inner, post) -> (new_params, stats)`` as MAMLTRPO's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adam: dict[str, Any] | None = None

    # ---- the objective ------------------------------------------------------------------------------------
    def pi_old(self, theta_old: Params, inner: Sequence[AdaptationData], post: AdaptationData) -> OldPolicy:
        """The adapted policies at theta_old on the post-adaptation steps: log-probs, means, log-stds (detached)."""
        with torch.no_grad():
            adapted = self.adapt(theta_old, inner, create_graph=False)
            obs, actions, _, _ = flat_steps(post)
            mu, log_std = self.policy.moments(adapted, obs)
            return gaussian_log_prob(mu, log_std, actions).detach(), mu.detach(), log_std.detach()

    def prepare(self, theta_old: Params, inner: Sequence[AdaptationData]) -> Any:
        """Fixed quantities of the inner episodes at theta_old (none for MAML-PPO)."""
        return list(inner)

    def outer_loss(self, theta: Params, prepared: Any, post: AdaptationData, old: OldPolicy) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss minimised at each Adam step, and its parts (detached)."""
        adapted = self.adapt(theta, prepared, create_graph=True)
        surrogate, kl, logp = self.post_adaptation_terms(adapted, post, old)
        return surrogate, {"surrogate": surrogate.detach(), "outer_kl": kl.detach(), "logp": logp.detach()}

    def post_adaptation_terms(self, adapted: Params, post: AdaptationData, old: OldPolicy) -> tuple[Tensor, Tensor, Tensor]:
        """Clipped surrogate (mean over tasks), mean KL(pi_old || pi_adapted) and the log-probs, on D'."""
        old_logp, old_mu, old_log_std = old
        obs, actions, mask, adv = flat_steps(post)
        mu, log_std = self.policy.moments(adapted, obs)
        logp = gaussian_log_prob(mu, log_std, actions)
        surrogate = clipped_surrogate(logp, old_logp, adv, mask, self.s.clip_eps).mean()
        kl = task_mean(gaussian_kl(old_mu, old_log_std, mu, log_std), mask).mean()
        return surrogate, kl, logp

    # ---- the update ---------------------------------------------------------------------------------------
    def meta_update(self, params: Params, inner: Sequence[AdaptationData], post: AdaptationData,
                    generator: torch.Generator | None = None) -> tuple[Params, dict[str, float]]:
        """Several clipped-surrogate Adam steps on one meta-batch (``generator`` unused: nothing is drawn)."""
        theta = {k: v.detach().clone() for k, v in params.items()}
        with torch.no_grad():
            old = self.pi_old(theta, inner, post)
            prepared = self.prepare(theta, inner)
        if self.adam is not None and not adam_state_fits(self.adam, theta):
            raise ValueError(f"algorithm state: Adam moments for {sorted(self.adam['m'])} do not fit the parameters "
                             f"{sorted(theta)}; resume a run only with the config it was started with")
        adam = self.adam if self.adam is not None else adam_init(theta)
        adam = {"step": adam["step"], "m": {k: v.to(theta[k]) for k, v in adam["m"].items()},
                "v": {k: v.to(theta[k]) for k, v in adam["v"].items()}}
        first: dict[str, float] = {}
        grad_norm = 0.0
        for step in range(self.s.outer_steps):
            leaves = {k: v.detach().requires_grad_() for k, v in theta.items()}
            loss, parts = self.outer_loss(leaves, prepared, post, old)
            grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
            if step == 0:
                first = {"loss": loss.item(), **{k: float(v.mean()) for k, v in parts.items() if k != "logp"}}
                grad_norm = float(torch.stack([g.double().pow(2).sum() for g in grads.values()]).sum().sqrt())
            theta, adam = adam_step(theta, grads, adam, self.s.outer_learning_rate)
        finite = all(bool(torch.isfinite(v).all()) for v in theta.values())
        if not finite:  # keep the old parameters and optimiser state rather than write NaNs
            return params, self._stats(first, None, grad_norm, accepted=False)
        self.adam = {"step": adam["step"], "m": {k: v.detach() for k, v in adam["m"].items()},
                     "v": {k: v.detach() for k, v in adam["v"].items()}}
        with torch.no_grad():
            loss, parts = self.outer_loss(theta, prepared, post, old)
        after = {"loss": loss.item(), **{k: float(v.mean()) for k, v in parts.items() if k != "logp"},
                 "clip_fraction": clip_fraction(parts["logp"], old[0], flat_steps(post)[2], self.s.clip_eps)}
        self.after_update(parts)
        new_params = {k: v.detach().clone() for k, v in theta.items()}
        return new_params, self._stats(first, after, grad_norm, accepted=True)

    def after_update(self, parts: dict[str, Tensor]) -> None:
        """Hook for state that follows the update, given the loss's parts at the new parameters (ProMP's KL coefficients)."""

    def _stats(self, first: dict[str, float], after: dict[str, float] | None, grad_norm: float,
               accepted: bool) -> dict[str, float]:
        """The keys the trainer logs for every algorithm, plus this one's under ``algo/``."""
        after = after if after is not None else first
        stats = {
            "surrogate_before": first["surrogate"], "surrogate_after": after["surrogate"],
            "kl_before": first["outer_kl"], "kl_after": after["outer_kl"],
            "surrogate_improvement": first["surrogate"] - after["surrogate"],
            "accepted": 1.0 if accepted else 0.0, "line_search_steps": 0.0, "step_fraction": 1.0 if accepted else 0.0,
            "grad_norm": grad_norm,
            "algo/loss_before": first["loss"], "algo/loss_after": after["loss"],
            "algo/clip_fraction": after.get("clip_fraction", float("nan")),
        }
        for k in ("inner_kl", "inner_kl_coeff"):
            if k in after:
                stats[f"algo/{k}"] = after[k]
        return stats

    # ---- state carried across meta-iterations -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.adam is None:
            return {}
        return {"adam": {"step": int(self.adam["step"]),
                         "m": {k: v.detach().cpu().clone() for k, v in self.adam["m"].items()},
                         "v": {k: v.detach().cpu().clone() for k, v in self.adam["v"].items()}}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        adam = state.get("adam")
        self.adam = None if adam is None else {
            "step": int(adam["step"]), "m": {k: v.clone() for k, v in adam["m"].items()},
            "v": {k: v.clone() for k, v in adam["v"].items()}}
