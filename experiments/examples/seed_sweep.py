"""A seed sweep from Python: train one config with several seeds, evaluate each run, report the spread.

    python experiments/examples/seed_sweep.py --config experiments/configs/navigation2d.yaml \
        --seeds 0 1 2 --output runs/sweep

Each seed gets its own run directory (``runs/sweep/seed-N``); an interrupted sweep is continued by
running the same command again: finished runs are evaluated again, unfinished ones resumed.  A run that was
trained with another config (or other ``--set``) than the command gives is refused, naming the fields.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import metarl
from metarl.config import check_seed, load_config, to_dict
from metarl.errors import RunError, UsageError
from metarl.trainer import TrainingInterrupted, config_differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training config (YAML)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to train")
    parser.add_argument("--output", required=True, help="folder for one run directory per seed")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config overrides")
    parser.add_argument("--tasks", type=int, default=40, help="test goals of the evaluation")
    parser.add_argument("--episodes", type=int, help="episodes per goal per batch (default: the paper's)")
    args = parser.parse_args()
    # the evaluation's flags, checked before the training they would otherwise stop after
    for flag, value in (("tasks", args.tasks), ("episodes", args.episodes)):
        if value is not None and value < 1:
            raise UsageError(f"--{flag}: expected a positive integer, got {value}")
    if len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds: {args.seeds} names a seed twice; give each seed once")
    for seed in args.seeds:
        check_seed(seed, "--seeds")
    cfg = load_config(args.config, args.set).validate()  # the config and --set checked once, before any training

    for seed in args.seeds:  # every seed's folder checked before the first one trains
        out = os.path.join(args.output, f"seed-{seed}")
        if os.path.isdir(out) and not os.path.isfile(os.path.join(out, "metarl-run.json")):
            raise UsageError(f"--output: {out!r} exists and is not a run directory of a sweep; move it away or give "
                             "another --output")
        if os.path.isfile(os.path.join(out, "config.yaml")):  # a run of this sweep: of this config?
            cfg.seed = seed
            # the fields a resumed run may take from the command (iterations, device, ...) are left out
            changed = [c[0] for c in config_differences(to_dict(load_config(os.path.join(out, "config.yaml"))), to_dict(cfg))]
            if changed:
                raise UsageError(f"--output: {out!r} was trained with another config ({', '.join(changed[:4])} "
                                 "differ from --config and --set); give the run's own config to continue the sweep, "
                                 "or another --output")
    curves = {}
    for seed in args.seeds:
        out = os.path.join(args.output, f"seed-{seed}")
        if os.path.isdir(out):  # a sweep run again continues where it stopped
            # the plug-in modules are the ones of the --config given to this command (see docs/plugins.md)
            imports = cfg.env.imports
            run = metarl.train(None, out, resume=True, progress=False, imports=imports)
        else:
            run = metarl.train(args.config, out, seed=seed, overrides=args.set, progress=False)
        curves[seed] = metarl.evaluate(run, tasks=args.tasks, episodes=args.episodes)
        print(f"seed {seed}: " + "  ".join(f"{m:8.2f} ± {s:5.2f}" for m, s in zip(curves[seed].mean, curves[seed].sem)))

    means = np.stack([c.mean for c in curves.values()])  # [seeds, steps]
    spread = means.std(axis=0, ddof=1) / np.sqrt(len(means)) if len(means) > 1 else np.full(means.shape[1], np.nan)
    print("over seeds (mean ± standard error across seeds):")
    for k, (m, s) in enumerate(zip(means.mean(axis=0), spread)):
        print(f"  after {k} steps: {m:8.2f} ± {s:5.2f}")


if __name__ == "__main__":
    try:
        main()
    except TrainingInterrupted as exc:  # the run saved its checkpoint: the same command continues the sweep
        print(f"seed_sweep: {exc}; its checkpoint is saved, run the same command again to continue", file=sys.stderr)
        sys.exit(128 + exc.signum)
    except (UsageError, RunError) as exc:  # bad input (exit 2), or the disk or permissions (exit 1): the message says what to do
        print(f"seed_sweep: error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:  # Ctrl-C: nothing of the user's is left half-written
        print("seed_sweep: interrupted", file=sys.stderr)
        sys.exit(130)
