r"""Multi-Power Law  L(t) = L0 + A (S1 + S_W)^-alpha - LD(t)  (Luo et al. 2025).

Luo, Wen, et al. (2025), "A Multi-Power Law for Loss Curve Prediction Across Learning Rate
Schedules" (ICLR 2025, arXiv:2503.12811), eqs. (4)-(5): the loss after t steps is a power
law in the forward area of the schedule (the sum of the learning rates, warmup included)
minus a loss drop that every decrease of the rate brings, growing with the area run since:

    LD(t) = B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),   G(x) = 1 - (C x + 1)^-beta,

with ``S_k(t)`` the sum of the rates from step k to t. Unlike ``lr_annealing``, whose
response to a decrease has a fixed timescale (a momentum of 0.999), here the speed of the
response (C), its shape (beta) and how it slows at small rates (gamma) are learned; Luo et
al. fit the loss curves of 25M-400M models under cosine, warmup-stable-decay and stepped
schedules to 0.1-0.2% this way.

Inputs, computed from the schedule by :mod:`bayescale.schedules`: ``S1`` in units of the
fit's reference (1 at the last observed checkpoint of the longest run), and the decreases
before each checkpoint binned by the area since (``drop_mass``, ``drop_log_area`` in the
same units, ``drop_log_rate`` relative to the peak; see
:func:`~bayescale.schedules.drop_features`).

Sampling parameterisation, as ``lr_annealing``'s: the loss at S1 = 1 without a drop
(``log_L_ref``) split into floor and reducible part (``log_ratio``), the exponent, and
``phi``, the fraction of the floor a complete anneal removes once it has taken full effect
(``B = phi E`` in the peak's units, so the loss stays positive). Runs fitted together have
their own level and floor and share the rest.
"""

import jax.numpy as jnp
import numpyro.distributions as dist
from bayescale.models.lr_annealing import LR_ANNEALING, log_floor_and_reducible

from bayescale.law import Law


def loss_drop(p, x):
    """Return the drop as a fraction of a complete anneal's: sum over bins of mass x G."""
    log_argument = p["log_C"] + x["drop_log_area"] - p["gamma"] * x["drop_log_rate"]
    # (C x + 1)^-beta = exp(-beta log(1 + e^log(C x))), finite for any log argument.
    response = -jnp.expm1(-p["beta"] * jnp.logaddexp(0.0, log_argument))
    return jnp.sum(x["drop_mass"] * response, axis=-1)


def log_mean(p, x):
    """log(E (1 - phi LD) + R S1^-alpha); the drop LD is at most 1, so the loss stays positive."""
    log_floor, log_reducible = log_floor_and_reducible(p)
    dropped_floor = log_floor + jnp.log1p(-p["phi"] * loss_drop(p, x))
    return jnp.logaddexp(dropped_floor, log_reducible - p["alpha"] * jnp.log(x["S1"]))


MULTI_POWER = Law(
    name="multi_power",
    inputs=("S1", "drop_mass", "drop_log_area", "drop_log_rate"),
    priors={
        # lr_annealing's: the level, its split into floor and reducible part, the
        # exponent in S1 and the fraction of the floor a complete anneal removes.
        **LR_ANNEALING.priors,
        # log of the response rate C, per unit of S1 (the observed run): a decrease takes
        # effect once C S_k(t) ~ 1. Normal(log 100, 2.5) puts that area between 1e-4 and
        # 1.3 of the observed run (95%), from within tens of steps to a whole run.
        "log_C": dist.Normal(jnp.log(100.0), 2.5),
        # Shape of the response: G ~ beta C x while small, saturating as x^-beta. Luo et
        # al. find beta near 0.5; LogNormal(log 0.5, 0.75) spans 0.12-2.2.
        "beta": dist.LogNormal(jnp.log(0.5), 0.75),
        # How the response slows at smaller rates (eta^-gamma): between no effect (0) and
        # areas counted in steps rather than rate x steps (1); Beta(2, 2) centred at 0.5.
        "gamma": dist.Beta(2.0, 2.0),
    },
    log_mean=log_mean,
    derived=LR_ANNEALING.derived,
    exponents=("alpha", "beta"),
    per_run=("log_L_ref", "log_ratio"),
    level="log_L_ref",
    formula="L(t) = L0 + A S1^-alpha - B sum_k (eta_{k-1} - eta_k) (1 - (C eta_k^-gamma S_k(t) + 1)^-beta)",
    reference=(
        "Luo et al. (2025), A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules, eqs. (4)-(5)"
    ),
)
