"""Training curves of `metarl baseline` runs, to see whether the budget was enough for them to flatten.

    python experiments/plot_baseline_curves.py runs/orc-hcdir runs/pre-hcdir --output docs/figures/x.png

Each argument is a directory written by ``metarl baseline`` (its ``training_curve.csv``: env steps and the
mean return of the episodes finished in each rollout, while training, with the policy's exploration noise).
The plot shows each curve smoothed over ``--window`` rollouts, the published oracle's return as a
horizontal line when the task is one of the paper's, and, where ``metarl evaluate DIR`` has been run, the
evaluated return before adaptation (paper's protocol, ± s.e. over goals) as a point at the curve's end.
The printed table gives, per run, the mean training return (not smoothed) in the eighth, ninth and tenth
tenth of its recorded env steps, in that order: a curve that has flattened changes little between them.
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
import numpy as np  # noqa: E402

from metarl import evaluation as ev  # noqa: E402
from metarl.checkpoint import atomic_write_bytes  # noqa: E402
from metarl.config import ConfigError, load_config  # noqa: E402
from metarl.errors import RunError, UsageError  # noqa: E402
from metarl.plotting import figure_format, published_summary  # noqa: E402
from metarl.rundir import check_output_file  # noqa: E402


class CurveError(UsageError):
    """A run directory or file that is not what `metarl baseline` writes."""


def read_curve(run: str) -> tuple[np.ndarray, np.ndarray]:
    if not os.path.isdir(run):
        raise CurveError(f"{run}: no such directory; pass directories written by `metarl baseline`")
    path = os.path.join(run, "training_curve.csv")
    if not os.path.isfile(path):
        raise CurveError(f"{run}: no training_curve.csv (is it a directory written by `metarl baseline`?)")
    try:
        return _read_curve(path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CurveError(f"{path}: not a readable CSV file ({type(exc).__name__}: {exc}); expected the "
                         "training_curve.csv that `metarl baseline` writes") from None


def _read_curve(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"env_steps", "mean_episode_return"} - set(reader.fieldnames or [])
        if missing:
            raise CurveError(f"{path}: no column {sorted(missing)[0]!r}; expected the training_curve.csv that `metarl baseline` writes")
        try:
            points = [(float(r["env_steps"]), float(r["mean_episode_return"])) for r in reader
                      if r["mean_episode_return"] not in ("", "nan")]
        except (TypeError, ValueError) as exc:  # TypeError: a row cut short (a killed write) has no value there
            raise CurveError(f"{path}: a value is missing or not a number ({exc}); expected the training_curve.csv that "
                             "`metarl baseline` writes") from None
    if not points:
        raise CurveError(f"{path}: no finished episodes recorded; train the baseline longer")
    steps, returns = np.array(points).T
    bad = np.flatnonzero(~np.isfinite(steps) | (steps < 0) | ~np.isfinite(returns))
    if bad.size:
        raise CurveError(f"{path}: row {int(bad[0]) + 1} of the finished episodes has env_steps {float(steps[bad[0]])} and "
                         f"return {float(returns[bad[0]])}; expected finite returns at env_steps >= 0, as the "
                         "training_curve.csv that `metarl baseline` writes holds")
    if np.any(np.diff(steps) < 0):
        raise CurveError(f"{path}: env_steps go back in time after row {int(np.flatnonzero(np.diff(steps) < 0)[0]) + 1}; "
                         "expected the training_curve.csv that `metarl baseline` writes, in the order it wrote it")
    return steps, returns


def env_id_of(run: str) -> str:
    path = os.path.join(run, "config.yaml")
    if not os.path.isfile(path):
        raise CurveError(f"{run}: no config.yaml; pass directories written by `metarl baseline` (they hold their config.yaml)")
    try:
        return load_config(path, flag="config.yaml").env.id
    except ConfigError as exc:
        raise CurveError(f"{exc}; pass directories written by `metarl baseline` (they hold their config.yaml)") from None


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def evaluated(run: str) -> tuple[float, float] | None:
    """Step 0 of ``metarl evaluate``'s results in ``run/evaluation`` or ``run``, if there are any."""
    for sub in ("evaluation", ""):
        path = os.path.join(run, sub)
        if os.path.isfile(os.path.join(path, "results.json")):
            try:
                first = ev.load_results(path)["summary"][0]
            except UsageError as exc:
                raise CurveError(str(exc)) from None
            return float(first["mean_return"]), float(first["sem"])
    return None


def tenths(steps: np.ndarray, y: np.ndarray) -> list[float | None]:
    """Mean training return in the eighth, ninth and tenth tenth of the recorded env steps (None where a
    tenth holds no rollout: a run too short to tell)."""
    edges = np.linspace(0, steps[-1], 11)
    out: list[float | None] = []
    for k in (7, 8, 9):
        inside = y[(steps > edges[k]) & (steps <= edges[k + 1])]
        out.append(float(np.mean(inside)) if inside.size else None)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="directories written by `metarl baseline`")
    p.add_argument("--output", required=True, help="figure to write: .png, .pdf or .svg")
    p.add_argument("--window", type=int, default=20, help="rollouts to average for each plotted point (default 20)")
    p.add_argument("--title", default="", help="figure title (default: the env id)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    args = p.parse_args()
    try:
        draw(args)
    except UsageError as exc:
        p.error(str(exc))
    except RunError as exc:  # the disk or the permissions, not the input
        sys.exit(f"plot_baseline_curves.py: error: {exc}")


def draw(args: argparse.Namespace) -> None:
    if args.window < 1:
        raise UsageError(f"--window: expected a positive integer, got {args.window}")
    extension = figure_format(args.output)  # png, pdf or svg, as `metarl plot`
    check_output_file(args.output, args.overwrite)
    labels: dict[str, str] = {}  # the legend names runs by their folder's name: one run per name
    for run in args.runs:
        label = os.path.basename(os.path.normpath(run))
        if label in labels:
            raise UsageError(f"runs: {labels[label]!r} and {run!r} would both be {label!r} in the legend (the same run "
                             "twice, or two folders of that name); give each run once, in folders of different names")
        labels[label] = run
    for run in args.runs:  # every run read before the figure is drawn or anything is written
        read_curve(run)
        env_id_of(run)
        evaluated(run)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    env_ids = set()
    print("| run | env steps | training return, last three tenths of the budget | evaluated, paper's protocol |")
    print("|---|---|---|---|")
    for run in args.runs:
        steps, y = read_curve(run)
        env_ids.add(env_id_of(run))
        label = os.path.basename(os.path.normpath(run))
        line, = ax.plot(steps, smooth(y, args.window), label=label)
        ev_ret = evaluated(run)
        if ev_ret is not None:
            ax.errorbar([steps[-1]], [ev_ret[0]], yerr=[ev_ret[1]], fmt="o", color=line.get_color(), capsize=3)
        t = tenths(steps, y)
        shown = f"{ev_ret[0]:.2f} ± {ev_ret[1]:.2f}" if ev_ret is not None else "-"
        cells = ", ".join("-" if v is None else f"{v:.2f}" for v in t)
        print(f"| {label} | {int(steps[-1]):,} | {cells} | {shown} |")
    if len(env_ids) == 1:  # one task: the published oracle's return as a line
        task = ev.paper_name(next(iter(env_ids)))
        oracle = published_summary(task).get("oracle") if task else None
        if oracle:
            ax.axhline(oracle[0]["mean_return"], color="black", linestyle="--",
                       label=f"paper's oracle ({oracle[0]['mean_return']:.1f})")
    ax.set_title(args.title or " / ".join(sorted(env_ids)))
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"episode return (training, mean of {args.window} rollouts)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=extension, dpi=110)
    try:  # a whole file or none: an earlier figure replaced with --overwrite is never left half-written
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        atomic_write_bytes(args.output, buf.getvalue())
    except OSError as exc:
        sys.exit(f"--output: cannot write {args.output!r} ({exc.strerror or exc}); choose a writable path")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
