r"""Kaplan law of size and steps  L(N, S) = (N_c / N)^a_N + (S_c / S)^a_S.

Kaplan et al. (2020), "Scaling Laws for Neural Language Models", eq. (1.6) (with S the
steps taken, the paper's S_min at the critical batch size): the loss of a model of N
parameters after S steps, for several runs of different sizes along their curves. The
parameters are shared by all runs; the model size tells the runs apart.

Sampling parameterisation: the two terms at a reference, N_ref = 1e9 parameters and
S_ref = 1e4 steps, as a level ``log_L_ref`` (log of their sum) and ``log_ratio`` (log of
the N-term over the S-term), with the exponents; N_c and S_c are derived.
"""

import math

import jax.numpy as jnp
import numpyro.distributions as dist

from bayescale.law import Law, split_level

LOG_N_REF = math.log(1e9)  # Python floats: exact in float64, no float32 constant
LOG_S_REF = math.log(1e4)


def _log_terms_at_ref(p):
    """Log of the N-term and of the S-term at the reference."""
    log_s, log_n = split_level(p["log_L_ref"], p["log_ratio"])
    return log_n, log_s


def log_mean(p, x):
    """Log expected loss: logaddexp of the two power-law terms' logs."""
    log_n, log_s = _log_terms_at_ref(p)
    return jnp.logaddexp(
        log_n - p["aN"] * (jnp.log(x["N"]) - LOG_N_REF),
        log_s - p["aS"] * (jnp.log(x["step"]) - LOG_S_REF),
    )


KAPLAN_NS = Law(
    name="kaplan_ns",
    inputs=("N", "step"),
    priors={
        # Loss at the reference: 95% between 0.08 and 33 (nats or error rates).
        "log_L_ref": dist.Normal(0.5, 1.5),
        # N-term over S-term at the reference: 95% within 20 times either way.
        "log_ratio": dist.Normal(0.0, 1.5),
        # Exponents of a law without a floor are small (Kaplan: a_N = 0.076, a_S = 0.76);
        # HalfNormal(0.5) covers both with room.
        "aN": dist.HalfNormal(0.5),
        "aS": dist.HalfNormal(0.5),
    },
    log_mean=log_mean,
    derived={
        "Nc": lambda p: jnp.exp(LOG_N_REF + _log_terms_at_ref(p)[0] / p["aN"]),
        "Sc": lambda p: jnp.exp(LOG_S_REF + _log_terms_at_ref(p)[1] / p["aS"]),
    },
    exponents=("aN", "aS"),
    level="log_L_ref",
    formula="L(N, S) = (Nc / N)^aN + (Sc / S)^aS",
    reference="Kaplan et al. (2020), Scaling Laws for Neural Language Models, eq. (1.6)",
)
