"""The zoo of shipped meta-policies: every entry loads, fits its env, evaluates; and its summary is reproducible."""

from __future__ import annotations

import csv
import os

import pytest

import metarl

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ZOO = os.path.join(ROOT, "experiments", "zoo")
FOLDERS = sorted(d for d in os.listdir(ZOO) if os.path.isdir(os.path.join(ZOO, d))) if os.path.isdir(ZOO) else []
# a shipped entry has its evaluation; one without is a run committed in progress, to be continued with --resume
ENTRIES = [d for d in FOLDERS if os.path.isdir(os.path.join(ZOO, d, "evaluation"))]
IN_PROGRESS = [d for d in FOLDERS if d not in ENTRIES]
PAPER_CONFIGS = ("halfcheetah_vel", "halfcheetah_dir", "ant_vel", "ant_dir", "navigation2d")


def check_resumable(entry: str, config: str) -> tuple:
    """A run directory committed in progress: its latest checkpoint resumes within ``config``'s env and
    iterations, and its progress.csv has a row per iteration done.  Returns its config."""
    from metarl.trainer import saved_run

    cfg, saved = saved_run(entry)
    assert saved is not None and 0 < saved["iteration"] <= cfg.iterations
    shipped = metarl.load_config(os.path.join(ROOT, "experiments", "configs", f"{config}.yaml"))
    assert cfg.env.id == shipped.env.id
    rows = open(os.path.join(entry, "progress.csv")).read().splitlines()[1:]
    assert len(rows) >= saved["iteration"]
    return cfg, shipped


def check_trimmed(run_dir: str, cfg) -> dict:
    """A finished run kept as what its measurement needs: config, progress, best checkpoint, evaluation; small.
    Returns its evaluation's settings."""
    files = {os.path.relpath(os.path.join(d, f), run_dir) for d, _, fs in os.walk(run_dir) for f in fs}
    assert {"config.yaml", "progress.csv", "checkpoints/best.pt", "evaluation/summary.csv",
            "evaluation/per_goal.csv", "evaluation/results.json"} <= files
    assert "checkpoints/latest.pt" not in files
    assert sum(os.path.getsize(os.path.join(run_dir, f)) for f in files) < 1_000_000
    rows = open(os.path.join(run_dir, "progress.csv")).read().splitlines()[1:]
    assert len(rows) == cfg.iterations, f"{run_dir}: {len(rows)} progress rows for {cfg.iterations} iterations"
    assert metarl.load_run(run_dir).config == cfg
    # the evaluation is of this run's shipped checkpoint, not one copied from another run
    from metarl import evaluation as ev

    settings = ev.load_results(os.path.join(run_dir, "evaluation"))["settings"]
    src = settings["source"]
    assert os.path.realpath(os.path.join(ROOT, src)) == os.path.realpath(os.path.join(run_dir, "checkpoints", "best.pt")), \
        f"{run_dir}: its evaluation is of {src}, not of its own checkpoints/best.pt"
    return settings


@pytest.mark.parametrize("name", IN_PROGRESS)
def test_zoo_run_in_progress_can_be_resumed(name):
    assert name in PAPER_CONFIGS
    check_resumable(os.path.join(ZOO, name), name)


ABLATIONS = os.path.join(ROOT, "experiments", "ablations")
ABLATION_RUNS = sorted(d for d in os.listdir(ABLATIONS) if os.path.isdir(os.path.join(ABLATIONS, d))) \
    if os.path.isdir(ABLATIONS) else []


def ablation_change(name: str) -> list[str]:
    """The README table's change of run ``name`` as ``--set`` arguments: the `FIELD: VALUE` items of its third column."""
    import re

    for line in open(os.path.join(ABLATIONS, "README.md")).read().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # an escaped \| stays in its cell
        if cells[0] != f"`{name}`":
            continue
        assert len(cells) >= 3, f"{name}: its README row needs the columns run | question | change"
        items = cells[2].split("`")[1::2]
        parsed = [re.fullmatch(r"([\w.]+):\s*(.+)", item) for item in items]
        assert items and all(parsed), f"{name}: the change column should hold `FIELD: VALUE` items, got {cells[2]!r}"
        return [f"{m.group(1)}={m.group(2)}" for m in parsed if m]
    raise AssertionError(f"{name}: not in experiments/ablations/README.md's table")


@pytest.mark.parametrize("name", ABLATION_RUNS)
def test_ablation_run_is_a_paper_config_with_its_change_and_can_be_resumed(name):
    import dataclasses

    paper = [c for c in PAPER_CONFIGS if name.startswith(c)]  # named after the paper config it changes
    assert paper, f"{name}: an ablation run is named <paper config>_<change>"
    run_dir = os.path.join(ABLATIONS, name)
    change = ablation_change(name)
    assert change, f"{name}: the README's table names no change"
    # the run's resolved config is the paper config with the README's change and nothing else
    cfg = metarl.load_config(os.path.join(run_dir, "config.yaml"))
    paper_cfg = metarl.load_config(os.path.join(ROOT, "experiments", "configs", f"{paper[0]}.yaml"))
    expected = metarl.load_config(os.path.join(ROOT, "experiments", "configs", f"{paper[0]}.yaml"), change)
    assert dataclasses.asdict(expected) != dataclasses.asdict(paper_cfg), f"{name}: the change changes nothing"
    assert dataclasses.asdict(cfg) == dataclasses.asdict(expected)
    if os.path.isdir(os.path.join(run_dir, "evaluation")):  # finished: what its measurement needs, small
        settings = check_trimmed(run_dir, cfg)
        # evaluated on the run's own (changed) env, as `metarl evaluate RUN` does
        assert settings["env"] == dataclasses.asdict(cfg.env)
    else:
        check_resumable(run_dir, paper[0])


@pytest.mark.parametrize("name", ENTRIES)
def test_zoo_entry_is_a_small_run_directory_that_loads_and_evaluates(name):
    entry = os.path.join(ZOO, name)
    files = {os.path.relpath(os.path.join(d, f), entry) for d, _, fs in os.walk(entry) for f in fs}
    # what ships: a seed still training here keeps its lock, TensorBoard events and periodic checkpoints
    # locally (.gitignore leaves them out of the repository)
    files = {f for f in files if not (f.endswith(".lock") or "/tensorboard/" in f"/{f}"
                                      or os.path.basename(f).startswith("iter_"))}
    assert {"config.yaml", "progress.csv", "checkpoints/best.pt", "evaluation/summary.csv", "evaluation/per_goal.csv",
            "evaluation/results.json", "evaluation/curve.png"} <= files
    assert sum(os.path.getsize(os.path.join(entry, f)) for f in files) < 1_000_000
    assert name in PAPER_CONFIGS
    run = metarl.load_run(entry)
    shipped = metarl.load_config(os.path.join(ROOT, "experiments", "configs", f"{name}.yaml"))
    assert run.config.env.id == shipped.env.id and run.config.algo.num_tasks == shipped.algo.num_tasks
    curve = metarl.evaluate(run, tasks=2, episodes=2, steps=1)  # fits its env, adapts, no files
    assert curve.returns.shape == (2, 2)
    # the shipped evaluation is the paper's protocol as `metarl evaluate` runs it by default
    from metarl import evaluation as ev

    assert ev.protocol_differences(ev.load_results(os.path.join(entry, "evaluation"))["settings"]) == []


# On the machine that made the entries, the summaries come back digit for digit (METARL_ZOO_EXACT=1 asks for
# that); another CPU takes other instruction paths in the products (AVX-512/AMX kernels, say), so the episodes
# drift apart a little: on a 2-core AVX-512/AMX Xeon every step stayed within 0.84 standard errors over goals
# (AntDir after one step; 0.4 or less on the other tasks; docs/evaluation.md, "Re-evaluating the zoo").
ZOO_TOLERANCE_SE = 1.5


@pytest.mark.slow
@pytest.mark.parametrize("name", ENTRIES)
def test_zoo_entry_summary_is_reproduced(name, tmp_path):
    # as a user runs it: the `metarl` command with torch's default threads (the test suite pins one thread,
    # and the number of threads changes the order of float additions in the products and the baseline's fit)
    import subprocess
    import sys

    entry = os.path.join(ZOO, name)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    subprocess.run([sys.executable, "-m", "metarl.cli", "evaluate", entry, "--output", str(tmp_path / "again")],
                   check=True, env=env, capture_output=True)
    with open(os.path.join(entry, "evaluation", "summary.csv")) as a, open(tmp_path / "again" / "summary.csv") as b:
        shipped, again = list(csv.DictReader(a)), list(csv.DictReader(b))
    if os.environ.get("METARL_ZOO_EXACT") == "1":
        assert again == shipped
        return
    assert [(r["adaptation_steps"], r["num_test_goals"]) for r in again] == \
        [(r["adaptation_steps"], r["num_test_goals"]) for r in shipped]
    for ours, theirs in zip(again, shipped):
        gap = abs(float(ours["mean_return"]) - float(theirs["mean_return"])) / float(theirs["sem"])
        assert gap <= ZOO_TOLERANCE_SE, (name, theirs["adaptation_steps"], ours["mean_return"], theirs["mean_return"])


SEED_RUNS = sorted(os.path.relpath(os.path.join(ZOO, e, "seeds", s), ZOO) for e in ENTRIES
                   if os.path.isdir(os.path.join(ZOO, e, "seeds")) for s in os.listdir(os.path.join(ZOO, e, "seeds")))
# where and how a run computed, not what it learns: a seed may have trained on a GPU or with its own threads
PLACEMENT = {"progress_bar", "device", "env.num_threads"}


@pytest.mark.parametrize("path", SEED_RUNS)
def test_entry_seed_is_its_paper_config_with_that_seed_trimmed_or_resumable(path):
    """``ENTRY/seeds/seedN``: the entry's paper config with ``seed: N`` (the spread the docs report is over that
    config alone), either finished and trimmed with its paper-protocol evaluation, or committed in progress."""
    import dataclasses
    import re

    name, _, seed_dir = path.split(os.sep)
    match = re.fullmatch(r"seed(\d+)", seed_dir)
    assert match, f"{path}: a seed run's folder is named seedN"
    run_dir = os.path.join(ZOO, path)
    cfg = metarl.load_config(os.path.join(run_dir, "config.yaml"))
    expected = metarl.load_config(os.path.join(ROOT, "experiments", "configs", f"{name}.yaml"),
                                  [f"seed={match.group(1)}"])
    from metarl.trainer import _flat_keys, _get  # the fields --resume compares, env kwargs as one field

    got, want = dataclasses.asdict(cfg), dataclasses.asdict(expected)
    differ = {k for k in _flat_keys(want) if _get(got, k) != _get(want, k)}
    assert differ <= PLACEMENT, f"{path}: differs from {name}.yaml in {sorted(differ - PLACEMENT)}"
    if os.path.isdir(os.path.join(run_dir, "evaluation")):
        from metarl import evaluation as ev

        assert ev.protocol_differences(check_trimmed(run_dir, cfg)) == []
    elif os.path.exists(os.path.join(run_dir, "checkpoints", "latest.pt")):
        check_resumable(run_dir, name)
    else:
        assert not os.path.isdir(os.path.join(run_dir, "checkpoints")), \
            f"{path}: has checkpoints but neither evaluation/ nor checkpoints/latest.pt"
        pytest.skip(f"{path}: started here, no checkpoint yet (not in the repository until it has one)")
