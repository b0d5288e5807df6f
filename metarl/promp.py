"""ProMP: Proximal Meta-Policy Search (Rothfuss, Lee, Clavera, Asfour & Abbeel, ICLR 2019), Algorithm 1.

    for each meta-iteration (episodes D_i^0..D_i^{K-1}, D'_i sampled as for MAML-TRPO with theta_old):
        pi_old^k = the policy that sampled D_i^k; pi_old = the adapted policy that sampled D'_i   (fixed)
        repeat outer_steps times, without re-sampling:
            theta_i^0 = theta;  theta_i^{k+1} = theta_i^k - alpha grad J^LVC(theta_i^k; D_i^k)
                with J^LVC = -mean_t pi_{theta_i^k}(a|s) / pi_old^k(a|s) * A       (low-variance curvature)
            r = pi_{theta_i^K}(a|s) / pi_old(a|s)                               on D'_i
            J(theta) = mean_i -mean_t min(r A, clip(r, 1 - eps, 1 + eps) A)
                       + mean_k eta_k * mean_i KL(pi_old^k || pi_{theta_i^k})   on D_i^k
            theta <- Adam step on grad_theta J
        if adaptive: eta_k /= 2 when KL_k < target / 1.5, eta_k *= 2 when KL_k > 1.5 target  (KL_k at the new theta)

The inner step is metarl.adaptation's, with its ``lvc`` estimator: at theta_old it adapts exactly as
MAML's REINFORCE step; only its curvature, which the meta-gradient differentiates, differs.  The KL
penalty keeps the pre-update policies (theta_i^k for k < K) close to the ones that collected the inner
episodes, which the LVC estimator's importance weights assume.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from metarl.adaptation import AdaptationData, flat_steps
from metarl.maml_ppo import MAMLPPO, OldPolicy
from metarl.policy import Params, gaussian_kl, gaussian_log_prob
from metarl.surrogates import adapt_kl_coefficient, task_mean

PreUpdate = tuple[list[AdaptationData], list[tuple[Tensor, Tensor]]]  # inner data with sampling log-probs; old moments


class ProMP(MAMLPPO):
    """MAML-PPO's loop with the LVC inner estimator and the KL penalty on the pre-update policies."""

    estimator = "lvc"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kl_coeff: list[float] = [self.s.inner_kl_penalty] * self.s.inner_steps

    def prepare(self, theta_old: Params, inner: Sequence[AdaptationData]) -> PreUpdate:
        """The sampling policies of the inner episodes: their log-probs (LVC's denominators) and moments (the KL's)."""
        with torch.no_grad():
            path = self.adaptation_path(theta_old, inner, create_graph=False)
            data, moments = [], []
            for k, d in enumerate(inner):
                obs, actions, _, _ = flat_steps(d)
                mu, log_std = self.policy.moments({n: v.detach() for n, v in path[k].items()}, obs)
                data.append(AdaptationData(d.batch, d.advantages, gaussian_log_prob(mu, log_std, actions)))
                moments.append((mu, log_std))
        return data, moments

    def inner_kls(self, path: Sequence[Params], prepared: PreUpdate) -> Tensor:
        """``[K]``: mean over tasks of KL(pi_old^k || pi_{theta_i^k}) on D_i^k, for each inner step k."""
        data, moments = prepared
        kls = []
        for k, (d, (mu_old, log_std_old)) in enumerate(zip(data, moments)):
            obs, _, mask, _ = flat_steps(d)
            mu, log_std = self.policy.moments(path[k], obs)
            kls.append(task_mean(gaussian_kl(mu_old, log_std_old, mu, log_std), mask).mean())
        return torch.stack(kls)

    def outer_loss(self, theta: Params, prepared: PreUpdate, post: AdaptationData, old: OldPolicy) -> tuple[Tensor, dict[str, Tensor]]:
        path = self.adaptation_path(theta, prepared[0], create_graph=True)
        surrogate, outer_kl, logp = self.post_adaptation_terms(path[-1], post, old)
        kls = self.inner_kls(path, prepared)
        coeff = torch.tensor(self.kl_coeff, dtype=kls.dtype, device=kls.device)
        loss = surrogate + (coeff * kls).mean()
        return loss, {"surrogate": surrogate.detach(), "outer_kl": outer_kl.detach(), "logp": logp.detach(),
                      "inner_kl": kls.detach(), "inner_kl_coeff": coeff}

    def after_update(self, parts: dict[str, Tensor]) -> None:
        if self.s.adaptive_inner_kl_penalty:
            kls = parts["inner_kl"].tolist()
            self.kl_coeff = [adapt_kl_coefficient(c, kl, self.s.target_inner_kl) for c, kl in zip(self.kl_coeff, kls)]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "inner_kl_coeff": [float(c) for c in self.kl_coeff]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        coeff = state.get("inner_kl_coeff")
        if coeff is not None:
            if len(coeff) != self.s.inner_steps:
                raise ValueError(f"algorithm state: {len(coeff)} KL coefficients for {self.s.inner_steps} inner steps")
            self.kl_coeff = [float(c) for c in coeff]
        else:
            self.kl_coeff = [self.s.inner_kl_penalty] * self.s.inner_steps
