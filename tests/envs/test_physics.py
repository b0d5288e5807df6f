"""Rewards, observations and dynamics checked against independent computations on plain MjData."""

import gymnasium
import mujoco
import numpy as np
import pytest

from metarl import envs  # noqa: F401  (registers the ids)
from metarl.envs import models


def replay_on_mjdata(vec, slot, actions, forward_after_step):
    """Replay one slot's episode on a fresh MjData, computing derived quantities ourselves."""
    m = vec.model
    d = mujoco.MjData(m)
    d.qpos[:] = vec._replay_qpos0[slot]
    d.qvel[:] = vec._replay_qvel0[slot]
    mujoco.mj_forward(m, d)
    frames = []
    for a in actions:
        a = np.clip(a, -1, 1)
        lo, hi = m.actuator_ctrlrange.T
        d.ctrl[:] = lo + (a + 1) / 2 * (hi - lo)
        mujoco.mj_step(m, d)
        if forward_after_step:
            mujoco.mj_forward(m, d)
        mujoco.mj_subtreeVel(m, d)
        mujoco.mj_rnePostConstraint(m, d)
        frames.append(
            dict(
                qpos=d.qpos.copy(),
                qvel=d.qvel.copy(),
                com=d.subtree_com[1].copy(),
                comvel=d.subtree_linvel[1].copy(),
                cfrc=d.cfrc_ext.copy(),
                xmat=d.xmat[1].copy(),
                a=a,
            )
        )
    return frames


def start(env_id, n, seed, tasks, **kw):
    vec = gymnasium.make_vec(env_id, num_envs=n, **kw)
    vec.set_tasks(tasks)
    vec.reset(seed=seed)
    vec._replay_qpos0 = vec.qpos.copy()
    vec._replay_qvel0 = vec.qvel.copy()
    return vec


def test_half_cheetah_vel_reward_and_observation_from_mujoco_state():
    tasks = np.array([[0.3], [1.7]])
    vec = start("metarl/HalfCheetahVel-v0", 2, 0, tasks)
    acts = np.random.default_rng(0).normal(size=(40, 2, 6)) * 1.5  # some beyond [-1, 1]: clipped
    out = [vec.step(a) for a in acts]
    for slot in range(2):
        frames = replay_on_mjdata(vec, slot, acts[:, slot], forward_after_step=True)
        for t, f in enumerate(frames):
            obs, rew = out[t][0][slot], out[t][1][slot]
            np.testing.assert_allclose(obs, np.concatenate([f["qpos"][1:], f["qvel"], f["com"]]), rtol=0, atol=1e-12)
            expected = -abs(f["comvel"][0] - tasks[slot, 0]) - 0.05 * np.sum(f["a"] ** 2)
            assert rew == pytest.approx(expected, abs=1e-12)


def test_ant_reward_observation_and_contacts_from_mujoco_state():
    tasks = np.array([[1.0], [-1.0]])
    vec = start("metarl/AntDir-v0", 2, 1, tasks)
    acts = np.random.default_rng(1).normal(size=(30, 2, 8)) * 0.3
    out = [vec.step(a) for a in acts]
    saw_contact = False
    for slot in range(2):
        frames = replay_on_mjdata(vec, slot, acts[:, slot], forward_after_step=True)
        for t, f in enumerate(frames):
            if out[t][2][slot]:
                break
            cf = np.clip(f["cfrc"], -1, 1).ravel()
            saw_contact |= bool(np.abs(f["cfrc"]).sum() > 0)
            expect_obs = np.concatenate([f["qpos"], f["qvel"], cf, f["xmat"], f["com"]])
            np.testing.assert_allclose(out[t][0][slot], expect_obs, rtol=0, atol=1e-10)
            expected = (
                tasks[slot, 0] * f["comvel"][0] - 0.005 * np.sum(f["a"] ** 2) - 0.0005 * np.sum(cf**2) + 0.05
            )
            assert out[t][1][slot] == pytest.approx(expected, abs=1e-10)
    assert saw_contact


def test_ant_vel_reward_has_the_papers_bonus():
    vec = start("metarl/AntVel-v0", 1, 2, np.array([[1.5]]))
    a = np.zeros((1, 8))
    obs, r, *_ = vec.step(a)
    v = vec.sensordata[0, vec._vel_sensor.start]
    cf = obs[0, 29 : 29 + 84]
    assert r[0] == pytest.approx(-abs(v - 1.5) + 1.0 - 0.0005 * np.sum(cf**2) + 0.05, abs=1e-12)


def test_ant_feels_the_ground():
    vec = gymnasium.make_vec("metarl/AntVel-v0", num_envs=2)
    vec.reset(seed=0)
    forces = []
    for _ in range(25):
        obs, *_ = vec.step(np.zeros((2, 8)))
        forces.append(np.abs(obs[:, 29 : 29 + 84]).sum(axis=1))
    assert (np.array(forces)[-5:] > 0.1).all(), "standing ant must report contact forces"


@pytest.mark.parametrize("env_id,dim", [("metarl/HalfCheetahVel-v0", 17), ("metarl/AntVel-v0", 0)])
def test_velocity_integrates_to_centre_of_mass_displacement(env_id, dim):
    vec = gymnasium.make_vec(env_id, num_envs=3)
    obs, _ = vec.reset(seed=4)
    com0 = vec.subtree_com[:, 1, 0].copy()
    dist = np.zeros(3)
    alive = np.ones(3, bool)
    acts = np.random.default_rng(4).normal(size=(60, 3, vec.single_action_space.shape[0])) * 0.5
    for a in acts:
        _, _, term, _, _ = vec.step(a)
        alive &= ~term
        dist += vec.sensordata[:, vec._vel_sensor.start] * vec.dt
    moved = vec.subtree_com[:, 1, 0] - com0
    assert np.abs(moved[alive]).max() > 0.05
    np.testing.assert_allclose(dist[alive], moved[alive], atol=0.02 * max(1.0, np.abs(moved).max()))


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/AntDir-v0", "metarl/Navigation2D-v0"])
def test_task_changes_rewards_not_dynamics(env_id):
    def run(tasks):
        vec = gymnasium.make_vec(env_id, num_envs=2)
        vec.set_tasks(tasks)
        vec.reset(seed=9)
        acts = np.random.default_rng(3).normal(size=(15, 2, vec.single_action_space.shape[0])) * 0.05
        steps = [vec.step(a) for a in acts]
        return np.stack([s[0] for s in steps]), np.stack([s[1] for s in steps])

    if "Navigation" in env_id:  # goals out of reach within the episode, so no slot terminates
        t1, t2 = np.array([[0.45, 0.45], [-0.45, 0.45]]), np.array([[0.45, -0.45], [-0.45, -0.45]])
    else:
        t1 = gymnasium.make_vec(env_id, num_envs=2).sample_tasks(2, np.random.default_rng(0))
        t2 = -t1 if "Dir" in env_id else t1 * 0.5
    obs1, rew1 = run(t1)
    obs2, rew2 = run(t2)
    np.testing.assert_array_equal(obs1, obs2)
    assert not np.allclose(rew1, rew2)


def test_navigation_reward_is_distance_after_the_clipped_move():
    vec = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=1)
    vec.set_tasks(np.array([[0.3, -0.2]]))
    vec.reset(seed=0)
    obs, r, term, _, _ = vec.step(np.array([[5.0, -0.4]]))  # x clipped to 1: moves 0.1; y moves 0.04
    np.testing.assert_allclose(obs, [[0.1, -0.04]])
    assert r[0] == pytest.approx(-np.hypot(0.2, 0.16))
    assert not term[0]


def test_paper_ant_model_edits():
    paper, gym = models.ant("paper").model, models.ant("gymnasium").model
    assert paper.opt.timestep == 0.02 and paper.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    np.testing.assert_allclose(paper.geom_solimp[:, :3], np.tile([0.8, 0.8, 0.01], (paper.ngeom, 1)))
    np.testing.assert_allclose(paper.geom_solref, np.tile([0.02, 1.0], (paper.ngeom, 1)))
    np.testing.assert_allclose(paper.actuator_ctrlrange, np.tile([-150.0, 150.0], (8, 1)))
    # the same torque range either way: gear x ctrlrange
    np.testing.assert_allclose(
        paper.actuator_gear[:, 0] * paper.actuator_ctrlrange[:, 1], gym.actuator_gear[:, 0] * gym.actuator_ctrlrange[:, 1]
    )
    assert models.ant("paper").init_qpos[2] == pytest.approx(0.55)
    assert gym.opt.timestep == 0.01


# ---- physics=: MuJoCo solver options changed for an ablation -------------------------------------------------
def _rollout(env_id, physics, steps=60):
    kwargs = {} if physics is None else {"physics": physics}
    vec = gymnasium.make_vec(env_id, num_envs=3, num_threads=1, **kwargs)
    vec.unwrapped.set_tasks(np.array([[0.5], [1.0], [1.5]]) if "Vel" in env_id else np.array([[1.0], [-1.0], [1.0]]))
    vec.reset(seed=3)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, 3, vec.single_action_space.shape[0]))
    qpos = [vec.step(a)[0] for a in actions]
    opt = vec.unwrapped.model.opt
    vec.close()
    return np.array(qpos), opt


def test_physics_sets_the_mujoco_options_and_an_empty_mapping_changes_nothing():
    base, opt = _rollout("metarl/HalfCheetahVel-v0", None)
    same, _ = _rollout("metarl/HalfCheetahVel-v0", {})
    np.testing.assert_array_equal(base, same)
    assert opt.solver == mujoco.mjtSolver.mjSOL_NEWTON and not opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    physics = {"solver": "PGS", "cone": "elliptic", "iterations": 30, "tolerance": 0.0, "disable": ["eulerdamp"]}
    changed, opt = _rollout("metarl/HalfCheetahVel-v0", physics)
    assert opt.solver == mujoco.mjtSolver.mjSOL_PGS and opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert opt.iterations == 30 and opt.tolerance == 0.0
    assert opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    assert np.isfinite(changed).all() and not np.array_equal(base, changed)  # the same actions, another physics


def test_explicit_damping_is_the_euler_step_without_the_damping_in_the_mass_matrix():
    """``disable: [eulerdamp]`` is MuJoCo's plain semi-implicit Euler step, checked by hand on MjData."""
    vec = gymnasium.make_vec("metarl/HalfCheetahDir-v0", num_envs=1, num_threads=1, physics={"disable": ["eulerdamp"]})
    vec.unwrapped.set_tasks(np.array([[1.0]]))
    vec.reset(seed=0)
    env = vec.unwrapped
    m = env.model
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = env.qpos[0], env.qvel[0]
    a = np.full(m.nu, 0.7)
    vec.step(a[None])
    d.ctrl[:] = a * m.actuator_ctrlrange[:, 1]
    mujoco.mj_forward(m, d)
    assert m.dof_damping.max() > 0
    qvel = d.qvel + m.opt.timestep * d.qacc  # qacc with damping as an explicit force
    np.testing.assert_allclose(env.qvel[0], qvel, rtol=1e-10, atol=1e-10)
    vec.close()


@pytest.mark.parametrize(
    "physics, words",
    [
        ({"solver": "lcp"}, ["physics.solver", "'lcp'", "newton, cg, pgs"]),
        ({"cone": 3}, ["physics.cone", "pyramidal, elliptic"]),
        ({"iterations": 0}, ["physics.iterations", "0", "from 1"]),
        ({"iterations": 2**40}, ["physics.iterations", str(2**40), "2147483647"]),
        ({"iterations": True}, ["physics.iterations", "True"]),
        ({"tolerance": float("nan")}, ["physics.tolerance", "nan"]),
        ({"tolerance": -1}, ["physics.tolerance", "-1"]),
        ({"disable": ["eulerdamping"]}, ["physics.disable", "'eulerdamping'", "eulerdamp"]),
        ({"timestep": 0.02}, ["unknown field", "timestep", "solver, cone"]),
        ({"capsule_inertia": "approx"}, ["physics.capsule_inertia", "'approx'", "exact", "cylinder"]),
        ("pgs", ["physics", "mapping", "'pgs'"]),
    ],
)
def test_bad_physics_names_the_field_the_value_and_the_choices(physics, words):
    with pytest.raises(ValueError) as err:
        models.apply_physics(models.half_cheetah().model, physics)
    for word in words:
        assert word in str(err.value)


def test_a_bad_physics_field_changes_nothing_and_numpy_numbers_are_accepted():
    model = models.half_cheetah().model
    before = (model.opt.solver, model.opt.iterations, model.opt.disableflags)
    with pytest.raises(ValueError, match="physics.tolerance"):
        models.apply_physics(model, {"solver": "pgs", "iterations": 50, "disable": ["eulerdamp"], "tolerance": -1.0})
    assert (model.opt.solver, model.opt.iterations, model.opt.disableflags) == before
    models.apply_physics(model, {"iterations": np.int64(50), "tolerance": np.float32(1e-5), "disable": ("eulerdamp",)})
    assert model.opt.iterations == 50 and model.opt.tolerance == pytest.approx(1e-5)


def test_physics_integrator_reaches_the_ant():
    base, opt = _rollout("metarl/AntVel-v0", None, steps=30)
    assert opt.integrator == mujoco.mjtIntegrator.mjINT_RK4  # the paper's ant
    euler, opt = _rollout("metarl/AntVel-v0", {"integrator": "implicitfast"}, steps=30)
    assert opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert np.isfinite(euler).all() and not np.array_equal(base, euler)


# ---- physics.capsule_inertia: bodies' masses and inertias as MuJoCo before 2.1.2 computed them ---------------
def _cylinder(density, radius, length):
    """Mass and principal inertias (ascending) of a solid cylinder: the closed forms."""
    mass = density * np.pi * radius**2 * length
    return mass, sorted([mass * radius**2 / 2, mass * (3 * radius**2 + length**2) / 12, mass * (3 * radius**2 + length**2) / 12])


def test_cylinder_capsule_inertia_is_the_extended_cylinder_in_closed_form():
    # the ant's legs: one capsule per body, fromto (0,0,0)-(0.2,0.2,0), radius 0.08, density 5 (its XML's
    # default class), no total mass rescaling: the middle section plus half a radius at each end
    model = models.ant("paper", "cylinder").model
    exact = models.ant("paper").model
    body = model.geom("left_leg_geom").bodyid[0]
    mass, inertia = _cylinder(5.0, 0.08, np.hypot(0.2, 0.2) + 0.08)
    assert model.body_mass[body] == pytest.approx(mass, rel=1e-12)
    np.testing.assert_allclose(sorted(model.body_inertia[body]), inertia, rtol=1e-10)
    # the exact capsule is heavier (two hemispheres against two half-radius cylinder ends)
    r, length = 0.08, np.hypot(0.2, 0.2)
    assert exact.body_mass[body] == pytest.approx(5.0 * np.pi * (r**2 * length + 4 / 3 * r**3), rel=1e-12)
    # the torso is a sphere: unchanged; the subtree masses follow the bodies'
    torso = model.body("torso").id
    assert model.body_mass[torso] == exact.body_mass[torso]
    assert model.body_subtreemass[0] == pytest.approx(model.body_mass.sum(), rel=1e-12)
    assert model.body_subtreemass[0] < exact.body_subtreemass[0]


def test_cylinder_capsule_inertia_keeps_the_half_cheetahs_total_mass_and_its_contact_shapes():
    exact, legacy = models.half_cheetah("paper").model, models.half_cheetah("paper", "cylinder").model
    assert legacy.body_subtreemass[0] == pytest.approx(14.0) == exact.body_subtreemass[0]  # its settotalmass
    # every geom a capsule of radius 0.046, one density: the 14 kg shared by the cylinders' lengths, 2h + r each
    # (half-lengths from the model file: the torso's from its fromto, -0.5 to 0.5, the others' from size)
    r = 0.046
    half = {"torso": 0.5, "head": 0.15, "bthigh": 0.145, "bshin": 0.15, "bfoot": 0.094, "fthigh": 0.133,
            "fshin": 0.106, "ffoot": 0.07}
    total_length = sum(2 * h + r for h in half.values())
    for name in ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"):  # one geom per leg body
        length = 2 * half[name] + r
        mass = 14.0 * length / total_length
        assert legacy.body(name).mass[0] == pytest.approx(mass, rel=1e-12)
        np.testing.assert_allclose(sorted(legacy.body(name).inertia), _cylinder(mass / (np.pi * r**2 * length), r,
                                                                                 length)[1], rtol=1e-10)
    # the torso body holds the torso and head cylinders: their masses add up
    assert legacy.body("torso").mass[0] == pytest.approx(14.0 * (2 * 0.5 + r + 2 * 0.15 + r) / total_length, rel=1e-12)
    # collisions still see capsules of the same size
    np.testing.assert_array_equal(legacy.geom_type, exact.geom_type)
    np.testing.assert_array_equal(legacy.geom_size, exact.geom_size)
    assert not np.array_equal(legacy.body_inertia, exact.body_inertia)


@pytest.mark.parametrize("robot", ["half_cheetah", "ant"])
def test_cylinder_capsule_inertia_gives_the_constants_of_a_model_compiled_with_cylinders(robot):
    """The transplanted masses and everything MuJoCo derives from them, against a model whose capsules are
    compiled as those cylinders outright (only the shapes differ there)."""
    model = getattr(models, robot)("paper", "cylinder").model
    spec, total = models.gymnasium_spec(f"{robot}.xml") if robot == "half_cheetah" else models._ant_spec("paper")
    models.capsules_as_cylinders(spec)
    direct = models.compile_spec(spec, total)
    for field in ("body_mass", "body_inertia", "body_ipos", "body_iquat", "body_subtreemass", "dof_M0",
                  "dof_invweight0", "body_invweight0", "actuator_acc0"):
        np.testing.assert_allclose(getattr(model, field), getattr(direct, field), rtol=1e-12, atol=1e-15, err_msg=field)
    assert model.stat.meaninertia == direct.stat.meaninertia and model.stat.meanmass == direct.stat.meanmass


def test_capsule_inertia_through_the_env_kwargs():
    base, _ = _rollout("metarl/HalfCheetahVel-v0", None)
    exact, _ = _rollout("metarl/HalfCheetahVel-v0", {"capsule_inertia": "exact"})
    legacy, _ = _rollout("metarl/HalfCheetahVel-v0", {"capsule_inertia": "Cylinder"})
    np.testing.assert_array_equal(base, exact)
    assert np.isfinite(legacy).all() and not np.array_equal(base, legacy)
    vec = gymnasium.make_vec("metarl/AntDir-v0", num_envs=1, num_threads=1, physics={"capsule_inertia": "cylinder"})
    np.testing.assert_array_equal(vec.unwrapped.model.body_mass, models.ant("paper", "cylinder").model.body_mass)
    assert vec.unwrapped.model.body_mass.sum() < models.ant("paper").model.body_mass.sum()
    vec.close()
    with pytest.raises(ValueError, match="physics.capsule_inertia: expected exact"):
        gymnasium.make_vec("metarl/AntVel-v0", num_envs=1, physics={"capsule_inertia": 1})
