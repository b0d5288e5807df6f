"""The general path: any gymnasium env with ``sample_tasks``/``set_task``, through gymnasium's SyncVectorEnv.

Slower than a batched task env (one Python env per slot) but it runs anything.  The wrapper gives the
same episode rules as :class:`envs.core.BatchedTaskEnv`: a fixed horizon, and terminated slots that stay
terminated (frozen observation, reward 0) until the next reset, so samplers treat both paths alike.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from .tasks import check_count

REQUIRED = ("sample_tasks", "set_task")


class TaskSyncVectorEnv(VectorEnv):
    """Slots of a gymnasium ``SyncVectorEnv``, each with its own task.

    Args:
        env_fns: one callable per slot, each making an env whose unwrapped env has
            ``sample_tasks(n, rng) -> [n, k]`` and ``set_task(task)`` (``get_task()`` optional).
        horizon: steps per episode; by default the env spec's ``max_episode_steps`` or the env's
            ``horizon`` attribute.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.DISABLED, "render_modes": []}

    def __init__(self, env_fns: Sequence[Callable[[], gymnasium.Env]], horizon: int | None = None) -> None:
        self.vec = SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.DISABLED)
        self.num_envs = self.vec.num_envs
        first = self.vec.envs[0]
        missing = [name for name in REQUIRED if not callable(getattr(first.unwrapped, name, None))]
        if missing:
            raise TypeError(
                f"env_fns: {type(first.unwrapped).__name__} lacks {missing}; a task env must define "
                "sample_tasks(n, rng) -> array [n, k] and set_task(task)"
            )
        if horizon is None:
            spec = first.spec
            horizon = spec.max_episode_steps if spec is not None else None
            horizon = horizon or getattr(first.unwrapped, "horizon", None)
        if horizon is None:
            raise ValueError("horizon: the env declares no episode length; pass horizon=<steps per episode>")
        self.horizon = check_count(horizon, "horizon")
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        self.observation_space = self.vec.observation_space
        self.action_space = self.vec.action_space
        self._tasks: np.ndarray | None = None
        self._t = 0
        self._needs_reset = True
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._frozen = np.zeros(self.num_envs, dtype=bool)
        self._last_obs = np.zeros(self.observation_space.shape or (self.num_envs,))

    def _task_env(self, i: int) -> Any:
        """Slot ``i``'s unwrapped env, which has the task methods (checked in ``__init__``)."""
        return self.vec.envs[i].unwrapped

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        tasks = np.asarray(self._task_env(0).sample_tasks(n, rng), dtype=np.float64)
        return tasks.reshape(n, -1)

    def set_tasks(self, tasks: np.ndarray) -> None:
        arr = np.asarray(tasks, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != self.num_envs:
            raise ValueError(
                f"tasks: expected one row per slot, shape ({self.num_envs}, k), got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError("tasks: contains non-finite values; tasks must be finite numbers")
        for i, task in enumerate(arr):
            self._task_env(i).set_task(task)
        self._tasks = arr.copy()

    def get_tasks(self) -> np.ndarray:
        if self._tasks is None:
            return np.stack([np.asarray(self._task_env(i).get_task(), np.float64) for i in range(self.num_envs)])
        return self._tasks.copy()

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.vec.reset(seed=list(seed) if isinstance(seed, Sequence) else seed, options=options)
        self._last_obs = np.array(obs)
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._frozen = np.zeros(self.num_envs, dtype=bool)
        self._t = 0
        self._needs_reset = False
        return obs, info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("step() called before reset() or after the horizon; call reset() first")
        a = np.asarray(actions)
        if a.shape != self.action_space.shape:
            raise ValueError(f"actions: expected shape {self.action_space.shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("actions: contain non-finite values; check the policy for NaN/inf")
        obs, reward, terminated, truncated, info = self.vec.step(a)
        obs, reward = np.array(obs), np.asarray(reward, dtype=np.float64).copy()
        frozen = self._frozen
        obs[frozen] = self._last_obs[frozen]
        reward[frozen] = 0.0
        newly_done = (np.asarray(terminated) | np.asarray(truncated)) & ~frozen
        self._terminated |= np.asarray(terminated, dtype=bool) & ~frozen
        self._frozen = frozen | newly_done
        self._last_obs = obs
        self._t += 1
        if self._t >= self.horizon:
            self._needs_reset = True
            return obs, reward, self._terminated.copy(), ~self._terminated, info
        inner_done = np.asarray(terminated) | np.asarray(truncated)
        if inner_done.any():
            # gymnasium requires done slots to be reset before the next step; the slot stays reported as
            # terminated (frozen) for the rest of this episode, and what it simulates meanwhile is dropped
            self.vec.reset(options={"reset_mask": inner_done})
        return obs, reward, self._terminated.copy(), np.zeros(self.num_envs, dtype=bool), info

    def close_extras(self, **kwargs: Any) -> None:
        self.vec.close()
