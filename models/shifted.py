r"""Learning-curve families in the time since an unknown origin: L = f(x - x0).

A run's log rarely starts where its curve does. Under a learning-rate warmup the
optimiser travels less in the first steps than their count says (Luo et al. 2025 add the
warmup's area S_W to the forward area for this reason: L = L0 + A (S1 + S_W)^-alpha),
and a run resumed or logged from a later step counts steps from elsewhere. Fitted from
the first checkpoints of such a run, a family whose clock starts at step 0 reads the
early, steep stretch as a bend and puts the final loss too high; shifting the origin to
x0 straightens it. ``pow3_shift`` is Domhan et al.'s ``pow4``, c - (a x + b)^-alpha, with
b allowed below zero, which the catalogue's ``pow4`` is not.

The origin lies between step 0 and the run's first checkpoint: x0 = origin * x_first,
``x_first`` the run's first checkpoint (in units of the reference step), and ``origin``
uniform on (0, 1) a priori: nothing is assumed about where the clock started, except that
it started before the first loss was logged. (Below its first checkpoint, where a run has
none, the origin moves with x, x0 = origin * min(x_first, x), so that the law is defined
for every x > 0.) A family is evaluated at (x - x0) / (1 - x0), so that x = 1 stays its
reference point and its level and shape parameters keep their meaning and priors. With
origin -> 0 each law is its unshifted family. Each run has its own origin.
"""

import dataclasses

import jax.numpy as jnp
import numpyro.distributions as dist
from bayescale.models.domhan import ILOG2, JANOSCHEK, POW3, VAPOR_PRESSURE, WEIBULL

from bayescale.law import Law

#: Where a run's clock starts, as a fraction of its first checkpoint.
ORIGIN = dist.Beta(1.0, 1.0)

SHIFT_REFERENCE = (
    "Luo et al. (2025), A Multi-Power Law for Loss Curve Prediction, eq. (1) with warmup area S_W; "
    "Domhan et al. (2015), pow4"
)


def log_shifted(origin, x, x_first):
    """log(x - x0) with x0 = origin * min(x_first, x), finite for origin < 1."""
    return jnp.log(x) + jnp.log1p(-origin * jnp.minimum(x_first / x, 1.0))


def with_origin(law: Law) -> Law:
    """Return ``law`` in the time since an origin between step 0 and the first checkpoint.

    Parameters
    ----------
    law : Law
        A single-run family of ``x`` with its reference point at x = 1.

    Returns
    -------
    Law
        ``{law.name}_shift``: one more per-run parameter, ``origin``, and one more input,
        ``x_first``.
    """

    def log_mean(p, x):
        log_time = log_shifted(p["origin"], x["x"], x["x_first"]) - log_shifted(p["origin"], 1.0, x["x_first"])
        return law.log_mean(p, {**x, "x": jnp.exp(log_time)})

    return dataclasses.replace(
        law,
        name=f"{law.name}_shift",
        inputs=(*law.inputs, "x_first"),
        priors={**law.priors, "origin": ORIGIN},
        log_mean=log_mean,
        per_run=(*law.per_run, "origin"),
        formula=f"{law.formula}, x counted from x0, 0 <= x0 < x_first",
        reference=f"{law.reference}; origin: {SHIFT_REFERENCE}",
    )


POW3_SHIFT = dataclasses.replace(
    with_origin(POW3), formula="L(x) = E + A (x - x0)^-alpha, 0 <= x0 < x_first", reference=SHIFT_REFERENCE
)
SHIFTED_FAMILIES = (POW3_SHIFT, *(with_origin(law) for law in (JANOSCHEK, WEIBULL, ILOG2, VAPOR_PRESSURE)))
