"""Navigation2D: a point moves in the plane towards a goal (docs/paper.md, "Tasks"); no physics engine needed."""

from __future__ import annotations

import numpy as np

from .core import BatchedTaskEnv
from .tasks import UniformTasks

MAX_STEP = 0.1
GOAL_TOLERANCE = 0.01


class Navigation2DEnv(BatchedTaskEnv):
    """``metarl/Navigation2D-v0``: goal ``g ~ U(-0.5, 0.5)^2``, start at the origin.

    The policy acts in ``[-1, 1]`` per coordinate (clipped), scaled to a displacement of at most 0.1: the
    released code ran the point env (action space ``[-0.1, 0.1]``) inside rllab's action-normalising
    wrapper, exactly as the MuJoCo tasks map ``[-1, 1]`` onto their actuator ranges.  The reward is minus
    the distance to the goal after the move; an episode terminates once both coordinates are within 0.01
    of the goal, else lasts 100 steps.  ``num_threads`` is accepted so that every task env takes the
    same arguments; the numpy dynamics run on the calling thread.
    """

    def __init__(self, num_envs: int = 1, horizon: int = 100, num_threads: int = 0) -> None:
        tasks = UniformTasks(["goal_x", "goal_y"], [-0.5, -0.5], [0.5, 0.5])
        super().__init__(num_envs, tasks, 2, -np.ones(2), np.ones(2), horizon)
        self.position = np.zeros((self.num_envs, 2))

    def _reset_slots(self, ids: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        self.position[ids] = 0.0
        return self.position[ids].copy()

    def _step_slots(
        self, actions: np.ndarray, ids: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        move = MAX_STEP * actions
        if ids is None:
            self.position += move
        else:
            self.position[ids] += move[ids]
        offset = self.position - self.slot_tasks
        reward = -np.sqrt(np.einsum("ij,ij->i", offset, offset))
        reached = np.all(np.abs(offset) < GOAL_TOLERANCE, axis=1)
        return self.position.copy(), reward, reached
