r"""M4: the learning-curve law of Alabdulmohsin, Neyshabur and Zhai (2022).

"Revisiting Neural Scaling Laws in Language and Vision" (NeurIPS 2022) extrapolate a
curve with the implicit law

    (L - L_inf) / (L_0 - L)^alpha = beta x^-c,

a loss that falls from its start L_0 toward its floor L_inf: far from the start it is the
power law L_inf + beta (L_0 - L_inf)^alpha x^-c (``pow3``), and alpha sets how sharply
it leaves the start (alpha = 1 is the logistic in log x of ``log_power`` and ``mmf``).
Their benchmark's language-model curves are the reference of this package's
extrapolation benchmark.

Written with u = (L - L_inf) / (L_0 - L_inf), the fraction of the fall from L_0 still
ahead, the law is u / (1 - u)^alpha = K x^-c, or with z = logit(u)

    h(z) = alpha softplus(z) - softplus(-z) = log K - c log x,

where h rises strictly from -inf to +inf (slope between 1 and alpha), so each x has one
z, found here by Newton's method from the asymptote on the root's own side (h is convex
for alpha > 1 and concave below, so the iterates close in from that side without
overshooting). Gradients come from one more Newton step taken outside the loop, which at
the root is the implicit function theorem's derivative, without differentiating the loop.

Sampled like the Domhan families, anchored at the last observed point x = 1: the level
and the floor-to-reducible ratio there (per run), and ``logit_ahead`` = z at x = 1 (per
run) in place of L_0 and beta; the shape (alpha, c) is shared by pooled runs.
"""

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from bayescale.models.domhan import EXPONENT, LEVEL, RATIO

from bayescale.law import Law, split_level

# Newton iterations: from the asymptote on the root's side, 6 (and the differentiable
# last step) reach float64 precision for alpha within (0.02, 50), beyond the prior's
# 99.9% range, and |log K - c log x| up to 80; 12 leave a margin.
NEWTON_STEPS = 12


def _h(z, alpha):
    return alpha * jax.nn.softplus(z) - jax.nn.softplus(-z)


def _newton_step(z, alpha, target):
    return z - (_h(z, alpha) - target) / (alpha * jax.nn.sigmoid(z) + jax.nn.sigmoid(-z))


def solve_logit(target, alpha):
    """Return z with alpha softplus(z) - softplus(-z) = target, differentiable in both."""
    fixed_target, fixed_alpha = jax.lax.stop_gradient(target), jax.lax.stop_gradient(alpha)
    # Both asymptotes (h ~ z left, h ~ alpha z right) lie on the root's convex side.
    start = jnp.where(fixed_target < 0, fixed_target, fixed_target / fixed_alpha)
    root = jax.lax.fori_loop(0, NEWTON_STEPS, lambda _, z: _newton_step(z, fixed_alpha, fixed_target), start)
    return _newton_step(jax.lax.stop_gradient(root), alpha, target)


def _log_floor_and_start(p):
    """Return log L_inf and log L_0."""
    log_floor, log_reducible = split_level(p["log_L_ref"], p["log_ratio"])
    # L_0 - L_inf = (L(1) - L_inf) / u(1), and log u = -softplus(-z).
    return log_floor, jnp.logaddexp(log_floor, log_reducible + jax.nn.softplus(-p["logit_ahead"]))


def log_mean(p, x):
    """log(L_inf + (L(1) - L_inf) u(x) / u(1))."""
    log_floor, log_reducible = split_level(p["log_L_ref"], p["log_ratio"])
    target = _h(p["logit_ahead"], p["alpha"]) - p["c"] * jnp.log(x["x"])
    logit = solve_logit(target, p["alpha"])
    log_fraction = jax.nn.softplus(-p["logit_ahead"]) - jax.nn.softplus(-logit)
    return jnp.logaddexp(log_floor, log_reducible + log_fraction)


M4 = Law(
    name="m4",
    inputs=("x",),
    priors={
        "log_L_ref": LEVEL,
        "log_ratio": RATIO,
        # How sharply the curve leaves its start: centred on the logistic (alpha = 1),
        # 95% in (0.14, 7.1); toward 0 the law is a plain power law.
        "alpha": dist.LogNormal(0.0, 1.0),
        # The late power-law exponent, as pow3's.
        "c": EXPONENT,
        # logit of the fraction of the fall from L_0 still ahead at the last checkpoint:
        # a run is extrapolated once it has come most of the way down from its start, so
        # Normal(-3, 2) centres that fraction on 5%, with 95% between 0.1% and 73%.
        "logit_ahead": dist.Normal(-3.0, 2.0),
    },
    log_mean=log_mean,
    derived={
        "E": lambda p: jnp.exp(_log_floor_and_start(p)[0]),
        "L0": lambda p: jnp.exp(_log_floor_and_start(p)[1]),
    },
    exponents=("alpha", "c"),
    per_run=("log_L_ref", "log_ratio", "logit_ahead"),
    level="log_L_ref",
    formula="(L - E) / (L0 - L)^alpha = beta x^-c",
    reference="Alabdulmohsin, Neyshabur and Zhai (2022), Revisiting Neural Scaling Laws in Language and Vision (M4)",
)
