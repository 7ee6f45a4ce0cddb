r"""Data-constrained law  L(N, D, U) = E + A / N'^alpha + B / D'^beta.

Muennighoff et al. (2023), "Scaling Data-Constrained Language Models", eqs. (5)-(7): the
Chinchilla law (``chinchilla.py``) with effective data D' and effective parameters N' in
place of D and N, for runs that repeat their unique tokens for several epochs:

    D' = U_D + U_D R*_D (1 - exp(-R_D / R*_D)),   U_D = U,   R_D = D / U_D - 1,
    N' = U_N + U_N R*_N (1 - exp(-R_N / R*_N)),   U_N = min(N, N*(U_D)),   R_N = N / U_N - 1.

R_D counts the epochs beyond the first; each repetition is worth less than the one
before, and D' saturates at U_D (1 + R*_D) however many epochs are run. N*(U_D) is the
compute-optimal size for U_D tokens under the law's own Chinchilla part: on the frontier
N* = G (C/6)^(beta/(alpha+beta)), D* = (C/6) / N* = (C/6)^(alpha/(alpha+beta)) / G, with
G = (alpha A / (beta B))^(1/(alpha+beta)), so at D* = U_D

    log N*(U_D) = log G + (beta / alpha) (log G + log U_D).

Parameters beyond N*(U_D) are treated like repeated data, decaying with R*_N. With one
epoch (U = D) the law is exactly Chinchilla wherever N <= N*(D); a model larger than
compute-optimal for its data is discounted even at one epoch, as in the paper.

Inputs: ``N`` parameters, ``D`` training tokens (all epochs) and ``U``, the number of
unique tokens. ``U`` has no default: the data must have a ``U`` column (a table without one
is refused with a DataError naming it). The data reader checks only that ``U`` is a finite
number (``U`` is not one of its canonical columns), so give positive values no larger
than ``D``: a ``U`` of zero makes the loss infinite and a negative one NaN, while a ``U``
above ``D`` (which can only come from rounding) is read as ``U = D``, one epoch.

Sampling parameterisation: Chinchilla's (``log_L_ref``, ``log_ratio_A``,
``log_ratio_B``, ``alpha``, ``beta``, with its priors; E, A and B are derived), plus
``log_R_star_D`` and ``log_R_star_N``, the logs of the decay constants. Everything is
evaluated in logs, with ``expm1`` and ``log1p`` so that one epoch gives D' = D to the last
bit and finite gradients.
"""

import math

import jax.numpy as jnp
import numpyro.distributions as dist
from bayescale.models.chinchilla import CHINCHILLA, LOG_D_REF, LOG_N_REF, _log_A, _log_B, _log_E
from jax.scipy.special import logsumexp

from bayescale.law import Law

# Beyond this many e-folds of repetition (R = e^60, past any R* by 20 orders of magnitude)
# the decay term exp(-R / R*) is exactly zero; capping there keeps R finite in float32,
# where an unbounded R would make the chain rule multiply zero by infinity.
_MAX_LOG_REPEAT = 60.0


def log_compute_optimal_N(p, log_D):
    """Log N*(D): the compute-optimal size for D tokens under the law's Chinchilla part.

    On the Chinchilla frontier N* = G (C/6)^(beta/(alpha+beta)) and D* = (C/6) / N*; solving
    D* = D for C/6 gives ``log N* = log G + (beta/alpha) (log G + log D)``, with
    ``log G = (log(alpha A) - log(beta B)) / (alpha + beta)``.

    Parameters
    ----------
    p : Mapping[str, jax.Array]
        The law's parameters.
    log_D : jax.Array
        Log of the number of tokens.

    Returns
    -------
    jax.Array
        log N*(D).
    """
    alpha, beta = p["alpha"], p["beta"]
    log_G = (jnp.log(alpha) + _log_A(p) - jnp.log(beta) - _log_B(p)) / (alpha + beta)
    return log_G + beta / alpha * (log_G + log_D)


def _log_effective(log_unique, log_total, log_R_star):
    """Log(U + U R* (1 - exp(-R / R*))) with R = total / U - 1 >= 0; exactly log U when R = 0."""
    repeats = jnp.expm1(jnp.minimum(log_total - log_unique, _MAX_LOG_REPEAT))
    R_star = jnp.exp(log_R_star)
    return log_unique + jnp.log1p(-R_star * jnp.expm1(-repeats / R_star))


def log_effective_tokens(p, x):
    """Log D': unique tokens plus the decayed worth of their repetitions.

    Parameters
    ----------
    p : Mapping[str, jax.Array]
        The law's parameters.
    x : Mapping[str, jax.Array]
        Inputs ``D`` and ``U``; ``U`` above ``D`` is read as ``D``.

    Returns
    -------
    jax.Array
        log D'.
    """
    log_D = jnp.log(x["D"])
    return _log_effective(jnp.minimum(jnp.log(x["U"]), log_D), log_D, p["log_R_star_D"])


def log_effective_params(p, x):
    """Log N': parameters up to N*(U) count in full, those beyond decay like repeated data.

    Parameters
    ----------
    p : Mapping[str, jax.Array]
        The law's parameters.
    x : Mapping[str, jax.Array]
        Inputs ``N``, ``D`` and ``U``.

    Returns
    -------
    jax.Array
        log N'.
    """
    log_N = jnp.log(x["N"])
    log_unique_D = jnp.minimum(jnp.log(x["U"]), jnp.log(x["D"]))
    log_unique_N = jnp.minimum(log_N, log_compute_optimal_N(p, log_unique_D))
    return _log_effective(log_unique_N, log_N, p["log_R_star_N"])


def log_mean(p, x):
    """Log expected loss: Chinchilla's three terms at N' and D', combined with logsumexp."""
    log_E = _log_E(p)
    log_terms = jnp.broadcast_arrays(
        log_E,
        log_E + p["log_ratio_A"] - p["alpha"] * (log_effective_params(p, x) - LOG_N_REF),
        log_E + p["log_ratio_B"] - p["beta"] * (log_effective_tokens(p, x) - LOG_D_REF),
    )
    return logsumexp(jnp.stack(log_terms), axis=0)


DATA_CONSTRAINED = Law(
    name="data_constrained",
    inputs=("N", "D", "U"),
    priors={
        **CHINCHILLA.priors,
        # Decay constants of repeated tokens and of excess parameters, on the log scale:
        # centred on the paper's fits, R*_D = 15.4 and R*_N = 5.3, with one e-fold of spread
        # (95% between 0.14 and 7 times the fitted value), since they were fitted on one
        # data set (C4) and one architecture.
        "log_R_star_D": dist.Normal(math.log(15.4), 1.0),
        "log_R_star_N": dist.Normal(math.log(5.3), 1.0),
    },
    log_mean=log_mean,
    derived={
        **CHINCHILLA.derived,
        "R_star_D": lambda p: jnp.exp(p["log_R_star_D"]),
        "R_star_N": lambda p: jnp.exp(p["log_R_star_N"]),
    },
    exponents=CHINCHILLA.exponents,
    formula="L(N, D, U) = E + A / N'^alpha + B / D'^beta, with D' and N' decaying over repetitions of U",
    reference="Muennighoff et al. (2023), Scaling Data-Constrained Language Models, eqs. (5)-(7)",
)
