"""``algo.hvp_subsample``: the curvature on a random subset of tasks, exact per task, unbiased, opt-in."""

import itertools
import os

import pytest
import torch

from metarl import trpo
from metarl.baseline import LinearFeatureBaseline
from metarl.config import ConfigError, load_config
from metarl.maml import MAMLSettings, MAMLTRPO, curvature_tasks, select_tasks, subsample_size
from metarl.policy import GaussianMLPPolicy, flat, unflat
from metarl.trainer import Trainer

from .helpers import tiny_batch

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SMOKE_NAV = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")


def four_task_problem(**settings):
    policy = GaussianMLPPolicy(3, 2, (4,), init_std=0.8)
    params = policy.init_params(torch.Generator().manual_seed(0), torch.float64)
    g = torch.Generator().manual_seed(100)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
    maml = MAMLTRPO(policy, LinearFeatureBaseline(), MAMLSettings(inner_step_size=0.3, **settings))
    return policy, params, maml, [tiny_batch(T=4, seed=1)], tiny_batch(T=4, seed=2)


def hvp_at(maml, params, inner, post, tasks=None):
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post)
    return maml.meta_gradients(theta, inner, post, old, tasks)


def exact_step_as_before(maml, params, inner, post):
    """The TRPO step written out with the exact products over every task (the update before the option; its
    s.As from CG's own products, as the update takes it)."""
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post)
    surrogate, _, g, hvp = maml.meta_gradients(theta, inner, post, old)

    def fvp(v):
        return hvp(v) + maml.s.cg_damping * v

    direction, product = trpo.solve(fvp, -g.detach(), maml.s.cg_iters)
    full = trpo.max_step(direction, product, maml.s.max_kl)

    def evaluate(x):
        with torch.no_grad():
            s, k = maml.objective(unflat(x, params), inner, post, old, create_graph=False)
        return s.item(), k.item()

    new, ls = trpo.backtracking_line_search(flat(theta).detach(), full, evaluate, surrogate.item(), maml.s.max_kl,
                                            maml.s.backtrack_ratio, maml.s.max_backtracks)
    return new, ls


def test_subsample_one_is_the_exact_step_bit_for_bit_and_draws_nothing():
    _, params, maml, inner, post = four_task_problem(hvp_subsample=1.0)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    new, stats = maml.meta_update(params, inner, post, gen)
    assert torch.equal(gen.get_state(), state)  # the random streams of a run are untouched
    expected, ls = exact_step_as_before(maml, params, inner, post)
    assert ls.accepted and stats["accepted"] == 1.0
    assert torch.equal(flat(new), expected)


def test_the_update_scales_its_step_from_the_conjugate_gradient_products():
    """One product per CG iteration and none after: the step's s.As from CG's products equals the one a fresh
    product gives (float64, to rounding), so the update is the step the released optimizer's scaling makes."""
    _, params, maml, inner, post = four_task_problem(hvp_subsample=1.0)
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post)
    _, _, g, hvp = maml.meta_gradients(theta, inner, post, old)
    calls = []

    def fvp(v):
        calls.append(1)
        return hvp(v) + maml.s.cg_damping * v

    direction, product = trpo.solve(fvp, -g.detach(), maml.s.cg_iters, residual_tol=0.0)
    assert len(calls) == maml.s.cg_iters
    fresh = trpo.max_step(direction, fvp, maml.s.max_kl)
    torch.testing.assert_close(trpo.max_step(direction, product, maml.s.max_kl), fresh, rtol=1e-10, atol=0.0)

    # and the update itself makes no product beyond CG's own
    made = []
    gradients = maml.meta_gradients

    def counting(*args, **kwargs):
        surrogate, kl, g, product_fn = gradients(*args, **kwargs)
        return surrogate, kl, g, lambda v: made.append(1) or product_fn(v)

    maml.meta_gradients = counting
    _, stats = maml.meta_update(params, inner, post)
    assert stats["accepted"] == 1.0 and len(made) == maml.s.cg_iters


def test_subset_size_rounds_to_the_nearest_task_and_rejects_bad_fractions():
    assert subsample_size(40, 0.2) == 8 and subsample_size(20, 0.2) == 4 and subsample_size(3, 0.01) == 1
    assert subsample_size(10, 0.29) == 3 and subsample_size(2, 0.9) == 2
    assert curvature_tasks(2, 0.9, torch.Generator()) is None  # every task: the exact path, nothing drawn
    for bad in (0.0, -0.5, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"hvp_subsample: expected a fraction in \(0, 1\]"):
            subsample_size(10, bad)


def test_config_rejects_bad_subsample_fractions_by_name(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("algo: {hvp_subsample: 0.2}\n")
    assert load_config(p).algo.hvp_subsample == 0.2
    for bad in ("0", "1.5", "-0.1"):
        p.write_text(f"algo: {{hvp_subsample: {bad}}}\n")
        with pytest.raises(ConfigError, match=r"'algo.hvp_subsample': expected a fraction in \(0, 1\].*use 1.0"):
            load_config(p)
    for bad in (".nan", ".inf"):  # every float field must be finite, named as such
        p.write_text(f"algo: {{hvp_subsample: {bad}}}\n")
        with pytest.raises(ConfigError, match=r"'algo.hvp_subsample': expected a finite number"):
            load_config(p)


def test_subsampled_product_is_unbiased_and_exact_per_task():
    _, params, maml, inner, post = four_task_problem()
    n = flat(params).numel()
    vs = torch.randn(3, n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    _, _, _, full = hvp_at(maml, params, inner, post)
    subsets = [torch.tensor(s) for s in itertools.combinations(range(4), 2)]
    products = []
    for s in subsets:
        _, _, _, hvp = hvp_at(maml, params, inner, post, s)
        products.append(torch.stack([hvp(v) for v in vs]))
    mean = torch.stack(products).mean(0)  # every 2-subset of 4 tasks equally likely
    torch.testing.assert_close(mean, torch.stack([full(v) for v in vs]), rtol=1e-10, atol=1e-12)
    # a one-task subset is that task's exact product: the full product of a problem that holds only that task
    for i in range(4):
        one = torch.tensor([i])
        _, _, _, sub = hvp_at(maml, params, inner, post, one)
        _, _, _, alone = hvp_at(maml, params, [select_tasks(d, one) for d in inner], select_tasks(post, one))
        torch.testing.assert_close(sub(vs[0]), alone(vs[0]), rtol=1e-12, atol=1e-14)


def test_subsample_leaves_gradient_and_kl_on_every_task():
    _, params, maml, inner, post = four_task_problem()
    s_full, kl_full, g_full, _ = hvp_at(maml, params, inner, post)
    s_sub, kl_sub, g_sub, _ = hvp_at(maml, params, inner, post, torch.tensor([1, 3]))
    assert torch.equal(s_full, s_sub) and torch.equal(kl_full, kl_sub) and torch.equal(g_full, g_sub)


def test_subsampled_step_is_finite_respects_the_kl_and_is_reproducible():
    _, params, maml, inner, post = four_task_problem(hvp_subsample=0.5)
    runs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(11)
        new, stats = maml.meta_update(params, inner, post, gen)
        runs.append(flat(new))
        assert stats["accepted"] == 1.0
        assert all(torch.isfinite(v).all() for v in new.values())
        assert 0.0 < stats["kl_after"] <= maml.s.max_kl  # the line search checks the KL on every task
        assert stats["surrogate_improvement"] > 0
    assert torch.equal(runs[0], runs[1])
    exact, _ = exact_step_as_before(maml, params, inner, post)
    assert not torch.equal(runs[0], exact)


def test_resumed_subsampled_run_equals_an_uninterrupted_one(tmp_path):
    sub = ["algo.hvp_subsample=0.5"]

    def train(name, iterations, resume=False):
        cfg = load_config(SMOKE_NAV, sub + [f"iterations={iterations}"])
        return Trainer(cfg, str(tmp_path / name), resume=resume).train()

    full = train("full", 4)
    train("split", 2)
    resumed = train("split", 4, resume=True)
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k])
    exact = Trainer(load_config(SMOKE_NAV, ["iterations=4"]), str(tmp_path / "exact")).train()
    assert not all(torch.equal(full.params[k], exact.params[k]) for k in full.params)
