"""One MAML-TRPO meta-iteration at the paper's HalfCheetahVel setting, with its breakdown.

In the same run, the same meta-update is timed the way the older ports wrote it: a Python loop over
tasks for the adaptation and for every Hessian-vector product (reverse-over-reverse through each task's
inner step), and the speed-up is reported as a ratio.  Both produce the same update direction (checked).

    python experiments/bench_meta.py                      # 40 tasks x 20 episodes x 200 steps
    python experiments/bench_meta.py --tasks 10 --episodes 10 --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium
import numpy as np
import torch

from metarl import envs  # noqa: F401
from metarl import trpo
from metarl.baseline import LinearFeatureBaseline
from metarl.maml import MAMLSettings, MAMLTRPO
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Clock:
    def __init__(self, device: torch.device) -> None:
        self.device, self.times = device, {}

    def __call__(self, name):
        clock = self

        class _Span:
            def __enter__(self):
                sync(clock.device)
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                sync(clock.device)
                clock.times[name] = clock.times.get(name, 0.0) + time.perf_counter() - self.t

        return _Span()


def looped_meta_update_direction(maml: MAMLTRPO, params, inner, post, cg_iters: int):
    """The older ports' meta-update: per-task adaptation and per-task HVPs in Python loops."""
    policy, alpha = maml.policy, maml.s.inner_step_size
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    leaves = list(theta.values())
    d_in, d_post = inner[0], post
    T = d_in.batch.num_tasks
    surrogate_total, kl_grads = 0.0, []
    for i in range(T):  # adaptation, surrogate and KL one task at a time
        obs = d_in.batch.obs[i].reshape(-1, policy.obs_dim)
        act = d_in.batch.actions[i].reshape(-1, policy.act_dim)
        m = d_in.batch.mask[i].reshape(-1)
        adv = d_in.advantages[i].reshape(-1)
        loss = -(policy.log_prob(theta, obs, act) * adv * m).sum() / m.sum().clamp(min=1)
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        adapted = {k: theta[k] - alpha * g for k, g in zip(theta, grads)}
        obs_p = d_post.batch.obs[i].reshape(-1, policy.obs_dim)
        act_p = d_post.batch.actions[i].reshape(-1, policy.act_dim)
        m_p = d_post.batch.mask[i].reshape(-1)
        adv_p = d_post.advantages[i].reshape(-1)
        n = m_p.sum().clamp(min=1)
        with torch.no_grad():
            old_detached = {k: v.detach() for k, v in adapted.items()}
            old_logp = policy.log_prob(old_detached, obs_p, act_p)
            old_moments = policy.moments(old_detached, obs_p)
        ratio = torch.exp(policy.log_prob(adapted, obs_p, act_p) - old_logp)
        surrogate_total = surrogate_total - (ratio * adv_p * m_p).sum() / n / T
        kl = (policy.kl(old_moments, adapted, obs_p) * m_p).sum() / n / T
        kl_grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, leaves, create_graph=True)]))
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surrogate_total, leaves, retain_graph=True)])

    def fisher_vector(v):
        total = maml.s.cg_damping * v
        for kg in kl_grads:  # one backward per task, every product
            total = total + torch.cat([h.reshape(-1) for h in torch.autograd.grad(kg @ v, leaves, retain_graph=True)])
        return total

    direction = trpo.conjugate_gradient(fisher_vector, -g.detach(), cg_iters)
    return trpo.max_step(direction, fisher_vector, maml.s.max_kl)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="metarl/HalfCheetahVel-v0")
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-reference", action="store_true", help="time only metarl's meta-update")
    args = p.parse_args()
    device = torch.device(args.device)
    T, E = args.tasks, args.episodes
    env = gymnasium.make_vec(args.env, num_envs=T * E)
    policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0])
    gen = torch.Generator().manual_seed(0)
    params = {k: v.to(device) for k, v in policy.init_params(gen).items()}
    maml = MAMLTRPO(policy, LinearFeatureBaseline(), MAMLSettings(inner_step_size=0.1))
    sampler = Sampler(env, policy, T, E, device)
    tasks = env.sample_tasks(T, np.random.default_rng(0))
    print(f"{args.env}: {T} tasks x {E} episodes x {env.horizon} steps, device {device}, "
          f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")

    # warm-up (allocator, first-call costs), then the timed iteration
    warm = sampler.sample(params, tasks[:T], 0, gen)
    maml.advantages(warm)
    clock = Clock(device)
    with clock("iteration"):
        pre = sampler.sample(params, tasks, 1, gen)
        with clock("baseline+advantages"):
            d_pre, _ = maml.advantages(pre)
        with clock("inner loop"):
            adapted = maml.adapt(params, [d_pre], create_graph=False)
        post = sampler.sample(adapted, tasks, 2, gen)
        with clock("baseline+advantages"):
            d_post, _ = maml.advantages(post)
        with clock("meta-update"):
            _, stats = maml.meta_update(params, [d_pre], d_post)
    physics = pre.timings["env"] + post.timings["env"]
    policy_sampling = pre.timings["policy"] + post.timings["policy"]
    total = clock.times["iteration"]
    rows = [("physics (env.step)", physics), ("policy calls while sampling", policy_sampling),
            ("baseline+advantages", clock.times["baseline+advantages"]), ("inner loop", clock.times["inner loop"]),
            ("meta-update (TRPO)", clock.times["meta-update"])]
    print(f"\none meta-iteration: {total:.2f} s  ({2 * pre.env_steps} env steps sampled)")
    for name, t in rows:
        print(f"  {name:30s} {t:8.2f} s  {100 * t / total:5.1f}%")
    print(f"  {'everything but physics':30s} {total - physics:8.2f} s  {100 * (total - physics) / total:5.1f}%  (goal < 25%)")
    print(f"  line search: accepted={stats['accepted']:.0f} after {stats['line_search_steps']:.0f} step(s)")

    if args.skip_reference:
        return
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    ours = Clock(device)
    with ours("direction"):
        old = maml.old_policy(theta, [d_pre], d_post)
        _, _, g, hvp = maml.meta_gradients(theta, [d_pre], d_post, old)

        def fvp(v):
            return hvp(v) + maml.s.cg_damping * v

        step_ours = trpo.max_step(trpo.conjugate_gradient(fvp, -g.detach(), maml.s.cg_iters), fvp, maml.s.max_kl)
    loop = Clock(device)
    with loop("direction"):
        step_loop = looped_meta_update_direction(maml, params, [d_pre], d_post, maml.s.cg_iters)
    cos = float(torch.nn.functional.cosine_similarity(step_ours, step_loop, dim=0))
    print(f"\nmeta-update direction (gradient, {maml.s.cg_iters} CG iterations, step scaling):")
    print(f"  metarl, task-batched, J^T M J products : {ours.times['direction']:8.2f} s")
    print(f"  per-task Python loops (older ports)     : {loop.times['direction']:8.2f} s")
    print(f"  speed-up                                : {loop.times['direction'] / ours.times['direction']:8.1f}x")
    print(f"  cosine(step_metarl, step_loop)          : {cos:.6f}  (same update up to float32 round-off)")


if __name__ == "__main__":
    main()
