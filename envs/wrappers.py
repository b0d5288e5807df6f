"""Wrappers over task vector envs."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space


class TaskInObservation(VectorEnv):
    """Append each slot's task vector to its observation (the paper's "oracle" sees the task).

    Wraps any task vector env with ``set_tasks``/``get_tasks`` (``metarl.envs.BatchedTaskEnv``,
    ``metarl.envs.TaskSyncVectorEnv``); everything else passes through.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.horizon = env.horizon
        self.metadata = env.metadata
        self.task_dim = env.get_tasks().shape[1]
        inner = env.single_observation_space
        low = np.concatenate([inner.low, np.full(self.task_dim, -np.inf)])
        high = np.concatenate([inner.high, np.full(self.task_dim, np.inf)])
        self.single_observation_space = gymnasium.spaces.Box(low, high, dtype=inner.dtype)
        self.single_action_space = env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = env.action_space

    def _with_tasks(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self.env.get_tasks()], axis=1)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.env.sample_tasks(n, rng)

    def set_tasks(self, tasks: np.ndarray) -> None:
        self.env.set_tasks(tasks)

    def get_tasks(self) -> np.ndarray:
        return self.env.get_tasks()

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._with_tasks(obs), info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return self._with_tasks(obs), reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()
