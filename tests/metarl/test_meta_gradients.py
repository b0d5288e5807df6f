"""Exact second-order derivatives through the inner step, checked in float64 against independent references."""

import pytest
import torch

from metarl.adaptation import adapt, policy_gradient_loss
from metarl.policy import flat, unflat

from .helpers import tiny_problem


def reference_meta_kl(policy, maml, params, inner, post):
    """The mean post-adaptation KL as a pure function of flat theta, written with torch.func (independent of adapt())."""
    alpha = maml.s.inner_step_size
    d = inner[0]
    T = d.batch.num_tasks
    obs_in = d.batch.obs.reshape(T, -1, 3)
    act_in = d.batch.actions.reshape(T, -1, 2)
    m_in = d.batch.mask.reshape(T, -1)
    adv_in = d.advantages.reshape(T, -1)
    obs = post.batch.obs.reshape(T, -1, 3)
    m = post.batch.mask.reshape(T, -1)

    def task_loss(p, i):
        logp = policy.log_prob(p, obs_in[i], act_in[i])
        return -(logp * adv_in[i] * m_in[i]).sum() / m_in[i].sum()

    def adapted(theta_flat):
        p = unflat(theta_flat, params)
        return [{k: p[k] - alpha * g for k, g in torch.func.grad(task_loss)(p, i).items()} for i in range(T)]

    old = [{k: v.detach() for k, v in a.items()} for a in adapted(flat(params))]

    def kl(theta_flat):
        total = 0.0
        for i, a in enumerate(adapted(theta_flat)):
            mu_o, ls_o = policy.moments(old[i], obs[i])
            per_step = policy.kl((mu_o, ls_o), a, obs[i])
            total = total + (per_step * m[i]).sum() / m[i].sum()
        return total / T

    return kl


def at_theta(maml, params, inner, post, old=None):
    """``(old, kl, meta-gradient, hvp)`` of metarl's meta-update at ``params``."""
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post) if old is None else old
    _, kl, g, hvp = maml.meta_gradients(theta, inner, post, old)
    return old, kl, g, hvp


def test_kl_hvp_matches_explicit_hessian_and_finite_differences():
    policy, params, maml, inner, post = tiny_problem()
    old, kl, _, hvp = at_theta(maml, params, inner, post)
    assert abs(kl.item()) < 1e-12  # at theta the adapted policies are the old ones
    f = reference_meta_kl(policy, maml, params, inner, post)
    H = torch.func.hessian(f)(flat(params))
    n = H.shape[0]
    assert torch.allclose(H, H.T, atol=1e-10)
    def kl_grad_at(x):
        th = {k: t.clone().requires_grad_() for k, t in unflat(x, params).items()}
        _, k_ = maml.objective(th, inner, post, old, create_graph=True)
        return flat(dict(zip(th, torch.autograd.grad(k_, list(th.values())))))

    g = torch.Generator().manual_seed(7)
    eps = 1e-5
    for _ in range(3):
        v = torch.randn(n, generator=g, dtype=torch.float64)
        torch.testing.assert_close(hvp(v), H @ v, rtol=1e-7, atol=1e-10)
        # central differences of our own exact KL gradient
        fd = (kl_grad_at(flat(params) + eps * v) - kl_grad_at(flat(params) - eps * v)) / (2 * eps)
        torch.testing.assert_close(hvp(v), fd, rtol=1e-5, atol=1e-8)


def surrogate_fn(maml, params, inner, post, old):
    def f(x):
        s, _ = maml.objective(unflat(x, params), inner, post, old, create_graph=True)
        return s

    return f


def test_meta_gradient_through_inner_step_matches_finite_differences():
    policy, params, maml, inner, post = tiny_problem()
    old, _, g, _ = at_theta(maml, params, inner, post)
    f = surrogate_fn(maml, params, inner, post, old)
    x0 = flat(params)
    gen = torch.Generator().manual_seed(3)
    for _ in range(4):
        v = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        eps = 1e-6
        fd = (f(x0 + eps * v) - f(x0 - eps * v)).item() / (2 * eps)
        assert (g @ v).item() == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_first_order_drops_the_second_order_term():
    policy, params, maml_fo, inner, post = tiny_problem(first_order=True)
    _, _, maml_so, _, _ = tiny_problem(first_order=False)
    old, _, g_fo, _ = at_theta(maml_fo, params, inner, post)
    _, _, g_so, _ = at_theta(maml_so, params, inner, post, old)
    # first order: the sum over tasks of the surrogate's gradient at the adapted parameters
    adapted = {k: v.detach().requires_grad_() for k, v in adapt(policy, params, inner, [0.3], create_graph=False).items()}
    from metarl.maml import _flat_steps

    obs, actions, mask, adv = _flat_steps(post)
    ratio = torch.exp(policy.log_prob(adapted, obs, actions) - old[0])
    s = -((ratio * adv * mask).sum(-1) / mask.sum(-1)).mean()
    grads = torch.autograd.grad(s, list(adapted.values()))
    expected = torch.cat([gr.sum(0).reshape(-1) for gr in grads])
    torch.testing.assert_close(g_fo, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(g_fo, g_so, rtol=1e-3)


def test_one_inner_step_equals_hand_written_sgd_and_leaves_theta_alone():
    policy, params, maml, inner, post = tiny_problem()
    before = {k: v.clone() for k, v in params.items()}
    adapted = adapt(policy, params, inner, [0.3], create_graph=False)
    d = inner[0]
    for i in range(2):  # one task at a time, plain autograd on a fresh copy
        p = {k: v.clone().requires_grad_() for k, v in params.items()}
        obs = d.batch.obs[i].reshape(-1, 3)
        act = d.batch.actions[i].reshape(-1, 2)
        m = d.batch.mask[i].reshape(-1)
        a = d.advantages[i].reshape(-1)
        loss = -(policy.log_prob(p, obs, act) * a * m).sum() / m.sum()
        loss.backward()
        for k in p:
            torch.testing.assert_close(adapted[k][i], params[k] - 0.3 * p[k].grad, rtol=1e-12, atol=1e-14)
    for k in params:
        assert torch.equal(params[k], before[k])


def test_policy_gradient_loss_is_per_task():
    policy, params, maml, inner, post = tiny_problem()
    losses = policy_gradient_loss(policy, adapt(policy, params, inner, [0.0], create_graph=False), inner[0])
    assert losses.shape == (2,)
