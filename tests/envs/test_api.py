"""gymnasium conventions: check_env, make/make_vec, seeding, and single == batched."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl import envs

IDS = list(envs.TASK_ENVS)
OBS_DIM = {
    "metarl/HalfCheetahVel-v0": 20,
    "metarl/HalfCheetahDir-v0": 20,
    "metarl/AntVel-v0": 125,
    "metarl/AntDir-v0": 125,
    "metarl/Navigation2D-v0": 2,
}
HORIZON = {"metarl/Navigation2D-v0": 100}


@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value is.*")
@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    env = gymnasium.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (OBS_DIM[env_id],)


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_gives_the_batched_env(env_id):
    vec = gymnasium.make_vec(env_id, num_envs=5)
    assert isinstance(vec, envs.BatchedTaskEnv)
    assert vec.num_envs == 5 and vec.horizon == HORIZON.get(env_id, 200)
    assert vec.observation_space.shape == (5, OBS_DIM[env_id])


@pytest.mark.parametrize("env_id", IDS)
def test_single_and_batched_give_identical_numbers(env_id):
    n, steps = 3, 30
    vec = gymnasium.make_vec(env_id, num_envs=n)
    tasks = vec.sample_tasks(n, np.random.default_rng(1))
    vec.set_tasks(tasks)
    obs_b, _ = vec.reset(seed=10)
    actions = np.random.default_rng(2).normal(size=(steps, n, vec.single_action_space.shape[0]))
    batched = [vec.step(actions[t])[:3] for t in range(steps)]
    for i in range(n):
        env = gymnasium.make(env_id)
        env.unwrapped.set_task(tasks[i])
        obs_s, _ = env.reset(seed=10 + i)
        np.testing.assert_array_equal(obs_s, obs_b[i])
        for t in range(steps):
            o, r, term, trunc, _ = env.step(actions[t, i])
            np.testing.assert_array_equal(o, batched[t][0][i])
            assert r == batched[t][1][i]
            assert term == batched[t][2][i]
            if term:
                break


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/AntDir-v0"])
def test_same_seed_same_numbers_and_threads_do_not_matter(env_id):
    def run(seed, threads):
        vec = gymnasium.make_vec(env_id, num_envs=4, num_threads=threads)
        vec.set_tasks(vec.sample_tasks(4, np.random.default_rng(0)))
        obs, _ = vec.reset(seed=seed)
        acts = np.random.default_rng(5).normal(size=(20, 4, vec.single_action_space.shape[0]))
        rows = [obs]
        for a in acts:
            o, r, *_ = vec.step(a)
            rows += [o, r[:, None]]
        return np.concatenate(rows, axis=1)

    a, b, c = run(3, 1), run(3, 2), run(4, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fixed_horizon_truncates_then_requires_reset():
    vec = gymnasium.make_vec("metarl/HalfCheetahDir-v0", num_envs=2, horizon=5)
    vec.reset(seed=0)
    for t in range(5):
        _, _, term, trunc, _ = vec.step(np.zeros((2, 6)))
        assert not term.any()
        assert trunc.all() == (t == 4)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros((2, 6)))
    vec.reset()
    vec.step(np.zeros((2, 6)))


def test_terminated_slots_stay_terminated_until_reset():
    vec = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=2)
    vec.set_tasks(np.array([[0.05, 0.05], [0.45, -0.45]]))
    vec.reset(seed=0)
    obs, r, term, trunc, _ = vec.step(np.array([[0.5, 0.5], [1.0, -1.0]]))  # moves of 0.05 and 0.1
    assert term.tolist() == [True, False]
    assert r[0] == pytest.approx(0.0)
    for _ in range(3):
        obs2, r2, term2, _, _ = vec.step(np.array([[1.0, 1.0], [1.0, -1.0]]))
        assert term2.tolist() == [True, False]
        np.testing.assert_array_equal(obs2[0], obs[0])  # frozen
        assert r2[0] == 0.0
    obs3, _ = vec.reset()
    np.testing.assert_array_equal(obs3, 0.0)
    _, _, term4, _, _ = vec.step(np.zeros((2, 2)))
    assert not term4.any()


def test_reset_mask_resets_chosen_slots_only():
    vec = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=3)
    obs, _ = vec.reset(seed=0)
    obs2, _ = vec.reset(seed=100, options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(obs2[[0, 2]], obs[[0, 2]])
    assert not np.array_equal(obs2[1], obs[1])
