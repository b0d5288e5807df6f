"""The paper's figure for a task (MAML, pretrained, random, oracle; published curves dashed) and the table."""

from __future__ import annotations

import csv
import math
import os
from importlib import resources
from typing import Any

import numpy as np

METHOD_ORDER = ("maml", "pretrained", "random", "oracle")
COLORS = {"maml": "tab:blue", "pretrained": "tab:orange", "random": "tab:green", "oracle": "tab:red"}


def published_summary(task: str) -> dict[str, list[dict[str, float]]]:
    """Published mean and SEM per method and adaptation step for a paper task (empty if none)."""
    out: dict[str, list[dict[str, float]]] = {}
    with resources.files("metarl.data").joinpath("maml2017_summary.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["task"] == task:
                out.setdefault(row["method"], []).append(
                    {"adaptation_steps": int(row["adaptation_steps"]), "mean_return": float(row["mean_return"]),
                     "sem": float(row["sem"])}
                )
    return out


def published_per_goal(task: str, method: str = "maml") -> dict[int, dict[int, tuple[str, float]]]:
    """Published per-goal returns ``{adaptation_step: {goal_index: (goal, average_return)}}``; ``goal`` is the
    task parameter as the table writes it (``;`` between coordinates)."""
    out: dict[int, dict[int, tuple[str, float]]] = {}
    with resources.files("metarl.data").joinpath("maml2017_test_returns.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["task"] == task and row["method"] == method:
                out.setdefault(int(row["adaptation_steps"]), {})[int(row["goal_index"])] = (
                    row["goal"], float(row["average_return"]))
    return out


FIGURE_FORMATS = ("png", "pdf", "svg")


def figure_format(path: str, flag: str = "--output") -> str:
    """The image format of ``path`` from its extension, or a :class:`UsageError` naming the ones written."""
    from metarl.errors import UsageError

    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in FIGURE_FORMATS:
        raise UsageError(f"{flag}: {path!r} ends in {('.' + extension) if extension else 'no extension'}; a figure is "
                         f"written as {', '.join('.' + f for f in FIGURE_FORMATS)}: give a file name with one of them")
    return extension


def plot_curves(results: dict[str, dict[str, Any]], path: str, title: str = "",
                published: dict[str, list[dict[str, float]]] | None = None) -> None:
    """Mean +- SEM over test tasks per adaptation step; an oracle without adaptation is a flat line.

    The image format follows ``path``'s extension (see :data:`FIGURE_FORMATS`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    max_step = max([len(r["summary"]) - 1 for r in results.values()] + [1])
    for method in sorted(results, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99):
        rows = results[method]["summary"]
        steps = np.array([r["adaptation_steps"] for r in rows])
        mean = np.array([r["mean_return"] for r in rows])
        sem = np.array([r["sem"] for r in rows])
        color = COLORS.get(method)
        if len(rows) == 1:  # evaluated once, without adaptation
            ax.axhline(mean[0], color=color, label=f"{method}")
            ax.axhspan(mean[0] - sem[0], mean[0] + sem[0], color=color, alpha=0.15)
        else:
            ax.errorbar(steps, mean, yerr=sem, color=color, marker="o", capsize=3, label=method)
    for method, rows in (published or {}).items():
        if method not in METHOD_ORDER:
            continue
        color = COLORS.get(method)
        steps = np.array([r["adaptation_steps"] for r in rows])
        mean = np.array([r["mean_return"] for r in rows])
        if len(rows) == 1:
            ax.axhline(mean[0], color=color, linestyle="--", alpha=0.7, label=f"{method} (paper)")
        else:
            ax.plot(steps, mean, color=color, linestyle="--", alpha=0.7, label=f"{method} (paper)")
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return")
    ax.set_xticks(range(max_step + 1))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    import io

    from metarl.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format=figure_format(path))
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def comparison_table(results: dict[str, dict[str, Any]], published: dict[str, list[dict[str, float]]]) -> str:
    """Our numbers next to the paper's, step by step, with the difference in combined standard errors."""
    if not published:  # nothing to compare with: our numbers alone
        lines = [f"{'method':10s} {'step':>4s} {'ours':>18s}"]
        for method in sorted(results, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99):
            for r in results[method]["summary"]:
                lines.append(f"{method:10s} {r['adaptation_steps']:4d} {r['mean_return']:8.2f} ± {r['sem']:6.2f}")
        return "\n".join(lines)
    lines = [f"{'method':10s} {'step':>4s} {'ours':>18s} {'paper':>18s} {'diff/SE':>8s}"]
    for method in sorted(results, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99):
        paper_rows = {r["adaptation_steps"]: r for r in published.get(method, [])}
        for r in results[method]["summary"]:
            k = r["adaptation_steps"]
            ours = f"{r['mean_return']:8.2f} ± {r['sem']:6.2f}"
            p = paper_rows.get(k)
            if p is None:
                lines.append(f"{method:10s} {k:4d} {ours:>18s} {'-':>18s} {'-':>8s}")
                continue
            se = math.sqrt(r["sem"] ** 2 + p["sem"] ** 2)
            diff = (r["mean_return"] - p["mean_return"]) / se if se > 0 else float("nan")
            lines.append(f"{method:10s} {k:4d} {ours:>18s} {p['mean_return']:8.2f} ± {p['sem']:6.2f} {diff:+8.2f}")
    return "\n".join(lines)
