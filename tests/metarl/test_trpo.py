import math

import pytest
import torch

from metarl import trpo


def spd(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a @ a.T + n * torch.eye(n, dtype=torch.float64)


def test_conjugate_gradient_solves_spd_systems():
    A = spd(8)
    b = torch.randn(8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = trpo.conjugate_gradient(lambda v: A @ v, b, iters=8, residual_tol=0.0)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-10)


def test_conjugate_gradient_zero_rhs_is_zero():
    calls = []
    x = trpo.conjugate_gradient(lambda v: calls.append(1) or v, torch.zeros(5, dtype=torch.float64))
    assert torch.equal(x, torch.zeros(5, dtype=torch.float64)) and not calls


def test_conjugate_gradient_stops_on_non_positive_curvature():
    A = -torch.eye(3, dtype=torch.float64)
    x = trpo.conjugate_gradient(lambda v: A @ v, torch.ones(3, dtype=torch.float64))
    assert torch.isfinite(x).all() and torch.equal(x, torch.zeros(3, dtype=torch.float64))


def test_solve_returns_the_product_of_its_solution_from_its_own_products():
    A = spd(8, seed=5)
    b = torch.randn(8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for iters in (1, 3, 8):  # stopped early too: the product is of the iterate returned
        calls: list[int] = []
        x, ax = trpo.solve(lambda v, calls=calls: calls.append(1) or A @ v, b, iters=iters, residual_tol=0.0)
        assert len(calls) == iters
        torch.testing.assert_close(ax, A @ x, rtol=1e-12, atol=1e-12)
        assert torch.equal(x, trpo.conjugate_gradient(lambda v: A @ v, b, iters=iters, residual_tol=0.0))
    x, ax = trpo.solve(lambda v: A @ v, b, iters=50, residual_tol=1e-6)  # stopped by the residual tolerance
    assert float((b - A @ x).square().sum()) <= 1e-5
    torch.testing.assert_close(ax, A @ x, rtol=1e-12, atol=1e-12)
    indefinite = torch.diag(torch.tensor([3.0, 2.0, 1.0, -1.0], dtype=torch.float64))
    calls.clear()
    x, ax = trpo.solve(lambda v: calls.append(1) or indefinite @ v, torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    assert len(calls) == 2 and x.abs().sum() > 0  # the second direction has non-positive curvature: stopped there
    torch.testing.assert_close(ax, indefinite @ x, rtol=1e-12, atol=1e-12)
    x, ax = trpo.solve(lambda v: -v, torch.ones(3, dtype=torch.float64))  # stopped at once: x = 0, A x = 0
    assert torch.equal(x, torch.zeros(3, dtype=torch.float64)) and torch.equal(ax, x)
    s = trpo.max_step(*trpo.solve(lambda v: A @ v, b, iters=4), max_kl=0.01)
    assert s is not None and float(0.5 * s @ (A @ s)) == pytest.approx(0.01, rel=1e-12)


def test_max_step_meets_the_quadratic_kl_model():
    A = spd(6, seed=3)
    d = torch.randn(6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    s = trpo.max_step(d, lambda v: A @ v, max_kl=0.01)
    assert float(0.5 * s @ (A @ s)) == pytest.approx(0.01, rel=1e-12)
    assert float(torch.dot(s, d)) > 0  # same direction
    assert trpo.max_step(d, lambda v: -v, 0.01) is None
    assert trpo.max_step(torch.zeros(6, dtype=torch.float64), lambda v: A @ v, 0.01) is None


def test_line_search_accepts_first_improving_feasible_step():
    x0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    full = torch.tensor([-2.0, 4.0], dtype=torch.float64)

    def evaluate(x):  # quadratic loss, KL = squared distance moved
        return float((x**2).sum()), float(((x - x0) ** 2).sum())

    new, res = trpo.backtracking_line_search(x0, full, evaluate, evaluate(x0)[0], max_kl=5.0, ratio=0.5)
    # full step: kl 20 > 5; half: kl 5 <= 5 and loss 0 < 5
    assert res.accepted and res.steps == 2 and res.fraction == 0.5
    torch.testing.assert_close(new, x0 + 0.5 * full)


def test_line_search_rejects_nan_and_restores_params_bit_for_bit():
    x0 = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float32)
    before = x0.clone()
    new, res = trpo.backtracking_line_search(
        x0, torch.ones(3), lambda x: (float("nan"), 0.0), loss_before=1.0, max_kl=1.0, max_backtracks=4
    )
    assert not res.accepted and res.steps == 4 and res.fraction == 0.0
    assert new is x0 and torch.equal(new, before)


def test_line_search_rejects_steps_that_do_not_improve_or_break_the_kl():
    x0 = torch.zeros(2, dtype=torch.float64)
    new, res = trpo.backtracking_line_search(x0, torch.ones(2, dtype=torch.float64), lambda x: (2.0, 0.0), 1.0, 1.0)
    assert not res.accepted and new is x0
    new, res = trpo.backtracking_line_search(x0, torch.ones(2, dtype=torch.float64), lambda x: (0.0, math.inf), 1.0, 1.0)
    assert not res.accepted
