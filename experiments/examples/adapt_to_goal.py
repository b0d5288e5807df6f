"""Adapt a trained meta-policy to a goal it has never seen, then roll the adapted policy out.

    python experiments/examples/adapt_to_goal.py experiments/zoo/navigation2d --goal 0.3 -0.2

One policy-gradient step on a few episodes of the new goal, as the meta-policy was trained to take; the
rollouts before and after show what the step bought.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import metarl
from metarl.config import check_seed
from metarl.errors import RunError, UsageError


def rollout(run: metarl.Run, goal: np.ndarray, params: dict | None, episodes: int, seed: int) -> float:
    """Average return of ``episodes`` deterministic rollouts (the policy's mean action) on ``goal``."""
    env = run.make_env(episodes)
    env.set_tasks(np.repeat(goal[None], episodes, axis=0))
    obs, _ = env.reset(seed=seed)
    total = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    for _ in range(env.horizon):
        if params is None:
            actions = run.act(obs)
        else:  # one adapted policy (task 0) for every episode
            actions = run.act(obs, metarl.Run.select(params, 0))
        obs, reward, terminated, truncated, _ = env.step(actions)
        total += reward * alive
        alive &= ~terminated
        if truncated.any() or not alive.any():
            break
    return float(total.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory or checkpoint (e.g. a zoo entry)")
    parser.add_argument("--goal", type=float, nargs="+", required=True, help="the task vector, e.g. 0.3 -0.2")
    parser.add_argument("--steps", type=int, default=1, help="adaptation steps")
    parser.add_argument("--episodes", type=int, help="episodes per adaptation step (default: the run's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="a plug-in module of the run's env.imports to allow (repeatable; see docs/plugins.md)")
    args = parser.parse_args()

    check_seed(args.seed, "--seed")
    if args.steps < 1:
        raise UsageError(f"--steps: expected a positive number of adaptation steps, got {args.steps}")
    if args.episodes is not None and args.episodes < 1:
        raise UsageError(f"--episodes: expected a positive number of episodes per step, got {args.episodes}; or leave "
                         "it out for the run's own")
    run = metarl.load_run(args.run, imports=args.imports)
    goal = np.asarray(args.goal, dtype=np.float64)
    size = run.make_env(1).sample_tasks(1, np.random.default_rng(0)).shape[1]  # the task vector's length
    if not np.isfinite(goal).all():
        raise UsageError(f"--goal: expected finite numbers, got {' '.join(map(str, args.goal))}")
    if goal.shape[0] != size:
        raise UsageError(f"--goal: {run.config.env.id} takes {size} number(s) per task, got {goal.shape[0]}: "
                         f"{' '.join(map(str, args.goal))}")
    adapted = run.adapt(goal[None], steps=args.steps, episodes=args.episodes, seed=args.seed)
    before = rollout(run, goal, None, 10, args.seed + 1)
    after = rollout(run, goal, adapted, 10, args.seed + 1)
    print(f"{run.config.env.id}, goal {goal.tolist()}: mean-action return {before:.2f} before adaptation, "
          f"{after:.2f} after {args.steps} step(s)")


if __name__ == "__main__":
    try:
        main()
    except (UsageError, RunError) as exc:  # bad input (exit 2), or the disk or permissions (exit 1): the message says what to do
        print(f"adapt_to_goal: error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:  # Ctrl-C: nothing of the user's is left half-written
        print("adapt_to_goal: interrupted", file=sys.stderr)
        sys.exit(130)
