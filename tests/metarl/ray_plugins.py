"""A test-only plug-in env for the Ray sampler tests: Navigation2D that is slow, says when it steps, or fails.

``raytest/SlowNavigation2D-v0`` gives the numbers of ``metarl/Navigation2D-v0``; its extra kwargs are
``delay`` (seconds of sleep per step), ``marker_dir`` (each rollout's first step writes
``marker_dir/step-<pid>-<count>``, so a test knows a worker is mid-sample) and ``fail_at_step`` (raise a
ValueError at that step of every rollout).  Imported through ``env.imports`` on the learner and on every
Ray worker.
"""

from __future__ import annotations

import os
import time

import gymnasium
import numpy as np

from metarl import envs
from metarl.envs.navigation import Navigation2DEnv

ENV_ID = "raytest/SlowNavigation2D-v0"


class SlowNavigation2DEnv(Navigation2DEnv):
    def __init__(self, num_envs: int = 1, horizon: int = 100, num_threads: int = 0, delay: float = 0.0,
                 marker_dir: str = "", fail_at_step: int = -1) -> None:
        super().__init__(num_envs, horizon, num_threads)
        self.delay, self.marker_dir, self.fail_at_step = float(delay), str(marker_dir), int(fail_at_step)
        self._step_count = 0
        self._rollouts = 0

    def _reset_slots(self, ids: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        self._step_count = 0
        return super()._reset_slots(ids, rngs)

    def _step_slots(self, actions: np.ndarray, ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._step_count == 0 and self.marker_dir:
            self._rollouts += 1
            path = os.path.join(self.marker_dir, f"step-{os.getpid()}-{self._rollouts}")
            with open(path, "w"):
                pass
        if self._step_count == self.fail_at_step:
            raise ValueError(f"SlowNavigation2D: asked to fail at step {self.fail_at_step}")
        self._step_count += 1
        time.sleep(self.delay)
        return super()._step_slots(actions, ids)


if ENV_ID not in gymnasium.registry:
    envs.register_task_env(ENV_ID, SlowNavigation2DEnv)
