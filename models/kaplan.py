r"""Kaplan single-variable laws  L(X) = (X_c / X)^a_X, and with an irreducible term  E + (X_c / X)^a_X.

Kaplan et al. (2020), "Scaling Laws for Neural Language Models", eqs. (1.1)-(1.3):
loss against parameters N (``kaplan_n``), tokens D (``kaplan_d``) or compute C
(``kaplan_c``), each when the other resources do not bind. The ``_e`` variants add the
irreducible loss E that later work (Henighan et al. 2020; Hoffmann et al. 2022) found
necessary over wider ranges.

Sampling parameterisation: ``log_L_ref``, the log loss at a reference scale
(N_ref = 1e9, D_ref = 2e10, C_ref = 6 N_ref D_ref), where it is nearly independent of the
exponent; with E, also ``log_ratio = log((X_c / X_ref)^a_X / E)``, the power-law term
against the floor there (see ``chinchilla.py`` for why level and shares sample well).
The paper's X_c (and E) are derived.
"""

import math

import jax.numpy as jnp
import numpyro.distributions as dist

from bayescale.law import Law, split_level

REFERENCE = {"N": 1e9, "D": 2e10, "C": 6 * 1e9 * 2e10}


def _power_law(variable: str, with_floor: bool) -> Law:
    """Return the Kaplan law in one variable, with or without the irreducible term E."""
    exponent = f"a{variable}"
    log_ref = math.log(REFERENCE[variable])

    def log_E(p):
        return split_level(p["log_L_ref"], p["log_ratio"])[0]

    def log_term_at_ref(p):
        return log_E(p) + p["log_ratio"] if with_floor else p["log_L_ref"]

    def log_mean(p, x):
        log_term = log_term_at_ref(p) - p[exponent] * (jnp.log(x[variable]) - log_ref)
        return jnp.logaddexp(log_E(p), log_term) if with_floor else log_term

    priors = {
        # Loss at the reference scale: 95% between 0.08 and 33 (nats or error rates).
        "log_L_ref": dist.Normal(0.5, 1.5),
        # Exponents: Kaplan's pure power laws give 0.05-0.1 (a_C, a_N, a_D); with E the
        # fitted exponents are larger (0.3 or so). HalfNormal(0.3) covers both.
        exponent: dist.HalfNormal(0.3),
    }
    derived = {f"{variable}c": lambda p: jnp.exp(log_ref + log_term_at_ref(p) / p[exponent])}
    if with_floor:
        # The power-law term against E at the reference scale: 95% within 20 times either way.
        priors["log_ratio"] = dist.Normal(0.0, 1.5)
        derived["E"] = lambda p: jnp.exp(log_E(p))
    name = f"kaplan_{variable.lower()}" + ("_e" if with_floor else "")
    floor = "E + " if with_floor else ""
    return Law(
        name=name,
        inputs=(variable,),
        priors=priors,
        log_mean=log_mean,
        derived=derived,
        exponents=(exponent,),
        formula=f"L({variable}) = {floor}({variable}c / {variable})^{exponent}",
        reference="Kaplan et al. (2020), Scaling Laws for Neural Language Models, eqs. (1.1)-(1.3)",
    )


KAPLAN_N = _power_law("N", with_floor=False)
KAPLAN_D = _power_law("D", with_floor=False)
KAPLAN_C = _power_law("C", with_floor=False)
KAPLAN_N_E = _power_law("N", with_floor=True)
KAPLAN_D_E = _power_law("D", with_floor=True)
KAPLAN_C_E = _power_law("C", with_floor=True)
