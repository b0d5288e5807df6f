"""Batched task envs on the shared MuJoCo engine (``mujoco.batch.Batch``).

All slots are rows of one persistent ``Batch``: a call steps every simulation on a C++ thread pool with
the GIL released, bit-identical to one ``MjData`` per slot.  Quantities read after a step come from
bound views (``qpos``, ``sensordata``, ``cfrc_ext`` ...), refreshed by the batch at the stage the task
asks for:

* ``mjSTAGE_NONE``: derived fields describe the state before the last substep (gymnasium's convention);
* ``mjSTAGE_VEL``: positions, velocities and velocity sensors at the new state, at no extra cost in a
  persistent batch (the next step continues from these stages);
* ``mjSTAGE_ACC``: a full ``mj_forward`` at the new state (contact forces included when a force sensor
  asks for them), as the paper's original environments did after every step.

A new task family subclasses :class:`MujocoTaskEnv` and writes vectorised ``observe``, ``reward`` and
``is_terminated`` over all slots; see ``docs/plugins.md``.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mujoco import batch as mjbatch

from .core import BatchedTaskEnv
from .tasks import TaskSpace

STAGES = {
    "none": mujoco.mjtStage.mjSTAGE_NONE,
    "vel": mujoco.mjtStage.mjSTAGE_VEL,
    "acc": mujoco.mjtStage.mjSTAGE_ACC,
}


class MujocoTaskEnv(BatchedTaskEnv):
    """Slots simulated by one ``mujoco.batch.Batch``.

    Args:
        num_envs: number of slots (simulations).
        model: the compiled model every slot runs.
        task_space: the task family.
        obs_dim: length of one slot's observation.
        horizon: steps per episode.
        frame_skip: physics steps per env step.
        stage: ``"none"``, ``"vel"`` or ``"acc"``: what is current when ``observe`` runs.
        init_qpos, init_qvel: the pose reset noise is added to (default: the model's ``qpos0``, zeros).
        num_threads: threads of the batch's pool; 0 uses every CPU.

    Actions live in ``[-1, 1]`` and are mapped linearly onto each actuator's ``ctrlrange``.
    """

    def __init__(
        self,
        num_envs: int,
        model: mujoco.MjModel,
        task_space: TaskSpace,
        obs_dim: int,
        horizon: int,
        frame_skip: int = 1,
        stage: str = "vel",
        init_qpos: np.ndarray | None = None,
        init_qvel: np.ndarray | None = None,
        num_threads: int = 0,
    ) -> None:
        nu = model.nu
        super().__init__(num_envs, task_space, obs_dim, -np.ones(nu), np.ones(nu), horizon)
        if stage not in STAGES:
            raise ValueError(f"stage: expected one of {sorted(STAGES)}, got {stage!r}")
        if not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f"num_threads: expected an integer >= 0 (0 = all CPUs), got {num_threads!r}")
        self.model = model
        self.frame_skip = int(frame_skip)
        self.dt = float(model.opt.timestep) * self.frame_skip
        self._stage = STAGES[stage]
        self.sim = mjbatch.Batch(model, nsim=self.num_envs, nthread=num_threads, persistent=True)
        self.qpos = self.sim.bind("qpos")
        self.qvel = self.sim.bind("qvel")
        self._ctrl = self.sim.bind("ctrl")
        lo, hi = model.actuator_ctrlrange[:, 0].copy(), model.actuator_ctrlrange[:, 1].copy()
        self._ctrl_scale = 0.5 * (hi - lo)
        self._ctrl_offset = 0.5 * (hi + lo)
        self._unit_ctrl = bool(np.all(self._ctrl_scale == 1.0) and np.all(self._ctrl_offset == 0.0))
        self.init_qpos = model.qpos0.copy() if init_qpos is None else np.asarray(init_qpos, np.float64).copy()
        self.init_qvel = np.zeros(model.nv) if init_qvel is None else np.asarray(init_qvel, np.float64).copy()

    # ---- what a task family writes ---------------------------------------------------------------
    def reset_noise(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One slot's initial ``(qpos, qvel)``; called once per slot per reset with that slot's rng."""
        raise NotImplementedError

    def observe(self) -> np.ndarray:
        """Observations of all slots ``[num_envs, obs_dim]`` from the bound views."""
        raise NotImplementedError

    def reward(self, actions: np.ndarray) -> np.ndarray:
        """Rewards ``[num_envs]`` for the clipped ``actions`` just applied."""
        raise NotImplementedError

    def is_terminated(self) -> np.ndarray:
        """Terminations ``[num_envs]`` at the new state; by default never."""
        return np.zeros(self.num_envs, dtype=bool)

    def before_step(self) -> None:
        """Called before the physics step, e.g. to remember positions for finite differences."""

    def after_step(self, ids: np.ndarray | None) -> None:
        """Called after the physics step of slots ``ids`` (all when None), before ``observe``."""

    # ---- engine ----------------------------------------------------------------------------------
    def _reset_slots(self, ids: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        full = len(ids) == self.num_envs
        sel = None if full else ids
        self.sim.reset(sel, stage=mujoco.mjtStage.mjSTAGE_NONE)
        for i, rng in zip(ids, rngs):
            self.qpos[i], self.qvel[i] = self.reset_noise(rng)
        self.sim.forward(sel)
        return self.observe()[ids]

    def _step_slots(
        self, actions: np.ndarray, ids: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._unit_ctrl:
            self._ctrl[:] = actions
        else:
            self._ctrl[:] = actions * self._ctrl_scale + self._ctrl_offset
        self.before_step()
        self.sim.step(ids, nstep=self.frame_skip, stage=self._stage)
        self.after_step(ids)
        return self.observe(), self.reward(actions), self.is_terminated()


def add_subtree_velocity_sensor(spec: mujoco.MjSpec, body: str) -> str:
    """Add a sensor that makes MuJoCo compute the centre-of-mass velocity of ``body``'s subtree."""
    name = f"{body}_subtreelinvel"
    spec.add_sensor(
        name=name,
        type=mujoco.mjtSensor.mjSENS_SUBTREELINVEL,
        objtype=mujoco.mjtObj.mjOBJ_BODY,
        objname=body,
    )
    return name


def add_contact_force_sensor(spec: mujoco.MjSpec, body: str) -> str:
    """Add a force sensor so that ``mj_forward`` runs ``mj_rnePostConstraint`` (fills ``cfrc_ext``).

    The sensor only reads; it changes no dynamics.
    """
    site = f"{body}_force_site"
    spec.body(body).add_site(name=site)
    name = f"{body}_force"
    spec.add_sensor(name=name, type=mujoco.mjtSensor.mjSENS_FORCE, objtype=mujoco.mjtObj.mjOBJ_SITE, objname=site)
    return name
