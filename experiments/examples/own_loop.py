"""MAML-TRPO written out with metarl's building blocks, for people who write their own loop.

    python experiments/examples/own_loop.py --env metarl/Navigation2D-v0 --iterations 20

The same steps as ``metarl train`` (without checkpoints and logs): sample tasks, sample episodes with
the meta-parameters, adapt per task in one batched step, sample with the adapted parameters, and take
one TRPO step on the post-adaptation surrogate through the inner step.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from metarl.baseline import LinearFeatureBaseline
from metarl.config import AlgoConfig, EnvConfig, check_seed
from metarl.environment import env_dims, make_env
from metarl.errors import RunError, UsageError
from metarl.maml import MAMLTRPO
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="metarl/Navigation2D-v0")
    parser.add_argument("--horizon", type=int, default=None, help="shorter episodes for a quick look")
    parser.add_argument("--tasks", type=int, default=20, help="tasks per meta-batch (T)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task (E)")
    parser.add_argument("--alpha", type=float, default=0.5, help="inner step size")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for flag in ("tasks", "episodes", "iterations"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag}: expected a positive integer, got {getattr(args, flag)}")
    if args.horizon is not None and args.horizon < 1:
        raise UsageError(f"--horizon: expected a positive episode length, got {args.horizon}; or leave it out for the "
                         "env's own")
    check_seed(args.seed, "--seed")
    if not (np.isfinite(args.alpha) and args.alpha > 0):
        raise UsageError(f"--alpha: expected a positive inner step size, e.g. 0.5, got {args.alpha}")

    # the env: T * E slots, one task per block of E slots
    kwargs = {} if args.horizon is None else {"horizon": args.horizon}
    env = make_env(EnvConfig(id=args.env, kwargs=kwargs), args.tasks * args.episodes)
    obs_dim, act_dim = env_dims(env)
    policy = GaussianMLPPolicy(obs_dim, act_dim, hidden_sizes=(100, 100), init_std=1.0)
    algo = AlgoConfig(num_tasks=args.tasks, episodes_per_task=args.episodes, inner_step_size=args.alpha)
    maml = MAMLTRPO(policy, LinearFeatureBaseline(algo.baseline_reg), algo)
    sampler = Sampler(env, policy, args.tasks, args.episodes)

    generator = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    theta = policy.init_params(generator)
    for iteration in range(args.iterations):
        tasks = env.sample_tasks(args.tasks, rng)  # T_i ~ p(T)
        pre = sampler.sample(theta, tasks, int(rng.integers(2**31 - 1)), generator)  # D_i with pi_theta
        inner, _ = maml.advantages(pre)  # baseline per task, GAE, standardised
        adapted = maml.adapt(theta, [inner], create_graph=False)  # theta'_i for every task at once
        post = sampler.sample(adapted, tasks, int(rng.integers(2**31 - 1)), generator)  # D'_i with pi_theta'_i
        post_data, _ = maml.advantages(post)
        theta, stats = maml.meta_update(theta, [inner], post_data)  # TRPO through the inner step
        print(f"iteration {iteration:3d}: return before adaptation {pre.average_return().mean():8.2f}, "
              f"after {post.average_return().mean():8.2f}, KL {stats['kl_after']:.4f}")


if __name__ == "__main__":
    try:
        main()
    except (UsageError, RunError) as exc:  # bad input (exit 2), or the disk or permissions (exit 1): the message says what to do
        print(f"own_loop: error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:  # Ctrl-C: nothing of the user's is left half-written
        print("own_loop: interrupted", file=sys.stderr)
        sys.exit(130)
