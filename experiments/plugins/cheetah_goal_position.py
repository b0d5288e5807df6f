"""Worked example of both plug-in paths (docs/plugins.md walks through it).

1. Fast path: ``HalfCheetahGoalPosEnv``, a half-cheetah that must stop at a goal x-position, written as a
   batched task env on the shared MuJoCo engine: a model, a task distribution and vectorised
   observation / reward functions over all slots.
2. General path: ``PointGoalEnv``, a plain ``gymnasium.Env`` with ``sample_tasks``/``set_task``, run
   through gymnasium's SyncVectorEnv by ``envs.TaskSyncVectorEnv``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from metarl import envs
from metarl.envs.models import compile_spec, gymnasium_spec


class HalfCheetahGoalPosEnv(envs.MujocoTaskEnv):
    """Run to a goal x-position ``g ~ U(-3, 3)``; reward ``-|x - g| - 0.05 * |a|^2``."""

    def __init__(self, num_envs: int = 1, horizon: int = 200, num_threads: int = 0) -> None:
        spec, total_mass = gymnasium_spec("half_cheetah.xml")
        spec.option.timestep = 0.01  # edit the model here if the task needs it
        super().__init__(
            num_envs,
            compile_spec(spec, total_mass),
            envs.UniformTasks(["goal_x"], [-3.0], [3.0]),
            obs_dim=18,  # qpos (9) + qvel (9): x is observed, since the goal is a position
            horizon=horizon,
            frame_skip=1,
            stage="vel",  # positions and velocities at the new state, free in a persistent batch
            num_threads=num_threads,
        )

    def reset_noise(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return (
            self.init_qpos + 0.01 * rng.standard_normal(self.model.nq),
            self.init_qvel + 0.1 * rng.standard_normal(self.model.nv),
        )

    def observe(self) -> np.ndarray:
        return np.concatenate([self.qpos, self.qvel], axis=1)

    def reward(self, actions: np.ndarray) -> np.ndarray:
        distance = np.abs(self.qpos[:, 0] - self.slot_tasks[:, 0])
        return -distance - 0.05 * np.sum(actions * actions, axis=1)


class PointGoalEnv(gymnasium.Env):
    """A point on a line that must reach a goal; any gymnasium env with these two methods will do."""

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.goal = 0.5
        self.x = 0.0

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=(n, 1))

    def set_task(self, task: np.ndarray) -> None:
        self.goal = float(np.asarray(task).reshape(-1)[0])

    def get_task(self) -> np.ndarray:
        return np.array([self.goal])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.05, 0.05))
        return np.array([self.x]), {}

    def step(self, action: np.ndarray):
        self.x += 0.1 * float(np.clip(action, -1.0, 1.0)[0])
        distance = abs(self.x - self.goal)
        return np.array([self.x]), -distance, distance < 0.05, False, {}


def register() -> None:
    """Register both examples under the user's own namespace (idempotent; runs on import)."""
    if "mylab/HalfCheetahGoalPos-v0" not in gymnasium.registry:
        envs.register_task_env("mylab/HalfCheetahGoalPos-v0", HalfCheetahGoalPosEnv)
    if "mylab/PointGoal-v0" not in gymnasium.registry:
        gymnasium.register("mylab/PointGoal-v0", entry_point=PointGoalEnv, max_episode_steps=50)


register()

if __name__ == "__main__":
    vec = gymnasium.make_vec("mylab/HalfCheetahGoalPos-v0", num_envs=8)
    vec.set_tasks(vec.sample_tasks(8, np.random.default_rng(0)))
    vec.reset(seed=0)
    total = sum(vec.step(np.zeros((8, 6)))[1] for _ in range(vec.horizon))
    print("fast path, standing still, returns per goal:", np.round(total, 1))

    general = envs.TaskSyncVectorEnv([lambda: gymnasium.make("mylab/PointGoal-v0") for _ in range(4)])
    general.set_tasks(general.sample_tasks(4, np.random.default_rng(0)))
    general.reset(seed=0)
    total = sum(general.step(np.ones((4, 1), np.float32))[1] for _ in range(general.horizon))
    print("general path, always right, returns per goal:", np.round(total, 2))
