"""Questions about the shape of a fitted trend, answered as posterior probabilities.

Is the loss (or a downstream error) monotone over the range the runs cover, or does it
turn: inverse scaling (it rises with scale) or U-shaped scaling (it falls, then rises)?
Each posterior draw is a whole curve; the probability of a shape is the fraction of draws
whose curve has it, so the answer carries the fit's uncertainty and needs no threshold
on a test statistic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bayescale.diagnostics import QUANTILES
from bayescale.errors import DataError
from bayescale.forecast import expected_loss, expected_loss_at_compute
from bayescale.inference import Fit

__all__ = ["Trend", "trend"]

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
    """The grid variable, a log grid over its observed range, and every draw's expected loss on it."""
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
