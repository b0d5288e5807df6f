"""dynamics="gymnasium" reproduces gymnasium's own HalfCheetah-v5 / Ant-v5 trajectories."""

import gymnasium
import numpy as np
import pytest

from metarl import envs  # noqa: F401


@pytest.mark.parametrize(
    "our_id,their_id,obs_dim",
    [("metarl/HalfCheetahVel-v0", "HalfCheetah-v5", 17), ("metarl/AntDir-v0", "Ant-v5", 105)],
)
def test_state_trajectories_match_gymnasium(our_id, their_id, obs_dim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # gymnasium's own half-cheetah makes MuJoCo write MUJOCO_LOG.TXT where it runs
    ours = gymnasium.make_vec(our_id, num_envs=1, dynamics="gymnasium")
    assert ours.horizon == 100 and ours.single_observation_space.shape == (obs_dim,)
    ours.set_tasks(np.array([[1.0]]))
    theirs = gymnasium.make(their_id).unwrapped
    obs_ours, _ = ours.reset(seed=5)
    obs_theirs, _ = theirs.reset(seed=5)  # same generator, same draws in the same order
    np.testing.assert_array_equal(obs_ours[0], obs_theirs)
    acts = np.random.default_rng(0).uniform(-1, 1, size=(40, 1, ours.single_action_space.shape[0]))
    for a in acts:
        o, r, term, _, _ = ours.step(a)
        o2, _, term2, _, info = theirs.step(a[0])
        np.testing.assert_array_equal(ours.qpos[0], theirs.data.qpos)
        np.testing.assert_array_equal(ours.qvel[0], theirs.data.qvel)
        np.testing.assert_allclose(o[0], o2, rtol=0, atol=1e-9)
        assert ours.forward_velocity()[0] == pytest.approx(info["x_velocity"], abs=1e-9)
        assert term[0] == term2
        if term2:
            break
