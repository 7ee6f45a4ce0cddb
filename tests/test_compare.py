"""Stacking weights (Yao et al. 2018) from pointwise leave-one-out densities."""

import numpy as np
import pytest
from scipy import optimize

from bayescale.compare import stacking_weights


def _objective(weights, elpd):
    return np.log(np.exp(elpd) @ weights).sum()


def test_weights_maximise_the_stacking_objective():
    rng = np.random.default_rng(0)
    elpd = rng.normal(0.0, 1.0, (200, 3)) + np.array([0.0, 0.3, -0.2])
    weights = stacking_weights(elpd)
    assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    # Compare with a general-purpose optimiser over the simplex (softmax parametrisation).
    best = optimize.minimize(lambda z: -_objective(np.exp(z) / np.exp(z).sum(), elpd), np.zeros(3), method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000})
    assert _objective(weights, elpd) >= -best.fun - 1e-6


def test_a_law_that_predicts_every_point_better_takes_all_weight():
    elpd = np.column_stack([np.full(50, -1.0), np.full(50, -3.0)])
    np.testing.assert_allclose(stacking_weights(elpd), [1.0, 0.0], atol=1e-6)


def test_identical_laws_share_weight():
    elpd = np.tile(np.linspace(-2, 0, 30)[:, None], (1, 2))
    np.testing.assert_allclose(stacking_weights(elpd), [0.5, 0.5])
