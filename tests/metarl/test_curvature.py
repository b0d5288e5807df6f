"""The written-out KL Hessian-vector products equal autograd's, for every network shape and inner-loop option."""

import pytest
import torch

from metarl import curvature
from metarl.maml import _flat_steps, _kl_hvp
from metarl.policy import GaussianMLPPolicy, flat

from .helpers import tiny_batch, tiny_problem


def autograd_and_written_out(first_order, hidden, inner_steps):
    policy, params, maml, _, _ = tiny_problem(first_order=first_order, hidden=hidden)
    inner = [tiny_batch(seed=1 + k) for k in range(inner_steps)]
    post = tiny_batch(seed=9)
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post)
    adapted = maml.adapt(theta, inner, create_graph=True)
    _, _, mu, weights = maml._post_adaptation_losses(adapted, post, old)
    reference = _kl_hvp(list(theta.values()), (mu, adapted["log_std"]), weights, old[2])
    obs = _flat_steps(post)[0]
    sizes = [maml.s.inner_step_size] * inner_steps
    written = curvature.kl_hvp(policy, theta, inner, sizes, first_order, obs, weights, old[2])
    return params, reference, written


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("hidden", [(4,), (5, 3)])
@pytest.mark.parametrize("inner_steps", [1, 2])
def test_written_out_products_equal_autograd_products(first_order, hidden, inner_steps):
    params, reference, written = autograd_and_written_out(first_order, hidden, inner_steps)
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        v = torch.randn(flat(params).numel(), generator=gen, dtype=torch.float64)
        torch.testing.assert_close(written(v), reference(v), rtol=1e-12, atol=1e-14)


def test_products_leave_their_inputs_alone_and_repeat_exactly():
    params, _, written = autograd_and_written_out(False, (4,), 1)
    v = torch.randn(flat(params).numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    before = v.clone()
    first = written(v)
    assert torch.equal(v, before) and torch.equal(written(v), first)  # nothing fixed in v is modified in place


class TanhPolicy(GaussianMLPPolicy):
    def mean(self, params, obs):
        h = obs
        for i in range(self.num_layers):
            h = torch.baddbmm(params[f"b{i}"].unsqueeze(1), h, params[f"w{i}"]) if params["w0"].dim() == 3 else h @ params[f"w{i}"] + params[f"b{i}"]
            if i < self.num_layers - 1:
                h = torch.tanh(h)
        return h


def test_other_policies_keep_the_autograd_products():
    assert curvature.supports(GaussianMLPPolicy(3, 2))
    assert not curvature.supports(TanhPolicy(3, 2))


def test_autograd_products_subsample_without_bias():
    import itertools

    from metarl.baseline import LinearFeatureBaseline
    from metarl.maml import MAMLSettings, MAMLTRPO

    policy = TanhPolicy(3, 2, (4,), init_std=0.8)
    params = policy.init_params(torch.Generator().manual_seed(0), torch.float64)
    maml = MAMLTRPO(policy, LinearFeatureBaseline(), MAMLSettings(inner_step_size=0.3))
    inner, post = [tiny_batch(T=4, seed=1)], tiny_batch(T=4, seed=2)

    def hvp(tasks):
        theta = {k: v.clone().requires_grad_() for k, v in params.items()}
        return maml.meta_gradients(theta, inner, post, maml.old_policy(theta, inner, post), tasks)[3]

    v = torch.randn(flat(params).numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    subsets = [hvp(torch.tensor(s))(v) for s in itertools.combinations(range(4), 2)]
    torch.testing.assert_close(torch.stack(subsets).mean(0), hvp(None)(v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 2])
def test_written_out_meta_gradient_equals_autograd(monkeypatch, first_order, inner_steps):
    policy, params, maml, _, _ = tiny_problem(first_order=first_order, hidden=(5, 3))
    inner, post = [tiny_batch(seed=1 + k) for k in range(inner_steps)], tiny_batch(seed=9)
    v = torch.randn(flat(params).numel(), generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def at_theta(tasks=None):
        theta = {k: t.clone().requires_grad_() for k, t in params.items()}
        s, kl, g, hvp = maml.meta_gradients(theta, inner, post, maml.old_policy(theta, inner, post), tasks)
        return s, kl, g, hvp(v)

    written = [at_theta(), at_theta(torch.tensor([1]))]
    monkeypatch.setattr(curvature, "supports", lambda policy: False)
    autograd = [at_theta(), at_theta(torch.tensor([1]))]
    for w, a in zip(written, autograd):
        for x, y in zip(w, a):
            torch.testing.assert_close(x, y, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 2])
def test_selected_linearization_is_the_one_built_from_those_tasks(first_order, inner_steps):
    """Slicing the linearization of every task gives the products, gradients and adapted policies that building it
    from the chosen tasks' episodes gives."""
    from metarl.maml import select_tasks

    policy, params, maml, _, _ = tiny_problem(first_order=first_order, hidden=(5, 3))
    inner = [tiny_batch(T=4, seed=1 + k) for k in range(inner_steps)]
    post = tiny_batch(T=4, seed=9)
    theta = {k: v.clone() for k, v in params.items()}
    sizes = [maml.s.inner_step_size] * inner_steps
    tasks = torch.tensor([0, 2, 3])
    sliced = curvature.Linearization(policy, theta, inner, sizes, first_order, _flat_steps(post)[0]).select(tasks)
    sub_inner, sub_post = [select_tasks(d, tasks) for d in inner], select_tasks(post, tasks)
    built = curvature.Linearization(policy, theta, sub_inner, sizes, first_order, _flat_steps(sub_post)[0])
    assert sliced.num_tasks == built.num_tasks == 3
    for k in built.adapted:
        torch.testing.assert_close(sliced.adapted[k], built.adapted[k], rtol=1e-13, atol=1e-15)
    gen = torch.Generator().manual_seed(6)
    weights = torch.rand(3, _flat_steps(sub_post)[0].shape[1], generator=gen, dtype=torch.float64)
    old_log_std = torch.randn(3, weights.shape[1], 2, generator=gen, dtype=torch.float64)
    v = torch.randn(flat(params).numel(), generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sliced.kl_hvp(weights, old_log_std)(v), built.kl_hvp(weights, old_log_std)(v),
                               rtol=1e-12, atol=1e-14)
    grad_mu = torch.randn(built.post.mu.shape, generator=gen, dtype=torch.float64)
    grad_log_std = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sliced.gradient(grad_mu, grad_log_std), built.gradient(grad_mu, grad_log_std),
                               rtol=1e-12, atol=1e-14)


def test_old_policy_read_off_the_linearization_equals_autograds_adaptation(monkeypatch):
    """The written-out old policy (the linearization's adapted means and log stds) is autograd's adaptation's,
    float64 to rounding."""
    _, params, maml, _, _ = tiny_problem(hidden=(5, 3))
    inner, post = [tiny_batch(seed=1), tiny_batch(seed=2)], tiny_batch(seed=9)
    written = maml.old_policy(params, inner, post)
    monkeypatch.setattr(curvature, "supports", lambda policy: False)
    autograd = maml.old_policy(params, inner, post)
    for x, y in zip(written, autograd):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_meta_update_adapts_once_for_its_products_and_old_policy(monkeypatch, fraction):
    """The update runs the written-out inner step once per inner step (its linearization gives the old policy and,
    sliced, the subsample's products); autograd's adaptation runs only for the line search's candidates."""
    from metarl import adaptation, maml as maml_module

    _, params, maml, _, _ = tiny_problem(hidden=(5, 3))
    maml.s.hvp_subsample = fraction
    inner, post = [tiny_batch(T=4, seed=1)], tiny_batch(T=4, seed=9)
    counts = {"inner_step": 0, "adapt": 0}
    inner_step, adaptation_path = curvature.inner_step, adaptation.adaptation_path

    def counted_inner_step(*args, **kwargs):
        counts["inner_step"] += 1
        return inner_step(*args, **kwargs)

    def counted_adaptation_path(*args, **kwargs):
        counts["adapt"] += 1
        return adaptation_path(*args, **kwargs)

    monkeypatch.setattr(curvature, "inner_step", counted_inner_step)
    monkeypatch.setattr(adaptation, "adaptation_path", counted_adaptation_path)
    _, stats = maml.meta_update(params, inner, post, torch.Generator().manual_seed(0))
    assert stats["line_search_steps"] >= 1  # one adaptation per candidate, whether one is accepted or none
    assert counts == {"inner_step": 1, "adapt": stats["line_search_steps"]}
    assert maml_module.adapt is adaptation.adapt  # the count above saw every adaptation the learner made


@pytest.mark.parametrize("hidden", [(), (4,), (5, 3)])
def test_forward_pass_gives_the_policys_means_with_grad_on(hidden):
    """The pass writes its products into buffers; it runs without grad whatever the caller's mode, and its
    means, inputs and masks are the policy's."""
    policy = GaussianMLPPolicy(3, 2, hidden, init_std=0.8)
    params = {k: v.requires_grad_() for k, v in policy.init_params(torch.Generator().manual_seed(0), torch.float64).items()}
    obs = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    trace = curvature.forward_pass({k: v.unsqueeze(0).expand(2, *v.shape) for k, v in params.items()}, obs,
                                   policy.num_layers)
    with torch.no_grad():
        torch.testing.assert_close(trace.mu, policy.mean(params, obs), rtol=1e-13, atol=1e-15)
    assert len(trace.masks) == len(hidden) and all(torch.equal(x[..., -1], torch.ones_like(x[..., -1]))
                                                   for x in trace.inputs)
