"""Task distributions: a task is a small float vector, a batch of tasks an array ``[n, k]``.

Plain arrays batch, save and log without ceremony, so every distribution here only samples rows and
checks rows that come back from users.  Values outside the training range stay allowed (a meta-policy may
be asked to extrapolate); only values that make no sense for the task are rejected.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class TaskSpace:
    """The tasks of one family: names of the parameters, a sampler and a validator."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    @property
    def dim(self) -> int:
        return len(self.names)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` tasks from the training distribution; returns float64 ``[n, dim]``."""
        n = check_count(n, "n")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng: expected a numpy.random.Generator, got {type(rng).__name__}; "
                "pass numpy.random.default_rng(seed)"
            )
        # a plug-in's _sample is checked like tasks a user passes: one row of dim finite numbers per task
        return self.check(self._sample(n, rng), count=n, field=f"{type(self).__name__}._sample({n}, rng)'s result")

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def check(self, tasks: object, count: int | None = None, field: str = "tasks") -> np.ndarray:
        """Return ``tasks`` as float64 ``[n, dim]`` or raise ValueError naming the problem and the fix."""
        arr = np.asarray(tasks, dtype=np.float64)
        if arr.ndim == 1 and self.dim == 1 and count is not None and arr.shape[0] == count:
            raise ValueError(
                f"{field}: expected shape ({count}, 1), got {arr.shape}; pass one row per slot, "
                f"e.g. tasks.reshape({count}, 1)"
            )
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            want = f"(n, {self.dim})" if count is None else f"({count}, {self.dim})"
            raise ValueError(
                f"{field}: expected shape {want} with columns {list(self.names)}, got {arr.shape}; "
                "pass one row per task, as sample_tasks() returns"
            )
        if count is not None and arr.shape[0] != count:
            raise ValueError(
                f"{field}: got {arr.shape[0]} tasks for {count} slots; pass exactly one task per slot "
                f"(shape ({count}, {self.dim})), e.g. np.repeat(tasks, episodes_per_task, axis=0)"
            )
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"{field}: row {row} is not finite ({arr[row].tolist()}); tasks must be finite numbers")
        self._check_values(arr, field)
        return arr

    def _check_values(self, arr: np.ndarray, field: str) -> None:
        """Subclasses reject values that are meaningless for the task."""

    def default(self, n: int) -> np.ndarray:
        """Tasks a freshly made env starts with: draws from a generator seeded with 0."""
        return self._sample(n, np.random.default_rng(0))


class UniformTasks(TaskSpace):
    """Each parameter uniform in ``[low, high)`` (goal velocity, goal position)."""

    def __init__(self, names: Sequence[str], low: Sequence[float], high: Sequence[float]) -> None:
        super().__init__(names)
        self.low = np.asarray(low, dtype=np.float64).reshape(self.dim)
        self.high = np.asarray(high, dtype=np.float64).reshape(self.dim)

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=(n, self.dim))

    def __repr__(self) -> str:
        return f"UniformTasks({list(self.names)}, low={self.low.tolist()}, high={self.high.tolist()})"


class DirectionTasks(TaskSpace):
    """A direction ``d`` in {-1, +1}: ``-1`` when ``U(low, high)`` falls below the middle, as in the paper."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__(["direction"])
        self.low, self.high = float(low), float(high)

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.uniform(self.low, self.high, size=(n, 1))
        return np.where(u < 0.5 * (self.low + self.high), -1.0, 1.0)

    def _check_values(self, arr: np.ndarray, field: str) -> None:
        bad = (arr != 1.0) & (arr != -1.0)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(
                f"{field}: row {row} has direction {float(arr[row, 0])!r}; a direction must be exactly -1.0 "
                "(backward) or +1.0 (forward); use np.sign(x) to convert"
            )

    def __repr__(self) -> str:
        return f"DirectionTasks(low={self.low}, high={self.high})"


def check_count(n: object, field: str) -> int:
    """A positive integer count, or a ValueError that names ``field``."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or int(n) < 1:
        raise ValueError(f"{field}: expected a positive integer, got {n!r}")
    return int(n)
