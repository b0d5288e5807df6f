"""Bad input gets an error that names the field, the value and the fix."""

import gymnasium
import numpy as np
import pytest

from metarl import envs  # noqa: F401


@pytest.fixture
def vec():
    v = gymnasium.make_vec("metarl/HalfCheetahDir-v0", num_envs=3)
    v.reset(seed=0)
    return v


def test_wrong_action_shape(vec):
    with pytest.raises(ValueError, match=r"actions: expected shape \(3, 6\).*got \(6,\)"):
        vec.step(np.zeros(6))


def test_non_finite_actions(vec):
    a = np.zeros((3, 6))
    a[1, 2] = np.nan
    with pytest.raises(ValueError, match="actions: row 1 is not finite"):
        vec.step(a)


def test_task_count_must_match_slots(vec):
    with pytest.raises(ValueError, match="got 2 tasks for 3 slots"):
        vec.set_tasks(np.ones((2, 1)))


def test_task_shape(vec):
    with pytest.raises(ValueError, match=r"expected shape \(3, 1\)"):
        vec.set_tasks(np.ones(3))
    with pytest.raises(ValueError, match=r"expected shape \(3, 1\)"):
        vec.set_tasks(np.ones((3, 2)))


def test_direction_must_be_plus_or_minus_one(vec):
    with pytest.raises(ValueError, match=r"row 2 has direction 0\.5.*-1\.0.*\+1\.0"):
        vec.set_tasks(np.array([[1.0], [-1.0], [0.5]]))


def test_non_finite_task():
    v = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=2)
    with pytest.raises(ValueError, match="row 1 is not finite"):
        v.set_tasks(np.array([[0.1, 0.1], [np.inf, 0.0]]))


def test_single_env_task_shape():
    env = gymnasium.make("metarl/AntVel-v0")
    with pytest.raises(ValueError, match=r"task: expected a vector of shape \(1,\)"):
        env.unwrapped.set_task(np.ones((1, 1)))
    with pytest.raises(ValueError, match="task: row 0 is not finite"):
        env.unwrapped.set_task(np.array([np.nan]))


def test_unknown_id_and_dynamics():
    with pytest.raises(gymnasium.error.Error, match="HalfCheetahVell"):
        gymnasium.make("metarl/HalfCheetahVell-v0")
    with pytest.raises(ValueError, match="dynamics: expected 'paper'.*got 'mujoco'"):
        gymnasium.make_vec("metarl/AntVel-v0", num_envs=2, dynamics="mujoco")


def test_step_before_reset_and_bad_counts():
    v = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=2)
    with pytest.raises(RuntimeError, match="call reset"):
        v.step(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="num_envs: expected a positive integer, got 0"):
        gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=0)
    with pytest.raises(ValueError, match="seed: got 1 seeds for 2 slots"):
        v.reset(seed=[1])


def test_sample_tasks_needs_a_generator(vec):
    with pytest.raises(TypeError, match="numpy.random.default_rng"):
        vec.sample_tasks(2, 0)
