"""Training curves of `metarl baseline` runs, to see whether the budget was enough for them to flatten.

    python experiments/plot_baseline_curves.py runs/orc-hcdir runs/pre-hcdir --output docs/figures/x.png

Each argument is a directory written by ``metarl baseline`` (its ``training_curve.csv``: env steps and the
mean return of the episodes finished in each rollout, while training, with the policy's exploration noise).
The plot shows each curve smoothed over ``--window`` rollouts, the published oracle's return as a
horizontal line when the task is one of the paper's, and, where ``metarl evaluate DIR`` has been run, the
evaluated return before adaptation (paper's protocol, ± s.e. over goals) as a point at the curve's end.
The printed table gives, per run, the smoothed return over the last, second-to-last and third-to-last
tenth of the budget: a curve that has flattened changes little between them.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metarl import evaluation as ev  # noqa: E402
from metarl.config import load_config  # noqa: E402
from metarl.plotting import published_summary  # noqa: E402


def read_curve(run: str) -> tuple[np.ndarray, np.ndarray]:
    path = os.path.join(run, "training_curve.csv")
    if not os.path.isfile(path):
        sys.exit(f"{run}: no training_curve.csv (is it a directory written by `metarl baseline`?)")
    with open(path) as fh:
        rows = [r for r in csv.DictReader(fh) if r["mean_episode_return"] not in ("", "nan")]
    if not rows:
        sys.exit(f"{path}: no finished episodes recorded")
    return (np.array([float(r["env_steps"]) for r in rows]), np.array([float(r["mean_episode_return"]) for r in rows]))


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def evaluated(run: str) -> tuple[float, float] | None:
    for sub in ("evaluation", ""):
        path = os.path.join(run, sub, "summary.csv")
        if os.path.isfile(path):
            with open(path) as fh:
                row = next(csv.DictReader(fh))
            return float(row["mean_return"]), float(row["sem"])
    return None


def tenths(steps: np.ndarray, y: np.ndarray) -> list[float]:
    """Mean training return over the third-to-last, second-to-last and last tenth of the budget."""
    edges = np.linspace(0, steps[-1], 11)
    return [float(np.mean(y[(steps > edges[k]) & (steps <= edges[k + 1])])) for k in (7, 8, 9)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="directories written by `metarl baseline`")
    p.add_argument("--output", required=True, help="PNG file to write")
    p.add_argument("--window", type=int, default=20, help="rollouts to average for each plotted point (default 20)")
    p.add_argument("--title", default="", help="figure title (default: the env id)")
    args = p.parse_args()
    if args.window < 1:
        sys.exit(f"--window: expected a positive integer, got {args.window}")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    env_ids = set()
    print("| run | env steps | training return, last three tenths of the budget | evaluated, paper's protocol |")
    print("|---|---|---|---|")
    for run in args.runs:
        steps, y = read_curve(run)
        cfg = load_config(os.path.join(run, "config.yaml"))
        env_ids.add(cfg.env.id)
        label = os.path.basename(os.path.normpath(run))
        line, = ax.plot(steps, smooth(y, args.window), label=label)
        ev_ret = evaluated(run)
        if ev_ret is not None:
            ax.errorbar([steps[-1]], [ev_ret[0]], yerr=[ev_ret[1]], fmt="o", color=line.get_color(), capsize=3)
        t = tenths(steps, y)
        shown = f"{ev_ret[0]:.2f} ± {ev_ret[1]:.2f}" if ev_ret is not None else "-"
        print(f"| {label} | {int(steps[-1]):,} | {t[0]:.2f}, {t[1]:.2f}, {t[2]:.2f} | {shown} |")
    if len(env_ids) == 1:
        env_id = env_ids.pop()
        task = ev.paper_name(env_id)
        oracle = published_summary(task).get("oracle") if task else None
        if oracle:
            ax.axhline(oracle[0]["mean_return"], color="black", linestyle="--", label=f"paper's oracle ({oracle[0]['mean_return']:.1f})")
        ax.set_title(args.title or env_id)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"episode return (training, mean of {args.window} rollouts)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
