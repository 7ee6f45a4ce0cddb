r"""Learning-rate-annealing law  L(s) = L0 + A S1^-alpha - C S2  (Tissue et al. 2024).

Tissue, Wang, et al. (2024), "Scaling Law with Learning Rate Annealing" (arXiv:2408.11029),
eq. (1): the loss after s steps depends on the learning-rate schedule through two areas,
the forward area ``S1 = sum of learning rates`` (how far the optimiser has travelled) and
the annealing area ``S2 = sum over steps of m_i``, ``m_i = lambda m_{i-1} + (eta_{i-1} - eta_i)``
(how much the rate has been lowered, with a momentum lambda = 0.999). Under cosine or
warmup-stable-decay schedules the loss drops when the rate is annealed; a law of steps
alone cannot see that drop coming, this one can, given the schedule.

Inputs, computed from the schedule by :mod:`bayescale.schedules`: ``S1`` in units of the
fit's reference (S1 = 1 at the last observed checkpoint of the longest run), and ``S2`` as
the fraction of a complete anneal, ``(1 - lambda) * S2 / eta_peak``: 1 for a rate lowered
from its peak to zero long ago, 0 at constant rate.

Sampling parameterisation: the loss at S1 = 1 without annealing (``log_L_ref``) split into
floor and reducible part (``log_ratio``), the exponent, and ``phi``, the fraction of the
floor that a complete anneal removes (so ``C S2 = phi E S2`` and the loss stays positive).
Runs fitted together each have their own level and floor, and share ``alpha`` and ``phi``:
the runs that have annealed tell a run in progress how much its anneal will bring.
"""

import jax.numpy as jnp
import numpyro.distributions as dist

from bayescale.law import Law, split_level


def log_floor_and_reducible(p):
    """Log E and log R at the reference, from the level and the ratio."""
    return split_level(p["log_L_ref"], p["log_ratio"])


def log_mean(p, x):
    """log(E (1 - phi S2) + R S1^-alpha), finite for S2 <= 1 and phi < 1."""
    log_floor, log_reducible = log_floor_and_reducible(p)
    annealed_floor = log_floor + jnp.log1p(-p["phi"] * x["S2"])
    return jnp.logaddexp(annealed_floor, log_reducible - p["alpha"] * jnp.log(x["S1"]))


LR_ANNEALING = Law(
    name="lr_annealing",
    inputs=("S1", "S2"),
    priors={
        # Loss at the reference without annealing: 95% between 0.08 and 33.
        "log_L_ref": dist.Normal(0.5, 1.5),
        # Reducible part over floor at the reference: 95% within 20 times either way.
        "log_ratio": dist.Normal(0.0, 1.5),
        # Exponent of the loss in S1: median 0.5, 95% in 0.12-2.2.
        "alpha": dist.LogNormal(jnp.log(0.5), 0.75),
        # Fraction of the floor a complete anneal removes. Annealing lowers the loss by a
        # few percent in language-model pretraining; Beta(1, 9) has mean 0.1, 95% below
        # 0.28, and its mode at 0: the data must show the drop.
        "phi": dist.Beta(1.0, 9.0),
    },
    log_mean=log_mean,
    derived={"E": lambda p: jnp.exp(log_floor_and_reducible(p)[0])},
    exponents=("alpha",),
    per_run=("log_L_ref", "log_ratio"),
    level="log_L_ref",
    formula="L(s) = L0 + A S1^-alpha - C S2",
    reference="Tissue et al. (2024), Scaling Law with Learning Rate Annealing, eq. (1)",
)
