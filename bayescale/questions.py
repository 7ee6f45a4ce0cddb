"""Questions about a fitted trend, answered as posterior probabilities.

Is the loss (or a downstream error) monotone over the range the runs cover, or does it
turn: inverse scaling (it rises with scale) or U-shaped scaling (it falls, then rises)?
Each posterior draw is a whole curve; the probability of a shape is the fraction of draws
whose curve has it, so the answer carries the fit's uncertainty and needs no threshold
on a test statistic.

Is an ability's sudden jump explained by its metric? A law with no threshold, seen through
a discontinuous metric (exact match over k tokens), against a law with a threshold of its
own: the probability that the metric-only law predicts new models at least as well.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from bayescale.compare import Comparison
from bayescale.diagnostics import QUANTILES
from bayescale.errors import DataError
from bayescale.forecast import expected_loss, expected_loss_at_compute
from bayescale.inference import Fit

__all__ = ["MetricJump", "Trend", "metric_explains_jump", "trend"]

#: Grid points over the observed range; a turn narrower than the spacing (1/255 of the
#: log range) would be missed, far finer than any run ladder resolves.
_GRID_POINTS = 256


@dataclasses.dataclass(frozen=True)
class Trend:
    """Posterior probabilities of the shape of a law's expected loss over a range.

    Attributes
    ----------
    variable : str
        The input the curve runs along (``C`` for laws of N and D, along the
        compute-optimal frontier).
    low, high : float
        The range: the smallest and largest observed value of ``variable``.
    p_decreasing, p_increasing, p_non_monotone : float
        Fractions of posterior draws whose curve falls throughout, rises throughout, or
        changes direction within the range (inverse-U or U-shaped).
    turning_point : Mapping[str, float] or None
        Among the non-monotone draws, where the curve turns (its interior extremum):
        median, q05 and q95; None when no draw turns.
    """

    variable: str
    low: float
    high: float
    p_decreasing: float
    p_increasing: float
    p_non_monotone: float
    turning_point: dict[str, float] | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return dataclasses.asdict(self)


def _curves(fit: Fit) -> tuple[str, np.ndarray, np.ndarray]:
    """Return the grid variable, a log grid over its observed range, and every draw's expected loss on it."""
    law = fit.law
    variable = law.inputs[0] if len(law.inputs) == 1 else "C"
    if len(law.inputs) == 1 or law.has_compute_frontier:
        observed = fit.data[variable]
        grid = np.geomspace(observed.min(), observed.max(), _GRID_POINTS)
        if len(law.inputs) == 1:
            return variable, grid, expected_loss(fit, {variable: grid})
        return variable, grid, expected_loss_at_compute(fit, grid)["loss"]
    raise DataError(
        f"trend: law {law.name!r} reads {', '.join(law.inputs)}; the shape of a trend is defined along one "
        "input, or along the compute-optimal frontier of a law of N and D"
    )


def trend(fit: Fit) -> Trend:
    """Posterior probability that the expected loss is monotone over the observed range.

    Parameters
    ----------
    fit : Fit
        A fit of a law of one input (for example ``bnsl`` of compute), or of N and D
        (then along the compute-optimal frontier).

    Returns
    -------
    Trend

    Raises
    ------
    DataError
        When the law has no single axis to follow.
    """
    variable, grid, curves = _curves(fit)
    steps = np.diff(np.log(curves), axis=1)
    falling, rising = (steps < 0).any(axis=1), (steps > 0).any(axis=1)
    turning = falling & rising
    turning_point = None
    if turning.any():
        # The interior extremum: the minimum of a U, the maximum of an inverse U.
        minimum, maximum = curves[turning].argmin(axis=1), curves[turning].argmax(axis=1)
        interior = np.where((minimum > 0) & (minimum < len(grid) - 1), minimum, maximum)
        q05, median, q95 = np.quantile(grid[interior], QUANTILES)
        turning_point = {"median": float(median), "q05": float(q05), "q95": float(q95)}
    return Trend(
        variable=variable,
        low=float(grid[0]),
        high=float(grid[-1]),
        p_decreasing=float(np.mean(falling & ~rising)),
        p_increasing=float(np.mean(rising & ~falling)),
        p_non_monotone=float(np.mean(turning)),
        turning_point=turning_point,
    )


# ---------------------------------------------------------------------------------------
# Is a jump the metric's doing?

#: Bayesian-bootstrap replicates of the pointwise score differences.
_BOOTSTRAP_DRAWS = 4000


@dataclasses.dataclass(frozen=True)
class MetricJump:
    """Whether a downstream metric's jump is explained by the metric alone.

    Attributes
    ----------
    metric_law, threshold_law : str
        The law without a threshold (a smooth loss under the metric) and the best-scoring
        law with one.
    p_metric : float
        Probability that the metric-only law predicts new observations at least as well
        as the threshold law: the Bayesian bootstrap (Rubin 1981) of the pointwise
        difference of their out-of-sample scores. Near 0: the data need a threshold the
        metric cannot make. Near 0.5 or above: the metric alone accounts for the jump.
    elpd_difference, se : float
        Summed pointwise difference (metric law minus threshold law) and its standard
        error.
    criterion : {"elpd_loo", "elpd_lfo"}
        The out-of-sample score the difference is in.
    """

    metric_law: str
    threshold_law: str
    p_metric: float
    elpd_difference: float
    se: float
    criterion: str

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return dataclasses.asdict(self)


def metric_explains_jump(comparison: Comparison, metric_law: str, *, key: jax.Array) -> MetricJump:
    """Posterior probability that a metric's jump needs no threshold in the underlying loss.

    Schaeffer et al. (2023) argue that emergent abilities can be a mirage: exact match over
    k answer tokens is p^k of a per-token probability that improves smoothly, and p^k looks
    like a sudden jump. Fit a metric-only law (for example ``exact_match``) and a law with
    a threshold of its own (for example ``sigmoid_link``) to the same error-against-loss
    table, compare them, and ask how probable it is that the metric-only law predicts at
    least as well. The two differ in shape, not only in sharpness: below its jump, p^k
    keeps falling at a fixed rate in log error, while a threshold drops to a floor.

    Parameters
    ----------
    comparison : Comparison
        From :func:`bayescale.compare` over the metric-only law and one or more laws with
        a threshold; its criterion (LOO, or leave-future-out with a holdout) is the score.
    metric_law : str
        Name of the metric-only law in the comparison.
    key : jax.Array
        PRNG key of the Bayesian bootstrap.

    Returns
    -------
    MetricJump

    Raises
    ------
    KeyError
        When ``metric_law`` is not in the comparison, or it is the only law there.
    """
    if metric_law not in comparison.pointwise:
        raise KeyError(f"{metric_law!r} is not among the compared laws: {', '.join(comparison.pointwise)}")
    others = {name: scores for name, scores in comparison.pointwise.items() if name != metric_law}
    if not others:
        raise KeyError(f"metric_explains_jump needs a law with a threshold besides {metric_law!r}")
    threshold_law = max(others, key=lambda name: others[name].sum())
    difference = comparison.pointwise[metric_law] - others[threshold_law]
    n = len(difference)
    # Dirichlet(1, ..., 1) weights: the posterior of the rows' distribution under the
    # Bayesian bootstrap, so each replicate is a draw of the expected score difference.
    weights = np.asarray(jax.random.dirichlet(key, np.ones(n), shape=(_BOOTSTRAP_DRAWS,)), dtype=np.float64)
    return MetricJump(
        metric_law=metric_law,
        threshold_law=threshold_law,
        p_metric=float(np.mean(weights @ difference >= 0.0)),
        elpd_difference=float(difference.sum()),
        se=float(np.sqrt(n * np.var(difference))),
        criterion=comparison.criterion,
    )
