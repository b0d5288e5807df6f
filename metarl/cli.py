"""The ``metarl`` command.

    metarl train     meta-train into a run directory (--resume continues one)
    metarl evaluate  adaptation curves of a run, a checkpoint or a random policy (the paper's protocol)
    metarl baseline  train the pretrained or oracle comparison with stable-baselines3 (TRPO or PPO)
    metarl plot      the paper's figure for a task, our curves next to the published ones
    metarl envs      list the registered task envs and run each for a few steps
    metarl config    every config field with its default and meaning (or a config resolved with --set)

Errors are one line on stderr: exit status 2 for bad input (a flag, a config value, a file), 1 when the
run cannot go on (disk, permissions, another process writing the run), 128 + N after signal N (the run
saved a checkpoint first).  ``train`` and ``evaluate`` are thin calls into :mod:`metarl.api`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from metarl import __version__
from metarl.config import ConfigError, check_seed, describe, load_config
from metarl.errors import RunError, UsageError, os_error_message


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each help text; descriptions keep their line breaks."""


def _add(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, formatter_class=_Formatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarl", description=__doc__, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"metarl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = _add(sub, "train", "meta-train a policy (MAML-TRPO) into a run directory",
                 "Meta-train into a run directory: config.yaml, progress.csv, tensorboard/, checkpoints/.\n"
                 "SIGINT/SIGTERM save a checkpoint; --resume continues exactly where the run stopped.")
    train.add_argument("--config", help="YAML config (experiments/configs/*.yaml); not with --resume")
    train.add_argument("--output", help="run directory (required): a new or empty directory, or the run to --resume")
    train.add_argument("--seed", type=int, help="override the config's seed")
    train.add_argument("--device", help="cpu, cuda or cuda:N (overrides the config)")
    train.add_argument("--iterations", type=int, help="total meta-iterations (overrides the config; extends a resumed run)")
    train.add_argument("--resume", action="store_true", help="continue the run in --output from its latest checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="delete an earlier metarl run in --output and start afresh (never a folder metarl did not create)")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override any config field, e.g. --set algo.max_kl=0.02 (repeatable)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                       help="with --resume: allow the run's plug-in module MODULE (from its env.imports) to be imported; "
                            "importing runs a module's code, so a saved run's modules are imported only when named "
                            "here (repeatable)")
    train.add_argument("--ray-address", metavar="ADDRESS",
                       help="with --resume of a Ray-sampled run: the Ray cluster to join ('' for $RAY_ADDRESS or a local "
                            "Ray); a saved sampler.address is joined only when given here again")
    train.add_argument("--help-config", action="store_true", help="list every config field and exit (as `metarl config`)")

    ev = _add(sub, "evaluate", "adaptation curves on fixed test goals (the paper's protocol by default)",
              "Adaptation curves: for each test goal sample a batch, record the average return, take a "
              "policy-gradient step\n(alpha, then alpha/2), sample a fresh batch, and so on. Writes per_goal.csv, "
              "summary.csv, results.json,\ncurve.png and TensorBoard events.")
    ev.add_argument("source", nargs="?", help="a run directory (its best checkpoint) or a checkpoint file")
    ev.add_argument("--random", action="store_true", help="evaluate a freshly initialised policy (needs --config and --output)")
    ev.add_argument("--config", help="training config that defines env and network (with --random)")
    ev.add_argument("--checkpoint", default="best", help="with a run directory: best, latest or an iteration number")
    ev.add_argument("--steps", type=int, help="adaptation steps K (default: the paper's, 3 or 4 for Navigation2D; 0 for the oracle)")
    ev.add_argument("--tasks", type=int, default=40, help="number of test goals (the paper's seeded goals)")
    ev.add_argument("--episodes", type=int, help="episodes per goal per batch, E (default: the paper's, 20 or 40 for AntDir "
                    "and Navigation2D); on the paper's tasks a batch is E x horizon env steps of whole episodes")
    ev.add_argument("--step-size", type=float, help="first adaptation step size (default: the trained one; per method for baselines)")
    ev.add_argument("--later-step-size", type=float, help="step size after the first step (default: half the first)")
    ev.add_argument("--batch-steps", type=int,
                    help="env steps per goal per batch, whole episodes until the count is reached (default on the "
                         "paper's tasks: episodes x horizon, as the authors' scripts sampled; --episodes is then the "
                         "episodes per sampling round); 0: exactly --episodes episodes per batch")
    ev.add_argument("--seed", type=int, default=0, help="seed of the evaluation's episodes (and of --random's policy)")
    ev.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ev.add_argument("--output", help="results directory (default: RUN_DIR/evaluation; required for a checkpoint outside a run's checkpoints/)")
    ev.add_argument("--overwrite", action="store_true", help="replace results already in --output")
    ev.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                    help="allow the run's plug-in module MODULE (from its env.imports) to be imported; importing runs "
                         "a module's code, so a saved run's modules are imported only when named here (repeatable)")
    ev.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="change the run's env kwargs for this evaluation, e.g. --set env.kwargs.physics.solver=pgs "
                    "(repeatable; needs --output; with --random: any field of --config)")

    bl = _add(sub, "baseline", "train the pretrained or oracle comparison with stable-baselines3 (TRPO or PPO)",
              "Train the paper's comparisons with stable-baselines3 on the batched task env (TRPO from\n"
              "sb3-contrib, the paper's method, or PPO):\n"
              "pretrained (one policy for the whole task distribution, then adapted like MAML) or oracle\n"
              "(the task appended to the observation). Writes sb3_model.zip and checkpoints/best.pt,\n"
              "which `metarl evaluate OUTPUT` reads, every million env steps and at the end; SIGINT/SIGTERM\n"
              "save the last update's state, and --resume --timesteps TOTAL continues (or extends) the run.")
    bl.add_argument("kind", choices=["pretrained", "oracle"], help="which comparison")
    bl.add_argument("--config", help="config of the task (env, network shape, discount); with --resume, the run's own by default")
    bl.add_argument("--output", required=True, help="directory for the SB3 model and a metarl checkpoint")
    bl.add_argument("--algo", choices=["trpo", "ppo"], help="the RL algorithm (default trpo, the paper's; with --resume the run's own)")
    bl.add_argument("--timesteps", type=int, default=1_000_000, help="env steps of training")
    bl.add_argument("--slots", type=int, help="parallel env slots, one trajectory each per update (default 100 for AntVel and AntDir, as the "
                    "authors' Ant baselines, 16 otherwise; with --resume the run's own)")
    bl.add_argument("--seed", type=int, help="seed of the algorithm, task draws and env resets (default 0; with --resume the run's own)")
    bl.add_argument("--overwrite", action="store_true", help="replace a baseline already in --output")
    bl.add_argument("--resume", action="store_true",
                    help="continue the baseline in --output up to --timesteps env steps in all (also extends a finished one)")
    bl.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                    help="with --resume and the run's own config: allow its plug-in module MODULE (from env.imports) "
                         "to be imported; a saved run's modules are imported only when named here (repeatable)")

    pl = _add(sub, "plot", "the paper's figure for a task, and our numbers next to the paper's",
              "Draw adaptation curves of several evaluations of one task, with the published curves dashed\n"
              "when every evaluation follows the paper's protocol, and print the table next to the paper's.")
    pl.add_argument("results", nargs="+", metavar="METHOD=DIR",
                    help="evaluation directories by method, e.g. maml=runs/x/evaluation random=runs/r")
    pl.add_argument("--output", required=True, help="figure file to write (.png, .pdf or .svg)")
    pl.add_argument("--no-paper", action="store_true", help="leave out the published curves")
    pl.add_argument("--overwrite", action="store_true", help="replace an existing --output file")

    _add(sub, "envs", "list the registered task envs and run each for a few steps",
         "List the registered metarl/ task envs and run each for one episode with zero actions.")

    cf = _add(sub, "config", "every config field with its default and meaning",
              "Without arguments: every config field, its default and its meaning.\n"
              "With --config (and --set): the resolved, validated config as YAML.")
    cf.add_argument("--config", help="a YAML config to resolve and print")
    cf.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a field (repeatable)")
    return parser


# ---- commands --------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from metarl import api
    from metarl.trainer import TrainingInterrupted

    if args.help_config:
        print(describe())
        return 0
    if not args.output:
        raise ConfigError("--output: required: the run directory to write (or to --resume)")
    if args.resume and (args.overwrite or args.config or args.set or args.seed is not None):
        raise ConfigError(
            "--resume continues the run with its saved config; only --iterations, --device, --import, --ray-address "
            "and --no-progress may be given with it (drop --config/--set/--seed/--overwrite, or start a new --output)"
        )
    if args.ray_address is not None and not args.resume:
        raise ConfigError("--ray-address: only with --resume; a new run joins the cluster of its config's "
                          "sampler.address (--set sampler.address=HOST:PORT)")
    if args.imports and not args.resume:
        raise ConfigError("--import: only with --resume (a saved run's plug-ins); a new run imports the env.imports "
                          "of its --config as it asks")
    try:
        run = api.train(None if args.resume else args.config, args.output, seed=args.seed, device=args.device,
                        iterations=args.iterations, resume=args.resume, overwrite=args.overwrite,
                        overrides=list(args.set), progress=False if args.no_progress else None,
                        imports=list(args.imports), ray_address=args.ray_address)
    except TrainingInterrupted as exc:
        command = exc.resume_command or f"metarl train --output {args.output} --resume"
        print(f"\n{exc}; checkpoint saved. Continue with: {command}", file=sys.stderr)
        return 128 + exc.signum
    from metarl.checkpoint import load_checkpoint

    latest = load_checkpoint(os.path.join(args.output, "checkpoints", "latest.pt"))
    print(f"done: {latest['iteration']} iterations, best post-adaptation return {latest['best_return']:.2f} "
          f"(iteration {latest['best_iteration']}); run directory {run.path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from metarl import api

    if args.random:
        if not args.config or not args.output:
            raise ConfigError("--random: pass --config (env and network) and --output (where the results go)")
        if args.source:
            raise ConfigError("--random: evaluates a fresh policy; drop the run directory argument, or drop --random")
        if args.imports:
            raise ConfigError("--import: for a saved run only; --random imports the env.imports of --config as it asks")
        if args.checkpoint != "best":
            raise ConfigError(f"--checkpoint {args.checkpoint}: for a saved run only; --random evaluates a fresh policy")
        run = api.Run.random(load_config(args.config, args.set), seed=check_seed(args.seed, "--seed"))
        out = args.output
    else:
        if not args.source:
            raise ConfigError("source: pass a run directory or a checkpoint file (or --random --config CFG --output DIR)")
        checkpoint: str | int = int(args.checkpoint) if args.checkpoint.isascii() and args.checkpoint.isdigit() else args.checkpoint
        if args.set and not args.output:
            raise ConfigError("--set: pass --output too (an evaluation with a changed env does not go into the "
                              "run's own evaluation/ folder)")
        run = api.load_run(args.source, checkpoint, imports=list(args.imports))
        if args.set:
            run.config = _env_overrides(run.config, args.set)
        out = args.output or _default_evaluation_dir(run)
    curve = api.evaluate(run, output=out, overwrite=args.overwrite, steps=args.steps, tasks=args.tasks,
                         episodes=args.episodes, step_size=args.step_size, later_step_size=args.later_step_size,
                         seed=args.seed, device=args.device, batch_steps=args.batch_steps)
    for row in curve.summary():
        print(f"step {row['adaptation_steps']}: {row['mean_return']:9.2f} ± {row['sem']:.2f}")
    print(f"wrote {out}/ (per_goal.csv, summary.csv, results.json, curve.png, tensorboard/)")
    return 0


def _env_overrides(cfg: Any, overrides: list[str]) -> Any:
    """``cfg`` with ``--set`` applied to its env section only (the network and training fields are the run's)."""
    from metarl.config import apply_overrides, from_dict, to_dict

    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if not (key.startswith("env.kwargs.") or key in ("env.kwargs", "env.num_threads")):
            raise ConfigError(f"--set {item!r}: an evaluation of a run changes only the env's kwargs (e.g. "
                              "env.kwargs.physics.solver=pgs) and env.num_threads; the task and its plug-in "
                              "imports stay the run's, and the adaptation settings have their own flags "
                              "(--step-size, --episodes, --steps ...)")
    return from_dict(apply_overrides(to_dict(cfg), overrides)).validate()


def _default_evaluation_dir(run) -> str:
    """``RUN/evaluation`` for a run directory or a checkpoint in its ``checkpoints/``; a checkpoint anywhere else
    needs ``--output`` (its folder's parent is not a run of the user's)."""
    if run.path:
        return os.path.join(run.path, "evaluation")
    folder = os.path.dirname(os.path.abspath(run.checkpoint or "."))
    if os.path.basename(folder) == "checkpoints":
        return os.path.join(os.path.dirname(folder), "evaluation")
    raise ConfigError(f"--output: {run.checkpoint!r} is not in a run directory's checkpoints/ folder, so there is no "
                      "run folder for the results; pass --output DIR")


def cmd_baseline(args: argparse.Namespace) -> int:
    from metarl.environment import check_named_imports
    from metarl.sb3 import train_baseline

    if args.timesteps < 1:
        raise ConfigError(f"--timesteps: expected a positive number of env steps, got {args.timesteps}")
    if args.slots is not None and args.slots < 1:
        raise ConfigError(f"--slots: expected a positive number of parallel env slots, got {args.slots}")
    if args.seed is not None:
        check_seed(args.seed, "--seed")
    if args.config is None:
        if not args.resume:
            raise UsageError("--config: required (the task's config, e.g. experiments/configs/halfcheetah_vel.yaml) "
                             "unless --resume reads the run's own")
        own = os.path.join(args.output, "config.yaml")
        if not os.path.isfile(own):
            raise UsageError(f"--resume: {args.output!r} holds no baseline to continue (no config.yaml); "
                             "train one there without --resume")
        args.config = own
        cfg = load_config(own, flag="--resume (the baseline's own config)")
        check_named_imports(cfg.env, list(args.imports), f"the run in {args.output!r}")
    else:
        if args.imports:
            raise ConfigError("--import: only with --resume and the run's own config; a --config you pass imports its "
                              "env.imports as it asks")
        cfg = load_config(args.config)
    train_baseline(args.kind, cfg, args.output, args.timesteps, args.seed, args.slots, args.overwrite, algo=args.algo,
                   resume=args.resume)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from metarl import evaluation as ev
    from metarl import plotting
    from metarl.rundir import check_output_file

    output = check_output_file(args.output, args.overwrite)
    plotting.figure_format(output)
    results = {}
    for item in args.results:
        if "=" not in item:
            raise ConfigError(f"results: expected METHOD=DIR (e.g. maml=runs/x/evaluation), got {item!r}")
        method, path = item.split("=", 1)
        if not method.strip():
            raise ConfigError(f"results: {item!r} has no method name before '='; write METHOD=DIR (e.g. maml={path})")
        if method in results:
            raise ConfigError(f"results: method {method!r} is given twice; give each curve its own name "
                              f"(e.g. {method}_a=DIR {method}_b=DIR)")
        results[method] = ev.load_results(path)
    env_ids = {r["settings"]["env"]["id"] for r in results.values()}
    if len(env_ids) != 1:
        raise ConfigError(f"results: come from different tasks {sorted(env_ids)}; plot one task at a time")
    env_id = env_ids.pop()
    task = ev.paper_name(env_id)
    differences = {m: ev.protocol_differences(r["settings"]) for m, r in results.items()}
    faithful = task is not None and not any(differences.values())
    published = plotting.published_summary(task) if task is not None and faithful and not args.no_paper else {}
    title = env_id + (" (dashed: published)" if published else "")
    if task is not None and not faithful and not args.no_paper:
        title += " (not the paper's protocol: published curves left out)"
        for method, diff in differences.items():
            if diff:
                print(f"note: {method} was evaluated with {'; '.join(diff)}, not the paper's protocol; "
                      "the published numbers are not shown next to it", file=sys.stderr)
    plotting.plot_curves(results, output, title=title, published=published)
    print(plotting.comparison_table(results, published))
    print(f"wrote {output}")
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


def cmd_config(args: argparse.Namespace) -> int:
    if args.config is not None and not args.config.strip():
        raise ConfigError("--config: expected a YAML file, got ''; leave --config out to list every field")
    if not args.config:
        if args.set:
            raise ConfigError("--set: needs --config (the config to resolve)")
        print(describe())
        return 0
    import yaml

    from metarl.config import to_dict

    print(yaml.safe_dump(to_dict(load_config(args.config, list(args.set))), sort_keys=False), end="")
    return 0


def _resume_command(output: str) -> str:
    """``metarl train --output OUTPUT --resume`` with the flags the run's saved config needs, as far as it is readable."""
    import shlex

    command = f"metarl train --output {shlex.quote(output)} --resume"
    try:
        from metarl.config import resume_flags
        from metarl.trainer import saved_config

        return command + resume_flags(saved_config(output))
    except Exception:  # an unreadable run: the plain command, whose own error then says what is wrong
        return command


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
        if args.command == "config":
            return cmd_config(args)
        return cmd_envs()
    except UsageError as exc:
        print(f"metarl: error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"metarl: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        output = getattr(args, "output", None)
        hint = f"`{_resume_command(output)}`" if args.command == "train" and output else None
        print(f"metarl: error: {os_error_message(exc, output or 'the output', hint, verb='read or write')}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # numpy's "Unable to allocate N PiB" or torch's: the sizes asked for, not a bug
        sizes = ", ".join(f"--{k.replace('_', '-')} {v}" for k in ("tasks", "episodes", "steps", "batch_steps")
                          if (v := getattr(args, k, None)) is not None)
        detail = str(exc).splitlines()[0] if str(exc) else "out of memory"
        print(f"metarl: error: not enough memory for this {args.command} ({detail}){'; asked for ' + sizes if sizes else ''}: "
              "use smaller sizes (or, for train, a smaller algo.num_tasks / algo.episodes_per_task)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # a baseline's SIGTERM carries its number: 128 + N, as train's
        print("metarl: interrupted", file=sys.stderr)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))


if __name__ == "__main__":
    sys.exit(main())
