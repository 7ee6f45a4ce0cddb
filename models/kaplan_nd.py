r"""Kaplan joint law  L(N, D) = [ (N_c / N)^(a_N / a_D) + D_c / D ]^a_D.

Kaplan et al. (2020), "Scaling Laws for Neural Language Models", eq. (1.5): loss of a
model of N parameters trained on D tokens, with early stopping; the loss tends to zero at
infinite scale (no irreducible term).

Sampling works with the logs of the two bracketed terms at the reference scale
N_ref = 1e9, D_ref = 2e10: ``u_ref = (a_N / a_D) log(N_c / N_ref)`` and
``v_ref = log(D_c / D_ref)``; N_c and D_c are derived. Kaplan's constants
(a_N = 0.076, a_D = 0.103, N_c = 6.4e13, D_c = 1.8e13) give u_ref = 8.2 and v_ref = 6.8.
"""

import math

import jax.numpy as jnp
import numpyro.distributions as dist

from bayescale.law import Law

LOG_N_REF = math.log(1e9)  # Python floats: exact in float64, no float32 constant
LOG_D_REF = math.log(2e10)


def log_mean(p, x):
    """Log expected loss: a_D times the logaddexp of the two bracketed terms' logs."""
    log_n_term = p["u_ref"] - p["aN"] / p["aD"] * (jnp.log(x["N"]) - LOG_N_REF)
    log_d_term = p["v_ref"] - (jnp.log(x["D"]) - LOG_D_REF)
    return p["aD"] * jnp.logaddexp(log_n_term, log_d_term)


KAPLAN_ND = Law(
    name="kaplan_nd",
    inputs=("N", "D"),
    priors={
        # Exponents of a law without a floor are small (Kaplan: 0.076, 0.103);
        # HalfNormal(0.3) allows ten times more.
        "aN": dist.HalfNormal(0.3),
        "aD": dist.HalfNormal(0.3),
        # Log bracketed terms at the reference scale; Normal(6, 4) spans Kaplan's values
        # (8.2, 6.8) with e^8 to spare either way.
        "u_ref": dist.Normal(6.0, 4.0),
        "v_ref": dist.Normal(6.0, 4.0),
    },
    log_mean=log_mean,
    derived={
        "Nc": lambda p: jnp.exp(LOG_N_REF + p["u_ref"] * p["aD"] / p["aN"]),
        "Dc": lambda p: jnp.exp(LOG_D_REF + p["v_ref"]),
    },
    exponents=("aN", "aD"),
    formula="L(N, D) = [(Nc / N)^(aN / aD) + Dc / D]^aD",
    reference="Kaplan et al. (2020), Scaling Laws for Neural Language Models, eq. (1.5)",
)
