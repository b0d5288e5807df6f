"""The spread over training seeds of one task's adaptation curves, next to the paper's.

    python -m experiments.seed_spread seed0=experiments/zoo/ant_vel/evaluation seed1=runs/antvel-s1/evaluation \
        seed2=runs/antvel-s2/evaluation

Each ``LABEL=DIR`` is an evaluation written by ``metarl evaluate`` (its ``results.json``), one per training
seed of the same config and task.  Prints a Markdown table: each seed's mean return per adaptation step ±
the standard error over its test goals, the mean over the seeds ± the standard error over the seeds, and
the paper's curve; the brackets hold the difference from the paper in standard errors, the two standard
errors combined (the seed's over goals, or the seeds' spread for the mean).  Two rows compare on the same
test goals, which every run and the paper share: "paper minus ours, paired by goal" (the per-goal
difference from the seeds' mean, ± its standard error over goals, so the goals' own spread cancels), and,
with two or more seeds, "paper's run against one run of ours": the paper's curve is itself one training
run, so it is placed against the spread of single runs of ours, (paper - seeds' mean) / (s·sqrt(1 + 1/n))
with s the seeds' standard deviation; were the published run one more run of ours, that would follow
Student's t with n - 1 degrees of freedom (95% within ±4.30 for 3 seeds, ±2.57 for 6; with few seeds s is
itself uncertain).  The paper is left out, with a note, when an evaluation does not follow the paper's
protocol (``metarl plot``'s rule), so a short evaluation is never read against it; evaluations of other
test goals are refused.

``--goals LO:HI`` keeps the test goals whose (first) task parameter lies in ``[LO, HI)``, for every seed
and for the paper's per-goal returns alike, to see where along the task distribution a difference lies;
one evaluation alone then gives its row and the paper's:

    python -m experiments.seed_spread seed0=experiments/zoo/ant_vel/evaluation --goals 2:3.01
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

from metarl import evaluation as ev
from metarl import plotting
from metarl.errors import UsageError


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
    goal_values = [np.asarray(r["tasks"], dtype=np.float64)[:, 0] for r in results.values()]
    if any(t.shape != goal_values[0].shape or not np.array_equal(t, goal_values[0]) for t in goal_values):
        raise UsageError("evaluations: made on different test goals (another --seed or --tasks); give "
                         "evaluations of the same goals (the paper's protocol uses the same 40 for every run)")
    goal_values = goal_values[0]
    notes = []
    differences = {label: ev.protocol_differences(r["settings"]) for label, r in results.items()}
    for label, diff in differences.items():
        if diff:
            notes.append(f"{label} was evaluated with {'; '.join(diff)}, not the paper's protocol; the paper is left out")
    published: dict[int, dict[int, float]] = {}  # the paper's {adaptation_step: {goal_index: average_return}}
    summary: dict[int, dict[str, float]] = {}  # the paper's published mean ± s.e. over all goals, per step
    if task is not None and not any(differences.values()):
        curves = plotting.published_summary(task)
        if method not in curves:
            raise UsageError(f"--method: the paper has no {method!r} curve for {task}; one of {', '.join(sorted(curves))}")
        summary = {r["adaptation_steps"]: r for r in curves[method]}
        per_goal = plotting.published_per_goal(task, method)
        published = {k: {g: value for g, (_, value) in by_goal.items()} for k, by_goal in per_goal.items()}
        first = per_goal[min(per_goal)]
        theirs = np.array([float(first[g][0].split(";")[0]) for g in range(len(first))])
        if theirs.shape != goal_values.shape or not np.allclose(theirs, goal_values, atol=1e-5):
            raise UsageError("evaluations: their test goals are not the paper's (the CSV's goal column); evaluate "
                             "with the paper's protocol (metarl evaluate's defaults)")
    keep = np.ones(len(goal_values), dtype=bool)
    if goal_range is not None:
        lo, hi = goal_range
        keep = (goal_values >= lo) & (goal_values < hi)
        if keep.sum() < 2:
            raise UsageError(f"--goals {lo}:{hi}: {int(keep.sum())} test goal(s) in that range; a standard error "
                             f"needs at least two (the goals lie in [{goal_values.min():.3g}, {goal_values.max():.3g}])")
        notes.append(f"{int(keep.sum())} of {len(keep)} test goals, those in [{lo}, {hi})")
    # each seed's mean ± s.e. over the kept goals, as `metarl evaluate` summarises them
    results = {label: {**r, "summary": ev.summarize(np.asarray(r["returns"], dtype=np.float64)[keep])}
               for label, r in results.items()}
    # the paper's mean ± s.e.: its published summary on all goals; on a range of them, from its per-goal returns
    # with the s.e. computed as the summary's is (n in the variance)
    paper = summary if keep.all() else {
        k: {"mean_return": float(np.mean(v)), "sem": float(np.std(v) / math.sqrt(len(v)))}
        for k, by_goal in published.items() for v in [np.array([by_goal[g] for g in np.flatnonzero(keep)])]}
    steps = min(len(r["summary"]) for r in results.values())
    if len({len(r["summary"]) for r in results.values()}) > 1:
        notes.append("the evaluations have different numbers of adaptation steps (" + ", ".join(
            f"{label}: {len(r['summary']) - 1}" for label, r in results.items()) + f"); the table shows steps 0-{steps - 1}")
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
        notes.append("one evaluation: no spread over seeds (give two or more for the mean and the single-run row)")
    if paper:
        lines.append("| paper | " + " | ".join(f"{paper[k]['mean_return']:.2f} ± {paper[k]['sem']:.2f}"
                                               if k in paper else "-" for k in range(steps)) + " |")
        ours = np.mean([np.asarray(r["returns"], dtype=np.float64)[keep][:, :steps] for r in results.values()], axis=0)
        cells = []
        for k in range(steps):
            if k not in published:
                cells.append("-")
                continue
            d = np.array([published[k][g] for g in np.flatnonzero(keep)]) - ours[:, k]
            cells.append(f"{d.mean():+.2f} ± {d.std(ddof=1) / math.sqrt(len(d)):.2f}")
        lines.append("| paper minus ours, paired by goal | " + " | ".join(cells) + " |")
    if paper and several:
        lines.append(f"| paper's run against one run of ours (t, {len(results) - 1} d.o.f.) | " + " | ".join(
            f"{single_run_t(means[:, k], paper[k]['mean_return']):+.2f}" if k in paper else "-"
            for k in range(steps)) + " |")
    return lines, notes


def single_run_t(seed_means: np.ndarray, paper_mean: float) -> float:
    """Where one published run lies against the spread of single runs of ours: ``(paper - mean) / (s·sqrt(1 + 1/n))``.

    ``s`` is the seeds' sample standard deviation: every run, the paper's included, is evaluated on the same
    test goals, so the goals' own spread cancels out of it and is not added again; what is left is the
    run-to-run and episode-to-episode variation.  If the published run were one more run of ours, this would
    follow Student's t with ``n - 1`` degrees of freedom (95% within ±4.30 for 3 seeds, ±2.57 for 6).
    """
    n = len(seed_means)
    s = float(np.std(seed_means, ddof=1))
    scale = s * math.sqrt(1 + 1 / n)
    return (paper_mean - float(np.mean(seed_means))) / scale if scale > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("evaluations", nargs="+", metavar="LABEL=DIR", help="one evaluation per seed, e.g. seed1=runs/s1/evaluation")
    p.add_argument("--method", default="maml", help="the paper's curve to compare with (default maml)")
    p.add_argument("--goals", metavar="LO:HI", help="only the test goals whose (first) task parameter lies in "
                   "[LO, HI), e.g. --goals 1:2 for the faster half of HalfCheetahVel's goal velocities (a "
                   "negative LO: --goals=-0.5:0)")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1):  # `--goals -0.5:0`: argparse reads a value that starts with '-' as a flag
        if argv[i] == "--goals" and argv[i + 1].startswith("-") and ":" in argv[i + 1]:
            argv[i:i + 2] = [f"--goals={argv[i + 1]}"]
            break
    args = p.parse_args(argv)
    results = {}
    files: dict[str, str] = {}  # each evaluation's results.json, resolved: the same one twice is one seed, not two
    try:
        for item in args.evaluations:
            if "=" not in item:
                raise UsageError(f"evaluations: expected LABEL=DIR (e.g. seed1=runs/s1/evaluation), got {item!r}")
            label, path = item.split("=", 1)
            if not label.strip():
                raise UsageError(f"evaluations: {item!r} has no label; write LABEL=DIR, e.g. seed1={path}")
            if "|" in label:
                raise UsageError(f"evaluations: the label {label!r} holds '|', which splits a Markdown table cell; "
                                 "choose a label without it")
            if not path:
                raise UsageError(f"evaluations: {item!r} has no DIR; write LABEL=DIR, e.g. {label}=runs/s1/evaluation")
            if label in results:
                raise UsageError(f"evaluations: the label {label!r} is given twice; give each seed its own")
            results[label] = ev.load_results(path)
            file = os.path.realpath(os.path.join(path, "results.json") if os.path.isdir(path) else path)
            if file in files:
                raise UsageError(f"evaluations: {files[file]} and {label} are the same evaluation ({path!r}); give one "
                                 "per training seed")
            files[file] = label
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
