"""Optimizers: textbook update rules checked by hand; each decreases a convex loss."""

import numpy as np
import pytest

from rtinfer.train import SGD, AdaGrad, Adam, LinearRegression, LogisticRegression, Momentum, RMSProp, fit


def test_adam_first_steps_match_hand_computation():
    opt = Adam(lr=0.1)
    theta = np.array([1.0, -2.0, 0.5])
    g1 = np.array([0.5, -1.0, 0.0])
    g2 = np.array([0.1, 2.0, -3.0])
    opt.reset(3)
    opt.step(theta, g1)
    # t=1: m = 0.1 g1, v = 0.001 g1^2, m_hat = g1, v_hat = g1^2 -> step = lr * g1 / (|g1| + eps)
    expected1 = np.array([1.0, -2.0, 0.5]) - 0.1 * g1 / (np.abs(g1) + 1e-8)
    np.testing.assert_allclose(theta, expected1, rtol=1e-15, atol=0)
    np.testing.assert_allclose(theta, [0.9, -1.9, 0.5], rtol=1e-7)
    opt.step(theta, g2)
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    v = 0.999 * (0.001 * g1**2) + 0.001 * g2**2
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    expected2 = expected1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(theta, expected2, rtol=1e-14)
    assert opt.t == 2


def test_sgd_inverse_schedule_step_sizes():
    opt = SGD(lr=0.5, schedule="inverse")  # t0 = 1: eta_t = lr / t
    assert [opt.lr_at(t) for t in (1, 2, 3, 4, 10)] == [0.5, 0.25, 0.5 / 3, 0.125, 0.05]
    theta = np.zeros(2)
    g = np.array([1.0, -2.0])
    opt.reset(2)
    steps = []
    for _ in range(4):
        before = theta.copy()
        opt.step(theta, g)
        steps.append((before - theta) / g)
    np.testing.assert_allclose(np.array(steps)[:, 0], [0.5, 0.25, 0.5 / 3, 0.125], rtol=1e-15)
    np.testing.assert_allclose(np.array(steps)[:, 1], [0.5, 0.25, 0.5 / 3, 0.125], rtol=1e-15)
    opt2 = SGD(lr=1.0, schedule="inverse", t0=10.0)  # eta_t = lr * t0 / (t0 + t - 1)
    assert opt2.lr_at(1) == 1.0 and opt2.lr_at(11) == 0.5
    assert SGD(lr=0.3).lr_at(1000) == 0.3


def test_momentum_adagrad_rmsprop_hand_computed():
    g1, g2 = np.array([1.0, -0.5]), np.array([0.2, 0.4])
    mom = Momentum(lr=0.1, beta=0.9)
    th = np.zeros(2)
    mom.step(th, g1)
    mom.step(th, g2)
    v1 = -0.1 * g1
    v2 = 0.9 * v1 - 0.1 * g2
    np.testing.assert_allclose(th, v1 + v2, rtol=1e-15)

    ada = AdaGrad(lr=0.1, eps=1e-8)
    th = np.zeros(2)
    ada.step(th, g1)
    ada.step(th, g2)
    G1, G2 = g1**2, g1**2 + g2**2
    np.testing.assert_allclose(th, -0.1 * g1 / (np.sqrt(G1) + 1e-8) - 0.1 * g2 / (np.sqrt(G2) + 1e-8), rtol=1e-14)

    rms = RMSProp(lr=0.01, rho=0.9, eps=1e-8)
    th = np.zeros(2)
    rms.step(th, g1)
    rms.step(th, g2)
    s1 = 0.1 * g1**2
    s2 = 0.9 * s1 + 0.1 * g2**2
    np.testing.assert_allclose(th, -0.01 * g1 / (np.sqrt(s1) + 1e-8) - 0.01 * g2 / (np.sqrt(s2) + 1e-8), rtol=1e-14)


@pytest.fixture(scope="module")
def convex_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 + rng.normal(scale=0.5, size=200) > 0).astype(int)
    return X, y


@pytest.mark.parametrize(
    "make_opt",
    [lambda: SGD(0.5), lambda: SGD(1.0, schedule="inverse"), lambda: Momentum(0.1), lambda: AdaGrad(0.5),
     lambda: RMSProp(0.01), lambda: Adam(0.05)],
    ids=["sgd", "sgd-1/t", "momentum", "adagrad", "rmsprop", "adam"],
)
def test_each_optimizer_decreases_convex_loss(convex_problem, make_opt):
    X, y = convex_problem
    model = LogisticRegression(solver="minibatch", l2=1e-3)
    history = fit(model, X, y, optimizer=make_opt(), epochs=15, batch_size=20, seed=1)
    assert history.loss[-1] < 0.8 * history.loss[0]
    assert all(b <= a + 1e-3 for a, b in zip(history.loss, history.loss[1:]))
    # and it moves from the zero start towards the unique optimum that Newton's method finds
    optimum = LogisticRegression(l2=1e-3).fit(X, y).get_parameters()
    assert np.linalg.norm(model.get_parameters() - optimum) < 0.9 * np.linalg.norm(optimum)


def test_full_batch_sgd_on_least_squares_reaches_optimum():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + 1.0 + 0.1 * rng.normal(size=100)
    model = LinearRegression(solver="minibatch")
    fit(model, X, y, optimizer=SGD(0.5), epochs=300, batch_size=100, shuffle=False)
    exact = LinearRegression().fit(X, y)
    np.testing.assert_allclose(model.get_parameters(), exact.get_parameters(), atol=1e-8)


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="lr"):
        Adam(lr=-1)
    with pytest.raises(ValueError, match="beta1"):
        Adam(beta1=1.0)
    with pytest.raises(ValueError, match="schedule"):
        SGD(schedule="cosine")
    with pytest.raises(ValueError, match="unknown optimizer"):
        fit(LinearRegression(solver="minibatch"), np.ones((3, 1)), np.ones(3), optimizer="lbfgs")
