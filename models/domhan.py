r"""Learning-curve families of Domhan, Springenberg and Hutter (2015), adapted to losses.

Domhan et al., "Speeding up Automatic Hyperparameter Optimization of Deep Neural Networks
by Extrapolation of Learning Curves" (IJCAI 2015), Table 1, extrapolate a run's curve with
an ensemble of saturating families written for increasing accuracy. Here they are turned
into decreasing losses (a floor E plus a reducible term that falls with training):

=================  ==================================================
``pow3``           L = E + A x^-alpha
``pow4``           L = E + A (x + x0)^-alpha
``log_power``      L = E + A / (1 + (x / x0)^alpha)
``exp4``           L = E + A exp(-a x^alpha)
``janoschek``      L = E + (L0 - E) exp(-kappa x^delta)
``weibull``        L = E + (L0 - E) exp(-(kappa x)^delta)
``mmf``            L = E + (L0 - E) / (1 + (kappa x)^delta)
``ilog2``          L = E + A / log(1 + x / x0)
``vapor_pressure`` L = exp(a + b / x + c log x)
=================  ==================================================

The input ``x`` is training progress in units of the fit's reference step (the longest
observed run: x = 1 at the last checkpoint seen, 4 at four times as many steps), so that
every prior below is stated without units and holds for steps, tokens or epochs alike.

Sampling parameterisation: the families with a floor are sampled, like ``chinchilla``,
as the loss at x = 1 (``log_L_ref``) split into the floor and the reducible part
(``log_ratio`` = log of reducible over floor at x = 1), with shape parameters on the log
scale. Janoschek, Weibull and MMF are written by Domhan et al. from the loss at the start,
L0 = L(0); that value lies before the first checkpoint, and sampling through it put the
chains in a ridge where L0 and the rate grow together (hundreds of divergences on
simulated curves), so they too are anchored at x = 1 and keep their rate kappa and
exponent delta. Some rows then share a function and differ only by their parameters and
priors: Janoschek and Weibull are exp4 (with a = kappa and a = kappa^delta), and MMF is
log_power (x0 = 1 / kappa). A curve that has not bent much constrains the rate and the
exponent together, along a ridge, and the prior chooses the point on it, so each is kept
as a forecast of its own; a stack's weights on Janoschek and Weibull are two readings of
one function. When several runs are fitted together each has its own level and floor,
and the shape parameters are shared.
"""

import jax.numpy as jnp
import numpyro.distributions as dist

from bayescale.law import Law, split_level

REFERENCE = "Domhan et al. (2015), Speeding up Automatic Hyperparameter Optimization ..., Table 1"

# Shared priors, with their reasoning.
LEVEL = dist.Normal(0.5, 1.5)  # log loss at the last observed point: 0.08-33 (95%), any loss
RATIO = dist.Normal(0.0, 1.5)  # reducible / floor at x = 1: 1/20 to 20 (95%)
EXPONENT = dist.LogNormal(jnp.log(0.5), 0.75)  # curve exponents: median 0.5, 95% in 0.12-2.2
TRANSITION = dist.Normal(jnp.log(0.05), 2.0)  # log of where the curve bends: 1e-3 to 2.7 of x (95%)
# Rate of the Janoschek, Weibull and MMF curves: they turn over where kappa x (Weibull,
# MMF) or kappa x^delta (Janoschek) reaches 1; Normal(log 20, 2.5) puts that between about
# 1e-3 and 1.5 of x.
RATE = dist.Normal(jnp.log(20.0), 2.5)


def _floor_and_reducible(p):
    """Log E and log of the reducible part at x = 1, from the level and the ratio."""
    return split_level(p["log_L_ref"], p["log_ratio"])


def _end_anchored(name, log_shape, shape_priors, formula):
    """Return a family L = E + R(1) g(x) / g(1) with the loss at x = 1 as its level.

    ``log_shape(p, x)`` is log g(x) - log g(1); it is 0 at x = 1.
    """

    def log_mean(p, x):
        log_floor, log_reducible = _floor_and_reducible(p)
        return jnp.logaddexp(log_floor, log_reducible + log_shape(p, x["x"]))

    priors = {"log_L_ref": LEVEL, "log_ratio": RATIO, **shape_priors}
    return Law(
        name=name,
        inputs=("x",),
        priors=priors,
        log_mean=log_mean,
        derived={"E": lambda p: jnp.exp(_floor_and_reducible(p)[0])},
        exponents=tuple(name for name in shape_priors if name in ("alpha", "delta")),
        per_run=("log_L_ref", "log_ratio"),
        level="log_L_ref",
        formula=formula,
        reference=REFERENCE,
    )


POW3 = _end_anchored("pow3", lambda p, x: -p["alpha"] * jnp.log(x), {"alpha": EXPONENT}, "L(x) = E + A x^-alpha")
POW4 = _end_anchored(
    "pow4",
    lambda p, x: -p["alpha"] * (jnp.logaddexp(jnp.log(x), p["log_x0"]) - jnp.logaddexp(0.0, p["log_x0"])),
    {"alpha": EXPONENT, "log_x0": TRANSITION},
    "L(x) = E + A (x + x0)^-alpha",
)
LOG_POWER = _end_anchored(
    "log_power",
    lambda p, x: (
        jnp.logaddexp(0.0, -p["alpha"] * p["log_x0"]) - jnp.logaddexp(0.0, p["alpha"] * (jnp.log(x) - p["log_x0"]))
    ),
    {"alpha": EXPONENT, "log_x0": TRANSITION},
    "L(x) = E + A / (1 + (x / x0)^alpha)",
)
EXP4 = _end_anchored(
    "exp4",
    # exp(-a x^alpha) / exp(-a): log a ~ Normal(0, 1.5) lets the curve saturate anywhere
    # from well before x = 1 to well after.
    lambda p, x: -jnp.exp(p["log_a"]) * (jnp.exp(p["alpha"] * jnp.log(x)) - 1.0),
    {"alpha": EXPONENT, "log_a": dist.Normal(0.0, 1.5)},
    "L(x) = E + A exp(-a x^alpha)",
)
ILOG2 = _end_anchored(
    "ilog2",
    lambda p, x: jnp.log(jnp.log1p(jnp.exp(-p["log_x0"]))) - jnp.log(jnp.log1p(x * jnp.exp(-p["log_x0"]))),
    {"log_x0": TRANSITION},
    "L(x) = E + A / log(1 + x / x0)",
)
JANOSCHEK = _end_anchored(
    "janoschek",
    lambda p, x: -jnp.exp(p["log_kappa"]) * (jnp.exp(p["delta"] * jnp.log(x)) - 1.0),
    {"delta": EXPONENT, "log_kappa": RATE},
    "L(x) = E + (L0 - E) exp(-kappa x^delta)",
)
WEIBULL = _end_anchored(
    "weibull",
    lambda p, x: jnp.exp(p["delta"] * p["log_kappa"]) * (1.0 - jnp.exp(p["delta"] * jnp.log(x))),
    {"delta": EXPONENT, "log_kappa": RATE},
    "L(x) = E + (L0 - E) exp(-(kappa x)^delta)",
)
MMF = _end_anchored(
    "mmf",
    lambda p, x: (
        jnp.logaddexp(0.0, p["delta"] * p["log_kappa"]) - jnp.logaddexp(0.0, p["delta"] * (p["log_kappa"] + jnp.log(x)))
    ),
    {"delta": EXPONENT, "log_kappa": RATE},
    "L(x) = E + (L0 - E) / (1 + (kappa x)^delta)",
)


def _vapor_pressure_log_mean(p, x):
    # log L = a + b / x + c log x, with a fixed by the loss at x = 1: a = log_L_ref - b.
    return p["log_L_ref"] + p["b"] * (1.0 / x["x"] - 1.0) + p["c"] * jnp.log(x["x"])


VAPOR_PRESSURE = Law(
    name="vapor_pressure",
    inputs=("x",),
    priors={
        "log_L_ref": LEVEL,
        # b: excess log loss early on (b / x); a loss curve starts high, so b > 0 is
        # expected but not imposed: 95% of Normal(0.1, 0.5) lies in (-0.9, 1.1).
        "b": dist.Normal(0.1, 0.5),
        # c: power-law slope of the loss in x late in training; negative for a falling curve.
        "c": dist.Normal(-0.2, 0.5),
    },
    log_mean=_vapor_pressure_log_mean,
    per_run=("log_L_ref",),
    level="log_L_ref",
    formula="L(x) = exp(a + b / x + c log x)",
    reference=REFERENCE,
)

CURVE_FAMILIES = (POW3, POW4, LOG_POWER, EXP4, JANOSCHEK, WEIBULL, MMF, ILOG2, VAPOR_PRESSURE)
