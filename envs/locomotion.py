"""The paper's four locomotion task families: half-cheetah and ant, goal velocity and goal direction.

Rewards, observations and terminations follow docs/paper.md ("Tasks"); ``dynamics="gymnasium"`` swaps in
the model, frame skip, reset noise, observation and finite-difference velocity of gymnasium's
HalfCheetah-v5 / Ant-v5 while keeping the task's reward, with a horizon of 100.
"""

from __future__ import annotations

import mujoco
import numpy as np

from . import models
from .mujoco_env import MujocoTaskEnv
from .tasks import DirectionTasks, TaskSpace, UniformTasks

PAPER_HORIZON = 200
GYMNASIUM_HORIZON = 100
GYMNASIUM_FRAME_SKIP = 5
GYMNASIUM_RESET_NOISE = 0.1
PAPER_QPOS_NOISE = 0.01
PAPER_QVEL_NOISE = 0.1


def velocity_tasks(high: float) -> TaskSpace:
    return UniformTasks(["goal_velocity"], [0.0], [high])


def goal_velocity_reward(velocity: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    return -np.abs(velocity - tasks[:, 0])


def direction_reward(velocity: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    return tasks[:, 0] * velocity


class LocomotionTaskEnv(MujocoTaskEnv):
    """Shared machinery of the locomotion tasks; subclasses fix the robot and the objective.

    ``physics`` changes MuJoCo's solver options of the compiled model (:func:`metarl.envs.models.apply_physics`:
    solver, friction cone, integrator, iterations, tolerance, disable flags) and how capsules' masses and
    inertias are computed (``capsule_inertia``: exact, or cylinder as MuJoCo before 2.1.2), for measuring how
    much a result depends on them; None (the default) keeps the paper's simulation.
    """

    robot: str
    ctrl_cost_weight: float

    def __init__(
        self,
        num_envs: int,
        task_space: TaskSpace,
        objective: str,
        dynamics: str = "paper",
        horizon: int | None = None,
        num_threads: int = 0,
        physics: dict | None = None,
    ) -> None:
        self.dynamics = models.check_dynamics(dynamics)
        self.paper = dynamics == "paper"
        # every physics field checked before the model is built; capsule_inertia is part of the build
        robot = getattr(models, self.robot)(dynamics, models.capsule_inertia_of(physics))
        models.apply_physics(robot.model, physics)
        self.robot_model = robot
        self._objective = goal_velocity_reward if objective == "velocity" else direction_reward
        self._vel_sensor = robot.velocity_sensor
        self._torso = robot.torso
        if horizon is None:
            horizon = PAPER_HORIZON if self.paper else GYMNASIUM_HORIZON
        super().__init__(
            num_envs,
            robot.model,
            task_space,
            obs_dim=self.observation_size(robot.model),
            horizon=horizon,
            frame_skip=1 if self.paper else GYMNASIUM_FRAME_SKIP,
            stage=self.paper_stage if self.paper else "none",
            init_qpos=robot.init_qpos,
            num_threads=num_threads,
        )
        # every bound output is copied out of the batch after each step: bind only what is read
        self.sensordata = self.sim.bind("sensordata")
        if self.paper:
            self.subtree_com = self.sim.bind("subtree_com")
        self._x_before = np.zeros(self.num_envs)

    paper_stage = "vel"

    def observation_size(self, model: object) -> int:
        raise NotImplementedError

    def reset_noise(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        nq, nv = self.model.nq, self.model.nv
        if self.paper:
            qpos = self.init_qpos + PAPER_QPOS_NOISE * rng.standard_normal(nq)
            qvel = self.init_qvel + PAPER_QVEL_NOISE * rng.standard_normal(nv)
        else:  # the draws of gymnasium's reset_model, in its order
            qpos = self.init_qpos + rng.uniform(-GYMNASIUM_RESET_NOISE, GYMNASIUM_RESET_NOISE, size=nq)
            qvel = self.init_qvel + GYMNASIUM_RESET_NOISE * rng.standard_normal(nv)
        return qpos, qvel

    def forward_velocity(self) -> np.ndarray:
        """x-velocity used in the reward, for all slots."""
        if self.paper:  # centre-of-mass velocity of the whole robot at the new state
            return self.sensordata[:, self._vel_sensor.start]
        return (self._x_position() - self._x_before) / self.dt

    def _x_position(self) -> np.ndarray:
        raise NotImplementedError

    def before_step(self) -> None:
        if not self.paper:
            self._x_before = self._x_position().copy()

    def control_cost(self, actions: np.ndarray) -> np.ndarray:
        return self.ctrl_cost_weight * np.add.reduce(actions * actions, axis=1)


class HalfCheetahTaskEnv(LocomotionTaskEnv):
    robot = "half_cheetah"
    ctrl_cost_weight = 0.05

    def observation_size(self, model: object) -> int:
        return 20 if self.paper else 17

    def _x_position(self) -> np.ndarray:
        return self.qpos[:, 0]  # gymnasium's HalfCheetah-v5 differentiates the root slider

    def observe(self) -> np.ndarray:
        if self.paper:
            return np.concatenate([self.qpos[:, 1:], self.qvel, self.subtree_com[:, self._torso]], axis=1)
        return np.concatenate([self.qpos[:, 1:], self.qvel], axis=1)

    def reward(self, actions: np.ndarray) -> np.ndarray:
        return self._objective(self.forward_velocity(), self.slot_tasks) - self.control_cost(actions)


class AntTaskEnv(LocomotionTaskEnv):
    robot = "ant"
    ctrl_cost_weight = 0.005
    contact_cost_weight = 0.0005
    survive_reward = 0.05
    healthy_z = (0.2, 1.0)
    # contact forces read at the new state need mj_forward (with mj_rnePostConstraint) after each step
    paper_stage = "acc"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._contact = np.zeros((self.num_envs, self.model.nbody * 6))
        if self.paper:  # computed by mj_forward at the new state (the force sensor asks for it)
            self.cfrc_ext = self.sim.bind("cfrc_ext")
            self.xmat = self.sim.bind("xmat")
        else:
            self.xpos = self.sim.bind("xpos")
            self.cfrc_ext = np.zeros((self.num_envs, self.model.nbody, 6))
            self._scratch = mujoco.MjData(self.model)

    def after_step(self, ids: np.ndarray | None) -> None:
        if self.paper:
            return
        # Ant-v5 runs mj_rnePostConstraint on the MjData that mj_step leaves behind (RK4's last stage);
        # the persistent batch keeps that MjData, so the same call on a copy gives the same forces.
        for i in range(self.num_envs) if ids is None else ids:
            self.sim.get_data(int(i), self._scratch)
            mujoco.mj_rnePostConstraint(self.model, self._scratch)
            self.cfrc_ext[i] = self._scratch.cfrc_ext

    def _reset_slots(self, ids: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        if not self.paper:
            self.cfrc_ext[ids] = 0.0  # Ant-v5's reset leaves cfrc_ext zero (mj_forward does not fill it)
        return super()._reset_slots(ids, rngs)

    def observation_size(self, model: object) -> int:
        m = self.robot_model.model
        if self.paper:
            return m.nq + m.nv + m.nbody * 6 + 9 + 3
        return (m.nq - 2) + m.nv + (m.nbody - 1) * 6

    def _x_position(self) -> np.ndarray:
        return self.xpos[:, self._torso, 0]  # gymnasium's Ant-v5 differentiates the torso's xpos

    def observe(self) -> np.ndarray:
        # clipped contact forces are shared by observation and reward; the reward reads this cache
        np.clip(self.cfrc_ext.reshape(self.num_envs, -1), -1.0, 1.0, out=self._contact)
        if self.paper:
            return np.concatenate(
                [
                    self.qpos,
                    self.qvel,
                    self._contact,
                    self.xmat[:, self._torso],
                    self.subtree_com[:, self._torso],
                ],
                axis=1,
            )
        return np.concatenate([self.qpos[:, 2:], self.qvel, self._contact[:, 6:]], axis=1)

    def reward(self, actions: np.ndarray) -> np.ndarray:
        contact_cost = self.contact_cost_weight * np.einsum("ij,ij->i", self._contact, self._contact)
        return (
            self._objective(self.forward_velocity(), self.slot_tasks)
            + self.objective_bonus
            - self.control_cost(actions)
            - contact_cost
            + self.survive_reward
        )

    objective_bonus = 0.0

    def is_terminated(self) -> np.ndarray:
        z = self.qpos[:, 2]
        finite = np.isfinite(self.qpos).all(axis=1) & np.isfinite(self.qvel).all(axis=1)
        return ~(finite & (z >= self.healthy_z[0]) & (z <= self.healthy_z[1]))


class HalfCheetahVelEnv(HalfCheetahTaskEnv):
    """``metarl/HalfCheetahVel-v0``: run at a goal velocity ``v* ~ U(0, 2)``."""

    def __init__(self, num_envs: int = 1, dynamics: str = "paper", horizon: int | None = None, num_threads: int = 0,
                 physics: dict | None = None):
        super().__init__(num_envs, velocity_tasks(2.0), "velocity", dynamics, horizon, num_threads, physics)


class HalfCheetahDirEnv(HalfCheetahTaskEnv):
    """``metarl/HalfCheetahDir-v0``: run forward (+1) or backward (-1)."""

    def __init__(self, num_envs: int = 1, dynamics: str = "paper", horizon: int | None = None, num_threads: int = 0,
                 physics: dict | None = None):
        super().__init__(num_envs, DirectionTasks(0.0, 2.0), "direction", dynamics, horizon, num_threads, physics)


class AntVelEnv(AntTaskEnv):
    """``metarl/AntVel-v0``: walk at a goal velocity ``v* ~ U(0, 3)``; includes the paper's +1.0 bonus."""

    objective_bonus = 1.0

    def __init__(self, num_envs: int = 1, dynamics: str = "paper", horizon: int | None = None, num_threads: int = 0,
                 physics: dict | None = None):
        super().__init__(num_envs, velocity_tasks(3.0), "velocity", dynamics, horizon, num_threads, physics)


class AntDirEnv(AntTaskEnv):
    """``metarl/AntDir-v0``: walk forward (+1) or backward (-1)."""

    def __init__(self, num_envs: int = 1, dynamics: str = "paper", horizon: int | None = None, num_threads: int = 0,
                 physics: dict | None = None):
        super().__init__(num_envs, DirectionTasks(0.0, 3.0), "direction", dynamics, horizon, num_threads, physics)
