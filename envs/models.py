"""MuJoCo models of the paper's robots, built at load time from the models gymnasium ships.

``dynamics="paper"`` edits gymnasium's model with ``mujoco.MjSpec`` wherever the simulation the MAML
authors ran differs (docs/paper.md, "Simulation"); ``dynamics="gymnasium"`` keeps the model as gymnasium's
HalfCheetah-v5 / Ant-v5 load it.  Both get read-only sensors that make MuJoCo compute what the rewards need
(subtree velocity, contact forces); sensors change no dynamics.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import mujoco
import numpy as np

from .mujoco_env import add_contact_force_sensor, add_subtree_velocity_sensor

DYNAMICS = ("paper", "gymnasium")
T = TypeVar("T")

# Ant as the authors simulated it (docs/paper.md): the contact softness of their model file's default geom
# class, a 0.02 s RK4 step,
# torque range +-150 applied as control (gear 1), and the pose of the model's ``init_qpos`` numeric.
ANT_PAPER_TIMESTEP = 0.02
ANT_PAPER_SOLREF = (0.02, 1.0)
ANT_PAPER_SOLIMP = (0.8, 0.8, 0.01, 0.5, 2.0)
ANT_TORQUE_LIMIT = 150.0


def gymnasium_asset(name: str) -> str:
    """Path of a model file shipped inside gymnasium's MuJoCo environments."""
    spec = importlib.util.find_spec("gymnasium.envs.mujoco")
    if spec is None or spec.origin is None:
        raise ImportError("gymnasium's MuJoCo environments are missing; install gymnasium[mujoco]")
    path = os.path.join(os.path.dirname(spec.origin), "assets", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"gymnasium ships no model {name!r} (looked in {path})")
    return path


def check_dynamics(dynamics: str) -> str:
    if dynamics not in DYNAMICS:
        raise ValueError(
            f"dynamics: expected 'paper' (the MAML paper's simulation) or 'gymnasium' "
            f"(HalfCheetah-v5 / Ant-v5), got {dynamics!r}"
        )
    return dynamics


@dataclass
class RobotModel:
    """A compiled model plus what the task envs read from it."""

    model: mujoco.MjModel
    init_qpos: np.ndarray
    velocity_sensor: slice
    torso: int


_TOTAL_MASS = re.compile(r"\s+settotalmass\s*=\s*[\"']([^\"']+)[\"']")


def gymnasium_spec(name: str) -> tuple[mujoco.MjSpec, float | None]:
    """One of gymnasium's models as an editable ``MjSpec``, and the total mass its XML asks for (or None).

    gymnasium's half-cheetah sets the compiler attribute ``settotalmass``, which MuJoCo deprecates (it logs
    a warning and writes ``MUJOCO_LOG.TXT`` into the working directory on every compile).  The attribute
    is removed from the XML before parsing; :func:`compile_spec` applies the same total mass to the
    compiled model the way MuJoCo recommends (``mj_setTotalmass`` then ``mj_setConst``), which gives a
    model identical to the one compiled with the attribute.
    """
    with open(gymnasium_asset(name)) as fh:
        xml = fh.read()
    match = _TOTAL_MASS.search(xml)
    total = float(match.group(1)) if match else None
    if match:
        xml = xml[: match.start()] + xml[match.end():]
    return mujoco.MjSpec.from_string(xml), total


def compile_spec(spec: mujoco.MjSpec, total_mass: float | None = None) -> mujoco.MjModel:
    """Compile ``spec``; with ``total_mass`` scale every body's mass and inertia to that total."""
    model = spec.compile()
    if total_mass is not None and total_mass > 0:
        mujoco.mj_setTotalmass(model, total_mass)
        mujoco.mj_setConst(model, mujoco.MjData(model))  # constants derived from the masses
    return model


# MuJoCo solver options a run may change (``physics=``), for measuring how much a result depends on them
PHYSICS_CHOICES = {
    "solver": {"newton": mujoco.mjtSolver.mjSOL_NEWTON, "cg": mujoco.mjtSolver.mjSOL_CG,
               "pgs": mujoco.mjtSolver.mjSOL_PGS},
    "cone": {"pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC},
    "integrator": {"euler": mujoco.mjtIntegrator.mjINT_EULER, "rk4": mujoco.mjtIntegrator.mjINT_RK4,
                   "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
                   "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST},
}
DISABLE_FLAGS = {name[len("mjDSBL_"):].lower(): int(bit)
                 for name, bit in mujoco.mjtDisableBit.__members__.items() if name.startswith("mjDSBL_")}
# How a capsule's mass and inertia are computed from its shape: "exact" (MuJoCo since 2.1.2) or "cylinder"
# (MuJoCo before 2.1.2, the authors' 1.31 included: the capsule's middle section extended by half the
# radius at each end, treated as a solid cylinder)
CAPSULE_INERTIA = ("exact", "cylinder")
PHYSICS_FIELDS = ("solver", "cone", "integrator", "iterations", "tolerance", "disable", "capsule_inertia")


def capsule_inertia_of(physics: object) -> str:
    """The ``capsule_inertia`` field of ``physics`` ("exact" when absent), every other field checked too."""
    check_physics(physics)
    return str(physics.get("capsule_inertia", "exact")).lower() if isinstance(physics, dict) else "exact"


def check_physics(physics: object) -> None:
    """Raise a ``ValueError`` naming the first bad field of ``physics``; change nothing."""
    apply_physics(None, physics)


def apply_physics(model: mujoco.MjModel | None, physics: object) -> None:
    """Change ``model.opt`` as ``physics`` says (None or {} changes nothing); a ``ValueError`` names a bad field.

    Fields: ``solver`` (newton, cg, pgs), ``cone`` (pyramidal, elliptic), ``integrator`` (euler, rk4,
    implicit, implicitfast), ``iterations`` (solver iterations, >= 1), ``tolerance`` (>= 0) and ``disable``
    (a list of MuJoCo disable flags by name, e.g. ``[eulerdamp]``: ``eulerdamp`` makes the Euler step treat
    joint damping explicitly).  The timestep is not among them: it is part of the task (``dt`` of a step).
    ``capsule_inertia`` (exact, cylinder) is checked here but belongs to the model's compilation: the robot
    builders take it (:func:`half_cheetah`, :func:`ant`).  Every field is checked before any is applied, so a
    bad one leaves the model as it was; with ``model=None`` the fields are only checked.
    """
    if physics is None:
        return
    if not isinstance(physics, dict):
        raise ValueError(f"physics: expected a mapping of MuJoCo options, e.g. {{solver: pgs}}, got {physics!r}")
    unknown = sorted(str(k) for k in physics if k not in PHYSICS_FIELDS)
    if unknown:
        raise ValueError(f"physics: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(PHYSICS_FIELDS)} "
                         "(lower case)")
    changes: dict[str, int | float] = {}
    for name, choices in PHYSICS_CHOICES.items():
        if name in physics:
            value = physics[name]
            if not isinstance(value, str) or value.lower() not in choices:
                raise ValueError(f"physics.{name}: expected one of {', '.join(choices)}, got {value!r}")
            changes[name] = int(choices[value.lower()])
    if "iterations" in physics:
        value = physics["iterations"]
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 1 <= int(value) <= 2**31 - 1:
            raise ValueError(f"physics.iterations: expected an integer from 1 to {2**31 - 1} solver iterations, "
                             f"got {value!r}")
        changes["iterations"] = int(value)
    if "tolerance" in physics:
        value = physics["tolerance"]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)) or value < 0:
            raise ValueError(f"physics.tolerance: expected a number >= 0 (0 runs every iteration), got {value!r}")
        changes["tolerance"] = float(value)
    disable = 0
    if "disable" in physics:
        flags = physics["disable"]
        if isinstance(flags, str):
            flags = [flags]
        if not isinstance(flags, (list, tuple)):
            raise ValueError(f"physics.disable: expected a list of flag names, e.g. [eulerdamp], got {flags!r}")
        for flag in flags:
            if not isinstance(flag, str) or flag.lower() not in DISABLE_FLAGS:
                raise ValueError(f"physics.disable: unknown MuJoCo flag {flag!r}; one of {', '.join(sorted(DISABLE_FLAGS))}")
            disable |= DISABLE_FLAGS[flag.lower()]
    if "capsule_inertia" in physics:
        value = physics["capsule_inertia"]
        if not isinstance(value, str) or value.lower() not in CAPSULE_INERTIA:
            raise ValueError(f"physics.capsule_inertia: expected exact (MuJoCo since 2.1.2) or cylinder (MuJoCo "
                             f"before 2.1.2, as the paper's authors ran), got {value!r}")
    if model is None:
        return
    for name, value in changes.items():
        setattr(model.opt, name, value)
    model.opt.disableflags |= disable


def _sensor_slice(model: mujoco.MjModel, name: str) -> slice:
    s = model.sensor(name)
    return slice(int(s.adr[0]), int(s.adr[0] + s.dim[0]))


def capsules_as_cylinders(spec: mujoco.MjSpec) -> None:
    """Make every capsule of ``spec`` the solid cylinder MuJoCo before 2.1.2 took for its mass and inertia.

    That cylinder is the capsule's middle section extended by half the radius at each end (MuJoCo 2.1.2's
    changelog); a model compiled from the edited spec has the bodies' masses and inertias of those versions.
    """
    for geom in spec.geoms:
        if geom.type != mujoco.mjtGeom.mjGEOM_CAPSULE:
            continue
        radius = float(geom.size[0])
        fromto = np.array(geom.fromto, dtype=np.float64)
        if np.isnan(fromto[0]):  # placed by pos/orientation, half-length in size[1]
            geom.size = [radius, float(geom.size[1]) + 0.5 * radius, 0.0]
        else:
            a, b = fromto[:3], fromto[3:]
            axis = (b - a) / np.linalg.norm(b - a)
            geom.fromto = np.concatenate([a - 0.5 * radius * axis, b + 0.5 * radius * axis])
        geom.type = mujoco.mjtGeom.mjGEOM_CYLINDER


INERTIAL_FIELDS = ("body_mass", "body_inertia", "body_ipos", "body_iquat")


def _build(build: Callable[[Callable[[mujoco.MjSpec], None] | None], tuple[mujoco.MjModel, T]],
           capsule_inertia: str) -> tuple[mujoco.MjModel, T]:
    """``build(edit)`` compiled as is; with ``capsule_inertia="cylinder"`` its bodies' masses and inertias are
    taken from the same model built with :func:`capsules_as_cylinders` (the contact shapes stay capsules).
    ``build`` returns the model and what else the robot needs from its spec; that of the first build is kept."""
    check_physics({"capsule_inertia": capsule_inertia})
    model, extra = build(None)
    if capsule_inertia.lower() == "cylinder":
        legacy, _ = build(capsules_as_cylinders)
        for field in INERTIAL_FIELDS:
            getattr(model, field)[:] = getattr(legacy, field)
        mujoco.mj_setConst(model, mujoco.MjData(model))  # subtree masses and the other mass-derived constants
        # the compiler's mass statistics (meaninertia scales the Newton and CG solvers' stopping test), which
        # mj_setConst leaves alone: the legacy build's, computed the same way as the default model's
        model.stat.meanmass, model.stat.meaninertia = legacy.stat.meanmass, legacy.stat.meaninertia
    return model, extra


def half_cheetah(dynamics: str = "paper", capsule_inertia: str = "exact") -> RobotModel:
    """The half-cheetah; the paper's model is gymnasium's (0.01 s Euler step), so no edit is needed.

    ``capsule_inertia="cylinder"``: the bodies' masses and inertias as MuJoCo before 2.1.2 computed them
    (:func:`capsules_as_cylinders`), the total mass the same."""
    check_dynamics(dynamics)

    def build(edit):
        spec, total_mass = gymnasium_spec("half_cheetah.xml")
        if edit is not None:
            edit(spec)
        vel = add_subtree_velocity_sensor(spec, "torso")
        return compile_spec(spec, total_mass), vel

    model, vel = _build(build, capsule_inertia)
    return RobotModel(model, model.qpos0.copy(), _sensor_slice(model, vel), model.body("torso").id)


def ant(dynamics: str = "paper", capsule_inertia: str = "exact") -> RobotModel:
    """The ant, edited to the paper's simulation unless ``dynamics="gymnasium"``; ``capsule_inertia`` as for
    :func:`half_cheetah`."""
    check_dynamics(dynamics)

    def build(edit):
        spec, total_mass = _ant_spec(dynamics)
        init_qpos = np.array(spec.numeric("init_qpos").data, dtype=np.float64) if dynamics == "paper" else None
        if edit is not None:
            edit(spec)
        vel = add_subtree_velocity_sensor(spec, "torso")
        if dynamics == "paper":  # gymnasium's Ant-v5 calls mj_rnePostConstraint itself after the step
            add_contact_force_sensor(spec, "torso")
        return compile_spec(spec, total_mass), (vel, init_qpos)

    model, (vel, init_qpos) = _build(build, capsule_inertia)
    if init_qpos is None:
        init_qpos = model.qpos0.copy()
    return RobotModel(model, init_qpos, _sensor_slice(model, vel), model.body("torso").id)


def _ant_spec(dynamics: str) -> tuple[mujoco.MjSpec, float | None]:
    spec, total_mass = gymnasium_spec("ant.xml")
    if dynamics == "paper":
        spec.option.timestep = ANT_PAPER_TIMESTEP
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_RK4
        for geom in spec.geoms:
            geom.solref = list(ANT_PAPER_SOLREF)
            geom.solimp = list(ANT_PAPER_SOLIMP)
        for act in spec.actuators:
            act.gear = [1.0, 0, 0, 0, 0, 0]
            act.ctrlrange = [-ANT_TORQUE_LIMIT, ANT_TORQUE_LIMIT]
    return spec, total_mass
