"""Trim a finished run directory into a zoo entry: what the commands need, nothing else.

    python experiments/ship_zoo.py runs/ant-vel experiments/zoo/ant_vel

Copies ``config.yaml``, ``metarl-run.json``, ``progress.csv`` and ``checkpoints/best.pt`` into the zoo
folder, then evaluates the shipped checkpoint there with the paper's protocol (``metarl evaluate
ZOO_ENTRY``), so that ``evaluation/`` holds ``summary.csv``, ``per_goal.csv``, ``results.json`` and
``curve.png`` (TensorBoard events are left out), and checks the entry stays well under 1 MB.

The other training seeds of an entry's config go under the entry, without the figure, so that a seed-spread
table can be re-made from the repository (``python -m experiments.seed_spread``) and each seed re-evaluated:

    python experiments/ship_zoo.py runs/hcvel-seed1 experiments/zoo/halfcheetah_vel/seeds/seed1 --no-curve
"""

from __future__ import annotations

import argparse
import os
import shutil

import metarl
from metarl.errors import UsageError

SHIPPED = ("config.yaml", "metarl-run.json", "progress.csv", os.path.join("checkpoints", "best.pt"))
EVALUATION = ("summary.csv", "per_goal.csv", "results.json", "curve.png")
MAX_BYTES = 1_000_000


class ShipError(ValueError):
    """Bad arguments, found before anything is written or removed."""


def check_paths(run_dir: str, entry: str, overwrite: bool) -> None:
    """Everything ``ship`` needs, checked before it removes or writes anything."""
    for name in SHIPPED:
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise ShipError(f"run: {run_dir!r} has no {name}; give a finished metarl run directory")
    run, target = os.path.realpath(run_dir), os.path.realpath(entry)
    if target == run or target.startswith(run + os.sep) or run.startswith(target + os.sep):
        raise ShipError(f"entry: {entry!r} is the run {run_dir!r}, inside it or around it; give a separate zoo folder")
    if os.path.exists(entry) and not os.path.isdir(entry):
        raise ShipError(f"entry: {entry!r} is a file; give a folder path (a zoo entry is a directory)")
    if os.path.isdir(entry) and os.listdir(entry) and not overwrite:
        raise ShipError(f"entry: {entry!r} exists; pass --overwrite to replace it")
    try:  # a readable metarl checkpoint on a task that needs no plug-in modules (the zoo holds the paper's tasks)
        metarl.load_run(run_dir)
    except UsageError as exc:
        if "env.imports" in str(exc):
            raise ShipError(f"run: {run_dir!r} is a run on a plug-in task (its env.imports name modules); the zoo "
                            "holds runs on metarl's own tasks, the paper's, so ship_zoo does not ship it") from None
        raise ShipError(f"run: {exc}") from None


def ship(run_dir: str, entry: str, overwrite: bool = False, curve: bool = True) -> int:
    check_paths(run_dir, entry, overwrite)
    backup = None
    if os.path.exists(entry):  # set aside, not removed, until the new entry is complete
        backup = os.path.normpath(entry) + ".ship-backup"
        shutil.rmtree(backup, ignore_errors=True)  # a leftover of an earlier ship of this entry that was killed
        os.rename(entry, backup)
    try:
        for name in SHIPPED:
            source = os.path.join(run_dir, name)
            os.makedirs(os.path.dirname(os.path.join(entry, name)) or entry, exist_ok=True)
            shutil.copyfile(source, os.path.join(entry, name))
        evaluation = os.path.join(entry, "evaluation")
        metarl.evaluate(entry, output=evaluation)
        shutil.rmtree(os.path.join(evaluation, "tensorboard"), ignore_errors=True)
        if not curve:
            os.remove(os.path.join(evaluation, "curve.png"))
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(entry) for f in files)
        if size > MAX_BYTES:
            raise ShipError(f"entry: {entry} would hold {size} bytes; a zoo entry must stay under {MAX_BYTES}")
    except BaseException:  # a failed or interrupted ship leaves the entry as it was
        shutil.rmtree(entry, ignore_errors=True)
        if backup is not None:
            os.rename(backup, entry)
        raise
    if backup is not None:
        shutil.rmtree(backup)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished run directory")
    parser.add_argument("entry", help="the zoo folder to write, e.g. experiments/zoo/ant_vel")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-curve", action="store_true", help="leave the figure out (for an entry's other seeds)")
    args = parser.parse_args()
    try:  # ship checks every path before it removes or writes anything
        size = ship(args.run, args.entry, args.overwrite, curve=not args.no_curve)
    except ShipError as exc:
        parser.error(str(exc))
    print(f"wrote {args.entry} ({size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
