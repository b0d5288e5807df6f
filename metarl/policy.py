"""Gaussian MLP policy with functional, optionally task-batched parameters.

Parameters are a plain ``{name: tensor}`` dict, so adaptation never mutates a module: the inner loop
builds new dicts.  A dict whose tensors carry a leading task dimension ``[T, ...]`` describes T policies;
one call of :meth:`GaussianMLPPolicy.distribution` evaluates all of them with batched matrix products.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

Params = dict[str, Tensor]


class GaussianMLPPolicy:
    """``a ~ N(mu(s), diag(exp(log_std)^2))`` with ``mu`` an MLP of ReLU layers, ``log_std`` state-free.

    Args:
        obs_dim: observation length.
        act_dim: action length.
        hidden_sizes: widths of the hidden layers (the paper: 100, 100).
        init_std: initial standard deviation of every action dimension (the paper: 1.0).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (100, 100), init_std: float = 1.0):
        if init_std <= 0:
            raise ValueError(f"init_std: expected a positive standard deviation, got {init_std}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.init_std = float(init_std)
        self.sizes = (self.obs_dim, *self.hidden_sizes, self.act_dim)
        self.num_layers = len(self.sizes) - 1

    def init_params(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Params:
        """Glorot-uniform weights, zero biases, ``log_std = log(init_std)`` (as the original rllab policy)."""
        params: Params = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            w = (torch.rand(fan_in, fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            params[f"w{i}"] = w.to(dtype)
            params[f"b{i}"] = torch.zeros(fan_out, dtype=dtype)
        params["log_std"] = torch.full((self.act_dim,), float(torch.log(torch.tensor(self.init_std))), dtype=dtype)
        return params

    def mean(self, params: Params, obs: Tensor) -> Tensor:
        """Action means for ``obs [T, N, obs_dim]`` under task-batched params, or ``[..., obs_dim]`` under shared ones."""
        batched = params["w0"].dim() == 3
        h = obs
        for i in range(self.num_layers):
            w, b = params[f"w{i}"], params[f"b{i}"]
            h = torch.baddbmm(b.unsqueeze(1), h, w) if batched else torch.addmm(b, h.reshape(-1, h.shape[-1]), w).reshape(*h.shape[:-1], w.shape[-1])
            if i < self.num_layers - 1:
                h = torch.relu(h)
        return h

    def log_std(self, params: Params, like: Tensor) -> Tensor:
        log_std = params["log_std"]
        if log_std.dim() == 2:  # [T, act] against [T, N, act]
            log_std = log_std.unsqueeze(1)
        return log_std.expand_as(like)

    def log_prob(self, params: Params, obs: Tensor, actions: Tensor) -> Tensor:
        """Log-density of ``actions`` (raw Gaussian samples, before any clipping) under the policy."""
        return gaussian_log_prob(*self.moments(params, obs), actions)

    def kl(self, old: tuple[Tensor, Tensor], params: Params, obs: Tensor) -> Tensor:
        """``KL(old || new)`` per state; ``old`` is ``(mean, log_std)`` evaluated earlier (detached)."""
        return gaussian_kl(*old, *self.moments(params, obs))

    def moments(self, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
        mu = self.mean(params, obs)
        return mu, self.log_std(params, mu)

    def sample(self, params: Params, obs: Tensor, noise: Tensor) -> Tensor:
        """``mu + std * noise`` for given standard-normal ``noise`` (drawn by the caller, for reproducibility)."""
        mu = self.mean(params, obs)
        return mu + torch.exp(self.log_std(params, mu)) * noise

    def sampling_step(self, params: Params, noise: Tensor) -> Callable[[int, Tensor, Tensor], Tensor]:
        """The policy calls of one sampling pass: ``step(t, obs, out)`` writes ``sample(params, obs, noise[t])``
        into ``out [T, E, act]`` and returns it.

        ``params`` are task-batched (``w0 [T, in, out]``), ``noise [H, T, E, act]`` is the pass's standard-normal
        noise.  The actions are :meth:`sample`'s bit for bit (the same products, in the same order, and the
        same elementwise operations); the set-up is taken once per pass instead of at every step: ``exp(log_std)``
        times the whole noise block in one multiply, the biases' shapes, and the hidden layers' outputs, which
        are written into buffers kept for the pass, as the last layer's is written into ``out`` (with the
        ReLUs and the noise applied in place).  A subclass with its own ``mean``, ``log_std`` or ``sample`` gets
        its ``sample`` called at every step, its result copied into ``out``."""
        if not keeps_methods(self, "mean", "log_std", "sample"):
            def call(t: int, obs: Tensor, out: Tensor) -> Tensor:
                return out.copy_(self.sample(params, obs, noise[t]))

            return call
        weights = [params[f"w{i}"] for i in range(self.num_layers)]
        if weights[0].dim() != 3:
            raise ValueError(f"sampling_step: expected task-batched parameters, w0 of shape [T, in, out], got "
                             f"{list(weights[0].shape)}; expand shared ones with expand_params(params, T)")
        biases = [params[f"b{i}"].unsqueeze(1) for i in range(self.num_layers)]
        log_std = params["log_std"]
        std = torch.exp(log_std.unsqueeze(1) if log_std.dim() == 2 else log_std)  # [T, 1, act] or a shared [act]
        scaled = std * noise  # [H, T, E, act]: per element the product sample() takes at step t
        T, E = noise.shape[1], noise.shape[2]
        hidden = [torch.empty(T, E, w.shape[-1], dtype=w.dtype, device=w.device) for w in weights[:-1]]

        def step(t: int, obs: Tensor, out: Tensor) -> Tensor:
            h = obs
            for w, b, buf in zip(weights, biases, hidden):
                h = torch.baddbmm(b, h, w, out=buf).relu_()
            return torch.baddbmm(biases[-1], h, weights[-1], out=out).add_(scaled[t])

        return step


def keeps_methods(policy: GaussianMLPPolicy, *names: str) -> bool:
    """Whether ``policy``'s class uses GaussianMLPPolicy's own methods ``names`` (a subclass overrides none)."""
    return all(getattr(type(policy), name) is getattr(GaussianMLPPolicy, name) for name in names)


_LOG_2PI = float(torch.log(torch.tensor(2 * torch.pi, dtype=torch.float64)))


def gaussian_log_prob(mu: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Log-density of ``actions`` under diagonal Gaussians, summed over the last dimension."""
    z = (actions - mu) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


def gaussian_kl(mu_old: Tensor, log_std_old: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    """``KL(N(mu_old, std_old) || N(mu, std))`` of diagonal Gaussians, summed over the last dimension."""
    var_ratio = torch.exp(2 * (log_std_old - log_std))
    diff = (mu - mu_old) * torch.exp(-log_std)
    return (0.5 * (var_ratio + diff.pow(2) - 1) + log_std - log_std_old).sum(-1)


def expand_params(params: Params, num_tasks: int) -> Params:
    """Shared parameters viewed as ``num_tasks`` identical task-batched copies ``[T, ...]``."""
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}


def flat(params: Params) -> Tensor:
    return torch.cat([v.reshape(-1) for v in params.values()])


def unflat(vector: Tensor, like: Params) -> Params:
    out, i = {}, 0
    for k, v in like.items():
        n = v.numel()
        out[k] = vector[i : i + n].view_as(v)
        i += n
    return out
