"""How far the released code's finite-difference curvature is from the exact KL Hessian-vector product.

    python -m experiments.compare_hvp --config halfcheetah_vel --checkpoint experiments/zoo/halfcheetah_vel
    python -m experiments.compare_hvp --config halfcheetah_vel                  # a freshly initialised policy

Samples one seeded meta-batch with the config (optionally fewer tasks), and at the given meta-parameters
(a run directory's best checkpoint, a checkpoint file, or a fresh policy) applies both products to two unit
vectors: the meta-gradient's direction (where TRPO's conjugate gradient starts) and a random one. The
finite-difference product is ``algo.hvp: finite_difference`` (rllab's FiniteDifferenceHvp) in the run's
dtype. Prints the share of the parameters that ``theta +- eps v`` actually moves in that dtype,
``v.Hv`` for both, the ratio of their norms and their cosine.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file (python experiments/NAME.py): the repository root, as for -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import config_path, positive
from metarl.baseline import LinearFeatureBaseline
from metarl.config import check_seed, load_config
from metarl.errors import UsageError
from metarl.environment import make_env
from metarl.evaluation import load_policy, resolve_source
from metarl.maml import MAMLTRPO, finite_difference_eps
from metarl.policy import GaussianMLPPolicy, flat
from metarl.sampler import Sampler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="halfcheetah_vel", help="config name in experiments/configs")
    p.add_argument("--checkpoint", help="run directory or checkpoint file (default: a freshly initialised policy)")
    p.add_argument("--tasks", type=int, help="tasks in the meta-batch (default: the config's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tasks, the episodes and a fresh policy")
    args = p.parse_args()
    positive(p, tasks=args.tasks)
    path = config_path(p, args.config)
    overrides = [f"algo.num_tasks={args.tasks}"] if args.tasks else []
    try:  # every input checked before the sampling
        check_seed(args.seed, "--seed")
        cfg = load_config(path, overrides)
        a = cfg.algo
        dtype = getattr(torch, cfg.dtype)
        env = make_env(cfg.env, a.num_tasks * a.episodes_per_task)
        policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0],
                                   cfg.policy.hidden_sizes, cfg.policy.init_std)
        if args.checkpoint:
            saved, params, state = load_policy(resolve_source(args.checkpoint))
            if (state.get("env_id"), saved.sizes) != (cfg.env.id, policy.sizes):
                raise UsageError(f"--checkpoint: {args.checkpoint!r} holds a policy of {state.get('env_id')} with layers "
                                 f"{list(saved.sizes)}, --config {args.config} one of {cfg.env.id} with layers "
                                 f"{list(policy.sizes)}; give the config the checkpoint was trained with")
        else:
            params = policy.init_params(torch.Generator().manual_seed(args.seed))
    except UsageError as exc:
        p.error(str(exc))
    params = {k: v.to(dtype) for k, v in params.items()}
    maml = MAMLTRPO(policy, LinearFeatureBaseline(a.baseline_reg), a)
    sampler = Sampler(env, policy, a.num_tasks, a.episodes_per_task, torch.device("cpu"), dtype)
    gen = torch.Generator().manual_seed(args.seed)
    tasks = env.sample_tasks(a.num_tasks, np.random.default_rng(args.seed))
    d_pre, _ = maml.advantages(sampler.sample(params, tasks, args.seed + 1, gen))
    adapted = maml.adapt(params, [d_pre], create_graph=False)
    d_post, _ = maml.advantages(sampler.sample(adapted, tasks, args.seed + 2, gen))
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, [d_pre], d_post)
    _, _, g, exact = maml.meta_gradients(theta, [d_pre], d_post, old)
    fd = maml.finite_difference_hvp(theta, [d_pre], d_post, old)
    center = flat(params)
    eps = finite_difference_eps(center, a.hvp_fd_eps)
    print(f"{args.config}: {a.num_tasks} tasks x {a.episodes_per_task} episodes, dtype {cfg.dtype}, "
          f"parameters {args.checkpoint or 'freshly initialised'}: |theta| = {float(center.norm()):.3f}, eps = {eps:.3g}")
    random = torch.randn(center.numel(), generator=torch.Generator().manual_seed(args.seed + 3), dtype=dtype)
    for name, v in (("meta-gradient direction", -g.detach()), ("random direction", random)):
        v = (v / v.norm()).to(dtype)
        moved = float(((center + eps * v != center) | (center - eps * v != center)).double().mean())
        e, f = exact(v).double(), fd(v).double()
        cos = float(e @ f / (e.norm() * f.norm())) if f.norm() > 0 else float("nan")  # nan: the product is 0
        print(f"  {name:24s} entries moved {100 * moved:6.2f}%   v.Hv exact {float(v.double() @ e):10.4g}   "
              f"finite difference {float(v.double() @ f):10.4g}   |fd| / |exact| {float(f.norm() / e.norm()):8.3g}   "
              f"cosine {cos:6.3f}")


if __name__ == "__main__":
    main()
