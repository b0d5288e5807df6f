"""Task environments for meta-reinforcement learning, registered with gymnasium under ``metarl/``.

``import metarl.envs`` registers the ids; ``gymnasium.make(id)`` gives one env with ``sample_tasks``,
``set_task`` and ``get_task``, and ``gymnasium.make_vec(id, num_envs=N)`` the fast batched env with one
task per slot (``set_tasks``).  Both run the same code, so they give the same numbers.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium

from .core import BatchedTaskEnv, SingleTaskEnv
from .gym_vector import TaskSyncVectorEnv
from .locomotion import AntDirEnv, AntVelEnv, HalfCheetahDirEnv, HalfCheetahVelEnv
from .mujoco_env import MujocoTaskEnv
from .navigation import Navigation2DEnv
from .tasks import DirectionTasks, TaskSpace, UniformTasks

TASK_ENVS: dict[str, type[BatchedTaskEnv]] = {
    "metarl/HalfCheetahVel-v0": HalfCheetahVelEnv,
    "metarl/HalfCheetahDir-v0": HalfCheetahDirEnv,
    "metarl/AntVel-v0": AntVelEnv,
    "metarl/AntDir-v0": AntDirEnv,
    "metarl/Navigation2D-v0": Navigation2DEnv,
}


def single_env_creator(cls: Callable[..., BatchedTaskEnv]) -> Callable[..., SingleTaskEnv]:
    """An entry point that makes one slot of ``cls`` a plain gymnasium env."""

    def make(**kwargs: Any) -> SingleTaskEnv:
        if "num_envs" in kwargs:
            raise ValueError("num_envs: gymnasium.make() gives one env; use gymnasium.make_vec(id, num_envs=N)")
        return SingleTaskEnv(cls(num_envs=1, **kwargs))

    return make


def register_task_env(env_id: str, cls: Callable[..., BatchedTaskEnv]) -> None:
    """Register a batched task env class so that ``make`` and ``make_vec`` both work for ``env_id``."""
    gymnasium.register(
        id=env_id,
        entry_point=single_env_creator(cls),
        vector_entry_point=cls,
        max_episode_steps=None,  # the env truncates at its own horizon (which depends on `dynamics`)
        disable_env_checker=False,
    )


for _id, _cls in TASK_ENVS.items():
    if _id not in gymnasium.registry:
        register_task_env(_id, _cls)

__all__ = [
    "AntDirEnv",
    "AntVelEnv",
    "BatchedTaskEnv",
    "DirectionTasks",
    "HalfCheetahDirEnv",
    "HalfCheetahVelEnv",
    "MujocoTaskEnv",
    "Navigation2DEnv",
    "SingleTaskEnv",
    "TASK_ENVS",
    "TaskSpace",
    "TaskSyncVectorEnv",
    "UniformTasks",
    "register_task_env",
]
