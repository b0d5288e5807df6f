"""Checkpoints written atomically and read back with checks.

A write goes to a temporary file in the same directory, is flushed to disk, then renamed over the
target: a crash or a kill leaves either the old file or the new one, never a half-written file.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any

import torch

FORMAT = "metarl-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted or does not fit the run."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Serialise ``state`` (tensors moved to CPU) and write it atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, or raise :class:`CheckpointError` saying why."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist; list the run's checkpoints/ folder for the available ones")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path!r} is unreadable or corrupted ({type(exc).__name__}: {exc}); "
            "use another checkpoint from the same folder (latest.pt, best.pt or an iter_*.pt)"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a metarl checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {state.get('version')!r}; this metarl reads version {VERSION}"
        )
    return state


def check_compatible(state: dict[str, Any], obs_dim: int, act_dim: int, hidden_sizes: list[int], env_id: str) -> None:
    """Refuse a checkpoint whose policy does not fit the env and network at hand."""
    want = {"env_id": env_id, "obs_dim": obs_dim, "act_dim": act_dim, "hidden_sizes": list(hidden_sizes)}
    have = {k: state.get(k) for k in want}
    if have != want:
        diff = ", ".join(f"{k}: checkpoint {have[k]!r} vs run {want[k]!r}" for k in want if have[k] != want[k])
        raise CheckpointError(f"checkpoint does not match this run ({diff}); use a checkpoint of the same task and policy")
