"""The spread over training seeds of one task's adaptation curves, next to the paper's.

    python -m experiments.seed_spread seed0=experiments/zoo/ant_vel/evaluation seed1=runs/antvel-s1/evaluation \
        seed2=runs/antvel-s2/evaluation

Each ``LABEL=DIR`` is an evaluation written by ``metarl evaluate`` (its ``results.json``), one per training
seed of the same config and task.  Prints a Markdown table: each seed's mean return per adaptation step ±
the standard error over its test goals, the mean over the seeds ± the standard error over the seeds, and
the paper's curve; the brackets hold the difference from the paper in standard errors, the two standard
errors combined (the seed's over goals, or the seeds' spread for the mean).  The last row places the
paper's curve, itself one training run, against the spread of single runs of ours: the paper minus the
seeds' mean, over ``sqrt(s²·(1 + 1/n) + SE_paper²)`` with ``s`` the seeds' standard deviation, so that
values within about ±2 say the published run is what one more seed of ours could give (with few seeds
``s`` is itself uncertain: Student's t with n - 1 degrees of freedom is the honest yardstick, 4.30 at 95%
for 3 seeds, 2.57 for 6).  The paper is left out, with a
note, when an evaluation does not follow the paper's protocol (``metarl plot``'s rule), so a short
evaluation is never read against it.

``--goals LO:HI`` keeps the test goals whose (first) task parameter lies in ``[LO, HI)``, for every seed
and for the paper's per-goal returns alike, to see where along the task distribution a difference lies;
one evaluation alone then gives its row and the paper's:

    python -m experiments.seed_spread seed0=experiments/zoo/ant_vel/evaluation --goals 2:3.01
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from importlib import resources

import numpy as np

from metarl import evaluation as ev
from metarl import plotting
from metarl.errors import UsageError


def published_goal_returns(task: str, method: str) -> dict[int, dict[int, float]]:
    """The paper's per-goal returns ``{adaptation_step: {goal_index: average_return}}``."""
    out: dict[int, dict[int, float]] = {}
    with resources.files("metarl.data").joinpath("maml2017_test_returns.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["task"] == task and row["method"] == method:
                out.setdefault(int(row["adaptation_steps"]), {})[int(row["goal_index"])] = float(row["average_return"])
    return out


def goal_summary(result: dict, goals: np.ndarray) -> list[dict[str, float]]:
    """Mean ± standard error over the goals selected by the boolean mask ``goals``, per adaptation step."""
    returns = np.asarray(result["returns"], dtype=np.float64)[goals]
    n = len(returns)
    sem = returns.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(returns.shape[1])
    return [{"adaptation_steps": k, "mean_return": float(returns[:, k].mean()), "sem": float(sem[k])}
            for k in range(returns.shape[1])]


def spread(results: dict[str, dict], method: str = "maml",
           goal_range: tuple[float, float] | None = None) -> tuple[list[str], list[str]]:
    """Markdown table lines and notes for ``{label: results.json contents}`` of one task.

    ``goal_range=(lo, hi)`` keeps the test goals whose first task parameter lies in ``[lo, hi)`` (the same
    goals for every seed and for the paper, whose per-goal returns are then averaged over them)."""
    env_ids = {r["settings"]["env"]["id"] for r in results.values()}
    if len(env_ids) != 1:
        raise UsageError(f"evaluations: come from different tasks {sorted(env_ids)}; give one task's seeds")
    env_id = env_ids.pop()
    task = ev.paper_name(env_id)
    notes = []
    differences = {label: ev.protocol_differences(r["settings"]) for label, r in results.items()}
    for label, diff in differences.items():
        if diff:
            notes.append(f"{label} was evaluated with {'; '.join(diff)}, not the paper's protocol; the paper is left out")
    paper = {}
    if task is not None and not any(differences.values()):
        paper = {r["adaptation_steps"]: r for r in plotting.published_summary(task).get(method, [])}
    if goal_range is not None:
        lo, hi = goal_range
        tasks = [np.asarray(r["tasks"], dtype=np.float64)[:, 0] for r in results.values()]
        if any(t.shape != tasks[0].shape or not np.array_equal(t, tasks[0]) for t in tasks):
            raise UsageError("--goals: the evaluations were made on different test goals; give evaluations of the "
                             "same goals (the paper's protocol uses the same 40 for every run)")
        keep = (tasks[0] >= lo) & (tasks[0] < hi)
        if keep.sum() < 2:
            raise UsageError(f"--goals {lo}:{hi}: {int(keep.sum())} test goal(s) in that range; a standard error "
                             f"needs at least two (the goals lie in [{tasks[0].min():.3g}, {tasks[0].max():.3g}])")
        notes.append(f"{int(keep.sum())} of {len(keep)} test goals, those in [{lo}, {hi})")
        results = {label: {**r, "summary": goal_summary(r, keep)} for label, r in results.items()}
        if paper:
            per_goal = published_goal_returns(task, method) if task is not None else {}
            paper = {}
            for k, by_goal in per_goal.items():
                values = np.array([by_goal[g] for g in np.flatnonzero(keep)])
                paper[k] = {"mean_return": float(values.mean()), "sem": float(values.std(ddof=1) / math.sqrt(len(values)))}
    steps = min(len(r["summary"]) for r in results.values())
    means = np.array([[r["summary"][k]["mean_return"] for k in range(steps)] for r in results.values()])

    def cell(mean: float, se: float, k: int) -> str:
        text = f"{mean:.2f} ± {se:.2f}"
        if k in paper:
            both = math.sqrt(se ** 2 + paper[k]["sem"] ** 2)
            text += f" ({(mean - paper[k]['mean_return']) / both:+.2f})" if both > 0 else ""
        return text

    lines = ["| run | " + " | ".join(f"step {k}" for k in range(steps)) + " |", "|---" * (steps + 1) + "|"]
    for label, r in results.items():
        lines.append(f"| {label} | " + " | ".join(cell(r["summary"][k]["mean_return"], r["summary"][k]["sem"], k)
                                                for k in range(steps)) + " |")
    several = len(results) > 1  # one evaluation: its row and the paper's, no spread
    if several:
        over = means.std(axis=0, ddof=1) / math.sqrt(len(results))
        lines.append(f"| mean ± s.e. over {len(results)} seeds | "
                     + " | ".join(cell(means[:, k].mean(), over[k], k) for k in range(steps)) + " |")
    else:
        notes.append("one evaluation: no spread over seeds (give two or more for the mean and the last row)")
    if paper:
        lines.append("| paper | " + " | ".join(f"{paper[k]['mean_return']:.2f} ± {paper[k]['sem']:.2f}"
                                               if k in paper else "-" for k in range(steps)) + " |")
    if paper and several:
        lines.append("| paper's run against one run of ours | " + " | ".join(
            f"{single_run_z(means[:, k], paper[k]['mean_return'], paper[k]['sem']):+.2f}" if k in paper else "-"
            for k in range(steps)) + " |")
    return lines, notes


def single_run_z(seed_means: np.ndarray, paper_mean: float, paper_sem: float) -> float:
    """How far one published run lies from where a single new run of ours is predicted to land, in its s.d.

    The paper's curve is one training run; the seeds' evaluated means scatter by ``s`` (their sample s.d.,
    which holds the seed-to-seed and the goal-to-goal variation), so a new run of ours lands around their
    mean ± ``s·sqrt(1 + 1/n)``; the paper's own standard error over goals is added in quadrature.
    """
    n = len(seed_means)
    s = float(np.std(seed_means, ddof=1))
    scale = math.sqrt(s * s * (1 + 1 / n) + paper_sem * paper_sem)
    return (paper_mean - float(np.mean(seed_means))) / scale if scale > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("evaluations", nargs="+", metavar="LABEL=DIR", help="one evaluation per seed, e.g. seed1=runs/s1/evaluation")
    p.add_argument("--method", default="maml", help="the paper's curve to compare with (default maml)")
    p.add_argument("--goals", metavar="LO:HI", help="only the test goals whose (first) task parameter lies in "
                   "[LO, HI), e.g. --goals 1:2 for the faster half of HalfCheetahVel's goal velocities")
    args = p.parse_args(argv)
    results = {}
    try:
        for item in args.evaluations:
            if "=" not in item:
                raise UsageError(f"evaluations: expected LABEL=DIR (e.g. seed1=runs/s1/evaluation), got {item!r}")
            label, path = item.split("=", 1)
            if label in results:
                raise UsageError(f"evaluations: the label {label!r} is given twice; give each seed its own")
            results[label] = ev.load_results(path)
        goal_range = None
        if args.goals is not None:
            try:
                lo, hi = (float(x) for x in args.goals.split(":"))
            except ValueError:
                raise UsageError(f"--goals: expected LO:HI, two numbers (e.g. 1:2), got {args.goals!r}") from None
            if not lo < hi:
                raise UsageError(f"--goals: expected LO below HI, got {args.goals!r}")
            goal_range = (lo, hi)
        lines, notes = spread(results, args.method, goal_range)
    except UsageError as exc:
        print(f"seed_spread: error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
