r"""Downstream metrics as functions of the language-modelling loss: a smooth link and the "mirage".

A downstream error rate (1 - accuracy, or any lower-is-better score in (0, 1]) is modelled
against the model's language-modelling loss ``lm_loss`` (an input column), so that the
chain compute -> loss -> error carries the uncertainty of both fits
(:func:`bayescale.forecast_downstream`). Table columns: the error as ``loss`` (the quantity
bayescale models; map it with ``--map loss=COLUMN``) and ``lm_loss``.

``sigmoid_link``  err(x) = floor + span * sigmoid((x - x_mid) / width)
    A threshold in the loss: the error stays near ``floor + span`` (chance) above x_mid and
    falls to ``floor`` below it, over ``width`` nats. The general form of a downstream link
    (e.g. Gadre et al. 2024; Ruan et al. 2024 use sigmoids of loss or of compute).

``exact_match``   err(x) = 1 - exp(-k * softplus(x - x0))
    The "mirage" of Schaeffer, Miranda and Koyejo (2023): if each of k answer tokens is
    right with probability p = exp(-per-token loss), exact match over the answer is p^k.
    The per-token loss on the answer is the LM loss beyond an offset x0 (answer tokens are
    easier or harder than the average token), kept positive by a softplus. The metric turns
    a smooth decline of the loss into an apparently sudden rise of accuracy; there is no
    threshold parameter. Comparing the two links (:func:`bayescale.compare`) asks whether
    an ability's jump is explained by the metric alone.

Both are evaluated in log space (``log_sigmoid``, ``logaddexp``, ``log(-expm1(.))``), finite
for any finite ``lm_loss``.
"""

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from bayescale.law import Law

REFERENCE_MIRAGE = "Schaeffer, Miranda and Koyejo (2023), Are Emergent Abilities of Large Language Models a Mirage?"


def _sigmoid_log_mean(p, x):
    """log(floor + span * sigmoid((x - x_mid) / width)), by logaddexp of the two terms' logs."""
    slope = (x["lm_loss"] - p["x_mid"]) / jnp.exp(p["log_width"])
    return jnp.logaddexp(p["log_floor"], p["log_span"] + jax.nn.log_sigmoid(slope))


def _exact_match_log_mean(p, x):
    """log(1 - exp(-k * softplus(x - x0))); -expm1 keeps the small errors of strong models exact."""
    per_token = jax.nn.softplus(x["lm_loss"] - p["x0"])
    return jnp.log(-jnp.expm1(-jnp.exp(p["log_k"]) * per_token))


SIGMOID_LINK = Law(
    name="sigmoid_link",
    inputs=("lm_loss",),
    priors={
        # Irreducible error: Normal(log 0.05, 1.5) puts 95% between 0.3% and 95%.
        "log_floor": dist.Normal(math.log(0.05), 1.5),
        # Drop from chance to the floor: centred on 0.5 (a two-way task), 95% within 0.03-1.
        "log_span": dist.Normal(math.log(0.5), 1.0),
        # Where the error is halfway down, in nats: LM losses of published models lie in
        # about 1.5-4; Normal(2.5, 1) covers that with room.
        "x_mid": dist.Normal(2.5, 1.0),
        # Width of the transition: median 0.2 nats, 95% between 0.03 and 1.4 nats, from a
        # near step (an "emergent" task) to a gentle slope.
        "log_width": dist.Normal(math.log(0.2), 1.0),
    },
    log_mean=_sigmoid_log_mean,
    derived={"floor": lambda p: jnp.exp(p["log_floor"]), "width": lambda p: jnp.exp(p["log_width"])},
    formula="err(lm_loss) = floor + span * sigmoid((lm_loss - x_mid) / width)",
    reference="Gadre et al. (2024), Language models scale reliably with over-training and on downstream tasks",
)

EXACT_MATCH = Law(
    name="exact_match",
    inputs=("lm_loss",),
    priors={
        # Answer length in tokens: median 5, 95% between 0.7 and 35 (a short answer to a
        # paragraph); non-integer values absorb the tokens' unequal difficulty.
        "log_k": dist.Normal(math.log(5.0), 1.0),
        # Offset of the answer tokens' loss from the LM loss, in nats (at lm_loss = x0 an
        # answer token is right half the time). Centred on 3.0, where a ladder's strongest
        # models (LM losses near 1.5-2) are in the metric's rise: with k = 5, exact match
        # climbs from near 0 at lm_loss 4 to 21% at 2 and 37% at 1.5. 95% within 1 to 5,
        # from a task no model of the ladder solves to one its weakest solve 1 time in 5. A centre below the ladder's
        # losses (x0 = 1.5 was tried) leaves the error within 3% of 1 at every loss, data
        # that cannot tell k from x0.
        "x0": dist.Normal(3.0, 1.0),
    },
    log_mean=_exact_match_log_mean,
    derived={"k": lambda p: jnp.exp(p["log_k"])},
    formula="err(lm_loss) = 1 - exp(-k * softplus(lm_loss - x0))",
    reference=REFERENCE_MIRAGE,
    version="2",
)
