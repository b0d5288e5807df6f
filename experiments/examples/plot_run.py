"""Load a run, plot its training curve and its adaptation curve side by side.

    python experiments/examples/plot_run.py runs/nav --output nav.png
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import metarl  # noqa: E402
from metarl.checkpoint import atomic_write_bytes  # noqa: E402
from metarl.errors import RunError, UsageError, os_error_message  # noqa: E402
from metarl.plotting import figure_format  # noqa: E402
from metarl.rundir import check_output_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory")
    parser.add_argument("--output", required=True, help="figure file to write (.png, .pdf or .svg)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--tasks", type=int, default=40, help="test goals of the evaluation")
    parser.add_argument("--episodes", type=int, help="episodes per goal per batch (default: the paper's)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="a plug-in module of the run's env.imports to allow (repeatable; see docs/plugins.md)")
    args = parser.parse_args()
    figure_format(args.output, "--output")  # checked before the evaluation, which takes a while
    output = check_output_file(args.output, args.overwrite)  # an existing file is replaced only with --overwrite

    run = metarl.load_run(args.run, imports=args.imports)  # the best checkpoint
    if run.path is None or not os.path.isfile(os.path.join(run.path, "progress.csv")):
        raise UsageError(f"run: {args.run!r} has no progress.csv; give a run directory written by metarl train")
    with open(os.path.join(run.path, "progress.csv")) as fh:
        rows = list(csv.DictReader(fh))
    if not rows or any(key not in rows[0] for key in ("iteration", "return/pre_adaptation", "return/post_adaptation")):
        raise UsageError(f"run: {os.path.join(run.path, 'progress.csv')!r} has no training rows with iteration and "
                         "return/pre_adaptation, return/post_adaptation; give a run directory written by metarl train")
    keys = ("return/pre_adaptation", "return/post_adaptation")
    try:  # read before the evaluation, which takes a while
        iterations = [int(r["iteration"]) for r in rows]
        returns = {key: [float(r[key]) for r in rows] for key in keys}
    except (TypeError, ValueError):
        raise UsageError(f"run: {os.path.join(run.path, 'progress.csv')!r} has a row whose iteration or returns are "
                         "missing or not numbers; give a run directory written by metarl train") from None
    curve = metarl.evaluate(run, tasks=args.tasks, episodes=args.episodes)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in zip(keys, ("before adaptation", "after one step")):
        left.plot(iterations, returns[key], label=label)
    left.set(xlabel="meta-iteration", ylabel="average return", title="meta-training")
    left.legend()
    steps = range(len(curve.mean))
    right.errorbar(steps, curve.mean, yerr=curve.sem, marker="o", capsize=3)
    right.set(xlabel="adaptation steps", ylabel="average return",
              title=f"adaptation on {curve.returns.shape[0]} test goals (iteration {run.iteration})")
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, dpi=120, format=os.path.splitext(output)[1][1:].lower())
    try:  # in one step: a kill or a full disk leaves the former file (if any), never half a figure
        os.makedirs(os.path.dirname(output), exist_ok=True)
        atomic_write_bytes(output, image.getvalue())
    except OSError as exc:
        raise RunError(os_error_message(exc, output)) from None
    print(f"wrote {args.output}: return {curve.mean[0]:.2f} before adaptation, {curve.mean[1]:.2f} after one step")


if __name__ == "__main__":
    try:
        main()
    except (UsageError, RunError) as exc:  # bad input (exit 2), or the disk or permissions (exit 1): the message says what to do
        print(f"plot_run: error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:  # Ctrl-C: nothing of the user's is left half-written
        print("plot_run: interrupted", file=sys.stderr)
        sys.exit(130)
