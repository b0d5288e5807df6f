"""Run directories: owned by metarl, written by one process at a time, never replaced by accident.

A run directory carries ``metarl-run.json`` (the marker: metarl created it, with the run's id), and a
lock file ``.lock`` held with ``flock`` by the one process writing the run. The operating system drops
the lock when that process ends, however it ends, so a killed run never leaves a stale lock behind.

``--overwrite`` replaces only a directory with the marker, and never the working directory or one of
its parents. Output paths are checked before any work starts.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from typing import Any

from metarl.errors import RunError, UsageError, os_error_message

MARKER = "metarl-run.json"
LOCK = ".lock"


class RunDirError(UsageError):
    """A run directory cannot be used as asked (not a run, holds something else, is a file)."""


class RunLockedError(RunError):
    """Another process is writing the run directory."""


def check_output_dir(path: str, flag: str = "--output") -> str:
    """``path`` as an absolute directory path that exists or can be created; a clear error otherwise.

    Nothing is created: the nearest existing ancestor must be a directory this process can write to.
    """
    if not isinstance(path, str) or not path.strip():
        raise UsageError(f"{flag}: expected a directory path, got {path!r}")
    full = os.path.abspath(path)
    if os.path.exists(full) and not os.path.isdir(full):
        raise UsageError(f"{flag}: {full!r} is a file, not a directory; choose a directory path")
    probe = full
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UsageError(f"{flag}: {full!r} lies under {probe!r}, which is a file; choose a directory path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunError(f"{flag}: cannot write in {probe!r} (permission denied); fix its permissions or choose another path")
    return full


def check_output_file(path: str, overwrite: bool, flag: str = "--output") -> str:
    """``path`` as an absolute file path that can be written; refuses a directory or an existing file unless asked."""
    if not isinstance(path, str) or not path.strip():
        raise UsageError(f"{flag}: expected a file path, got {path!r}")
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise UsageError(f"{flag}: {full!r} is a directory; give a file name such as {os.path.join(path, 'figure.png')!r}")
    if os.path.exists(full) and not overwrite:
        raise UsageError(f"{flag}: {full!r} exists; pass --overwrite to replace it or choose another file")
    parent = os.path.dirname(full)
    check_output_dir(parent, flag)
    return full


def is_run_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MARKER))


def read_marker(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, MARKER)) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class RunDirectory:
    """A run directory held by this process (its lock taken) until :meth:`release`."""

    def __init__(self, path: str, fd: int, run_id: str) -> None:
        self.path, self._fd, self.run_id = path, fd, run_id

    # ---- opening ---------------------------------------------------------------------------------
    @staticmethod
    def check_new(path: str, overwrite: bool = False) -> str:
        """Raise unless ``path`` can take a new run (see :meth:`create`); changes nothing. Returns the absolute path."""
        full = check_output_dir(path)
        if os.path.isdir(full) and os.listdir(full):
            _refuse_if_locked(full)
            if not is_run_dir(full) and not _legacy_run(full):
                raise RunDirError(
                    f"--output: {full!r} already holds files and is not a metarl run directory (no {MARKER}); "
                    "metarl writes runs only into new or empty directories and never deletes a folder it did not "
                    "create: choose another --output"
                )
            if not overwrite:
                raise RunDirError(
                    f"--output: run directory {full!r} already holds a run; pass --resume to continue it, "
                    "--overwrite to delete and replace it, or choose another --output"
                )
            _refuse_dangerous_delete(full)
            for folder, dirs, files in os.walk(full):
                if folder != full and MARKER in files:  # made before runs inside runs were refused
                    raise RunDirError(f"--overwrite: {full!r} holds another run, {folder!r}, which replacing it would "
                                      "delete; move that run out first")
                dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        return full

    @classmethod
    def create(cls, path: str, overwrite: bool = False) -> "RunDirectory":
        """A new run in ``path``: an empty or missing directory, or (with ``overwrite``) an earlier metarl run."""
        full = cls.check_new(path, overwrite)
        if os.path.isdir(full) and os.listdir(full):
            run = cls.lock(full)  # refuses while another process writes the run
            try:
                for name in os.listdir(full):
                    if name == LOCK:
                        continue
                    target = os.path.join(full, name)
                    if os.path.isdir(target) and not os.path.islink(target):
                        shutil.rmtree(target)
                    else:
                        os.unlink(target)
            except OSError as exc:
                run.release()
                raise RunError(os_error_message(exc, f"(clearing) {full}")) from None
        else:
            try:
                os.makedirs(full, exist_ok=True)
            except OSError as exc:
                raise RunError(os_error_message(exc, f"the run directory {full}")) from None
            run = cls.lock(full)
        run.run_id = uuid.uuid4().hex
        run.write_marker()
        return run

    @classmethod
    def open_existing(cls, path: str) -> "RunDirectory":
        """An existing run in ``path``, to resume."""
        full = cls.check_existing(path)
        run = cls.lock(full)
        marker = read_marker(full)
        run.run_id = str(marker.get("run_id") or "")
        if not marker:  # a run written before the marker existed, or one whose marker was lost: adopt it, keeping
            run.run_id = _legacy_run_id(full) or uuid.uuid4().hex  # the id its checkpoints carry, if they carry one
            run.write_marker()
        return run

    @staticmethod
    def check_existing(path: str) -> str:
        """``path`` as an absolute path if it holds a metarl run to resume, else a :class:`RunDirError`; reads only."""
        full = os.path.abspath(path)
        if not os.path.isdir(full):
            raise RunDirError(
                f"--resume: run directory {full!r} does not exist; start a new run without --resume"
            )
        if not is_run_dir(full) and not _legacy_run(full):
            raise RunDirError(
                f"--resume: {full!r} is not a metarl run directory (no {MARKER} and no checkpoints/latest.pt); "
                "pass the --output of an earlier `metarl train`"
            )
        return full

    @classmethod
    def lock(cls, full: str) -> "RunDirectory":
        """Take ``full``'s run lock (one writing process per folder; released by :meth:`release` or at exit).

        Raises :class:`RunLockedError`, naming the holder, while another process holds it."""
        lock_path = os.path.join(full, LOCK)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(os_error_message(exc, f"the lock file {lock_path}")) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLockedError(
                    f"run directory {full!r} is being written by another metarl process ({holder}); wait for it "
                    "to finish or stop it (Ctrl-C or kill PID saves a checkpoint), then --resume, or choose another --output"
                ) from None
            raise RunError(os_error_message(exc, f"the lock file {lock_path}")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n".encode(), 0)
        return cls(full, fd, "")

    # ---- state ---------------------------------------------------------------------------------------
    def write_marker(self) -> None:
        from metarl.checkpoint import atomic_write_bytes

        data = {"format": "metarl-run", "run_id": self.run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            atomic_write_bytes(os.path.join(self.path, MARKER), json.dumps(data, indent=1).encode())
        except OSError as exc:
            raise RunError(os_error_message(exc, f"the run marker in {self.path}")) from None

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RunDirectory":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # interpreter shutdown: the OS drops the lock anyway
            pass


def _legacy_run(path: str) -> bool:
    """A run directory written by metarl before the marker existed: a config and a metarl latest checkpoint (one
    that loads as metarl's, so that a folder of the user's with files of those names never counts as a run)."""
    return _legacy_run_id(path) is not None


def _legacy_run_id(path: str) -> str | None:
    """For a marker-less run (see :func:`_legacy_run`), the run id its ``latest.pt`` carries ("" if none); None
    when ``path`` is not such a run."""
    latest = os.path.join(path, "checkpoints", "latest.pt")
    if not (os.path.isfile(os.path.join(path, "config.yaml")) and os.path.isfile(latest)):
        return None
    from metarl.checkpoint import CheckpointError, load_checkpoint  # weights only: loading runs no code

    try:
        return str(load_checkpoint(latest).get("run_id") or "")
    except CheckpointError:
        return None


def _refuse_if_locked(full: str) -> None:
    """Raise :class:`RunLockedError` if another process holds ``full``'s lock; takes no lock itself."""
    lock_path = os.path.join(full, LOCK)
    if not os.path.isfile(lock_path):
        return
    RunDirectory.lock(full).release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def _refuse_dangerous_delete(full: str) -> None:
    cwd = os.path.abspath(os.getcwd())
    home = os.path.abspath(os.path.expanduser("~"))
    if full == os.path.dirname(full) or full in (cwd, home) or cwd.startswith(full.rstrip(os.sep) + os.sep):
        raise RunDirError(
            f"--overwrite: refusing to delete {full!r}: it is the working directory, a parent of it, the home "
            "directory or the root; choose a run directory below the working directory"
        )
