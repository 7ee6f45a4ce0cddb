r"""Power law in the time since an unknown origin: L = E + A (x - x0)^-alpha.

A run's log rarely starts where its power law does. Under a learning-rate warmup the
optimiser travels less in the first steps than their count says (Luo et al. 2025 add the
warmup's area S_W to the forward area for this reason: L = L0 + A (S1 + S_W)^-alpha),
and a run resumed or logged from a later step counts steps from elsewhere. Fitted from
the first checkpoints of such a run, ``pow3`` bends too early and puts the final loss too
high; shifting the origin to x0 straightens it. This is Domhan et al.'s ``pow4``,
c - (a x + b)^-alpha, with b allowed below zero, which the catalogue's ``pow4`` is not.

The origin lies between step 0 and the run's first checkpoint: x0 = origin * x_first,
``x_first`` the run's first checkpoint (in units of the reference step), and ``origin``
uniform on (0, 1) a priori: nothing is assumed about where the clock started, except that
it started before the first loss was logged. (Below its first checkpoint, where a run has
none, the origin moves with x, x0 = origin * min(x_first, x), so that the law is defined
for every x > 0.)

Sampled like the Domhan families: the loss at x = 1 split into floor and reducible part,
so the reducible part is R ((x - x0) / (1 - x0))^-alpha. Each run has its own origin.
"""

import jax.numpy as jnp
import numpyro.distributions as dist
from bayescale.models.domhan import EXPONENT, LEVEL, RATIO

from bayescale.law import Law, split_level


def log_shifted(origin, x, x_first):
    """log(x - x0) with x0 = origin * min(x_first, x), finite for origin < 1."""
    return jnp.log(x) + jnp.log1p(-origin * jnp.minimum(x_first / x, 1.0))


def log_mean(p, x):
    """log(E + R ((x - x0) / (1 - x0))^-alpha)."""
    log_floor, log_reducible = split_level(p["log_L_ref"], p["log_ratio"])
    shift = log_shifted(p["origin"], x["x"], x["x_first"]) - log_shifted(p["origin"], 1.0, x["x_first"])
    return jnp.logaddexp(log_floor, log_reducible - p["alpha"] * shift)


POW3_SHIFT = Law(
    name="pow3_shift",
    inputs=("x", "x_first"),
    priors={
        "log_L_ref": LEVEL,
        "log_ratio": RATIO,
        "alpha": EXPONENT,
        # Where the power law's clock starts, as a fraction of the first checkpoint.
        "origin": dist.Beta(1.0, 1.0),
    },
    log_mean=log_mean,
    derived={"E": lambda p: jnp.exp(split_level(p["log_L_ref"], p["log_ratio"])[0])},
    exponents=("alpha",),
    per_run=("log_L_ref", "log_ratio", "origin"),
    level="log_L_ref",
    formula="L(x) = E + A (x - x0)^-alpha, 0 <= x0 < x_first",
    reference="Luo et al. (2025), A Multi-Power Law for Loss Curve Prediction, eq. (1) with warmup area S_W; "
    "Domhan et al. (2015), pow4",
)
