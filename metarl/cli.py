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

    ev = sub.add_parser("evaluate", help="adaptation curves on fixed test tasks (the paper's protocol by default)",
                        description="Adaptation curves: for each test task sample a batch, record the average return, take a "
                                    "policy-gradient step (alpha, then alpha/2), sample a fresh batch, and so on.")
    ev.add_argument("source", nargs="?", help="a run directory (its best checkpoint) or a checkpoint file")
    ev.add_argument("--random", action="store_true", help="evaluate a freshly initialised policy (needs --config)")
    ev.add_argument("--config", help="training config that defines env and network (with --random)")
    ev.add_argument("--steps", type=int, help="adaptation steps K (paper: 3, 4 for Navigation2D; 0 for the oracle)")
    ev.add_argument("--tasks", type=int, default=40, help="number of test tasks (the paper's seeded goals: 40)")
    ev.add_argument("--episodes", type=int, help="episodes per task per batch (paper: 20, 40 for AntDir and Navigation2D)")
    ev.add_argument("--step-size", type=float, help="first adaptation step size (default: per method, as in the paper)")
    ev.add_argument("--later-step-size", type=float, help="step size after the first step (default: half the first)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the evaluation's episodes")
    ev.add_argument("--device", default="cpu", help="cpu or cuda")
    ev.add_argument("--output", help="results directory (default: RUN_DIR/evaluation)")
    ev.add_argument("--overwrite", action="store_true", help="replace results already in --output")

    bl = sub.add_parser("baseline", help="train the pretrained or oracle comparison with stable-baselines3 PPO")
    bl.add_argument("kind", choices=["pretrained", "oracle"])
    bl.add_argument("--config", required=True, help="config of the task (env and network shape)")
    bl.add_argument("--output", required=True, help="directory for the SB3 model and a metarl checkpoint")
    bl.add_argument("--timesteps", type=int, default=1_000_000, help="PPO env steps")
    bl.add_argument("--slots", type=int, default=16, help="parallel env slots")
    bl.add_argument("--seed", type=int, default=0)
    bl.add_argument("--overwrite", action="store_true")

    pl = sub.add_parser("plot", help="the paper's figure for a task, and our numbers next to the paper's")
    pl.add_argument("results", nargs="+", metavar="METHOD=DIR",
                    help="evaluation directories by method, e.g. maml=runs/x/evaluation random=runs/r")
    pl.add_argument("--output", required=True, help="PNG file to write")
    pl.add_argument("--no-paper", action="store_true", help="leave out the published curves")
    pl.add_argument("--overwrite", action="store_true")

    sub.add_parser("envs", help="list the registered task envs and run each for a few steps")
    return parser


def cmd_evaluate(args: argparse.Namespace) -> int:
    import os

    import torch

    from metarl import evaluation as ev
    from metarl.config import from_dict
    from metarl.policy import GaussianMLPPolicy

    if args.random:
        if not args.config or not args.output:
            raise ConfigError("--random: pass --config (env and network) and --output")
        cfg = load_config(args.config)
        env = ev.make_eval_env(ev.EvalSettings(env_id=cfg.env.id, env_kwargs=cfg.env.kwargs, num_tasks=1, episodes_per_task=1))
        policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0],
                                   cfg.policy.hidden_sizes, cfg.policy.init_std)
        params = policy.init_params(torch.Generator().manual_seed(args.seed))
        method, oracle, alpha, source, out = "random", False, None, "random initialisation", args.output
    else:
        if not args.source:
            raise ConfigError("source: pass a run directory or a checkpoint file (or --random --config CFG)")
        path = ev.resolve_source(args.source)
        policy, params, state = ev.load_policy(path)
        cfg = from_dict(state["config"])
        cfg.env.kwargs = dict(state.get("env_kwargs", cfg.env.kwargs))
        method, oracle = state.get("method", "maml"), bool(state.get("oracle", False))
        alpha = cfg.algo.inner_step_size if method == "maml" else None
        source = os.path.abspath(path)
        out = args.output or os.path.join(os.path.dirname(os.path.dirname(source)), "evaluation")
    settings = ev.protocol_settings(cfg, method, oracle, alpha, steps=args.steps, episodes=args.episodes,
                                    step_size=args.step_size, later_step_size=args.later_step_size,
                                    num_tasks=args.tasks, seed=args.seed, device=args.device, source=source)
    ev.check_output(out, args.overwrite)
    env = ev.make_eval_env(settings)
    ev.check_policy_fits(policy, env, settings.env_id)
    tasks = ev.evaluation_tasks(env, settings)
    returns = ev.adaptation_curve(policy, params, tasks, settings, env=env)
    result = ev.write_results(out, settings, tasks, ev.task_names(env, tasks.shape[1]), returns, overwrite=args.overwrite)
    for row in result["summary"]:
        print(f"step {row['adaptation_steps']}: {row['mean_return']:9.2f} ± {row['sem']:.2f}")
    print(f"wrote {out}/ (per_goal.csv, summary.csv, results.json, curve.png, tensorboard/)")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from metarl.sb3 import train_baseline

    cfg = load_config(args.config)
    train_baseline(args.kind, cfg, args.output, args.timesteps, args.seed, args.slots, args.overwrite)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import os

    from metarl import evaluation as ev
    from metarl import plotting

    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"--output: {args.output!r} exists; pass --overwrite or choose another file")
    results = {}
    for item in args.results:
        if "=" not in item:
            raise ConfigError(f"results: expected METHOD=DIR (e.g. maml=runs/x/evaluation), got {item!r}")
        method, path = item.split("=", 1)
        results[method] = ev.load_results(path)
    env_ids = {r["settings"]["env_id"] for r in results.values()}
    if len(env_ids) != 1:
        raise ConfigError(f"results: come from different tasks {sorted(env_ids)}; plot one task at a time")
    env_id = env_ids.pop()
    task = ev.paper_name(env_id)
    faithful = task is not None and all(r["settings"]["env_kwargs"].get("dynamics", "paper") == "paper" for r in results.values())
    published = plotting.published_summary(task) if task is not None and faithful and not args.no_paper else {}
    plotting.plot_curves(results, args.output, title=f"{env_id}" + (" (dashed: published)" if published else ""),
                         published=published)
    print(plotting.comparison_table(results, published))
    print(f"wrote {args.output}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from metarl.trainer import Trainer, TrainingInterrupted, saved_run

    if args.help_config:
        print(describe())
        return 0
    if args.resume:
        if args.overwrite or args.config or args.set or args.seed is not None:
            raise ConfigError(
                "--resume continues the run with its saved config; only --iterations, --device and --no-progress "
                "may be given with it (drop --config/--set/--seed/--overwrite, or start a new --output)"
            )
        cfg = saved_run(args.output)[0]
        if args.iterations is not None:
            cfg.iterations = args.iterations
        if args.device is not None:
            cfg.device = args.device
        cfg.progress_bar = not args.no_progress
        cfg.validate()
    else:
        if not args.config:
            raise ConfigError("--config: required for a new run (e.g. experiments/configs/navigation2d_smoke.yaml)")
        overrides = list(args.set)
        for name in ("seed", "device", "iterations"):
            if getattr(args, name) is not None:
                overrides.append(f"{name}={getattr(args, name)}")
        if args.no_progress:
            overrides.append("progress_bar=false")
        cfg = load_config(args.config, overrides)
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

    from metarl import envs

    for env_id in envs.TASK_ENVS:
        vec: envs.BatchedTaskEnv = gymnasium.make_vec(env_id, num_envs=4)  # type: ignore[assignment]
        vec.set_tasks(vec.sample_tasks(4, np.random.default_rng(0)))
        vec.reset(seed=0)
        total = np.zeros(4)
        for _ in range(vec.horizon):
            _, r, *_ = vec.step(np.zeros((4, vec.act_dim)))
            total += r
        print(f"{env_id:28s} obs {vec.obs_dim:3d} act {vec.act_dim} "
              f"horizon {vec.horizon}  zero-action returns {np.round(total, 1).tolist()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        if args.command == "baseline":
            return cmd_baseline(args)
        if args.command == "plot":
            return cmd_plot(args)
        return cmd_envs()
    except (ConfigError, CheckpointError, FileExistsError, FileNotFoundError) as exc:
        print(f"metarl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
