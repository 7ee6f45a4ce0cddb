r"""Chinchilla law  L(N, D) = E + A / N^alpha + B / D^beta.

Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", eq. (2);
refit by Besiroglu et al. (2024), "Chinchilla Scaling: A replication attempt".

Sampling parameterisation. At a reference scale, N_ref = 1e9 parameters and D_ref = 2e10
tokens (1B parameters at 20 tokens per parameter, the middle of public model ladders), the
law is a level split into three shares:

    L(N_ref, D_ref) = E + A_ref + B_ref,   A_ref = A N_ref^-alpha,   B_ref = B D_ref^-beta,

sampled as ``log_L_ref`` (log of that level), ``log_ratio_A = log(A_ref / E)`` and
``log_ratio_B = log(B_ref / E)``, with the exponents. The level is what every dataset pins
down; in the paper's (E, A, B) the posterior has a tail in which E falls while A and B
grow, and its curvature grows along it until NUTS diverges. Split into level and shares
it is close to Gaussian. The paper's E, A and B are derived.

The compute-optimal split under ``C = 6 N D`` has a closed form:
``N*(C) = G (C/6)^(beta/(alpha+beta))`` with ``G = (alpha A / (beta B))^(1/(alpha+beta))``.
"""

import math

import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import logsumexp

from bayescale.law import Law

LOG_N_REF = math.log(1e9)  # Python floats: exact in float64, no float32 constant
LOG_D_REF = math.log(2e10)


def _log_E(p):
    """Log E: the level minus the log of the shares' total, 1 + A_ref/E + B_ref/E."""
    shares = jnp.broadcast_arrays(jnp.zeros_like(p["log_ratio_A"]), p["log_ratio_A"], p["log_ratio_B"])
    return p["log_L_ref"] - logsumexp(jnp.stack(shares), axis=0)


def _log_A(p):
    return _log_E(p) + p["log_ratio_A"] + p["alpha"] * LOG_N_REF


def _log_B(p):
    return _log_E(p) + p["log_ratio_B"] + p["beta"] * LOG_D_REF


def log_mean(p, x):
    """Log expected loss: logsumexp of the three terms' logs, finite for any N, D > 0."""
    log_E = _log_E(p)
    log_terms = jnp.broadcast_arrays(
        log_E,
        log_E + p["log_ratio_A"] - p["alpha"] * (jnp.log(x["N"]) - LOG_N_REF),
        log_E + p["log_ratio_B"] - p["beta"] * (jnp.log(x["D"]) - LOG_D_REF),
    )
    return logsumexp(jnp.stack(log_terms), axis=0)


def optimal_log_N(p, log_C):
    """Closed-form log N*(C): minimise A N^-alpha + B (C / 6N)^-beta over N."""
    log_G = (jnp.log(p["alpha"]) + _log_A(p) - jnp.log(p["beta"]) - _log_B(p)) / (p["alpha"] + p["beta"])
    return log_G + p["beta"] / (p["alpha"] + p["beta"]) * (log_C - jnp.log(6.0))


CHINCHILLA = Law(
    name="chinchilla",
    inputs=("N", "D"),
    priors={
        # Loss at the reference scale: Normal(0.5, 1.5) puts 95% of it between 0.08 and 33,
        # any loss in nats or any error rate; every dataset pins it down.
        "log_L_ref": dist.Normal(0.5, 1.5),
        # Each reducible term against the irreducible loss at the reference scale: 95%
        # between 1/20 and 20 times E.
        "log_ratio_A": dist.Normal(0.0, 1.5),
        "log_ratio_B": dist.Normal(0.0, 1.5),
        # Exponents: published values lie between about 0.05 and 0.8; Beta(2, 4) covers
        # that range (90% in 0.08-0.66) and excludes exponents at or above 1.
        "alpha": dist.Beta(2.0, 4.0),
        "beta": dist.Beta(2.0, 4.0),
    },
    log_mean=log_mean,
    derived={
        "E": lambda p: jnp.exp(_log_E(p)),
        "A": lambda p: jnp.exp(_log_A(p)),
        "B": lambda p: jnp.exp(_log_B(p)),
    },
    exponents=("alpha", "beta"),
    optimal_log_N=optimal_log_N,
    formula="L(N, D) = E + A / N^alpha + B / D^beta",
    reference="Hoffmann et al. (2022), Training Compute-Optimal Large Language Models, eq. (2)",
)
