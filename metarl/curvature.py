"""Exact Hessian-vector products of MAML's mean KL, written out for the Gaussian ReLU MLP.

At the current theta the Hessian of the mean post-adaptation KL is ``J^T M J`` (see
:meth:`metarl.maml.MAMLTRPO.meta_gradients`).  The adapted parameters are ``theta' = theta - alpha grad L(theta)``
per task, so ``d theta' / d theta = I - alpha H_L`` with ``H_L`` the (symmetric) Hessian of the inner loss, and

    J v    = P (v - alpha H_L v)             P: the tangent of the MLP's outputs at theta' on the post-adaptation steps
    J^T w  = sum_tasks (u - alpha H_L u),    u = P^T w

``H_L d`` is the directional derivative of the inner gradient (Pearlmutter's R-operator): one tangent pass
forward through the MLP and one backward.  Everything these passes need that does not depend on the
direction (activations, ReLU masks, the inner loss's back-propagated errors, the Gaussian's coefficients)
is computed once per meta-update and reused by every product of the conjugate gradient, so a product is
matrix products plus one mask multiply per hidden layer and pass, where differentiating autograd's graph
again re-derives all of it each time.  Several inner steps chain the same way; first order drops ``H_L``.

Checked against the autograd products in float64 (``tests/metarl/test_curvature.py``), and through them
against explicit Hessians and finite differences (``tests/metarl/test_meta_gradients.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from metarl.adaptation import AdaptationData
from metarl.policy import GaussianMLPPolicy, Params, keeps_methods, unflat


@dataclass
class Pass:
    """One forward pass of the MLP on ``[T, N, obs]`` steps, kept for tangent and adjoint passes."""

    params: Params  # shared ``[...]`` or task-batched ``[T, ...]``
    cols: list[Tensor]  # the weights ``w0, w1, ...`` stored column-major (:func:`columns`), for ``h @ w``
    inputs: list[Tensor]  # inputs of each layer, the observations then the hidden activations, and a column of ones ``[T, N, n + 1]``
    masks: list[Tensor]  # ReLU masks of the hidden layers (1.0 where active), in the dtype of the data
    mu: Tensor  # ``[T, N, act]``


@dataclass
class InnerStep:
    """One inner policy-gradient step: its forward pass and what ``H_L d`` needs, all fixed in ``d``."""

    trace: Pass
    alpha: float
    deltas: list[Tensor]  # dL/dz of every layer's pre-activation, ``[T, N, n]``; the last is dL/dmu
    q: Tensor  # ``c exp(-2 log_std)`` ``[T, N, act]``, c the loss weight of each step (advantage x mask / n)
    s2: Tensor  # ``sum_N c r^2`` ``[T, act]``, r the standardised action residual


def supports(policy: GaussianMLPPolicy) -> bool:
    """Whether the written-out products apply: the policy's forward pass is GaussianMLPPolicy's (ReLU MLP)."""
    return keeps_methods(policy, "mean", "log_std", "moments")


def _weights(params: Params, layers: int) -> list[tuple[Tensor, Tensor]]:
    return [(params[f"w{i}"], params[f"b{i}"]) for i in range(layers)]


# Biases ride in the matrix products.  Each layer's input is kept with a last column of ones, ``[x | 1]``, so
# ``[x | 1] @ [w; b]`` is the layer's pre-activation with its bias, and ``[x | 1]^T delta`` stacks the weight
# gradient over the bias gradient (the sum of ``delta`` over the steps).  A separate bias add and sum over
# steps each read or wrote a ``[T, N, m]`` tensor: on HalfCheetahVel's shapes, 2-core Xeon, operands not in
# cache, the forward product with its bias took 17.9 ms against 23.2 (hidden layer) and 8.2 against 14.3 (first
# layer), the weight gradient with the bias gradient 22.7 against 26.0 and 7.0 against 10.7.

def _with_ones(x: Tensor) -> Tensor:
    """``[x | 1]``: ``x [..., n]`` with a last column of ones ``[..., n + 1]``."""
    out = x.new_empty(*x.shape[:-1], x.shape[-1] + 1)
    out[..., :-1] = x
    out[..., -1] = 1
    return out


def _stacked(w: Tensor, b: Tensor) -> Tensor:
    """``[w; b]``: a layer's weights ``[..., n, m]`` over its bias ``[..., m]``, column-major (:func:`columns`)."""
    return columns(torch.cat([w, b.unsqueeze(-2)], dim=-2))


def _split(g: Tensor) -> tuple[Tensor, Tensor]:
    """The weight and bias parts of ``[x | 1]^T delta`` ``[..., n + 1, m]``."""
    return g[..., :-1, :], g[..., -1, :]


# Layouts.  On CPU (MKL), the action layer's thin products run far below the rate of the wide ones unless
# the narrow factor comes first or is stored column-major: on the released Ant shapes ``a @ w`` with
# ``w [100, 8]`` took 4.8 ms column-major against 9.1 ms row-major, ``a^T b`` with ``b`` 8 wide 5.0 ms as
# ``(b^T a)^T`` against 17.3 ms, and summed over tasks 5.0 ms per task then summed against 46 ms as one long
# product (``python -m experiments.bench_meta --layouts``); the wide products are the same either way.
# The values are the same products; only the order of float additions inside the kernels may differ.

def columns(w: Tensor) -> Tensor:
    """``w`` stored column-major (same values, a transposed view of a contiguous copy), for right factors."""
    if w.dim() < 2 or (w.stride(-2) == 1 and w.stride(-1) == w.shape[-2]):
        return w  # already column-major
    return w.transpose(-1, -2).contiguous().transpose(-1, -2)


def _matmul(a: Tensor, w: Tensor) -> Tensor:
    """``a @ w``; ``a [T, N, n]``, ``w [n, m]`` (one product over every step) or ``[T, n, m]``, taken column-major."""
    return torch.matmul(a, columns(w))


def _matmul_acc_(out: Tensor, a: Tensor, w: Tensor) -> Tensor:
    """``out += a @ w`` in place; ``a [T, N, n]``, ``w [n, m]`` (one matrix product over all steps) or ``[T, n, m]``."""
    w = columns(w)
    if w.dim() == 2:
        out.view(-1, out.shape[-1]).addmm_(a.reshape(-1, a.shape[-1]), w)
    else:
        out.baddbmm_(a, w)
    return out


def _outer(a: Tensor, b: Tensor, reduce: bool) -> Tensor:
    """``a^T b`` over the steps: per task ``[T, n, m]``, or summed over tasks too ``[n, m]``.

    Computed per task and then summed (faster than one long product over every task's steps), as
    ``(b^T a)^T`` when ``b`` is the narrower factor."""
    out = torch.bmm(b.transpose(1, 2), a).transpose(1, 2) if b.shape[-1] < a.shape[-1] else torch.bmm(a.transpose(1, 2), b)
    return out.sum(0) if reduce else out


def _outer_acc_(out: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``out += a^T b`` in place, as :func:`_outer`."""
    return out.add_(_outer(a, b, out.dim() == 2))


@torch.no_grad()  # the products write into buffers (``out=``), which autograd does not record
def forward_pass(params: Params, obs: Tensor, layers: int) -> Pass:
    """The MLP's forward pass (as ``GaussianMLPPolicy.mean``), keeping layer inputs and ReLU masks (no grad).

    Each hidden layer's product is written straight into the next layer's ``[h | 1]``, and its mask is the sign of
    the activation after the ReLU (1.0 where active, 0.0 elsewhere): on HalfCheetahVel's ``[40, 2000, 100]``
    these took 14.3 ms against 16.7 for the product and then a copy into ``[h | 1]``, and 3.1 ms against 11.6
    for ``(h > 0).to(dtype)``, same values (2-core Xeon, freed memory kept as the trainer keeps it, medians of 6
    alternating rounds in one run; ``bench_meta --against`` times the update)."""
    inputs = [_with_ones(obs)]
    masks: list[Tensor] = []
    cols: list[Tensor] = []
    for i, (w, b) in enumerate(_weights(params, layers)):
        cols.append(columns(w))
        if i == layers - 1:
            return Pass(params, cols, inputs, masks, torch.matmul(inputs[-1], _stacked(w, b)))
        x = inputs[-1]
        out = x.new_empty(*x.shape[:-1], w.shape[-1] + 1)
        h = torch.matmul(x, _stacked(w, b), out=out[..., :-1]).relu_()
        out[..., -1] = 1
        masks.append(torch.sign(h))
        inputs.append(out)
    raise AssertionError("unreachable")


def tangent(trace: Pass, d: Params, layers: int) -> tuple[Tensor, list[Tensor]]:
    """Directional derivative of the means in the parameters along ``d``; also each hidden layer's ``dh``."""
    dh: Tensor | None = None
    dhs: list[Tensor] = []
    for i in range(layers):
        dz = torch.matmul(trace.inputs[i], _stacked(d[f"w{i}"], d[f"b{i}"]))
        if dh is not None:
            _matmul_acc_(dz, dh, trace.cols[i])
        if i < layers - 1:
            dh = dz.mul_(trace.masks[i])
            dhs.append(dh)
        else:
            return dz, dhs
    raise AssertionError("unreachable")


def backprop(trace: Pass, grad_mu: Tensor, layers: int, reduce: bool) -> Params:
    """Gradients of ``sum(grad_mu * mu)`` in the weights and biases (per task, or summed over tasks)."""
    out: Params = {}
    delta = grad_mu
    for i in reversed(range(layers)):
        w = trace.params[f"w{i}"]
        out[f"w{i}"], out[f"b{i}"] = _split(_outer(trace.inputs[i], delta, reduce))
        if i > 0:
            delta = _matmul(delta, w.transpose(-1, -2)).mul_(trace.masks[i - 1])
    return out


def inner_step(policy: GaussianMLPPolicy, params: Params, data: AdaptationData, alpha: float) -> tuple[InnerStep, Params]:
    """The inner step's fixed quantities at ``params`` and the adapted parameters ``params - alpha grad L``."""
    layers = policy.num_layers
    b = data.batch
    T = b.num_tasks
    obs = b.obs.reshape(T, -1, b.obs.shape[-1])
    actions = b.actions.reshape(T, -1, b.actions.shape[-1])
    mask = b.mask.reshape(T, -1)
    c = (data.advantages.reshape(T, -1) * mask / mask.sum(-1, keepdim=True).clamp(min=1)).unsqueeze(-1)
    trace = forward_pass(params, obs, layers)
    log_std = params["log_std"]
    log_std = log_std.unsqueeze(-2) if log_std.dim() == 2 else log_std
    inv_var = torch.exp(-2 * log_std)
    resid = actions - trace.mu
    q = c * inv_var
    grad_mu = -q * resid  # dL/dmu of L = -sum_t c_t log pi(a_t | s_t)
    s2 = (q * resid * resid).sum(1)
    grads: Params = {}
    deltas = [grad_mu]
    delta = grad_mu
    for i in reversed(range(layers)):
        w = params[f"w{i}"]
        grads[f"w{i}"], grads[f"b{i}"] = _split(_outer(trace.inputs[i], delta, reduce=False))
        if i > 0:
            delta = _matmul(delta, w.transpose(-1, -2)).mul_(trace.masks[i - 1])
            deltas.insert(0, delta)
    grads["log_std"] = c.sum(1) - s2  # -sum_t c_t (r_t^2 - 1)
    adapted = {k: params[k] - alpha * grads[k] for k in params}
    return InnerStep(trace, alpha, deltas, q, s2), adapted


def hessian_product(step: InnerStep, d: Params, layers: int, reduce: bool) -> Params:
    """``H_L d``: the directional derivative of the inner gradient along ``d`` (shared or per task)."""
    trace = step.trace
    dmu, dhs = tangent(trace, d, layers)
    dlog_std = d["log_std"]  # [act] or [T, act]
    dlog_std_steps = dlog_std.unsqueeze(-2) if dlog_std.dim() == 2 else dlog_std
    grad_mu = step.deltas[-1]
    g_log_std = (-2 * grad_mu * dmu).sum(1) + 2 * step.s2 * dlog_std  # [T, act]
    out: Params = {"log_std": g_log_std.sum(0) if reduce else g_log_std}
    ddelta = dmu.mul_(step.q).sub_(2 * grad_mu * dlog_std_steps)  # d(dL/dmu) = q dmu - 2 (dL/dmu) dlog_std
    for i in reversed(range(layers)):
        w = trace.params[f"w{i}"]
        dw = d[f"w{i}"]
        gw, gb = _split(_outer(trace.inputs[i], ddelta, reduce))
        if i > 0:
            _outer_acc_(gw, dhs[i - 1], step.deltas[i])
        out[f"w{i}"], out[f"b{i}"] = gw, gb
        if i > 0:
            nxt = _matmul(ddelta, w.transpose(-1, -2))
            _matmul_acc_(nxt, step.deltas[i], dw.transpose(-1, -2))
            ddelta = nxt.mul_(trace.masks[i - 1])
    return out


class Linearization:
    """The adapted policies at ``theta`` (shared parameters) and everything their derivatives in theta need.

    Built once per meta-update: each inner step's :class:`InnerStep` and the forward pass of the adapted
    parameters on the post-adaptation states ``post_obs [T, N, obs]``.  :meth:`pullback` maps gradients in
    the adapted parameters to the gradient in theta (``J_adapt^T``), :meth:`push` directions in theta to
    directions of the adapted parameters (``J_adapt``).
    """

    def __init__(self, policy: GaussianMLPPolicy, theta: Params, inner: Sequence[AdaptationData],
                 step_sizes: Sequence[float], first_order: bool, post_obs: Tensor) -> None:
        if theta["w0"].dim() != 2:
            raise ValueError("theta: expected shared meta-parameters (no task dimension)")
        self.layers = policy.num_layers
        self.names = list(theta)
        self.theta = theta
        self.num_tasks = post_obs.shape[0]
        with torch.no_grad():
            params = self._per_task({k: v.detach() for k, v in theta.items()})
            steps = []
            for data, alpha in zip(inner, step_sizes):
                step, params = inner_step(policy, params, data, float(alpha))
                steps.append(step)
            self.adapted = params
            self.post = forward_pass(params, post_obs, self.layers)
        self.chain = [] if first_order else steps  # first order: d adapted / d theta = I

    def select(self, tasks: Tensor) -> "Linearization":
        """This linearization restricted to the tasks ``tasks`` (indices into the task dimension), by slicing what
        it holds: each task's tensors are its own, so the result is what building it from those tasks' episodes
        computes, without running their inner steps and forward passes again."""
        index = tasks.to(self.post.mu.device)

        def pick(x: Tensor) -> Tensor:
            return x.index_select(0, index)

        def pick_pass(p: Pass) -> Pass:
            params = {k: pick(v) for k, v in p.params.items()}
            return Pass(params, [columns(params[f"w{i}"]) for i in range(len(p.cols))], [pick(x) for x in p.inputs],
                        [pick(m) for m in p.masks], pick(p.mu))

        out = copy.copy(self)
        out.num_tasks = int(index.numel())
        out.adapted = {k: pick(v) for k, v in self.adapted.items()}
        out.post = pick_pass(self.post)
        out.chain = [InnerStep(pick_pass(s.trace), s.alpha, [pick(d) for d in s.deltas], pick(s.q), pick(s.s2))
                     for s in self.chain]
        return out

    def _per_task(self, params: Params) -> Params:
        """Shared tensors copied to every task ``[T, ...]``: batched matrix products run faster on CPU than one
        long product over all tasks' steps (measured, ``experiments/bench_meta.py``), and the copies are small."""
        return {k: v.expand(self.num_tasks, *v.shape).contiguous() if v.dim() == self.theta[k].dim() else v
                for k, v in params.items()}

    def push(self, d: Params) -> Params:
        """``J_adapt d``: the change of the adapted parameters along ``d``, per task ``[T, ...]``."""
        d = self._per_task(d)
        for step in self.chain:
            h = hessian_product(step, d, self.layers, reduce=False)
            d = {k: d[k] - step.alpha * h[k] for k in self.names}
        return d

    def pullback(self, u: Params) -> Tensor:
        """``J_adapt^T u`` for per-task gradients ``u [T, ...]`` in the adapted parameters, flat in theta's order."""
        for k in reversed(range(len(self.chain))):  # the first inner step also sums over tasks
            h = hessian_product(self.chain[k], u, self.layers, reduce=k == 0)
            u = {n: (u[n].sum(0) if k == 0 else u[n]) - self.chain[k].alpha * h[n] for n in self.names}
        if not self.chain:
            u = {n: u[n].sum(0) for n in self.names}
        return torch.cat([u[n].reshape(-1) for n in self.names])

    def gradient(self, grad_mu: Tensor, grad_log_std: Tensor) -> Tensor:
        """Gradient in theta of a loss with gradients ``grad_mu [T, N, act]`` in the post-adaptation means and
        ``grad_log_std [T, act]`` in the adapted log stds."""
        with torch.no_grad():
            u = backprop(self.post, grad_mu, self.layers, reduce=False)
            u["log_std"] = grad_log_std
            return self.pullback(u)

    def kl_hvp(self, weights: Tensor, old_log_std: Tensor) -> Callable[[Tensor], Tensor]:
        """``v -> J^T M J v`` for the mean KL; ``weights [T, N]`` its weight of each post-adaptation step,
        ``old_log_std [T, N, act]`` the old policies' log stds."""
        with torch.no_grad():
            m_mu = weights.unsqueeze(-1) * torch.exp(-2 * old_log_std)  # [T, N, act]
            m_log_std = 2.0 * weights.sum(-1, keepdim=True)  # [T, 1]

        def hvp(v: Tensor) -> Tensor:
            with torch.no_grad():
                d = self.push(unflat(v, self.theta))
                jv_mu, _ = tangent(self.post, d, self.layers)
                u = backprop(self.post, jv_mu.mul_(m_mu), self.layers, reduce=False)
                u["log_std"] = m_log_std * d["log_std"]
                return self.pullback(u)

        return hvp


def kl_hvp(policy: GaussianMLPPolicy, theta: Params, inner: Sequence[AdaptationData], step_sizes: Sequence[float],
           first_order: bool, post_obs: Tensor, weights: Tensor, old_log_std: Tensor) -> Callable[[Tensor], Tensor]:
    """``v -> J^T M J v`` for the mean KL of the adapted policies at ``theta`` (see :class:`Linearization`)."""
    return Linearization(policy, theta, inner, step_sizes, first_order, post_obs).kl_hvp(weights, old_log_std)
