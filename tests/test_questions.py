"""Shape questions as posterior probabilities: monotone, inverse or U-shaped trends."""

import math

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from bayescale.models import get_law

import bayescale as bs
from bayescale.data import ScalingData
from bayescale.errors import DataError
from bayescale.law import Law
from bayescale.testing import fake_fit, ladder

LOG_C_MID = math.log(1e20)


def _parabola(centre_loc: float, centre_scale: float) -> Law:
    """A user's law: log loss a parabola in log C with its minimum at log C = centre."""
    return Law(
        name="parabola",
        inputs=("C",),
        priors={"level": dist.Normal(1.0, 0.1), "centre": dist.Normal(centre_loc, centre_scale)},
        log_mean=lambda p, x: p["level"] + 0.01 * (jnp.log(x["C"]) - p["centre"]) ** 2,
        formula="log L = level + 0.01 (log C - centre)^2",
        reference="test",
    )


@pytest.fixture(scope="module")
def runs():
    columns = ladder(40, rng=np.random.default_rng(0))
    columns["loss"] = np.full(40, 2.0)
    return ScalingData(columns, "test ladder", np.arange(1, 41))


def test_a_power_law_is_decreasing_in_every_draw(runs, key):
    result = bs.trend(fake_fit(get_law("kaplan_c_e"), runs, key=key))
    assert result.variable == "C"
    assert (result.low, result.high) == (runs["C"].min(), runs["C"].max())
    assert result.p_decreasing == 1.0 and result.p_non_monotone == 0.0
    assert result.turning_point is None


def test_a_turn_inside_the_range_is_non_monotone_and_located(runs, key):
    result = bs.trend(fake_fit(_parabola(LOG_C_MID, 0.3), runs, key=key))
    assert result.p_non_monotone == 1.0
    # The turning point is the parabola's centre, to within the grid spacing.
    spacing = math.log(result.high / result.low) / 255
    assert abs(math.log(result.turning_point["median"]) - LOG_C_MID) < 0.3 + spacing


def test_the_probability_counts_the_draws_that_turn_in_range(runs, key):
    # Centre ~ Normal(log of the largest run, 0.5): about half the draws turn inside.
    fitted = fake_fit(_parabola(math.log(runs["C"].max()), 0.5), runs, key=key, num_samples=500)
    centre = np.asarray(fitted.posterior["centre"]).ravel()
    log_high = math.log(runs["C"].max())
    inside = np.mean(centre < log_high)
    # A turn within one grid spacing of the edge may fall between the last two grid points.
    result = bs.trend(fitted)
    spacing = math.log(result.high / result.low) / 255
    at_edge = np.mean(np.abs(centre - log_high) < spacing)
    assert abs(result.p_non_monotone - inside) <= at_edge


def test_laws_of_n_and_d_follow_the_compute_optimal_frontier(runs, key):
    result = bs.trend(fake_fit(get_law("chinchilla"), runs, key=key))
    assert result.variable == "C" and result.p_decreasing == 1.0


def test_a_law_without_one_axis_is_an_error(key):
    law = get_law("kaplan_ns")
    columns = {"N": np.full(5, 1e8), "step": np.arange(1.0, 6.0), "loss": np.full(5, 3.0)}
    with pytest.raises(DataError, match="along one input"):
        bs.trend(fake_fit(law, ScalingData(columns, "test", np.arange(1, 6)), key=key))
