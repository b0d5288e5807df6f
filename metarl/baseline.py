"""The linear feature baseline of the paper, refit per task on that task's batch, all tasks at once."""

from __future__ import annotations

import torch
from torch import Tensor


class LinearFeatureBaseline:
    """``V(s_t) = w . [o, o^2, t/100, (t/100)^2, (t/100)^3, 1]`` with ``o`` clipped to ``[-10, 10]``.

    One ridge regression per task on the discounted returns, solved as a batch of ``[T, d, d]`` systems
    in float64 (Cholesky).  Steps that did not happen are excluded.  If a solve is not finite the ridge is
    multiplied by 10, up to ``max_tries`` times, as in the original implementation.
    """

    def __init__(self, reg_coeff: float = 1e-5, max_tries: int = 5) -> None:
        if reg_coeff <= 0:
            raise ValueError(f"reg_coeff: expected a positive ridge coefficient, got {reg_coeff}")
        self.reg_coeff = float(reg_coeff)
        self.max_tries = int(max_tries)
        # weights [d] fit on the last task processed, for fit_predict_previous (None: not fit yet, predicts 0)
        self.previous: Tensor | None = None

    @staticmethod
    def features(obs: Tensor) -> Tensor:
        """Features ``[T, E, H, 2 * obs_dim + 4]`` of observations ``[T, E, H, obs_dim]``.

        Written block by block into one float64 tensor, without a temporary per block and a concatenation
        (clipped in the observations' dtype, which gives the same values: the bounds are exact in both); for
        AntVel's released batch (40 tasks x 20 episodes x 200 steps, 125 observations) the tensor is 325 MB,
        for AntDir's (40 episodes) 650 MB.  Not differentiable: ``obs`` is taken detached."""
        obs = obs.detach()
        n, horizon = obs.shape[-1], obs.shape[-2]
        out = torch.empty(*obs.shape[:-1], 2 * n + 4, dtype=torch.float64, device=obs.device)
        o = out[..., :n]
        o.copy_(obs.clamp(-10.0, 10.0))
        torch.mul(o, o, out=out[..., n:2 * n])
        t = (torch.arange(horizon, dtype=torch.float64, device=obs.device) / 100.0).view(-1, 1)
        out[..., 2 * n:] = torch.cat([t, t * t, t * t * t, torch.ones_like(t)], dim=-1)
        return out

    @staticmethod
    def _masked_features(obs: Tensor, mask: Tensor) -> Tensor:
        """:meth:`features` times the mask (1 on steps that happened, 0 elsewhere), in place.

        The fit needs the masked rows, and a prediction from them differs from one from the unmasked rows only
        on the masked steps, which the prediction multiplies by 0 anyway."""
        feats = LinearFeatureBaseline.features(obs)
        if not bool((mask == 1).all()):
            feats.mul_(mask.to(torch.float64).unsqueeze(-1))
        return feats

    def fit_predict(self, obs: Tensor, returns: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Fit one baseline per task and return ``(values [T, E, H], weights [T, d])``; ``mask`` is 1 on the
        steps that happened and 0 elsewhere (values there are 0)."""
        feats = self._masked_features(obs, mask)
        weights = self._fit(feats, returns, mask)
        values = (feats @ weights[:, None, :, None]).squeeze(-1) * mask.to(torch.float64)
        return values.to(returns.dtype), weights

    def _fit(self, feats: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
        """The ridge regression of each task's returns on its masked features ``[T, E, H, d]``: weights ``[T, d]``."""
        num_tasks, d = feats.shape[0], feats.shape[-1]
        f = feats.reshape(num_tasks, -1, d)
        r = returns.to(torch.float64).reshape(num_tasks, -1, 1) * mask.to(torch.float64).reshape(num_tasks, -1, 1)
        gram = f.transpose(1, 2) @ f
        rhs = f.transpose(1, 2) @ r
        eye = torch.eye(d, dtype=torch.float64, device=feats.device)
        weights = torch.full((num_tasks, d, 1), float("nan"), dtype=torch.float64, device=feats.device)
        todo = torch.ones(num_tasks, dtype=torch.bool, device=feats.device)
        reg = self.reg_coeff
        for _ in range(self.max_tries):
            # gram + reg*I is symmetric positive definite, so Cholesky solves it; it is also what keeps large
            # batches of wide systems (the ant's 254 features) working: torch's batched LU solve on CPU fails
            # on them with more than one thread (MKL rejects its own pivots), Cholesky does not
            factor, info = torch.linalg.cholesky_ex(gram[todo] + reg * eye)
            sol = torch.cholesky_solve(rhs[todo], factor)
            sol[info != 0] = float("nan")  # not positive definite even with this ridge: retry with a larger one
            weights[todo] = sol
            todo = ~torch.isfinite(weights).all(dim=(1, 2))
            if not todo.any():
                break
            reg *= 10
        return torch.nan_to_num(weights, nan=0.0, posinf=0.0, neginf=0.0).squeeze(-1)

    def fit_predict_previous(self, obs: Tensor, returns: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Values of task i from the baseline fit on the batch processed just before it; then fit task i.

        Task 0 uses :attr:`previous` (the last task of the previous call; zero weights before any fit, as
        an unfitted baseline predicts 0), task i > 0 the fit on task i - 1, and :attr:`previous` becomes
        the fit on the last task.  This is the order in which rllab's original sampler predicted and refit
        its one baseline, task after task (the MAML authors' repository moved the fit before the prediction
        in February 2017, which is ``fit_predict``).  Returns ``(values [T, E, H], weights [T, d])``.
        """
        feats = self._masked_features(obs, mask)
        weights = self._fit(feats, returns, mask)
        first = torch.zeros_like(weights[:1]) if self.previous is None else self.previous.to(weights).reshape(1, -1)
        used = torch.cat([first, weights[:-1]], dim=0)  # [T, d]
        values = (feats @ used[:, None, :, None]).squeeze(-1) * mask.to(torch.float64)
        self.previous = weights[-1].detach().clone()
        return values.to(returns.dtype), weights


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """``1 - Var[R - V] / Var[R]`` over the steps that happened (1 is perfect, <= 0 is no better than a constant)."""
    m = mask.bool()
    r, v = returns[m].to(torch.float64), values[m].to(torch.float64)
    var = r.var(unbiased=False)
    if r.numel() == 0 or var <= 0:
        return float("nan")
    return float(1.0 - (r - v).var(unbiased=False) / var)
