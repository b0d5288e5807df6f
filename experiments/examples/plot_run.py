"""Load a run, plot its training curve and its adaptation curve side by side.

    python experiments/examples/plot_run.py runs/nav --output nav.png
"""

from __future__ import annotations

import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import metarl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory")
    parser.add_argument("--output", required=True, help="PNG file to write")
    parser.add_argument("--tasks", type=int, default=40, help="test goals of the evaluation")
    parser.add_argument("--episodes", type=int, help="episodes per goal per batch (default: the paper's)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="a plug-in module of the run's env.imports to allow (repeatable; see docs/plugins.md)")
    args = parser.parse_args()

    run = metarl.load_run(args.run, imports=args.imports)  # the best checkpoint
    with open(os.path.join(args.run, "progress.csv")) as fh:
        rows = list(csv.DictReader(fh))
    curve = metarl.evaluate(run, tasks=args.tasks, episodes=args.episodes)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    iterations = [int(r["iteration"]) for r in rows]
    for key, label in (("return/pre_adaptation", "before adaptation"), ("return/post_adaptation", "after one step")):
        left.plot(iterations, [float(r[key]) for r in rows], label=label)
    left.set(xlabel="meta-iteration", ylabel="average return", title="meta-training")
    left.legend()
    steps = range(len(curve.mean))
    right.errorbar(steps, curve.mean, yerr=curve.sem, marker="o", capsize=3)
    right.set(xlabel="adaptation steps", ylabel="average return",
              title=f"adaptation on {curve.returns.shape[0]} test goals (iteration {run.iteration})")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}: return {curve.mean[0]:.2f} before adaptation, {curve.mean[1]:.2f} after one step")


if __name__ == "__main__":
    main()
