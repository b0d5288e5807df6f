"""Reproduce one of the paper's figures end to end: MAML, pretrained, random and oracle, evaluated and plotted.

    python experiments/reproduce.py navigation2d --output runs/fig-nav
    python experiments/reproduce.py halfcheetah_vel --output runs/fig-hcvel --iterations 100 --baseline-steps 2000000

The baselines train with TRPO (sb3-contrib's; the paper also used TRPO), or PPO with --baseline-algo ppo.  Their default budget is per task,
the same for the pretrained policy and the oracle: the env steps after which the oracle's training curve was
measured flat (docs/evaluation.md, "Measured: TRPO baselines"): 1,000,000 for navigation2d, 5,000,000 for
halfcheetah_vel, 20,000,000 for halfcheetah_dir (the pretrained policy was measured at 5,000,000 only); the
Ant tasks get 20,000,000 too, a budget not measured there.

Steps (each skipped when its result is finished and current, so an interrupted run picks up where it stopped):
  1. metarl train     experiments/configs/<task>.yaml            -> OUTPUT/maml (resumed up to --iterations)
  2. metarl baseline  pretrained / oracle (TRPO, sb3-contrib)     -> OUTPUT/pretrained, OUTPUT/oracle (resumed
                      until --baseline-steps env steps are done)
  3. metarl evaluate  each, with the paper's protocol             -> OUTPUT/<method>/evaluation (again when the
                      checkpoint is newer than its evaluation or the evaluation was stopped)
  4. metarl plot      the figure and the table next to the paper  -> OUTPUT/figure.png, OUTPUT/table.txt

OUTPUT is this script's: a new or empty folder, or one it made before for the same task, --seed and
--baseline-algo (its ``reproduce.json`` says which; a folder of only its names, ``maml`` among them, is taken
as one it made before it wrote that file); a folder of anything else is refused, and so are runs in it of
another task.  A signal to the script (Ctrl-C, SIGTERM, SIGHUP) stops the running command as that command
stops, with its save (a hang-up reaches it as SIGTERM); the script waits for it and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# env steps of each baseline by default (see the module's docstring)
BASELINE_STEPS = {"navigation2d": 1_000_000, "halfcheetah_vel": 5_000_000, "halfcheetah_dir": 20_000_000,
                  "ant_vel": 20_000_000, "ant_dir": 20_000_000}
DEFAULT_BASELINE_STEPS = 5_000_000


MARKER = "reproduce.json"  # in OUTPUT: the task it holds the runs of
NAMES = {"maml", "pretrained", "oracle", "random", "figure.png", "table.txt", MARKER}


def claim_output(parser: argparse.ArgumentParser, out: str, task: str, env_id: str, settings: dict) -> None:
    """OUTPUT is new, empty, or this script's for ``task`` with the same ``settings`` (seed, baseline algorithm);
    then marked as such.  Anything else is a usage error, found before anything is written."""
    if not out:
        parser.error("--output: expected a directory for the figure's runs, got ''")
    if os.path.exists(out) and not os.path.isdir(out):
        parser.error(f"--output: {out!r} is a file; give a directory for the figure's runs")
    marker = os.path.join(out, MARKER)
    # a write cut short leaves a hidden .tmp-* file: not the user's
    present = [n for n in os.listdir(out) if not n.startswith(".tmp-")] if os.path.isdir(out) else []
    older = "maml" in present and set(present) <= NAMES  # made by this script before it wrote its marker
    if present and not os.path.isfile(marker) and not older:
        parser.error(f"--output: {out!r} holds {', '.join(sorted(present)[:3])} and no {MARKER}, so it is not a "
                     "folder this script made (it would write figure.png and table.txt there); give a new or empty "
                     "directory")
    if os.path.isfile(marker):
        try:
            with open(marker, encoding="utf-8") as fh:
                saved = json.load(fh)
            if saved["task"] != task:
                parser.error(f"--output: {out!r} holds the runs of {saved['task']!r}, not {task!r}; give another "
                             "directory")
            for name, value in settings.items():
                if name in saved and saved[name] != value:  # the runs were made with the other value
                    flag = "--" + name.replace("_", "-")
                    parser.error(f"{flag}: the runs in {out!r} were made with {flag} {saved[name]}, not {value}; give "
                                 f"{flag} {saved[name]} to continue them, or another --output")
        except (OSError, ValueError, KeyError, TypeError):
            parser.error(f"--output: {marker!r} is not readable; give a new or empty directory")
    others = sorted(set(present) - NAMES)
    if others:
        parser.error(f"--output: {out!r} also holds {', '.join(others[:3])}, which this script did not make; move "
                     "them away or give another directory")
    from experiments.steps import check_same_task

    for name in ("maml", "pretrained", "oracle"):
        check_same_task(os.path.join(out, name), env_id)
    try:
        os.makedirs(out, exist_ok=True)
        if not os.path.isfile(marker):
            with open(marker, "w", encoding="utf-8") as fh:
                json.dump({"task": task, "env": env_id, **settings}, fh)
    except OSError as exc:
        parser.error(f"--output: cannot write to {out!r} ({exc.strerror or exc}); choose a writable directory")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help="config name in experiments/configs, e.g. navigation2d, halfcheetah_vel")
    p.add_argument("--output", required=True)
    p.add_argument("--iterations", type=int, help="meta-iterations (default: the config's)")
    p.add_argument("--baseline-steps", type=int,
                   help="TRPO env steps for pretrained and oracle (default: per task, see above; 5,000,000 otherwise)")
    p.add_argument("--baseline-algo", choices=["trpo", "ppo"], default="trpo",
                   help="the RL algorithm of the pretrained and oracle baselines (default trpo, the paper's)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))  # run as a file: the repository root
    from experiments import positive
    from experiments.steps import baseline_steps_done, evaluate_unless_current, run_metarl
    from metarl.config import ConfigError, check_seed, load_config

    positive(p, baseline_steps=args.baseline_steps, iterations=args.iterations)
    if args.baseline_steps is None:
        args.baseline_steps = BASELINE_STEPS.get(args.task, DEFAULT_BASELINE_STEPS)
    config = os.path.join(HERE, "configs", f"{args.task}.yaml")
    if not os.path.isfile(config):
        names = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, "configs")) if f.endswith(".yaml"))
        p.error(f"task: no config named {args.task!r}; choose one of {', '.join(names)}")
    try:
        check_seed(args.seed, "--seed")
        env_id = load_config(config).env.id
    except ConfigError as exc:
        p.error(str(exc))
    out = args.output
    claim_output(p, out, args.task, env_id, {"seed": args.seed, "baseline_algo": args.baseline_algo})

    maml = os.path.join(out, "maml")
    train = ["train", "--config", config, "--output", maml, "--seed", str(args.seed), "--no-progress"]
    if args.iterations is not None:
        train += ["--iterations", str(args.iterations)]
    if os.path.isdir(maml) and os.listdir(maml):  # continued; one stopped before its first checkpoint starts over
        train = ["train", "--output", maml, "--resume", "--no-progress"] + (["--iterations", str(args.iterations)] if args.iterations is not None else [])
    run_metarl(*train)
    for kind in ("pretrained", "oracle"):
        folder = os.path.join(out, kind)
        done = baseline_steps_done(folder)
        if done is None:
            run_metarl("baseline", kind, "--config", config, "--output", folder, "--timesteps", str(args.baseline_steps),
                       "--algo", args.baseline_algo, "--seed", str(args.seed))
        elif done < args.baseline_steps:  # stopped before its budget, or a larger budget asked for: continue it
            print(f"{kind}: {done} of {args.baseline_steps} env steps trained; continuing it", flush=True)
            run_metarl("baseline", kind, "--output", folder, "--resume", "--timesteps", str(args.baseline_steps))
    sources = {"maml": maml, "pretrained": os.path.join(out, "pretrained"), "oracle": os.path.join(out, "oracle")}
    for src in sources.values():
        evaluate_unless_current(os.path.join(src, "evaluation"), os.path.join(src, "checkpoints", "best.pt"),
                                [src, "--seed", str(args.seed)], seed=args.seed)
    random_dir = os.path.join(out, "random", "evaluation")
    evaluate_unless_current(random_dir, None, ["--random", "--config", config, "--output", random_dir, "--seed",
                                               str(args.seed)], seed=args.seed)
    table = run_metarl("plot", *(f"{m}={os.path.join(s, 'evaluation')}" for m, s in sources.items()),
                       f"random={random_dir}", "--output", os.path.join(out, "figure.png"), "--overwrite", capture=True)
    from metarl.checkpoint import atomic_write_bytes

    atomic_write_bytes(os.path.join(out, "table.txt"), table.encode())
    print(table)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # between two commands: each one's result is saved as it finished
        sys.exit("reproduce: interrupted; run the same command again to continue")
