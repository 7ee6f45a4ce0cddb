r"""Broken neural scaling law  L(C) = E + b C^-c0 prod_i (1 + (C / d_i)^(1/f_i))^(-c_i f_i).

Caballero et al. (2022), "Broken Neural Scaling Laws", arXiv:2210.14891, eq. (1), in one
variable, the training compute C in FLOPs (the paper's x; its floor a is ``E`` here). Far
below a break d_i the break's factor is 1; far above it the exponent of the power law
changes by c_i, so the law is a chain of power-law segments with exponents c0, c0 + c1,
c0 + c1 + c2, ..., each joined to the next over about f_i e-folds of compute on either
side of d_i. A negative c_i flattens the curve after its break; with c0 + c1 < 0 the loss
turns up again (inverse or U-shaped scaling), which the priors allow. ``bnsl`` has one
break, ``bnsl2`` two.

Sampling parameterisation, as in ``kaplan.py``: a level ``log_L_ref`` at the reference
compute C_ref = 6 N_ref D_ref = 1.2e20 FLOPs and ``log_ratio``, the log of the reducible
term R over the floor there, split with :func:`~bayescale.law.split_level`; R is
normalised at C_ref, so that only its shape depends on the exponents and the breaks.
With u = log C - log C_ref, u_i = log d_i - log C_ref and softplus(t) = log(1 + e^t),

    log R(C) = log R_ref - c0 u - sum_i c_i [f_i softplus((u - u_i) / f_i) - w softplus(-u_i / w)],

finite for any C > 0 and any sharpness, and computed from differences to the reference
so that float32 loses nothing to the size of log C (about 46). The anchor terms use a
fixed rounding w = 0.5 e-folds rather than each break's own f_i: ``log_L_ref`` is the
loss at C_ref of the segments' asymptotes rounded over half an e-fold, which is the loss
at C_ref itself unless a break lies within about two e-folds of it, and differs from it
by at most sum_i |c_i| |w - f_i| log 2 in any case. Anchored with f_i, a sharp break makes
the normalisation, and so every parameter's effect on the curve, switch over f_i
e-folds as it moves past C_ref or near it; recovery fits of ``bnsl2`` then diverged in 6
of 10 seeds, against 1 of 10 anchored with w = 0.5 (8 of 10 passed with w = 1, 4 with
w = 2, where the anchor couples to breaks far from C_ref).

The first break is sampled in log FLOPs (``log_d1``) and the second as a positive gap
after it (``log_d2 = log_d1 + log_gap``), so the breaks cannot swap places and make the
posterior bimodal; the sharpness f_i (in e-folds of C) is sampled on the log scale
through its LogNormal prior. The paper's constant b, the floor E and the break locations
``C_break`` (and ``C_break2``) in FLOPs are derived.

Identifiability. A break is seen only through data on both sides of it, where the
reducible term still dominates the loss, and the priors are chosen so that their typical
curve has such a break: a sharp steepening about a decade below C_ref (see the comments
on ``c_i``, ``f_i`` and ``log_d1``). Loosen them with
:meth:`~bayescale.law.Law.with_priors` (e.g. ``f1=dist.LogNormal(math.log(0.5), 1.0)`` for
smooth bends) only when the data are dense and precise enough to tell a smooth break from
the floor's own bend; on a four-decade ladder with 2% noise they are not (see the comment
on ``f_i``), and the fit reports divergences.
"""

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from bayescale.law import Law, split_level

LOG_C_REF = math.log(6 * 1e9 * 2e10)  # Python floats: exact in float64, no float32 constant
LOG_C_BREAK = math.log(1e19)  # centre of the breaks' prior (see the priors)
LOG_GAP_MEDIAN = math.log(10.0)  # median distance between two breaks: a decade
ANCHOR_ROUNDING = 0.5  # w: rounding of the breaks' corners in the anchor at C_ref, in e-folds


def _log_breaks(p, num_breaks):
    """Log d_i of each break, in order: the first, and the second a positive gap further."""
    return [p["log_d1"], p["log_d1"] + p["log_gap"]] if num_breaks == 2 else [p["log_d1"]]


def _log_shape(p, u, num_breaks):
    """Log of R(C) / R_ref at u = log C - log C_ref: the power law and its breaks, anchored at C_ref."""
    total = -p["c0"] * u
    for i, log_d in enumerate(_log_breaks(p, num_breaks), start=1):
        f, u_i = p[f"f{i}"], log_d - LOG_C_REF
        total = total - p[f"c{i}"] * (
            f * jax.nn.softplus((u - u_i) / f) - ANCHOR_ROUNDING * jax.nn.softplus(-u_i / ANCHOR_ROUNDING)
        )
    return total


def _broken_power_law(num_breaks: int) -> Law:
    """Build the BNSL in compute with ``num_breaks`` breaks (1 or 2)."""

    def log_floor_and_reducible(p):
        """Log E and log R_ref, from the level and the ratio at the reference."""
        return split_level(p["log_L_ref"], p["log_ratio"])

    def log_mean(p, x):
        """Log expected loss: logaddexp of the floor and the reducible term."""
        log_E, log_R_ref = log_floor_and_reducible(p)
        return jnp.logaddexp(log_E, log_R_ref + _log_shape(p, jnp.log(x["C"]) - LOG_C_REF, num_breaks))

    def log_b(p):
        """Log b: eq. (1) at C_ref, log R(C_ref) = log b - c0 log C_ref - sum_i c_i f_i softplus(-u_i / f_i)."""
        log_R_at_ref = log_floor_and_reducible(p)[1] + _log_shape(p, 0.0, num_breaks)
        terms = sum(
            p[f"c{i}"] * p[f"f{i}"] * jax.nn.softplus((LOG_C_REF - log_d) / p[f"f{i}"])
            for i, log_d in enumerate(_log_breaks(p, num_breaks), start=1)
        )
        return log_R_at_ref + p["c0"] * LOG_C_REF + terms

    priors = {
        # Loss at the reference compute: 95% between 0.08 and 33 (nats or error rates).
        "log_L_ref": dist.Normal(0.5, 1.5),
        # Reducible term against the floor at the reference: 95% within 20 times either way.
        "log_ratio": dist.Normal(0.0, 1.5),
        # Exponent before the first break: compute exponents of losses with a floor are
        # about 0.05-0.5 (Kaplan's a_C = 0.05 without a floor, 0.3 or so with one), so the
        # prior favours positive values, but a segment that rises from the start (inverse
        # scaling; Caballero et al. fit several) keeps 16% of the mass below zero.
        "c0": dist.Normal(0.3, 0.3),
    }
    for i in range(1, num_breaks + 1):
        # Change of exponent at the break: centred on a steepening by 0.3 (the break out of
        # a slow regime into a faster one, as when a ladder leaves the random-guess plateau
        # or an ability emerges: the kind of break BNSL was introduced for), with either
        # sign allowed: a flattening (c_i < 0) keeps 16% of the mass, and inverse or
        # U-shaped scaling (c0 + c1 < 0, sd 0.42 around 0.6) 8%. Not centred on zero: a
        # prior whose typical curve has no break leaves the break's place unidentified,
        # below or above the data (c_i free there) or inside them (c_i pinned at zero), a
        # bimodal posterior with a funnel between the modes: recovery fits of data simulated
        # at c1 = 0 (the mean of a prior centred there) gave 176-1776 divergences and R-hat
        # up to 1.6, for every prior width of c1 (0.3, 0.5) and log_d1 (2-7 e-folds) tried.
        priors[f"c{i}"] = dist.Normal(0.3, 0.3)
        # Sharpness: the segments join over about f_i e-folds of compute on either side of
        # the break. Median 0.1, 95% within 0.05-0.22 e-folds: breaks sharp at the spacing
        # of a ladder's budgets (a run every 0.15 e-folds or so), which the data then
        # locate without resolving f_i. A break bent over e-folds looks like the bend the
        # floor E already makes and trades off against it along a curved ridge (a
        # smoother, later and stronger break with a higher floor), as Domhan's bent curve
        # families do (see bayescale.models.CURVE_ENSEMBLE): recovery fits on a
        # four-decade ladder diverged in 10 of 10 seeds with the median at 0.3 (4-77
        # times) and at 0.5 with a spread of 1 (57-411 times, R-hat up to 1.25).
        priors[f"f{i}"] = dist.LogNormal(math.log(0.1), 0.4)
    # Where the breaks are, in log FLOPs. A break is seen only where the reducible term
    # dominates the loss: near the floor a change of slope in R barely moves L. The level
    # is split at C_ref, where R equals E at the prior mean, so the prior centres the
    # break(s) a decade lower, at 1e19 FLOPs, where R is several times E. (Centred on
    # C_ref, recovery fits had half the effective sample size and diverged in 2 of 10
    # seeds.) A spread of 7 e-folds puts 95% of the first break between 1e13 and 1e25
    # FLOPs, every budget of published ladders.
    if num_breaks == 1:
        priors["log_d1"] = dist.Normal(LOG_C_BREAK, 7.0)
    else:
        # Distance between the breaks, in e-folds: positive, so the breaks keep their
        # order. Median one decade (2.3 e-folds), 95% between 0.4 and 2.7 decades: two
        # breaks within the stretch of a ladder where R dominates; closer, the data cannot
        # tell them apart. The pair is centred on 1e19 FLOPs.
        priors["log_d1"] = dist.Normal(LOG_C_BREAK - 0.5 * LOG_GAP_MEDIAN, 7.0)
        priors["log_gap"] = dist.LogNormal(math.log(LOG_GAP_MEDIAN), 0.5)

    derived = {
        "E": lambda p: jnp.exp(log_floor_and_reducible(p)[0]),
        "b": lambda p: jnp.exp(log_b(p)),
        "C_break": lambda p: jnp.exp(p["log_d1"]),
    }
    if num_breaks == 2:
        derived["C_break2"] = lambda p: jnp.exp(p["log_d1"] + p["log_gap"])
    return Law(
        name="bnsl" if num_breaks == 1 else f"bnsl{num_breaks}",
        inputs=("C",),
        priors=priors,
        log_mean=log_mean,
        derived=derived,
        exponents=tuple(f"c{i}" for i in range(num_breaks + 1)),
        formula="L(C) = E + b C^-c0 prod_i (1 + (C / d_i)^(1/f_i))^(-c_i f_i)",
        reference="Caballero et al. (2022), Broken Neural Scaling Laws, arXiv:2210.14891, eq. (1)",
    )


BNSL = _broken_power_law(1)
BNSL2 = _broken_power_law(2)
