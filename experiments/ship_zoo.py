"""Trim a finished run directory into a zoo entry: what the commands need, nothing else.

    python experiments/ship_zoo.py runs/ant-vel experiments/zoo/ant_vel

Copies ``config.yaml``, ``metarl-run.json``, ``progress.csv`` and ``checkpoints/best.pt`` into the zoo
folder, then evaluates the shipped checkpoint there with the paper's protocol (``metarl evaluate
ZOO_ENTRY``), so that ``evaluation/`` holds ``summary.csv``, ``per_goal.csv``, ``results.json`` and
``curve.png`` (TensorBoard events are left out), and checks the entry stays well under 1 MB.

The other training seeds of an entry's config go under the entry, without the figure, so that a seed-spread
table can be re-made from the repository (``python -m experiments.seed_spread``) and each seed re-evaluated:

    python experiments/ship_zoo.py runs/hcvel-seed1 experiments/zoo/halfcheetah_vel/seeds/seed1 --no-curve

The run's config.yaml and metarl-run.json must be its own (the config the same as its checkpoint's, but for
the fields a resume may change: iterations, device, progress_bar, sampler.address).  With ``--overwrite``
the existing entry is set aside as ``ENTRY.ship-backup`` until the new one is complete; a ship that fails or
is interrupted (Ctrl-C, SIGTERM, a closed terminal's SIGHUP) puts it back.  Once the new entry is complete,
what else the old one held (its ``seeds/``) is moved into it and the rest removed, by way of
``ENTRY.ship-old``.  After a SIGKILL one of those two folders is left, and a later ship refuses to remove
it: its message says what to move where.  The entry must be a folder, not a symbolic link to one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import metarl
from metarl.config import ConfigError, load_config, to_dict
from metarl.errors import UsageError, os_error_message
from metarl.trainer import config_differences

SHIPPED = ("config.yaml", "metarl-run.json", "progress.csv", os.path.join("checkpoints", "best.pt"))
EVALUATION = ("summary.csv", "per_goal.csv", "results.json", "curve.png")
MAX_BYTES = 1_000_000


class ShipError(ValueError):
    """Bad arguments, found before anything is written or removed."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP while shipping: raised like Ctrl-C's KeyboardInterrupt, so that the entry is restored."""


# the signals that stop a ship: Ctrl-C, a kill, a closed terminal
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def backup_path(entry: str) -> str:
    """Where ``ship`` keeps the entry as it was while the new one is written."""
    return os.path.normpath(entry) + ".ship-backup"


def old_path(entry: str) -> str:
    """Where the replaced entry goes once the new one is complete, until its other items are moved and it is removed."""
    return os.path.normpath(entry) + ".ship-old"


# what a ship writes at the top of an entry; anything else in a replaced entry (its seeds/) is kept
WRITTEN = {name.split(os.sep)[0] for name in SHIPPED} | {"evaluation"}


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP ignored for the block (a restore or a clean-up that must not stop half-way)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, signal.SIG_IGN) for s in STOPPING}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def check_paths(run_dir: str, entry: str, overwrite: bool) -> None:
    """Everything ``ship`` needs, checked before it removes or writes anything."""
    for name in SHIPPED:
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise ShipError(f"run: {run_dir!r} has no {name}; give a finished metarl run directory")
    if not entry:
        raise ShipError("entry: expected a folder path, e.g. experiments/zoo/ant_vel, got ''")
    if os.path.islink(os.path.normpath(entry)):  # renaming the link would leave the folder it names as it was
        raise ShipError(f"entry: {entry!r} is a symbolic link to {os.path.realpath(entry)!r}; give that folder "
                        "itself as the entry")
    above = os.path.dirname(os.path.abspath(entry))
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise ShipError(f"entry: {entry!r} lies under {above!r}, which is a file; choose a folder path")
    run, target = os.path.realpath(run_dir), os.path.realpath(entry)
    if target == run or target.startswith(run + os.sep) or run.startswith(target + os.sep):
        raise ShipError(f"entry: {entry!r} is the run {run_dir!r}, inside it or around it; give a separate zoo folder")
    if os.path.exists(entry) and not os.path.isdir(entry):
        raise ShipError(f"entry: {entry!r} is a file; give a folder path (a zoo entry is a directory)")
    if os.path.isdir(entry) and os.listdir(entry) and not overwrite:
        raise ShipError(f"entry: {entry!r} exists; pass --overwrite to replace it")
    backup, old = backup_path(entry), old_path(entry)
    if os.path.lexists(backup):  # never removed here: it may be the only copy of an entry, or a folder of yours
        raise ShipError(f"entry: {backup!r} exists: the entry as it was before a ship that was killed before it "
                        f"finished (or a folder of that name); move it back (rm -rf {entry!r} && mv {backup!r} "
                        f"{entry!r}) or move it away, then run again")
    if os.path.lexists(old):
        raise ShipError(f"entry: {old!r} exists: the entry a finished ship replaced, killed while it moved that "
                        f"entry's other folders (seeds/) into {entry!r} and removed the rest (or a folder of that "
                        f"name); move what you keep from it into {entry!r}, remove it, then run again")
    try:  # a readable metarl checkpoint on a task that needs no plug-in modules (the zoo holds the paper's tasks)
        run_config = metarl.load_run(run_dir).config
    except UsageError as exc:
        if "env.imports" in str(exc):
            raise ShipError(f"run: {run_dir!r} is a run on a plug-in task (its env.imports name modules); the zoo "
                            "holds runs on metarl's own tasks, the paper's, so ship_zoo does not ship it") from None
        raise ShipError(f"run: {exc}") from None
    # the shipped files are the ones users read and resume from: they must be the run's own
    config_file = os.path.join(run_dir, "config.yaml")
    try:
        shipped_config = load_config(config_file, flag="run")
    except ConfigError as exc:
        raise ShipError(f"{exc}; restore the run's own config.yaml") from None
    # as --resume compares them: a resume may change the run's iterations, device, progress bar, Ray address
    differences = [f"{k}: {mine!r} in config.yaml, {theirs!r} in the checkpoint"
                   for k, mine, theirs in config_differences(to_dict(shipped_config), to_dict(run_config))]
    if differences:
        raise ShipError(f"run: {config_file!r} does not match checkpoints/best.pt ({'; '.join(differences)}); "
                        "restore the run's own config.yaml")
    marker = os.path.join(run_dir, "metarl-run.json")
    try:
        with open(marker, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ShipError(f"run: {marker!r} is not readable JSON ({exc}); give a run directory written by metarl train") from None
    if not isinstance(data, dict) or data.get("format") != "metarl-run":
        raise ShipError(f"run: {marker!r} is not a metarl run marker (no \"format\": \"metarl-run\"); give a run "
                        "directory written by metarl train")


def ship(run_dir: str, entry: str, overwrite: bool = False, curve: bool = True) -> int:
    check_paths(run_dir, entry, overwrite)
    backup = backup_path(entry) if os.path.exists(entry) else None  # set aside, not removed, until the new entry is complete
    moved = False
    try:
        if backup is not None:
            os.rename(entry, backup)
            moved = True
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
    except BaseException:  # a failed or interrupted ship (Ctrl-C, SIGTERM) leaves the entry as it was
        with signals_held():  # a second Ctrl-C must not stop the restore half-way
            # a signal handled as the rename returned comes before `moved` is set: the entry is then in the backup
            moved = moved or (backup is not None and os.path.lexists(backup) and not os.path.lexists(entry))
            if backup is None or moved:  # otherwise the entry was never moved: nothing of it to remove
                shutil.rmtree(entry, ignore_errors=True)
                if backup is not None:
                    try:
                        os.rename(backup, entry)
                    except OSError as exc:  # the former entry is whole in the backup: say where, not "as it was"
                        raise ShipError(f"entry: the ship failed and putting the former entry back failed too "
                                        f"({exc.strerror or exc}); it is whole in {backup!r}: move it back with "
                                        f"mv {backup!r} {entry!r}") from None
        raise
    if backup is not None:  # the new entry is complete: keep what it does not replace (seeds/), drop the rest
        with signals_held():
            old = old_path(entry)
            try:
                os.rename(backup, old)
                for name in sorted(set(os.listdir(old)) - WRITTEN):
                    os.rename(os.path.join(old, name), os.path.join(entry, name))
                shutil.rmtree(old)
            except OSError as exc:  # the entry is shipped; what is left of the former one is named, not lost
                left = old if os.path.lexists(old) else backup
                raise ShipError(f"entry: {entry!r} is shipped, but the former entry could not be put away "
                                f"({exc.strerror or exc}); it is kept in {left!r}: move what the new entry should keep "
                                f"(seeds/) into {entry!r} and remove it") from None
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished run directory")
    parser.add_argument("entry", help="the zoo folder to write, e.g. experiments/zoo/ant_vel")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-curve", action="store_true", help="leave the figure out (for an entry's other seeds)")
    args = parser.parse_args()
    signalled: list[int] = []

    def terminate(signum: int, frame: object) -> None:
        signalled.append(signum)
        raise Interrupted()

    for signum in STOPPING[1:]:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # under nohup a closed terminal must not stop the ship
            signal.signal(signum, terminate)
    try:  # ship checks every path before it removes or writes anything
        size = ship(args.run, args.entry, args.overwrite, curve=not args.no_curve)
    except ShipError as exc:
        parser.error(str(exc))
    except OSError as exc:  # the disk, a size limit, permissions: ship has put the entry back as it was
        sys.exit(f"ship_zoo: {os_error_message(exc, args.entry)}; {args.entry!r} is as it was before (nothing shipped)")
    except BaseException as exc:
        # interrupted (also where the signal landed inside an import, which turns it into an ImportError)
        if signalled or isinstance(exc, KeyboardInterrupt):
            sys.exit(f"ship_zoo: interrupted; {args.entry!r} is as it was before (nothing shipped)")
        raise
    print(f"wrote {args.entry} ({size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
