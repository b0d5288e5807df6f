"""Checkpoints written atomically and read back with checks.

A write goes to a temporary file in the same directory, is flushed to disk, then renamed over the
target: a crash or a kill leaves either the old file or the new one, never a half-written file.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from typing import Any

import torch

from metarl.errors import UsageError

FORMAT = "metarl-checkpoint"
_UMASK = os.umask(0)
os.umask(_UMASK)
VERSION = 1


class CheckpointError(UsageError):
    """A checkpoint is missing, corrupted or does not fit the run."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the permissions a plain open() would
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
    """Read a checkpoint written by :func:`save_checkpoint`, or raise :class:`CheckpointError` saying why.

    Only tensors and plain data are read (``torch.load(weights_only=True)``): a file that would run code
    when unpickled is refused, and nothing in it is executed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist; list the run's checkpoints/ folder for the available ones")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own message suggests weights_only=False: not advice to pass on
        raise CheckpointError(
            f"checkpoint {path!r} is not a metarl checkpoint: it holds objects other than tensors and plain data, "
            "which metarl never writes, so it was not loaded and nothing in it was run; use a checkpoint written by "
            "metarl (a run's checkpoints/*.pt)"
        ) from None
    except Exception as exc:  # torch raises several types for truncated or foreign files
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not head:
            raise CheckpointError(f"checkpoint {path!r} is empty (0 bytes), as a copy or download cut short leaves it; "
                                  "use another checkpoint from the same folder, or copy it again") from None
        if head[:2] != b"PK" and head[:1] != b"\x80":  # neither torch's zip archive nor its older pickle stream
            raise CheckpointError(
                f"{path!r} is not a checkpoint file (it starts with {head!r}, where a torch checkpoint starts with "
                "b'PK', a zip archive); give a checkpoint written by metarl (a run's checkpoints/*.pt)"
            ) from None
        raise CheckpointError(
            f"checkpoint {path!r} is unreadable or corrupted ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "use another checkpoint from the same folder (latest.pt, best.pt or an iter_*.pt)"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a metarl checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {state.get('version')!r}; this metarl reads version {VERSION}"
        )
    return state


def load_policy_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`load_checkpoint`, then :func:`check_params`: a checkpoint whose policy can be used."""
    state = load_checkpoint(path)
    check_params(state, os.fspath(path))
    return state


def policy_shapes(obs_dim: int, act_dim: int, hidden_sizes: list[int]) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of metarl's Gaussian MLP policy."""
    sizes = [obs_dim, *hidden_sizes, act_dim]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"w{i}"] = (fan_in, fan_out)
        shapes[f"b{i}"] = (fan_out,)
    shapes["log_std"] = (act_dim,)
    return shapes


def check_params(state: dict[str, Any], path: str) -> None:
    """The checkpoint's ``params`` exist, are finite tensors and have the shapes its metadata says."""
    params = state.get("params")
    if not isinstance(params, dict) or not params:
        raise CheckpointError(f"checkpoint {path!r} has no 'params' (the policy parameters); it is incomplete, use another one")
    try:
        want = policy_shapes(int(state["obs_dim"]), int(state["act_dim"]), [int(h) for h in state["hidden_sizes"]])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(
            f"checkpoint {path!r} lacks the policy's obs_dim, act_dim or hidden_sizes; it is incomplete, use another one"
        ) from None
    for name, shape in want.items():
        value = params.get(name)
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint {path!r}: parameter {name!r} is missing; the file is incomplete, use another one")
        if tuple(value.shape) != shape:
            raise CheckpointError(
                f"checkpoint {path!r}: parameter {name!r} has shape {tuple(value.shape)} but the checkpoint's own "
                f"metadata (obs {state['obs_dim']}, act {state['act_dim']}, hidden {state['hidden_sizes']}) needs {shape}; "
                "the file is inconsistent, use another one"
            )
    # Meta-SGD's learned step sizes: metarl.adaptation.STEP_SIZE_PREFIX, written out (this module sits below that one)
    step_sizes = {"step_size." + name: shape for name, shape in want.items()}
    for name, value in params.items():
        if name not in want and name not in step_sizes:
            raise CheckpointError(f"checkpoint {path!r}: {name!r} is not a parameter of metarl's policy (those are "
                                  f"{', '.join(want)} and Meta-SGD's step_size.*); the file is inconsistent, use another one")
        if name in step_sizes and (not isinstance(value, torch.Tensor) or tuple(value.shape) != step_sizes[name]):
            raise CheckpointError(f"checkpoint {path!r}: step size {name!r} does not have its parameter's shape "
                                  f"{step_sizes[name]}; the file is inconsistent, use another one")
        if not isinstance(value, torch.Tensor) or not torch.isfinite(value).all():
            raise CheckpointError(
                f"checkpoint {path!r}: parameter {name!r} is not a finite tensor (NaN or inf); "
                "use an earlier checkpoint of the run (an iter_*.pt or best.pt)"
            )
    dtypes = sorted({str(value.dtype).removeprefix("torch.") for value in params.values()})
    if len(dtypes) > 1 or dtypes[0] not in ("float32", "float64"):
        raise CheckpointError(f"checkpoint {path!r}: its parameters are {' and '.join(dtypes)}, where metarl writes "
                              "all of them float32 or all float64; the file is inconsistent, use another one")


def check_resume_state(state: dict[str, Any], path: str) -> None:
    """The fields a resume continues from (iteration, random streams, counters) have the types metarl writes."""
    import numpy as np

    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path!r}: {field} {why}; the file is damaged or not a training checkpoint, "
                               "copy an iter_*.pt of the run to checkpoints/latest.pt and resume again")

    for field, least in (("iteration", 0), ("env_steps", 0), ("best_iteration", -1)):
        value = state.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise bad(field, f"is {value!r}, not an integer >= {least}")
    best = state.get("best_return")
    if not isinstance(best, (int, float)) or isinstance(best, bool) or best != best:
        raise bad("best_return", f"is {best!r}, not a number")
    if not isinstance(state.get("algo_state", {}), dict):
        raise bad("algo_state", f"is a {type(state.get('algo_state')).__name__}, not a mapping")
    try:
        np.random.default_rng().bit_generator.state = state["np_rng"]
    except (TypeError, ValueError, KeyError) as exc:  # a missing field: KeyError
        raise bad("np_rng", f"is not a numpy PCG64 state ({exc})") from None
    try:
        torch.Generator().set_state(state["torch_rng"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise bad("torch_rng", f"is not a torch CPU generator state ({str(exc).splitlines()[0]})") from None


def check_compatible(state: dict[str, Any], obs_dim: int, act_dim: int, hidden_sizes: list[int], env_id: str) -> None:
    """Refuse a checkpoint whose policy does not fit the env and network at hand."""
    want = {"env_id": env_id, "obs_dim": obs_dim, "act_dim": act_dim, "hidden_sizes": list(hidden_sizes)}
    have = {k: state.get(k) for k in want}
    if have != want:
        diff = ", ".join(f"{k}: checkpoint {have[k]!r} vs run {want[k]!r}" for k in want if have[k] != want[k])
        raise CheckpointError(f"checkpoint does not match this run ({diff}); use a checkpoint of the same task and policy")
