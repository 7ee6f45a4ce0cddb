"""Shape questions as posterior probabilities: monotone, inverse or U-shaped trends."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from bayescale.models import get_law

import bayescale as bs
from bayescale.data import ScalingData
from bayescale.errors import DataError
from bayescale.law import Law
from bayescale.testing import fake_fit, ladder, simulate

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


# ---------------------------------------------------------------------------------------
# Is a jump the metric's doing?


def _comparison(pointwise: dict[str, np.ndarray]) -> bs.Comparison:
    """A comparison holding only pointwise scores: what metric_explains_jump reads."""
    table = {name: {"elpd_loo": float(scores.sum())} for name, scores in pointwise.items()}
    best = max(table, key=lambda name: table[name]["elpd_loo"])
    return bs.Comparison(fits={}, table=table, best=best, criterion="elpd_loo", pointwise=pointwise)


def test_a_metric_law_better_everywhere_explains_the_jump(key):
    scores = np.random.default_rng(0).normal(size=40)
    result = bs.metric_explains_jump(
        _comparison({"exact_match": scores + 0.1, "sigmoid_link": scores}), "exact_match", key=key
    )
    assert result.p_metric == 1.0 and result.threshold_law == "sigmoid_link"
    assert result.elpd_difference == pytest.approx(4.0)


def test_the_probability_is_the_bootstrap_share_of_a_better_metric_law(key):
    # Differences with mean 0.2 and sd 1 over 100 rows: the bootstrap sum is about normal
    # with mean 20 and sd 10, so P(difference >= 0) is about Phi(2) = 0.977.
    rng = np.random.default_rng(1)
    difference = rng.normal(size=100)
    difference = (difference - difference.mean()) / difference.std() + 0.2
    result = bs.metric_explains_jump(_comparison({"metric": difference, "threshold": np.zeros(100)}), "metric", key=key)
    # Monte-Carlo error of 4000 bootstrap draws at p = 0.977: sd 0.0024; the normal
    # approximation itself is good to about 0.01 at n = 100.
    assert abs(result.p_metric - 0.977) < 0.01 + 4 * 0.0024
    assert result.se == pytest.approx(10.0)


def test_the_best_threshold_law_is_the_one_compared(key):
    zeros = np.zeros(10)
    result = bs.metric_explains_jump(
        _comparison({"metric": zeros, "weak": zeros - 1.0, "strong": zeros + 1.0}), "metric", key=key
    )
    assert result.threshold_law == "strong" and result.p_metric == 0.0


def test_a_metric_law_outside_the_comparison_is_an_error(key):
    with pytest.raises(KeyError, match="not among the compared laws"):
        bs.metric_explains_jump(_comparison({"a": np.zeros(3), "b": np.zeros(3)}), "exact_match", key=key)
    with pytest.raises(KeyError, match="besides"):
        bs.metric_explains_jump(_comparison({"exact_match": np.zeros(3)}), "exact_match", key=key)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("generating", "params", "explained"),
    [
        ("exact_match", {"log_k": math.log(5.0), "x0": 3.0, "sigma": 0.03}, True),
        (
            "sigmoid_link",
            {"log_floor": math.log(0.1), "log_span": math.log(0.9), "x_mid": 2.0, "log_width": math.log(0.05)}
            | {"sigma": 0.03},
            False,
        ),
    ],
)
def test_a_threshold_is_found_only_where_there_is_one(generating, params, explained, key):
    # 30 models with LM losses 3.5 down to 0.5. A sharp threshold (0.05 nats wide) with a
    # floor is a shape p^k cannot make; a smooth loss under exact match is one the
    # threshold law can mimic, so the question must not reject the metric there.
    data = simulate(get_law(generating), params, {"lm_loss": np.linspace(0.5, 3.5, 30)}, key=key)
    config = bs.SamplerConfig(num_warmup=500, num_samples=500, num_chains=2)
    keys = jax.random.split(key, 3)
    with warnings.catch_warnings():
        # The threshold law's width ridge on data without a threshold diverges now and
        # then; the comparison still scores it, and LOO flags what it cannot score.
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        warnings.simplefilter("ignore", bs.UnreliableLOOWarning)
        laws = ("exact_match", "sigmoid_link")
        fits = {name: bs.fit(name, data, key=k, config=config) for name, k in zip(laws, keys, strict=False)}
        comparison = bs.compare(fits)
    result = bs.metric_explains_jump(comparison, "exact_match", key=keys[2])
    measured = (
        f"from {generating}: P(metric) {result.p_metric:.3f}, "
        f"elpd difference {result.elpd_difference:.1f} (se {result.se:.1f})"
    )
    print(measured)  # pytest -rA shows it for BENCHMARKS.md
    assert (result.p_metric >= 0.05) == explained, measured


@pytest.mark.slow
@pytest.mark.parametrize(("extra_slope", "turns"), [(-0.3, True), (0.2, False)])
def test_a_fitted_broken_power_law_sees_a_u_shape_only_where_there_is_one(extra_slope, turns, key):
    # The benchmark's case (benchmarks/compare.py, 20 ladders each): a power law in compute
    # of exponent 0.15 that past 1e20 FLOPs either turns upward (slope 0.15 - 0.3) or
    # steepens, on a 60-run ladder with 1.5% noise.
    law = get_law("bnsl")
    params = {"log_L_ref": math.log(2.5), "log_ratio": -1.0, "c0": 0.15, "c1": extra_slope, "f1": 0.5}
    params |= {"log_d1": math.log(1e20), "sigma": 0.015}
    columns = ladder(60, rng=np.random.default_rng(500))
    data = simulate(law, params, {"C": columns["C"]}, key=key)
    with warnings.catch_warnings():
        # bnsl's break trades off against its floor, and a 60-run ladder says little about
        # the break's sharpness f1; the probability of a turn is read all the same.
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        warnings.simplefilter("ignore", bs.IdentifiabilityWarning)
        fitted = bs.fit(law, data, key=key, config=bs.SamplerConfig(num_warmup=500, num_samples=500))
    p_non_monotone = bs.trend(fitted).p_non_monotone
    assert p_non_monotone > 0.95 if turns else p_non_monotone < 0.05
