"""ProMP, MAML-PPO and Meta-SGD: their objectives against independent float64 references, their boundaries,
resume equality, and the factory.  The references below loop over tasks with single-task policy calls and
torch.func, sharing nothing with metarl's task-batched inner step but the policy's forward pass."""

import os

import numpy as np
import pytest
import torch

from metarl.adaptation import (AdaptationData, adapt, adaptation_path, policy_gradient_loss, split_step_sizes,
                               with_step_sizes)
from metarl.algorithms import ALGORITHMS, initial_params, make_algorithm
from metarl.baseline import LinearFeatureBaseline
from metarl.config import AlgoConfig, ConfigError, load_config
from metarl.maml import MAMLTRPO
from metarl.maml_ppo import MAMLPPO
from metarl.meta_sgd import MetaSGDTRPO
from metarl.policy import GaussianMLPPolicy, flat, unflat
from metarl.promp import ProMP
from metarl.surrogates import adam_init, adam_step, adapt_kl_coefficient, clipped_surrogate

from .helpers import tiny_batch

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SMOKE_NAV = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")


# ---- tiny float64 problems ------------------------------------------------------------------------------
def problem(name, inner_steps=1, metasgd=False, seed=0, **algo):
    policy = GaussianMLPPolicy(3, 2, (4,), init_std=0.8)
    params = policy.init_params(torch.Generator().manual_seed(seed), torch.float64)
    g = torch.Generator().manual_seed(seed + 100)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
    cfg = AlgoConfig(name=name, inner_step_size=0.3, inner_steps=inner_steps, learn_inner_step_size=metasgd, **algo)
    if metasgd:  # step sizes that differ per entry, so a scalar step could not pass for them
        params = with_step_sizes(params, 0.3)
        params = {k: (v * (1 + 0.5 * torch.rand(v.shape, generator=g, dtype=torch.float64)) if k.startswith("step_size.") else v)
                  for k, v in params.items()}
    algo_ = make_algorithm(cfg, policy, LinearFeatureBaseline())
    inner = [tiny_batch(seed=seed + 1 + 2 * k) for k in range(inner_steps)]
    post = tiny_batch(seed=seed + 2)
    return policy, params, algo_, inner, post


def moved(params, scale=0.05, seed=11):
    """Parameters a little away from ``params``, so that some post-adaptation ratios leave the clip range."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}


def task_data(d, i):
    b = d.batch
    return (b.obs[i].reshape(-1, b.obs.shape[-1]), b.actions[i].reshape(-1, b.actions.shape[-1]),
            b.mask[i].reshape(-1), d.advantages[i].reshape(-1))


def reference_objective(policy, like, inner, post, theta_old, estimator, clip_eps, kl_coeffs, clip=True):
    """The outer loss as a function of flat (theta[, alpha]), one task at a time, from the formulas.

    Inner step k of task i: ``p <- p - alpha * grad_p L_k`` with ``L_k = -sum(w A m) / sum(m)``, ``w = log pi`` or
    ``pi / pi_old^k``; outer: clipped (or plain) ratio surrogate on ``post``, plus ``mean_k c_k KL_k``.
    """
    T = post.batch.num_tasks

    def split(p):
        pol = {k: v for k, v in p.items() if not k.startswith("step_size.")}
        sizes = {k[len("step_size."):]: v for k, v in p.items() if k.startswith("step_size.")}
        return pol, sizes

    def inner_path(p_all, i, old_logps=None):
        p, sizes = split(p_all)
        path = [p]
        for k, d in enumerate(inner):
            obs, act, m, a = task_data(d, i)

            def loss(q, obs=obs, act=act, a=a, m=m, k=k):
                logp = policy.log_prob(q, obs, act)
                # at theta_old (old_logps not known yet) the LVC gradient equals REINFORCE's
                lvc = estimator == "lvc" and old_logps is not None
                w = torch.exp(logp - old_logps[k]) if lvc else logp
                return -(w * a * m).sum() / m.sum()

            grad = torch.func.grad(loss)(p)
            p = {n: p[n] - (sizes[n] if sizes else 0.3) * grad[n] for n in p}
            path.append(p)
        return path

    old_paths = [inner_path(theta_old, i) for i in range(T)]
    old_logps = [[policy.log_prob(old_paths[i][k], *task_data(d, i)[:2]).detach() for k, d in enumerate(inner)]
                 for i in range(T)]
    obs, act = [task_data(post, i)[0] for i in range(T)], [task_data(post, i)[1] for i in range(T)]
    old_post = [policy.log_prob(old_paths[i][-1], obs[i], act[i]).detach() for i in range(T)]

    def f(x):
        p_all = unflat(x, like)
        surr, kls = 0.0, [0.0] * len(inner)
        for i in range(T):
            path = inner_path(p_all, i, old_logps[i])
            _, _, m, a = task_data(post, i)
            r = torch.exp(policy.log_prob(path[-1], obs[i], act[i]) - old_post[i])
            obj = torch.minimum(r * a, torch.clamp(r, 1 - clip_eps, 1 + clip_eps) * a) if clip else r * a
            surr = surr - (obj * m).sum() / m.sum() / T
            for k, d in enumerate(inner):
                o, _, mk, _ = task_data(d, i)
                kl = policy.kl(policy.moments(old_paths[i][k], o), path[k], o)
                kls[k] = kls[k] + (kl * mk).sum() / mk.sum() / T
        penalty = sum(c * kl for c, kl in zip(kl_coeffs, kls)) / len(inner) if kl_coeffs else 0.0
        return surr + penalty

    return f


def our_loss_and_grad(algo, theta_old, theta, inner, post):
    with torch.no_grad():
        old = algo.pi_old(theta_old, inner, post)
        prepared = algo.prepare(theta_old, inner)
    leaves = {k: v.clone().requires_grad_() for k, v in theta.items()}
    loss, parts = algo.outer_loss(leaves, prepared, post, old)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), flat(dict(zip(leaves, grads))), parts, old


def check_gradient_by_finite_differences(f, x0, g, n=4, eps=1e-6):
    gen = torch.Generator().manual_seed(3)
    for _ in range(n):
        v = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        fd = (f(x0 + eps * v) - f(x0 - eps * v)).item() / (2 * eps)
        assert (g @ v).item() == pytest.approx(fd, rel=1e-6, abs=1e-9)


# ---- outer objectives against the references --------------------------------------------------------------
CASES = [
    ("maml_ppo", 1, False), ("promp", 1, False), ("promp", 2, False), ("maml_ppo", 1, True), ("promp", 2, True),
]


@pytest.mark.parametrize("name,inner_steps,metasgd", CASES)
def test_ppo_style_objective_and_gradient_match_the_reference(name, inner_steps, metasgd):
    policy, theta_old, algo, inner, post = problem(name, inner_steps, metasgd, inner_kl_penalty=0.7)
    theta = moved(theta_old)
    _, _, parts, old = our_loss_and_grad(algo, theta_old, theta, inner, post)
    mask = post.batch.mask.reshape(2, -1).bool()
    distance = (torch.exp(parts["logp"] - old[0]) - 1).abs()[mask]
    # a clip range between the ratios' distances from 1, so that both sides of the clip are exercised
    eps = float(distance.sort().values[distance.numel() // 2 - 1 : distance.numel() // 2 + 1].mean())
    algo.s.clip_eps = eps
    loss, g, parts, old = our_loss_and_grad(algo, theta_old, theta, inner, post)
    outside = distance > eps
    assert outside.any() and (~outside).any()
    estimator = "lvc" if name == "promp" else "reinforce"
    coeffs = [0.7] * inner_steps if name == "promp" else None
    f = reference_objective(policy, theta, inner, post, theta_old, estimator, eps, coeffs)
    x0 = flat(theta)
    torch.testing.assert_close(loss, f(x0), rtol=1e-12, atol=1e-13)
    check_gradient_by_finite_differences(f, x0, g)
    if name == "promp":
        assert (parts["inner_kl"] > 0).all()


def test_meta_sgd_trpo_meta_gradient_and_kl_curvature_include_the_step_sizes():
    policy, theta_old, algo, inner, post = problem("maml_trpo", metasgd=True)
    assert isinstance(algo, MetaSGDTRPO)
    theta = {k: v.clone().requires_grad_() for k, v in theta_old.items()}
    old = algo.old_policy(theta, inner, post)
    _, kl, g, hvp = algo.meta_gradients(theta, inner, post, old)
    f = reference_objective(policy, theta_old, inner, post, theta_old, "reinforce", 0.2, None, clip=False)
    x0 = flat(theta_old)
    check_gradient_by_finite_differences(f, x0, g)
    sizes = [k for k in theta_old if k.startswith("step_size.")]
    grads = unflat(g, theta_old)
    assert sizes and all(grads[k].abs().sum() > 0 for k in sizes)  # every step size receives a gradient

    def kl_grad_at(x):
        th = {k: t.clone().requires_grad_() for k, t in unflat(x, theta_old).items()}
        _, k_ = algo.objective(th, inner, post, old, create_graph=True)
        return flat(dict(zip(th, torch.autograd.grad(k_, list(th.values())))))

    v = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    fd = (kl_grad_at(x0 + 1e-5 * v) - kl_grad_at(x0 - 1e-5 * v)) / 2e-5
    torch.testing.assert_close(hvp(v), fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", ["maml_ppo", "promp"])
def test_meta_update_is_adam_on_the_reference_gradient(name):
    policy, theta_old, algo, inner, post = problem(name, outer_steps=3, outer_learning_rate=0.01, inner_kl_penalty=0.5)
    new, stats = algo.meta_update(theta_old, inner, post)
    estimator = "lvc" if name == "promp" else "reinforce"
    f = reference_objective(policy, theta_old, inner, post, theta_old, estimator, algo.s.clip_eps,
                            [0.5] if name == "promp" else None)
    x, state = dict(theta_old), adam_init(theta_old)
    for _ in range(3):
        grad = unflat(torch.func.grad(f)(flat(x)), theta_old)
        x, state = adam_step(x, grad, state, 0.01)
    for k in new:
        torch.testing.assert_close(new[k], x[k], rtol=1e-9, atol=1e-12)
    assert stats["accepted"] == 1.0 and stats["kl_before"] == pytest.approx(0.0, abs=1e-14) and stats["kl_after"] > 0
    assert algo.state_dict()["adam"]["step"] == 3


def test_adam_state_that_does_not_fit_the_parameters_is_refused():
    _, theta, algo, inner, post = problem("maml_ppo")
    algo.load_state_dict({"adam": {"step": 1, "m": {"w0": torch.zeros(1)}, "v": {"w0": torch.zeros(1)}}})
    with pytest.raises(ValueError, match=r"Adam moments for \['w0'\] do not fit"):
        algo.meta_update(theta, inner, post)


# ---- the inner step's options --------------------------------------------------------------------------------
def test_lvc_adapts_exactly_like_reinforce_at_the_sampling_policy_but_curves_differently():
    policy, params, _, inner, post = problem("maml_trpo")
    path = adaptation_path(policy, params, inner, [0.3], create_graph=False)
    logp = policy.log_prob(path[0], inner[0].batch.obs.reshape(2, -1, 3), inner[0].batch.actions.reshape(2, -1, 2))
    with_logp = [AdaptationData(inner[0].batch, inner[0].advantages, logp.detach())]
    plain = adapt(policy, params, inner, [0.3], create_graph=False)
    for data in (inner, with_logp):
        lvc = adapt(policy, params, data, [0.3], create_graph=False, estimator="lvc")
        for k in plain:
            torch.testing.assert_close(lvc[k], plain[k], rtol=1e-12, atol=1e-14)
    # the same gradient, a different Hessian: the likelihood ratio adds grad log pi grad log pi^T * A
    x0 = flat(params)

    def inner_loss(x, estimator):
        return policy_gradient_loss(policy, unflat(x, params), with_logp[0], estimator).sum()

    h_reinforce = torch.func.hessian(lambda x: inner_loss(x, "reinforce"))(x0)
    h_lvc = torch.func.hessian(lambda x: inner_loss(x, "lvc"))(x0)
    assert not torch.allclose(h_reinforce, h_lvc, rtol=1e-3)
    torch.testing.assert_close(torch.func.grad(lambda x: inner_loss(x, "lvc"))(x0),
                               torch.func.grad(lambda x: inner_loss(x, "reinforce"))(x0), rtol=1e-12, atol=1e-14)


def test_unknown_estimator_is_named():
    policy, params, _, inner, _ = problem("maml_trpo")
    with pytest.raises(ValueError, match="estimator.*'dice'.*reinforce.*lvc"):
        adapt(policy, params, inner, [0.3], estimator="dice")


def test_meta_sgd_inner_step_equals_the_hand_written_per_parameter_step():
    policy, params, algo, inner, _ = problem("maml_trpo", metasgd=True)
    pol, sizes = split_step_sizes(params)
    adapted = algo.adapt(params, inner, create_graph=False)
    assert set(adapted) == set(pol)  # the step sizes are not policy parameters of the adapted policies
    d = inner[0]
    for i in range(2):
        p = {k: v.clone().requires_grad_() for k, v in pol.items()}
        obs, act, m, a = task_data(d, i)
        (-(policy.log_prob(p, obs, act) * a * m).sum() / m.sum()).backward()
        for k in p:
            torch.testing.assert_close(adapted[k][i], pol[k] - sizes[k] * p[k].grad, rtol=1e-12, atol=1e-14)
    # constant step sizes reproduce the scalar step
    const = with_step_sizes(pol, 0.3)
    scalar = adapt(policy, pol, inner, [0.3], create_graph=False)
    for k, v in algo.adapt(const, inner, create_graph=False).items():
        torch.testing.assert_close(v, scalar[k], rtol=1e-15, atol=0.0)


def test_step_sizes_must_cover_every_parameter():
    policy, params, _, _, _ = problem("maml_trpo", metasgd=True)
    del params["step_size.w0"]
    with pytest.raises(ValueError, match=r"step sizes are missing for \['w0'\]"):
        split_step_sizes(params)
    with pytest.raises(ValueError, match="already is a step size"):
        with_step_sizes(params, 0.1)


# ---- boundaries ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("adv,ratio,clipped", [
    (1.0, 1.2 + 1e-9, True), (1.0, 1.2 - 1e-9, False), (1.0, 0.5, False),    # A > 0: only r > 1 + eps is clipped
    (-1.0, 0.8 - 1e-9, True), (-1.0, 0.8 + 1e-9, False), (-1.0, 1.7, False),  # A < 0: only r < 1 - eps is clipped
])
def test_ppo_clipping_at_its_boundaries(adv, ratio, clipped):
    eps = 0.2
    old_logp = torch.tensor([[0.3, -0.1]], dtype=torch.float64)
    logp = (old_logp + torch.log(torch.tensor([[ratio, 1.0]], dtype=torch.float64))).requires_grad_()
    a = torch.tensor([[adv, 2.0]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.float64)
    loss = clipped_surrogate(logp, old_logp, a, mask, eps)
    bounded = min(max(ratio, 1 - eps), 1 + eps)
    expected = -(min(ratio * adv, bounded * adv) + 2.0) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    # d/dlogp of -r A / n is -r A / n; zero where the clipped term is the smaller one
    assert grad[0, 0].item() == pytest.approx(0.0 if clipped else -ratio * adv / 2, abs=1e-15, rel=1e-12)
    assert grad[0, 1].item() == pytest.approx(-2.0 / 2, rel=1e-12)


@pytest.mark.parametrize("kl,factor", [
    (0.01 / 1.5 * (1 - 1e-9), 0.5), (0.01 / 1.5, 1.0), (0.01, 1.0), (0.015, 1.0), (0.015 * (1 + 1e-9), 2.0),
])
def test_adaptive_kl_coefficient_at_its_boundaries(kl, factor):
    assert adapt_kl_coefficient(0.3, kl, 0.01) == pytest.approx(0.3 * factor, rel=1e-15)


def test_promp_kl_penalty_is_coefficient_times_pre_update_kl_and_vanishes_at_theta_old():
    policy, theta_old, promp, inner, post = problem("promp", 2, inner_kl_penalty=0.0)
    _, _, promp_pen, _, _ = problem("promp", 2, inner_kl_penalty=2.5)
    theta = moved(theta_old)
    loss0, g0, parts0, _ = our_loss_and_grad(promp, theta_old, theta, inner, post)
    loss1, g1, parts1, _ = our_loss_and_grad(promp_pen, theta_old, theta, inner, post)
    torch.testing.assert_close(loss1 - loss0, 2.5 * parts1["inner_kl"].mean(), rtol=1e-12, atol=1e-15)
    assert not torch.allclose(g0, g1)
    # at theta_old the pre-update policies are the sampling ones: KL 0 with gradient 0, penalty or not
    loss0, g0, parts0, _ = our_loss_and_grad(promp, theta_old, theta_old, inner, post)
    loss1, g1, parts1, _ = our_loss_and_grad(promp_pen, theta_old, theta_old, inner, post)
    assert parts1["inner_kl"].abs().max() < 1e-14
    torch.testing.assert_close(g1, g0, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("target,factor", [(1e3, 0.5), (1e-12, 2.0)])
def test_promp_adapts_its_kl_coefficients_after_the_update(target, factor):
    _, theta, promp, inner, post = problem("promp", 2, adaptive_inner_kl_penalty=True, target_inner_kl=target,
                                           outer_learning_rate=0.01)
    promp.meta_update(theta, inner, post)
    assert promp.kl_coeff == pytest.approx([5e-4 * factor] * 2)
    _, _, fixed, _, _ = problem("promp", 2, target_inner_kl=target, outer_learning_rate=0.01)
    fixed.meta_update(theta, inner, post)
    assert fixed.kl_coeff == [5e-4, 5e-4]


# ---- factory and config -----------------------------------------------------------------------------------------
def test_factory_builds_each_algorithm_and_maml_trpo_is_the_paper_class():
    policy = GaussianMLPPolicy(3, 2, (4,))
    expect = {"maml_trpo": MAMLTRPO, "promp": ProMP, "maml_ppo": MAMLPPO}
    assert set(ALGORITHMS) == set(expect)
    for name, cls in expect.items():
        assert type(make_algorithm(AlgoConfig(name=name), policy, LinearFeatureBaseline())) is cls
    assert type(make_algorithm(AlgoConfig(learn_inner_step_size=True), policy, LinearFeatureBaseline())) is MetaSGDTRPO
    p = policy.init_params(torch.Generator().manual_seed(0))
    assert initial_params(AlgoConfig(), p).keys() == p.keys()
    with_sizes = initial_params(AlgoConfig(learn_inner_step_size=True, inner_step_size=0.25), p)
    assert all(torch.equal(with_sizes["step_size." + k], torch.full_like(v, 0.25)) for k, v in p.items())


@pytest.mark.parametrize("override,match", [
    ("algo.name=maml_tpro", r"'algo.name'.*'maml_tpro'.*did you mean 'maml_trpo'.*\['maml_trpo', 'promp', 'maml_ppo'\]"),
    ("algo.name=reptile", r"'algo.name'.*'reptile'.*valid: \['maml_trpo', 'promp', 'maml_ppo'\]"),
    ("algo.clip_eps=1.5", r"'algo.clip_eps'.*\(0, 1\).*1.5"),
    ("algo.outer_steps=0", r"'algo.outer_steps'.*positive.*0"),
    ("algo.inner_kl_penalty=-1", r"'algo.inner_kl_penalty'.*>= 0.*-1"),
    ("algo.learn_inner_step_size=maybe", r"'algo.learn_inner_step_size'.*bool"),
])
def test_bad_algorithm_fields_are_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(SMOKE_NAV, [override])


@pytest.mark.parametrize("task", ["navigation2d", "halfcheetah_vel"])
@pytest.mark.parametrize("name", ["promp", "maml_ppo", "metasgd"])
def test_released_configs_load(name, task):
    cfg = load_config(os.path.join(ROOT, "experiments", "configs", f"{name}_{task}.yaml"))
    assert cfg.algo.name == ("maml_trpo" if name == "metasgd" else name)
    assert cfg.algo.learn_inner_step_size == (name == "metasgd")


# ---- runs: resume equality and evaluation ------------------------------------------------------------------------
RESUME = {
    "promp": ["algo.name=promp", "algo.adaptive_inner_kl_penalty=true", "algo.target_inner_kl=1.0e-5"],
    "maml_ppo": ["algo.name=maml_ppo"],
    "metasgd_trpo": ["algo.learn_inner_step_size=true"],
    "metasgd_promp": ["algo.name=promp", "algo.learn_inner_step_size=true", "algo.inner_steps=2"],
}


@pytest.mark.parametrize("name", list(RESUME))
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, name):
    from metarl.checkpoint import load_checkpoint
    from metarl.trainer import Trainer

    def run(out, iterations, resume=False):
        cfg = load_config(SMOKE_NAV, RESUME[name] + [f"iterations={iterations}"])
        return Trainer(cfg, str(tmp_path / out), resume=resume).train()

    full = run("full", 3)
    run("split", 2)
    resumed = run("split", 3, resume=True)
    assert resumed.iteration == 3
    assert full.params.keys() == resumed.params.keys()
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k]), k
    saved = load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")
    if name != "metasgd_trpo":
        assert saved["algo_state"]["adam"]["step"] == 3 * 5
        for k, v in saved["algo_state"]["adam"]["m"].items():
            assert torch.equal(v, full.algo_state["adam"]["m"][k])
    if name == "promp":
        assert saved["algo_state"]["inner_kl_coeff"] == full.algo_state["inner_kl_coeff"] == [5e-4 * 2**3]
    if name.startswith("metasgd"):
        assert any(not torch.equal(v, torch.full_like(v, 0.5)) for k, v in full.params.items() if k.startswith("step_size."))
    # a plain dict of tensors, numbers and strings
    plain = torch.load(tmp_path / "split" / "checkpoints" / "latest.pt", weights_only=True)
    assert plain["iteration"] == 3
    full_rows = (tmp_path / "full" / "progress.csv").read_text().splitlines()
    split_rows = (tmp_path / "split" / "progress.csv").read_text().splitlines()
    strip = lambda rs: [r.split(",")[:4] for r in rs]  # noqa: E731  (timings differ)
    assert strip(full_rows) == strip(split_rows)
    header = full_rows[0].split(",")
    if name == "metasgd_trpo":  # the TRPO step's scalars
        assert "trpo/line_search_steps" in header and not any(c.startswith("outer/") for c in header)
    else:  # Adam's outer loop: no line search, nothing named after TRPO
        assert {"outer/kl_before", "outer/kl_after", "outer/surrogate_improvement", "outer/accepted",
                "outer/grad_norm"} <= set(header)
        assert not any(c.startswith("trpo/") for c in header)


def test_evaluation_of_a_meta_sgd_policy_uses_its_learned_step_sizes():
    from metarl import evaluation as ev

    cfg = load_config(SMOKE_NAV)
    policy = GaussianMLPPolicy(2, 2, (16, 16))
    params = policy.init_params(torch.Generator().manual_seed(0))
    settings = ev.protocol_settings(cfg, "maml", False, 0.5, steps=2, episodes=2, num_tasks=3)
    tasks = ev.evaluation_tasks(ev.make_eval_env(settings), settings)
    plain = ev.adaptation_curve(policy, params, tasks, settings)
    # step sizes all equal to 0.5 adapt exactly as the scalar schedule [0.5, 0.25]
    same = ev.adaptation_curve(policy, with_step_sizes(params, 0.5), tasks, settings)
    np.testing.assert_array_equal(plain, same)
    # and they are used: other learned values give another curve after the first step only
    other = ev.adaptation_curve(policy, with_step_sizes(params, 0.05), tasks, settings)
    np.testing.assert_array_equal(other[:, 0], plain[:, 0])
    assert not np.allclose(other[:, 1:], plain[:, 1:])


# ---- learning (slow tier) ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["promp", "maml_ppo", "metasgd"])
def test_navigation_meta_training_learns_to_adapt_with_each_algorithm(tmp_path, name):
    """20 iterations of Navigation2D with each algorithm's config: the post-adaptation return rises."""
    import csv

    from metarl.trainer import Trainer

    cfg = load_config(os.path.join(ROOT, "experiments", "configs", f"{name}_navigation2d.yaml"),
                      ["iterations=20", "progress_bar=false"])
    Trainer(cfg, str(tmp_path / name)).train()
    rows = list(csv.DictReader(open(tmp_path / name / "progress.csv")))
    first = np.mean([float(r["return/post_adaptation"]) for r in rows[:3]])
    last = rows[-5:]
    post = np.mean([float(r["return/post_adaptation"]) for r in last])
    pre = np.mean([float(r["return/pre_adaptation"]) for r in last])
    assert post > first + 20, (first, post)
    assert post > pre + 5, (pre, post)
