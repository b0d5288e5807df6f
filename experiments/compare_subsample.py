"""What ``algo.hvp_subsample`` costs in learning: train each fraction on several seeds, evaluate, tabulate.

    python experiments/compare_subsample.py navigation2d --output runs/subsample-nav
    python experiments/compare_subsample.py halfcheetah_dir --output runs/subsample-hcdir --seeds 0 1 2

For every fraction and seed: ``metarl train`` with the released config (``--set algo.hvp_subsample=F``),
then ``metarl evaluate`` with the paper's protocol (the run's best checkpoint, 40 test goals; ``--batch-steps``
is passed on, 0 for batches of exactly E episodes).  Each step is skipped when its result is finished and current,
so an interrupted comparison picks up where it stopped: a run short of ``--iterations`` is continued, and an
evaluation stopped while writing, older than the run's best checkpoint or made with other ``--batch-steps`` is
made again (``--report`` refuses such runs instead).  Runs of another config in ``--output`` (task, fraction,
seed or any other field but the iterations) are refused before anything trains.  The table gives,
per fraction, the mean post-adaptation return over seeds ± the standard error over seeds, the per-seed
means (each ± its standard error over the 40 goals), and the mean seconds per meta-iteration.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def trained(run_dir: str, iterations: int) -> bool:
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.exists(path):
        return False
    with open(path) as fh:
        return sum(1 for _ in csv.DictReader(fh)) >= iterations


def seconds_per_iteration(run_dir: str) -> float:
    with open(os.path.join(run_dir, "progress.csv")) as fh:
        times = [float(row["time/iteration"]) for row in csv.DictReader(fh)]
    return sum(times) / len(times)


def mean_and_sem(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help="config name in experiments/configs, e.g. navigation2d, halfcheetah_dir")
    p.add_argument("--output", required=True, help="directory for the runs (one per fraction and seed)")
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.2])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, help="meta-iterations (default: the config's)")
    p.add_argument("--report", action="store_true", help="only tabulate the runs already trained and evaluated")
    p.add_argument("--batch-steps", type=int, default=None,
                   help="passed to metarl evaluate (default: the paper's batches; 0: exactly E episodes per batch)")
    args = p.parse_args()
    config = os.path.join(HERE, "configs", f"{args.task}.yaml")
    if not os.path.exists(config):
        sys.exit(f"task: no config {config!r}; pass the name of a file in experiments/configs without .yaml")
    sys.path.insert(0, os.path.dirname(HERE))
    from experiments import positive
    from experiments.steps import evaluate_unless_current, run_metarl, stale_evaluation
    from metarl.config import ConfigError, check_hvp_subsample, check_seed, load_config, to_dict
    from metarl.trainer import config_differences
    from metarl.errors import UsageError
    from metarl.evaluation import load_results

    # every value checked before the first of the runs, which take minutes to hours each
    try:
        for fraction in args.fractions:
            check_hvp_subsample(fraction, "--fractions (algo.hvp_subsample)")
        for seed in args.seeds:
            check_seed(seed, "--seeds")
    except ConfigError as exc:
        p.error(str(exc))
    for flag, values, name in (("--seeds", args.seeds, str), ("--fractions", args.fractions, lambda f: f"{f:g}")):
        names = [name(v) for v in values]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # the same run folder counted twice would look like a spread of results
            p.error(f"{flag}: {twice[0]} is given twice (or two values share the run folder of {twice[0]}); give each once")
    positive(p, iterations=args.iterations)
    if args.batch_steps is not None and args.batch_steps < 0:
        p.error(f"--batch-steps: expected env steps per batch >= 0 (0: exactly E episodes per batch), got {args.batch_steps}")
    iterations = load_config(config).iterations if args.iterations is None else args.iterations
    for seed in args.seeds:  # every run folder checked before the first run trains: another config's is refused
        for fraction in args.fractions:
            run = os.path.join(args.output, f"subsample{fraction:g}-seed{seed}")
            if os.path.isfile(os.path.join(run, "config.yaml")):
                wanted = load_config(config, [f"algo.hvp_subsample={fraction}", f"seed={seed}"])
                try:
                    saved = to_dict(load_config(os.path.join(run, "config.yaml")))
                except ConfigError as exc:
                    sys.exit(f"--output: {run!r} holds an unreadable config.yaml ({exc}); move it away")
                changed = config_differences(saved, to_dict(wanted))
                if changed:
                    sys.exit(f"--output: {run!r} holds a run of another config than {args.task} with hvp_subsample "
                             f"{fraction:g} and seed {seed} ({', '.join(c[0] for c in changed[:4])} differ); give "
                             "another --output for this comparison (or move that folder away)")
    results: dict[float, list] = {f: [] for f in args.fractions}
    batches = set()  # the evaluations' batch_steps (None: exactly E episodes per batch)

    def record(fraction: float, seed: int, run: str) -> None:
        try:
            saved = load_results(os.path.join(run, "evaluation"))
        except UsageError as exc:
            sys.exit(str(exc))
        results[fraction].append((seed, saved["summary"], seconds_per_iteration(run)))
        batches.add(str(saved["settings"].get("batch_steps")))

    for seed in args.seeds:  # seeds outer: an interrupted comparison has matched pairs
        for fraction in args.fractions:
            run = os.path.join(args.output, f"subsample{fraction:g}-seed{seed}")
            evaluation = os.path.join(run, "evaluation")
            # as evaluate saves it: 0 (exactly E episodes per batch) is saved as None
            batch = {} if args.batch_steps is None else {"batch_steps": args.batch_steps or None}
            if args.report:
                if os.path.exists(os.path.join(evaluation, "results.json")):
                    why = stale_evaluation(evaluation, os.path.join(run, "checkpoints", "best.pt"), **batch)
                    if why is not None:
                        sys.exit(f"{run}: {why}; run the comparison without --report to make it again")
                    record(fraction, seed, run)
                continue
            if os.path.isfile(os.path.join(run, "config.yaml")):
                # an interrupted run, or more iterations asked for: continued exactly (one stopped before its first
                # checkpoint starts over; train --resume refuses to start over a run that saved others)
                if not trained(run, iterations) or not os.path.exists(os.path.join(run, "checkpoints", "latest.pt")):
                    run_metarl("train", "--output", run, "--resume", "--iterations", str(iterations), "--no-progress")
            else:
                run_metarl("train", "--config", config, "--output", run, "--seed", str(seed), "--iterations",
                           str(iterations), "--set", f"algo.hvp_subsample={fraction}", "--no-progress")
            evaluate_unless_current(evaluation, os.path.join(run, "checkpoints", "best.pt"),
                                    [run, *(() if args.batch_steps is None else ("--batch-steps", str(args.batch_steps)))],
                                    **batch)
            record(fraction, seed, run)
    if len(batches) > 1:
        sys.exit(f"the runs' evaluations used different batches (batch_steps {sorted(batches)}); evaluate them "
                 "alike (metarl evaluate RUN --overwrite [--batch-steps N]) before comparing")
    rows = [(f, per_seed) for f, per_seed in results.items() if per_seed]
    if not rows:
        sys.exit("no finished run to report yet")

    steps = len(rows[0][1][0][1])
    print(f"\n{args.task}: post-adaptation return (paper's protocol), mean over seeds ± s.e. over seeds")
    print("| hvp_subsample | " + " | ".join(f"step {k}" for k in range(steps)) + " | s / iteration | per seed, last step (± s.e. over goals) |")
    print("|---|" + "---|" * steps + "---|---|")
    for fraction, per_seed in rows:
        cells = []
        for k in range(steps):
            m, se = mean_and_sem([s[k]["mean_return"] for _, s, _ in per_seed])
            cells.append(f"{m:.1f} ± {se:.1f}")
        secs = sum(t for _, _, t in per_seed) / len(per_seed)
        seeds = f"{len(per_seed)} seeds: " + ", ".join(f"s{seed}: {s[-1]['mean_return']:.1f} ± {s[-1]['sem']:.1f}" for seed, s, _ in per_seed)
        print(f"| {fraction:g} | " + " | ".join(cells) + f" | {secs:.2f} | {seeds} |")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # between two commands: each one's result is saved as it finished
        sys.exit("compare_subsample: interrupted; run the same command again to continue")
