import numpy as np
import pytest
import torch

from metarl.baseline import LinearFeatureBaseline, explained_variance
from metarl.episodes import discounted_returns, gae, standardize_per_task


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_discounted_returns_by_hand_with_a_mask():
    r = t([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 5.0, 7.0]])
    m = t([[1, 1, 1, 1], [1, 1, 0, 0]])
    R = discounted_returns(r, m, 0.5)
    np.testing.assert_allclose(R[0], [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4, 2 + 0.5 * 3 + 0.25 * 4, 3 + 0.5 * 4, 4])
    np.testing.assert_allclose(R[1], [1.5, 1.0, 0.0, 0.0])  # rewards after termination never count


def test_gae_by_hand_and_lambda_one_is_return_minus_value():
    r = t([[1.0, 0.0, 2.0]])
    v = t([[0.5, 1.0, -1.0]])
    m = t([[1, 1, 1]])
    g, lam = 0.9, 0.5
    d0 = 1 + g * 1.0 - 0.5
    d1 = 0 + g * -1.0 - 1.0
    d2 = 2 + 0 - -1.0  # no bootstrap after the last step
    A = gae(r, v, m, g, lam)
    np.testing.assert_allclose(A[0], [d0 + g * lam * d1 + (g * lam) ** 2 * d2, d1 + g * lam * d2, d2])
    np.testing.assert_allclose(gae(r, v, m, g, 1.0), discounted_returns(r, m, g) - v)
    # a terminated tail: the value of a step that did not happen is not bootstrapped
    m2 = t([[1, 1, 0]])
    A2 = gae(r, v, m2, g, 1.0)
    np.testing.assert_allclose(A2[0], [1 + 0 - 0.5, 0 - 1.0, 0.0])


def test_standardize_per_task_ignores_masked_steps():
    adv = t([[[1.0, 2.0, 3.0, 100.0]], [[-1.0, 1.0, -1.0, 1.0]]])
    m = t([[[1, 1, 1, 0]], [[1, 1, 1, 1]]])
    out = standardize_per_task(adv, m)
    np.testing.assert_allclose(out[0, 0, :3], np.array([-1, 0, 1]) / np.std([1, 2, 3]), rtol=1e-7)
    assert out[0, 0, 3] == 0
    np.testing.assert_allclose(out[1, 0], [-1, 1, -1, 1], rtol=1e-7)


def test_linear_baseline_fits_linear_targets_exactly_per_task():
    T, E, H, D = 3, 4, 6, 2
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(T, E, H, D, generator=g, dtype=torch.float64)
    mask = torch.ones(T, E, H, dtype=torch.float64)
    mask[1, 2, 3:] = 0
    feats = LinearFeatureBaseline.features(obs)
    assert feats.shape == (T, E, H, 2 * D + 4)
    w_true = torch.randn(T, 2 * D + 4, generator=g, dtype=torch.float64)
    targets = (feats @ w_true.unsqueeze(1).unsqueeze(-1)).squeeze(-1) * mask
    values, w = LinearFeatureBaseline(reg_coeff=1e-12).fit_predict(obs, targets, mask)
    torch.testing.assert_close(values, targets, rtol=1e-6, atol=1e-7)
    assert explained_variance(values, targets, mask) == pytest.approx(1.0, abs=1e-9)


def test_features_follow_the_paper():
    obs = torch.tensor([[[[20.0], [-3.0]]]], dtype=torch.float64)  # [1, 1, 2, 1]
    f = LinearFeatureBaseline.features(obs)[0, 0]
    np.testing.assert_allclose(f[0], [10.0, 100.0, 0.0, 0.0, 0.0, 1.0])  # clipped to 10
    np.testing.assert_allclose(f[1], [-3.0, 9.0, 0.01, 1e-4, 1e-6, 1.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_features_equal_their_blocks_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(2)
    obs = (torch.randn(3, 2, 7, 5, generator=g, dtype=torch.float64) * 8).to(dtype)  # some beyond +-10
    obs[0, 0, 0, 0] = -0.0
    o = obs.to(torch.float64).clamp(-10.0, 10.0)
    t = (torch.arange(7, dtype=torch.float64) / 100.0).view(-1, 1).expand(3, 2, 7, 1)
    blocks = torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)
    feats = LinearFeatureBaseline.features(obs)
    assert feats.dtype == torch.float64 and feats.is_contiguous()
    assert torch.equal(feats.view(torch.int64), blocks.view(torch.int64))
    # observations that require grad (a user's own pipeline) give the same features, detached
    again = LinearFeatureBaseline.features(obs.clone().requires_grad_(True))
    assert not again.requires_grad and torch.equal(again.view(torch.int64), blocks.view(torch.int64))


@pytest.mark.parametrize("method", ["fit_predict", "fit_predict_previous"])
def test_observations_on_masked_steps_do_not_move_the_fit(method):
    g = torch.Generator().manual_seed(4)
    obs = torch.randn(2, 3, 6, 2, generator=g)
    ret = torch.randn(2, 3, 6, generator=g)
    mask = torch.ones(2, 3, 6)
    mask[0, 1, 2:] = 0
    mask[1, 0, 5:] = 0
    v1, w1 = getattr(LinearFeatureBaseline(1e-3), method)(obs, ret, mask)
    obs2 = obs.clone()
    obs2[mask == 0] = 7.5  # the env's frozen observations after an episode ended could be anything
    v2, w2 = getattr(LinearFeatureBaseline(1e-3), method)(obs2, ret, mask)
    assert torch.equal(w1, w2) and torch.equal(v1, v2)
    assert (v1[mask == 0] == 0).all()


def test_masked_steps_do_not_move_the_fit():
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(1, 2, 5, 1, generator=g, dtype=torch.float64)
    ret = torch.randn(1, 2, 5, generator=g, dtype=torch.float64)
    mask = torch.ones(1, 2, 5, dtype=torch.float64)
    mask[0, 0, 3:] = 0
    b = LinearFeatureBaseline()
    v1, _ = b.fit_predict(obs, ret, mask)
    ret2 = ret.clone()
    ret2[0, 0, 3:] = 1e6
    v2, _ = b.fit_predict(obs, ret2, mask)
    torch.testing.assert_close(v1, v2)


def test_baseline_survives_degenerate_features():
    obs = torch.zeros(2, 1, 3, 4, dtype=torch.float64)  # constant observations: singular Gram matrix
    ret = torch.ones(2, 1, 3, dtype=torch.float64)
    values, w = LinearFeatureBaseline().fit_predict(obs, ret, torch.ones(2, 1, 3, dtype=torch.float64))
    assert torch.isfinite(values).all()
    torch.testing.assert_close(values, ret, rtol=1e-3, atol=1e-3)


def test_previous_batch_baseline_predicts_each_task_with_the_fit_before_it():
    g = torch.Generator().manual_seed(3)
    T, E, H, D = 3, 4, 6, 2
    obs = torch.randn(T, E, H, D, generator=g, dtype=torch.float64)
    returns = torch.randn(T, E, H, generator=g, dtype=torch.float64)
    mask = torch.ones(T, E, H, dtype=torch.float64)
    mask[1, 2, 4:] = 0
    shared = LinearFeatureBaseline(1e-3)
    values, weights = shared.fit_predict_previous(obs, returns, mask)
    feats = LinearFeatureBaseline.features(obs)
    # by hand: an unfitted baseline predicts 0; afterwards task i uses the weights fit on task i - 1 alone
    torch.testing.assert_close(values[0], torch.zeros(E, H, dtype=torch.float64))
    for i in range(1, T):
        _, w_prev = LinearFeatureBaseline(1e-3).fit_predict(obs[i - 1 : i], returns[i - 1 : i], mask[i - 1 : i])
        torch.testing.assert_close(values[i], (feats[i] @ w_prev[0]) * mask[i])
    torch.testing.assert_close(shared.previous, weights[-1])
    # the next call starts from the last task of this one
    values2, _ = shared.fit_predict_previous(obs, returns, mask)
    torch.testing.assert_close(values2[0], (feats[0] @ weights[-1]) * mask[0])


def test_advantages_follow_the_configured_baseline_fit():
    from metarl.config import AdvantageConfig
    from metarl.episodes import EpisodeBatch, advantages

    g = torch.Generator().manual_seed(5)
    T, E, H = 2, 3, 5
    batch = EpisodeBatch(torch.randn(T, E, H, 2, generator=g, dtype=torch.float64),
                         torch.randn(T, E, H, 1, generator=g, dtype=torch.float64),
                         torch.randn(T, E, H, generator=g, dtype=torch.float64),
                         torch.ones(T, E, H, dtype=torch.float64), np.zeros((T, 1)))
    per_task, _ = advantages(batch, AdvantageConfig(normalize_advantages=False), LinearFeatureBaseline())
    previous, _ = advantages(batch, AdvantageConfig(normalize_advantages=False, baseline_fit="previous_batch"),
                             LinearFeatureBaseline())
    returns = discounted_returns(batch.rewards, batch.mask, 0.99)
    torch.testing.assert_close(previous[0], returns[0])  # task 0: nothing fit before it, values 0
    assert not torch.allclose(per_task[1], previous[1])


def test_baseline_fits_a_batch_of_ant_sized_systems_on_several_threads():
    """254 features (the ant's 125 observations): torch's batched LU solve fails here with 2 threads."""
    g = torch.Generator().manual_seed(0)
    T, E, H, D = 6, 4, 50, 125
    obs = torch.randn(T, E, H, D, generator=g, dtype=torch.float64)
    obs[..., 100:] = 0.0  # observation entries that never move (contact forces at rest): a rank-deficient gram
    returns = torch.randn(T, E, H, generator=g, dtype=torch.float64)
    mask = torch.ones(T, E, H, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        values, weights = LinearFeatureBaseline().fit_predict(obs, returns, mask)
    finally:
        torch.set_num_threads(threads)
    feats = LinearFeatureBaseline.features(obs).reshape(T, -1, 2 * D + 4)
    for i in range(T):  # each task's ridge solution, by the normal equations solved one at a time
        a = feats[i].T @ feats[i] + 1e-5 * torch.eye(2 * D + 4, dtype=torch.float64)
        expect = torch.linalg.solve(a, feats[i].T @ returns[i].reshape(-1))
        torch.testing.assert_close(weights[i], expect, rtol=1e-6, atol=1e-6)
    assert torch.isfinite(values).all()
