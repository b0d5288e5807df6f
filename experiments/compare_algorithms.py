"""Side-by-side table and figure of meta-RL algorithms from `metarl evaluate` outputs (docs/algorithms.md).

Expects evaluation directories ``EVAL_DIR/<task>_<method>_s<seed>_it<iteration>/results.json`` (the paper's
protocol, one per trained seed) and training runs ``RUNS_DIR/<task>_<method>_s<seed>/progress.csv`` (for the
wall-clock per iteration).  For each method and adaptation step it reports:

* the mean over goals of the seed-averaged return, with its standard error across the test goals;
* the spread across seeds: the standard deviation of the seed means (sd);
* the median training wall-clock per iteration (first ``iteration`` iterations, all seeds).

    python -m experiments.compare_algorithms --task nav --iteration 100 --figure docs/figures/algorithms_navigation2d.png --overwrite
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file (python experiments/NAME.py): the repository root, as for -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import positive
from metarl.errors import UsageError, os_error_message

METHODS = {"maml_trpo": "MAML-TRPO", "promp": "ProMP", "maml_ppo": "MAML-PPO", "metasgd": "Meta-SGD (TRPO)"}


def load(eval_dir: str, task: str, method: str, iteration: int, seen: dict[str, Any]) -> dict[int, np.ndarray]:
    """``{seed: returns [goals, K+1]}`` of the evaluations found, each read by ``metarl.evaluation.load_results``.

    ``seen`` keeps the first evaluation's env and goals: every other one must be of the same env and goals (the
    table averages seeds goal by goal and sets methods side by side), else the script stops naming it."""
    from metarl.evaluation import load_results

    out = {}
    for seed in range(100):
        folder = os.path.join(eval_dir, f"{task}_{method}_s{seed}_it{iteration}")
        if not os.path.isfile(os.path.join(folder, "results.json")):
            continue
        data = load_results(folder)
        env, tasks = data["settings"]["env"]["id"], np.asarray(data["tasks"], dtype=np.float64)
        if not seen:
            seen.update(folder=folder, env=env, tasks=tasks)
        elif env != seen["env"] or tasks.shape != seen["tasks"].shape or not np.array_equal(tasks, seen["tasks"]):
            raise UsageError(f"{folder!r} is an evaluation of {env} on {len(tasks)} goals, {seen['folder']!r} of "
                             f"{seen['env']} on {len(seen['tasks'])} goals (or other goals); a table compares "
                             "evaluations of one task on the same goals")
        out[seed] = np.asarray(data["returns"], dtype=np.float64)
    return out


def seconds_per_iteration(runs_dir: str, task: str, method: str, seeds: list[int], iteration: int) -> float:
    times = []
    for seed in seeds:
        path = os.path.join(runs_dir, f"{task}_{method}_s{seed}", "progress.csv")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))[:iteration]
            try:
                times += [float(r["time/iteration"]) for r in rows]
            except (KeyError, TypeError, ValueError):
                raise UsageError(f"{path!r}: no readable time/iteration column; expected the progress.csv of a "
                                 "metarl training run") from None
    return float(np.median(times)) if times else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="nav")
    p.add_argument("--iteration", type=int, default=100)
    p.add_argument("--eval-dir", default="runs/eval")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--figure", default="", help="figure file to write (.png, .pdf or .svg)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --figure")
    args = p.parse_args()
    positive(p, iteration=args.iteration)
    try:
        table(args)
    except UsageError as exc:
        p.error(str(exc))
    except OSError as exc:
        sys.exit(f"compare_algorithms: {os_error_message(exc, args.figure or 'the figure')}")


def table(args: argparse.Namespace) -> None:
    if args.figure:
        from metarl.plotting import figure_format
        from metarl.rundir import check_output_file

        figure_format(args.figure, "--figure")
        check_output_file(args.figure, args.overwrite, "--figure")
    curves: dict[str, dict] = {}
    header = False
    seen: dict[str, Any] = {}
    for method, label in METHODS.items():
        per_seed = load(args.eval_dir, args.task, method, args.iteration, seen)
        if not per_seed:
            continue
        seeds = sorted(per_seed)
        stacked = np.stack([per_seed[s] for s in seeds])  # [seeds, goals, K+1]
        pooled = stacked.mean(axis=0)  # each goal's return averaged over seeds
        n, steps = pooled.shape
        if not header:
            print("| method | seeds | " + " | ".join(f"step {k}" for k in range(steps)) + " | s / iteration |")
            print("|---|---|" + "---|" * steps + "---|")
            header = True
        cells, summary = [], []
        for k in range(steps):
            mean, se = float(pooled[:, k].mean()), float(pooled[:, k].std(ddof=1) / math.sqrt(n))
            seed_means = stacked[:, :, k].mean(axis=1)
            sd = f" (sd {seed_means.std(ddof=1):.2f})" if len(seeds) > 1 else ""
            cells.append(f"{mean:.2f} ± {se:.2f}{sd}")
            summary.append({"adaptation_steps": k, "mean_return": mean, "sem": se})
        curves[label] = {"summary": summary}
        sec = seconds_per_iteration(args.runs_dir, args.task, method, seeds, args.iteration)
        print(f"| {label} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + f" | {sec:.1f} |")
    if not curves:
        pattern = os.path.join(args.eval_dir, f"{args.task}_<method>_s<seed>_it{args.iteration}", "results.json")
        sys.exit(f"no evaluation found: looked for {pattern} with <method> one of {', '.join(METHODS)}; check "
                 "--eval-dir, --task and --iteration against the names `metarl evaluate --output` was given")
    if args.figure:
        from metarl.plotting import plot_curves

        task = {"nav": "Navigation2D", "hcv": "HalfCheetahVel", "hcvel": "HalfCheetahVel"}.get(args.task, args.task)
        plot_curves(curves, args.figure, title=f"{task}, {args.iteration} iterations, seeds averaged (± SE over goals)")
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
