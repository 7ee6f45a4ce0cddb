"""Comparing and combining laws by out-of-sample predictive accuracy.

Pointwise PSIS-LOO comes from ArviZ (through ``bayescale._arviz``); stacking weights
(Yao, Vehtari, Simpson and Gelman 2018) choose the mixture of the laws' predictive
distributions that would have predicted the left-out points best.
"""

from __future__ import annotations

import numpy as np

from bayescale import _arviz

__all__ = ["pointwise_loo", "stacking_weights"]

# EM steps of the stacking optimisation; the objective is concave on the simplex and the
# steps increase it monotonically.
_STACKING_STEPS = 1000


def pointwise_loo(log_lik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise PSIS-LOO expected log predictive densities and Pareto k.

    Parameters
    ----------
    log_lik : numpy.ndarray
        Log-likelihood of each observation, shape (chains, draws, observations).

    Returns
    -------
    elpd : numpy.ndarray
        (observations,) leave-one-out log predictive density of each observation.
    pareto_k : numpy.ndarray
        (observations,) Pareto k of the importance weights (above 0.7: unreliable).
    """
    return _arviz.loo_pointwise(log_lik)


def stacking_weights(elpd: np.ndarray) -> np.ndarray:
    """Stacking weights from pointwise LOO log predictive densities.

    Maximises ``sum_i log sum_k w_k exp(elpd[i, k])`` over the simplex (Yao et al. 2018,
    eq. 4) by the EM update for mixture weights, which increases the objective every step.

    Parameters
    ----------
    elpd : numpy.ndarray
        (observations, models) pointwise leave-one-out log predictive densities.

    Returns
    -------
    numpy.ndarray
        (models,) non-negative weights summing to 1.
    """
    elpd = np.asarray(elpd, dtype=np.float64)
    num_models = elpd.shape[1]
    if num_models == 1:
        return np.ones(1)
    densities = np.exp(elpd - elpd.max(axis=1, keepdims=True))  # rescaling a row leaves the argmax alone
    weights = np.full(num_models, 1.0 / num_models)
    for _ in range(_STACKING_STEPS):
        mixture = densities @ weights
        gradient = (densities / mixture[:, None]).mean(axis=0)
        weights = weights * gradient  # EM: each weight times its average responsibility
        weights /= weights.sum()
    return weights
