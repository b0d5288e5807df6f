"""The general path: any gymnasium env with ``sample_tasks``/``set_task``, through gymnasium's SyncVectorEnv.

Slower than a batched task env (one Python env per slot) but it runs anything.  The episode rules are
those of :class:`metarl.envs.BatchedTaskEnv`, kept by the same :class:`metarl.envs.core.EpisodeBook`: a
fixed horizon with a clock per slot (``reset(options={"reset_mask": mask})`` restarts some slots while
the others run on), and terminated slots that stay terminated (frozen observation, reward 0) until
their next reset, so samplers and the SB3 adapter treat both paths alike.  An episode that the inner
gymnasium env ends early by truncation (its own time limit) is reported as terminated: it is over.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from .core import EpisodeBook, check_real_actions
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
        self.spec = first.spec  # the task env's registration (None for an unregistered one): its id names it
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
            raise ValueError("horizon: the env declares no episode length (no max_episode_steps in its registration, "
                             "no horizon attribute); register it with max_episode_steps=N, pass horizon=N here, or "
                             "set max_episode_steps: N in a metarl config's env.kwargs")
        self.horizon = check_count(horizon, "horizon")
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        self.observation_space = self.vec.observation_space
        self.action_space = self.vec.action_space
        self._tasks: np.ndarray | None = None
        self._book = EpisodeBook(self.num_envs, self.horizon, self.single_observation_space.shape or ())

    def _task_env(self, i: int) -> Any:
        """Slot ``i``'s unwrapped env, which has the task methods (checked in ``__init__``)."""
        return self.vec.envs[i].unwrapped

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The task env's ``sample_tasks(n, rng)``, ``[n]`` (one number per task) taken as ``[n, 1]``; what it returns
        is checked where metarl draws tasks (``metarl.environment.sample_tasks``), and by ``set_tasks``."""
        tasks = self._task_env(0).sample_tasks(n, rng)
        shape = np.shape(tasks)
        return np.asarray(tasks)[:, None] if len(shape) == 1 and shape[0] == n else tasks

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
        """Reset slots; ``seed=s`` seeds slot ``i`` with ``s + i``; ``options={"reset_mask": mask}`` resets some."""
        mask = self._book.reset_mask(options)
        seeds = self._book.expand_seeds(seed) if seed is not None else [None] * self.num_envs
        ids = np.flatnonzero(mask)
        obs = np.array(self._book.obs)
        for i in ids:  # each slot's env on its own, so the others keep running their episodes
            obs[i], _ = self.vec.envs[i].reset(seed=seeds[i])
        return self._book.restart(ids, obs[ids]), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        ids = self._book.live_slots()
        a = check_real_actions(actions, tuple(self.action_space.shape or ()))
        live = range(self.num_envs) if ids is None else ids
        obs = np.array(self._book.obs)
        reward = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        last = self._book.t + 1 >= self.horizon
        for i in live:  # frozen slots are not simulated, as in the batched envs
            o, r, term, trunc, _ = self.vec.envs[i].step(a[i].astype(self.single_action_space.dtype))
            # the inner env's own time limit ending an episode before the horizon ends it for good
            obs[i], reward[i], terminated[i] = o, float(r), bool(term or (trunc and not last[i]))
        obs, reward, terminated, truncated = self._book.record(obs, reward, terminated)
        return obs, reward, terminated, truncated, {}

    @property
    def elapsed_steps(self) -> np.ndarray:
        """Steps taken in each slot's current episode ``[num_envs]``."""
        return self._book.t.copy()

    def close_extras(self, **kwargs: Any) -> None:
        self.vec.close()
