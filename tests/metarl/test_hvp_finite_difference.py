"""``algo.hvp: finite_difference``: the authors' released curvature (rllab's FiniteDifferenceHvp), opt-in."""

import math
import os

import pytest
import torch

from metarl import trpo
from metarl.adaptation import AdaptationData
from metarl.episodes import EpisodeBatch
from metarl.config import ConfigError, load_config
from metarl.policy import flat, unflat
from metarl.trainer import Trainer

from .test_hvp_subsample import four_task_problem, hvp_at

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SMOKE_NAV = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")


def kl_gradient_by_autograd(maml, params, inner, post, old, point):
    theta = {k: v.detach().requires_grad_() for k, v in unflat(point, params).items()}
    _, kl = maml.objective(theta, inner, post, old, create_graph=True)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, list(theta.values()))])


def single(data):
    """The same episodes and advantages in float32 (the sampler's dtype, and the released code's)."""
    b = data.batch
    batch = EpisodeBatch(b.obs.float(), b.actions.float(), b.rewards.float(), b.mask.float(), b.tasks)
    return AdaptationData(batch, data.advantages.float())


def test_in_float64_the_finite_difference_product_is_the_exact_one():
    _, params, maml, inner, post = four_task_problem(hvp="finite_difference")
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post)
    _, _, _, exact = hvp_at(maml, params, inner, post)
    fd = maml.finite_difference_hvp(theta, inner, post, old)
    for seed in range(3):
        v = torch.randn(flat(params).numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        # central differences: error O(eps^2) plus float64 round-off / eps (eps = 1e-8 / |theta|)
        torch.testing.assert_close(fd(v), exact(v), rtol=2e-5, atol=2e-6)


def test_in_float32_it_is_the_released_computation_not_the_hessian():
    _, params64, maml, inner, post = four_task_problem(hvp="finite_difference")
    params = {k: v.float() for k, v in params64.items()}
    inner32, post32 = [single(d) for d in inner], single(post)
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner32, post32)
    fd = maml.finite_difference_hvp(theta, inner32, post32, old)
    center = flat(params)
    eps = float(torch.tensor(1e-8 / (float(center.norm()) + 1e-8), dtype=torch.float32))
    v = torch.randn(center.numel(), generator=torch.Generator().manual_seed(3))
    # by hand, as rllab: perturb in float32 (most entries round back), difference the gradients, divide by 2 eps
    plus, minus = center + eps * v, center - eps * v
    assert (plus != center).float().mean() < 0.5  # most entries of theta + eps v are theta again
    expected = (kl_gradient_by_autograd(maml, params, inner32, post32, old, plus)
                - kl_gradient_by_autograd(maml, params, inner32, post32, old, minus)) / (2 * eps)
    torch.testing.assert_close(fd(v), expected, rtol=0, atol=0)
    _, _, _, exact = hvp_at(maml, params64, inner, post)
    cos = torch.nn.functional.cosine_similarity(fd(v).double(), exact(v.double()), dim=0)
    assert cos < 0.99  # far from the Hessian's product


def test_rllab_step_size_and_unguarded_conjugate_gradient():
    A = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))
    d = torch.tensor([1.0, -1.0], dtype=torch.float64)
    s = trpo.rllab_step(d, lambda v: A @ v, 0.01)
    torch.testing.assert_close(s, d * math.sqrt(0.02 / (5.0 + 1e-8)))
    neg = trpo.rllab_step(d, lambda v: -A @ v, 0.01)  # sqrt of a negative: NaN in rllab, replaced by 1
    assert torch.equal(neg, d)
    assert torch.equal(trpo.rllab_step(d, lambda v: v * float("nan"), 0.01), d)  # NaN: 1
    assert torch.equal(trpo.rllab_step(d, lambda v: v * float("inf"), 0.01), 0 * d)  # 2 delta / inf = 0
    # with negative curvature the guarded CG stops at zero, rllab's divides anyway (x = b / (b.Ab / b.b) b)
    b = torch.ones(3, dtype=torch.float64)
    unguarded = trpo.conjugate_gradient(lambda v: -v, b, iters=1, guard=False)
    torch.testing.assert_close(unguarded, -b)
    assert torch.equal(trpo.conjugate_gradient(lambda v: -v, b, iters=1), torch.zeros(3, dtype=torch.float64))


def test_finite_difference_step_is_finite_and_kl_respecting():
    _, params, maml, inner, post = four_task_problem(hvp="finite_difference")
    new, stats = maml.meta_update(params, inner, post)
    assert all(torch.isfinite(v).all() for v in new.values())
    assert stats["accepted"] == 1.0
    assert 0.0 < stats["kl_after"] <= maml.s.max_kl and stats["surrogate_improvement"] > 0


def test_on_a_task_subset_it_is_that_subsets_exact_product_in_float64():
    _, params, maml, inner, post = four_task_problem(hvp="finite_difference")
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post)
    tasks = torch.tensor([0, 2])
    _, _, _, exact = hvp_at(maml, params, inner, post, tasks)
    v = torch.randn(flat(params).numel(), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(maml.finite_difference_hvp(theta, inner, post, old, tasks)(v), exact(v),
                               rtol=2e-5, atol=2e-6)


def test_config_names_the_field_and_training_with_it_resumes_exactly(tmp_path):
    p = tmp_path / "c.yaml"
    refused = {
        "{hvp: finite_differences}": r"'algo.hvp': expected one of \['exact', 'finite_difference'\]",
        "{hvp: finite_difference, name: promp}": r"'algo.hvp'.*TRPO outer step only",
        "{hvp: finite_difference, hvp_subsample: 0.2}": r"'algo.hvp'.*used every task.*hvp_subsample: 1.0",
        "{hvp_fd_eps: 0}": r"'algo.hvp_fd_eps': expected a positive number",
    }
    for algo, message in refused.items():
        p.write_text(f"algo: {algo}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(p)
    opts = ["algo.hvp=finite_difference"]
    whole = Trainer(load_config(SMOKE_NAV, opts + ["iterations=4"]), str(tmp_path / "whole")).train()
    Trainer(load_config(SMOKE_NAV, opts + ["iterations=2"]), str(tmp_path / "part")).train()
    resumed = Trainer(load_config(SMOKE_NAV, opts + ["iterations=4"]), str(tmp_path / "part"), resume=True).train()
    assert all(torch.equal(whole.params[k], resumed.params[k]) for k in whole.params)
