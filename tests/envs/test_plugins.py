"""The documented plug-in example works on both paths."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl import envs
from experiments.plugins.cheetah_goal_position import register


@pytest.fixture(autouse=True, scope="module")
def _registered():
    register()


@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value is.*")
def test_fast_path_plugin_makes_single_and_batched_envs():
    single = gymnasium.make("mylab/HalfCheetahGoalPos-v0")
    check_env(single.unwrapped, skip_render_check=True)
    vec = gymnasium.make_vec("mylab/HalfCheetahGoalPos-v0", num_envs=3)
    assert isinstance(vec, envs.MujocoTaskEnv)
    tasks = np.array([[-2.0], [0.0], [2.5]])
    vec.set_tasks(tasks)
    obs, _ = vec.reset(seed=0)
    acts = np.random.default_rng(0).normal(size=(10, 3, 6))
    for a in acts:
        obs, r, *_ = vec.step(a)
        clipped = np.clip(a, -1, 1)
        expected = -np.abs(obs[:, 0] - tasks[:, 0]) - 0.05 * (clipped**2).sum(1)
        np.testing.assert_allclose(r, expected, atol=1e-12)
    single.unwrapped.set_task(tasks[2])
    o, _ = single.reset(seed=2)
    for a in acts:
        o, *_ = single.step(a[2])
    np.testing.assert_array_equal(o, obs[2])


def test_general_path_runs_any_task_env_through_sync_vector_env():
    vec = envs.TaskSyncVectorEnv([lambda: gymnasium.make("mylab/PointGoal-v0") for _ in range(3)])
    assert vec.horizon == 50
    tasks = np.array([[0.15], [-0.5], [0.9]])
    vec.set_tasks(tasks)
    np.testing.assert_array_equal(vec.get_tasks(), tasks)
    obs0, _ = vec.reset(seed=1)
    done_at = {}
    for t in range(50):
        obs, r, term, trunc, _ = vec.step(np.ones((3, 1), np.float32))
        for i in np.flatnonzero(term):
            done_at.setdefault(i, (t, obs[i].copy()))
            np.testing.assert_array_equal(obs[i], done_at[i][1])  # frozen after termination
            if t > done_at[i][0]:
                assert r[i] == 0.0
    assert set(done_at) == {0, 2}  # moving right reaches 0.15 and 0.9, never -0.5
    assert done_at[0][0] < done_at[2][0]
    assert trunc.tolist() == [False, True, False]


def test_general_path_rejects_envs_without_tasks():
    with pytest.raises(TypeError, match="sample_tasks"):
        envs.TaskSyncVectorEnv([lambda: gymnasium.make("CartPole-v1")])


def test_general_path_names_the_ways_to_give_an_episode_length():
    entry = gymnasium.spec("mylab/PointGoal-v0").entry_point
    gymnasium.register("mylab/PointGoalNoLength-v0", entry_point=entry)
    try:
        with pytest.raises(ValueError, match="register it with max_episode_steps=N, pass horizon=N here, or set "
                                             "max_episode_steps: N in a metarl config's env.kwargs"):
            envs.TaskSyncVectorEnv([lambda: gymnasium.make("mylab/PointGoalNoLength-v0")])
        vec = envs.TaskSyncVectorEnv([lambda: gymnasium.make("mylab/PointGoalNoLength-v0", max_episode_steps=20)])
        assert vec.horizon == 20  # the config's way: env.kwargs reach gymnasium.make
    finally:
        gymnasium.registry.pop("mylab/PointGoalNoLength-v0")


def test_sampled_tasks_must_be_one_row_per_task():
    """A plug-in's sample_tasks of 2n numbers was reshaped to (n, 2) without a word (a sweep); now only [n, k],
    or [n] for one number per task on the general path, is taken, and metarl names the env in a UsageError."""
    from metarl.environment import sample_tasks
    from metarl.errors import UsageError

    vec = envs.TaskSyncVectorEnv([lambda: gymnasium.make("mylab/PointGoal-v0") for _ in range(2)])
    point = vec._task_env(0)
    rng = np.random.default_rng(0)
    assert vec.sample_tasks(3, rng).shape == (3, 1)  # PointGoalEnv gives [n] numbers: one per task
    cases = [(lambda n, rng: rng.uniform(size=2 * n), "returned shape (6,), expected (3, k): one row per task"),
             (lambda n, rng: np.ones((n + 1, 1)), "returned shape (4, 1), expected (3, k)"),
             (lambda n, rng: np.full((n, 1), np.nan), "returned values that are not finite"),
             (lambda n, rng: "abc", "returned str, not an array of numbers")]
    for bad, needle in cases:
        point.sample_tasks = bad
        with pytest.raises(UsageError) as exc:
            sample_tasks(vec, 3, rng)
        assert str(exc.value).startswith("env 'mylab/PointGoal-v0': sample_tasks(3, rng) ") and needle in str(exc.value)
        assert str(exc.value).endswith("fix the env's sample_tasks (see docs/plugins.md for what a task env returns)")

    class Odd:  # an env of neither path: metarl's own check applies
        spec = None

        def sample_tasks(self, n, rng):
            return np.zeros((n, 2, 1))

    with pytest.raises(UsageError, match=r"env 'Odd': sample_tasks\(3, rng\) returned shape \(3, 2, 1\), expected "
                                         r"\(3, k\): one row per task"):
        sample_tasks(Odd(), 3, rng)


def test_a_fast_path_task_space_is_checked_like_the_tasks_a_user_passes():
    class TwoPerTask(envs.tasks.UniformTasks):
        def _sample(self, n, rng):
            return rng.uniform(size=(2 * n,))

    space = TwoPerTask(["x"], [0.0], [1.0])
    with pytest.raises(ValueError, match=r"TwoPerTask\._sample\(3, rng\)'s result: expected shape \(3, 1\)"):
        space.sample(3, np.random.default_rng(0))
    good = envs.tasks.UniformTasks(["x"], [0.0], [1.0])
    assert good.sample(3, np.random.default_rng(0)).shape == (3, 1)


def test_an_id_its_imports_do_not_register_is_told_apart_from_a_missing_import():
    from metarl.config import ConfigError, EnvConfig
    from metarl.environment import env_spec

    with pytest.raises(ConfigError, match=r"env.imports \['experiments.plugins.cheetah_goal_position'\] were imported "
                                          r"and none registered 'mylab/PointGoal-v9': check the id's spelling"):
        env_spec(EnvConfig(id="mylab/PointGoal-v9", imports=["experiments.plugins.cheetah_goal_position"]))
    with pytest.raises(ConfigError, match="plug-in ids need their module in env.imports"):
        env_spec(EnvConfig(id="otherlab/Thing-v0"))
