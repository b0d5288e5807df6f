import numpy as np
import pytest

from metarl import envs
from metarl.envs.tasks import DirectionTasks, UniformTasks


def test_uniform_tasks_shape_range_and_reproducible():
    space = UniformTasks(["goal_x", "goal_y"], [-0.5, -0.5], [0.5, 0.5])
    a = space.sample(1000, np.random.default_rng(3))
    b = space.sample(1000, np.random.default_rng(3))
    assert a.shape == (1000, 2) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert a.min() >= -0.5 and a.max() < 0.5
    assert abs(a.mean()) < 0.05


def test_direction_tasks_follow_the_paper_rule():
    space = DirectionTasks(0.0, 3.0)
    rng = np.random.default_rng(7)
    d = space.sample(2000, rng)
    u = np.random.default_rng(7).uniform(0.0, 3.0, size=(2000, 1))
    np.testing.assert_array_equal(d, np.where(u < 1.5, -1.0, 1.0))
    assert set(np.unique(d)) == {-1.0, 1.0}


@pytest.mark.parametrize("env_id", list(envs.TASK_ENVS))
def test_sample_tasks_and_set_tasks_roundtrip(env_id):
    import gymnasium

    vec = gymnasium.make_vec(env_id, num_envs=3)
    tasks = vec.sample_tasks(3, np.random.default_rng(0))
    vec.set_tasks(tasks)
    np.testing.assert_array_equal(vec.get_tasks(), tasks)
    single = gymnasium.make(env_id)
    single.unwrapped.set_task(tasks[1])
    np.testing.assert_array_equal(single.unwrapped.get_task(), tasks[1])


def test_extrapolated_goals_are_allowed():
    import gymnasium

    vec = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=2)
    vec.set_tasks(np.array([[3.5], [-1.0]]))  # outside U(0, 2): a fair question for a meta-policy
    np.testing.assert_array_equal(vec.get_tasks()[:, 0], [3.5, -1.0])
