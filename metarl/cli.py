"""The ``metarl`` command: ``metarl train`` and ``metarl envs``."""

from __future__ import annotations

import argparse
import sys

from metarl.checkpoint import CheckpointError
from metarl.config import ConfigError, describe, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarl", description="MAML-TRPO meta-reinforcement learning on MuJoCo task envs")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="meta-train a policy", description="Meta-train with MAML-TRPO into a run directory.")
    train.add_argument("--config", help="YAML config (experiments/configs/*.yaml); not needed with --resume")
    train.add_argument("--output", required=True, help="run directory (config, TensorBoard events, progress.csv, checkpoints)")
    train.add_argument("--seed", type=int, help="override the config's seed")
    train.add_argument("--device", help="cpu or cuda (overrides the config)")
    train.add_argument("--iterations", type=int, help="total meta-iterations (overrides the config; may extend a resumed run)")
    train.add_argument("--resume", action="store_true", help="continue the run in --output from checkpoints/latest.pt")
    train.add_argument("--overwrite", action="store_true", help="delete an existing run in --output and start afresh")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override any config field, e.g. --set algo.max_kl=0.02 (repeatable)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--help-config", action="store_true", help="list every config field with its default and meaning")

    sub.add_parser("envs", help="list the registered task envs and run each for a few steps")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from metarl.config import TrainConfig
    from metarl.trainer import Trainer, TrainingInterrupted

    if args.help_config:
        print(describe())
        return 0
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pass one")
    overrides = list(args.set)
    for name in ("seed", "device", "iterations"):
        if getattr(args, name) is not None:
            overrides.append(f"{name}={getattr(args, name)}")
    if args.no_progress:
        overrides.append("progress_bar=false")
    if args.config:
        cfg = load_config(args.config, overrides)
    elif args.resume:
        from metarl.config import apply_overrides, from_dict, to_dict

        cfg = from_dict(apply_overrides(to_dict(TrainConfig()), overrides)).validate()
        if args.iterations is None:
            cfg.iterations = -1  # replaced by the saved config's value below
    else:
        raise ConfigError("--config: required for a new run (e.g. experiments/configs/navigation2d_smoke.yaml)")
    if args.resume and args.iterations is None:
        from metarl.checkpoint import load_checkpoint
        import os

        cfg.iterations = load_checkpoint(os.path.join(args.output, "checkpoints", "latest.pt"))["config"]["iterations"]
    trainer = Trainer(cfg, args.output, resume=args.resume, overwrite=args.overwrite)
    try:
        state = trainer.train()
    except TrainingInterrupted as exc:
        print(f"\n{exc}; checkpoint saved at iteration {trainer.state.iteration}. "
              f"Continue with: metarl train --output {args.output} --resume", file=sys.stderr)
        return 128 + exc.signum
    print(f"done: {state.iteration} iterations, best post-adaptation return {state.best_return:.2f} "
          f"(iteration {state.best_iteration}); run directory {trainer.run_dir}")
    return 0


def cmd_envs() -> int:
    import gymnasium
    import numpy as np

    import envs

    for env_id in envs.TASK_ENVS:
        vec = gymnasium.make_vec(env_id, num_envs=4)
        vec.set_tasks(vec.sample_tasks(4, np.random.default_rng(0)))
        vec.reset(seed=0)
        total = np.zeros(4)
        for _ in range(vec.horizon):
            _, r, *_ = vec.step(np.zeros(vec.action_space.shape))
            total += r
        print(f"{env_id:28s} obs {vec.single_observation_space.shape[0]:3d} act {vec.single_action_space.shape[0]} "
              f"horizon {vec.horizon}  zero-action returns {np.round(total, 1).tolist()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        return cmd_envs()
    except (ConfigError, CheckpointError, FileExistsError) as exc:
        print(f"metarl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
