"""Posterior predictive checks: replications, LOO-PIT, the KS test, the flags and the figures.

Tolerances come from binomial and Monte-Carlo error. Two NUTS fits share one data set
simulated from kaplan_c_e (a power law in C above a floor): kaplan_c_e itself, which must
pass, and kaplan_c, the same law without the floor, which must be flagged. Everything
else runs on fake fits (prior draws), without NUTS.
"""

import json
import warnings

import jax
import numpy as np
import pytest
from bayescale.models import get_law
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

import bayescale as bs
from bayescale import _arviz
from bayescale.checks import (
    ALPHA,
    _pointwise_predictive,
    check,
    ks_band,
    ks_uniform,
    loo_pit,
    posterior_predictive,
    residuals,
)
from bayescale.data import ScalingData
from bayescale.law import noise_distribution
from bayescale.plots import plot_loo_pit, plot_ppc, plot_residuals
from bayescale.testing import fake_fit, prior_means, simulate

# A Monte-Carlo mean within this many of its standard errors.
MC_Z = 4.0
# Coverage of the 90% interval within this many binomial standard errors of 0.9, and a
# residual trend "significant" beyond this many standard errors of its coefficient.
BINOMIAL_Z = TREND_Z = 3.0
CHECK_CONFIG = bs.SamplerConfig(num_warmup=300, num_samples=300)


def _flat(fit, name):
    values = np.asarray(fit.posterior[name], dtype=np.float64)
    return values.reshape(-1, *values.shape[2:])


def _mc_mean_is_zero(per_draw):
    """Whether the mean of independent per-draw values is within MC_Z standard errors of 0."""
    return abs(per_draw.mean()) < MC_Z * per_draw.std(ddof=1) / np.sqrt(per_draw.size)


def _curves():
    """Two learning curves of 20 checkpoints, sorted by run then step, for correlated fits."""
    steps = np.arange(10.0, 201.0, 10.0)
    rng = np.random.default_rng(0)
    columns = {
        "run": np.repeat(np.array(["a", "b"], dtype=object), steps.size),
        "step": np.tile(steps, 2),
        "N": np.full(2 * steps.size, 1e9),
        "loss": 2.0 + np.tile(steps, 2) ** -0.5 * np.exp(rng.normal(0.0, 0.01, 2 * steps.size)),
    }
    return ScalingData(columns, "curves", np.arange(1, 2 * steps.size + 1))


@pytest.fixture(scope="module")
def fake_fits(session_key):
    """Fake fits by likelihood: of chinchilla to 12 runs, or correlated, of two learning curves."""
    cache = {}

    def get(likelihood="normal", correlated=False):
        if (likelihood, correlated) not in cache:
            if correlated:
                law, data = get_law("kaplan_n"), _curves()
            else:
                law = get_law("chinchilla")
                inputs = {"N": np.geomspace(1e7, 1e10, 12), "D": np.geomspace(1e9, 1e12, 12)}
                data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=session_key)
            # Enough draws for the Monte-Carlo checks of the correlated process.
            cache[likelihood, correlated] = fake_fit(
                law, data, key=session_key, likelihood=likelihood, correlated=correlated, num_samples=500
            )
        return cache[likelihood, correlated]

    return get


LIKELIHOODS = ["normal", "student_t", "laplace"]


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_replications_are_draws_of_the_likelihood_at_each_draw(fake_fits, likelihood, key):
    fit = fake_fits(likelihood)
    replicated = posterior_predictive(fit, key=key)
    assert replicated.shape == (fit.num_draws, len(fit.data))
    np.testing.assert_array_equal(replicated, posterior_predictive(fit, key=key))
    # Each replicated value transformed by its own draw's CDF is U(0, 1), independently.
    draws = fit.draws()
    noise = {name: draws[name][:, None] for name in fit.spec.noise}
    pit = np.asarray(noise_distribution(likelihood, _flat(fit, "mu"), noise).cdf(replicated))
    assert ks_uniform(pit.ravel())[1] > ALPHA


def test_correlated_replications_follow_the_runs_process(fake_fits, key):
    fit = fake_fits(correlated=True)
    data = fit.data
    replicated = posterior_predictive(fit, key=key)
    draws = fit.draws()
    standard = (replicated - _flat(fit, "mu")) / draws["sigma"][:, None]
    # Consecutive checkpoints of a run: correlation exp(-gap / corr_length), gap in log step.
    same_run = data["run"][1:] == data["run"][:-1]
    gap = np.diff(np.log(data["step"]))[same_run]
    rho = np.exp(-gap / draws["corr_length"][:, None])
    products = (standard[:, 1:] * standard[:, :-1])[:, same_run]
    assert _mc_mean_is_zero(np.mean(products - rho, axis=1))
    assert _mc_mean_is_zero(np.mean(standard**2 - 1.0, axis=1))
    assert rho.mean() > 0.3  # so the first check would fail for independent replications


@pytest.mark.parametrize(("likelihood", "correlated"), [(name, False) for name in LIKELIHOODS] + [("normal", True)])
def test_loo_pit_uses_the_predictive_the_log_likelihood_scores(fake_fits, likelihood, correlated):
    fit = fake_fits(likelihood, correlated)
    location, noise = _pointwise_predictive(fit)
    log_lik = np.asarray(_arviz.group(fit.idata, "log_likelihood")["log_loss"]).reshape(fit.num_draws, -1)
    predictive = noise_distribution(likelihood, location, noise)
    observed = np.broadcast_to(np.asarray(fit.data.log_loss, np.float32), np.shape(location))
    scored = np.asarray(predictive.log_prob(observed))
    # Both sides form the residual in float32 from values of size |y| + |location|; its
    # rounding (a few eps of that) moves each log density by its slope in y times that.
    slope = np.asarray(jax.grad(lambda value: predictive.log_prob(value).sum())(observed))
    rounding = 4 * np.finfo(np.float32).eps * (np.abs(observed) + np.abs(location)) * np.abs(slope)
    assert np.all(np.abs(scored - log_lik) <= 1e-4 * (1 + np.abs(log_lik)) + rounding)
    pit, pareto_k = loo_pit(fit)
    assert pit.shape == pareto_k.shape == (len(fit.data),)
    assert np.all((pit >= 0) & (pit <= 1))


def test_loo_pit_adapter_weights_as_arviz_does():
    # With the CDF replaced by the indicator of one predictive draw below the observation,
    # the adapter's weighted average is ArviZ's own LOO-PIT.
    rng = np.random.default_rng(0)
    chains, draws, n = 2, 300, 7
    mu = rng.normal(0.0, 0.3, (chains, draws, 1))
    observed = rng.normal(0.0, 1.0, n)
    log_lik = -0.5 * (observed - mu) ** 2
    predicted = mu + rng.normal(0.0, 1.0, (chains, draws, n))
    pit, pareto_k = _arviz.loo_pit(log_lik, (predicted <= observed).astype(float))
    if _arviz.ARVIZ_1:
        import xarray as xr

        dims = ("chain", "draw", "obs")
        reference, _ = xr.DataArray(predicted, dims=dims).azstats.loo_pit(
            y_obs=xr.DataArray(observed, dims="obs"), log_ratios=xr.DataArray(-log_lik, dims=dims), r_eff=1.0
        )
    else:
        log_weights, _ = _arviz.az.psislw(-log_lik.reshape(-1, n).T, reff=1.0)
        reference = _arviz.az.loo_pit(y=observed, y_hat=predicted.reshape(-1, n).T, log_weights=log_weights)
    np.testing.assert_allclose(pit, np.asarray(reference), atol=1e-12)
    assert pareto_k.shape == (n,)


def test_ks_test_matches_scipy_and_its_band():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (10, 60, 500):
        for power in np.linspace(0.5, 1.5, 21):
            values = rng.uniform(size=n) ** power
            statistic, p_value = ks_uniform(values)
            exact = stats.kstest(values, "uniform", method="exact")
            assert statistic == pytest.approx(exact.statistic, abs=1e-12)
            assert abs(p_value - exact.pvalue) < 0.025  # the documented accuracy of the asymptotic law
            # The band of the LOO-PIT figure: the ECDF leaves it exactly when the test flags.
            assert (statistic > ks_band(n)) == (p_value < ALPHA)


def _simulated_ladder():
    law = get_law("kaplan_c_e")
    compute = 10 ** np.random.default_rng(0).uniform(18, 22, 60)
    return simulate(law, {**prior_means(law), "sigma": 0.02}, {"C": compute}, key=jax.random.key(0))


def _fit(law, data):
    # So few draws may miss R-hat < 1.01 by a little; the checks do not depend on it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        return bs.fit(law, data, key=jax.random.key(1), likelihood="normal", config=CHECK_CONFIG)


@pytest.fixture(scope="module")
def ladder():
    return _simulated_ladder()


@pytest.fixture(scope="module")
def right_check(ladder):
    return check(_fit("kaplan_c_e", ladder), key=jax.random.key(2))


@pytest.fixture(scope="module")
def wrong_check(ladder):
    return check(_fit("kaplan_c", ladder), key=jax.random.key(2))


def _curvature_z(result):
    """t statistic of the quadratic term of a least-squares parabola of residuals in log C."""
    x = np.log(result.inputs["C"])
    x = (x - x.mean()) / x.std()
    design = np.column_stack([np.ones_like(x), x, x**2])
    coefficients, *_ = np.linalg.lstsq(design, result.residuals, rcond=None)
    scatter = result.residuals - design @ coefficients
    variance = scatter @ scatter / (x.size - design.shape[1]) * np.linalg.inv(design.T @ design)[2, 2]
    return coefficients[2] / np.sqrt(variance)


def test_right_law_covers_at_the_nominal_rate(right_check, ladder):
    n = len(ladder)
    assert abs(right_check.coverage[0.9] - 0.9) < BINOMIAL_Z * np.sqrt(0.9 * 0.1 / n)
    assert abs(right_check.coverage[0.5] - 0.5) < BINOMIAL_Z * np.sqrt(0.5 * 0.5 / n)
    assert right_check.ks_p_value > ALPHA
    assert right_check.p_values["residual_autocorrelation_C"] > ALPHA / 2
    assert abs(_curvature_z(right_check)) < TREND_Z
    summary = json.loads(json.dumps(right_check.summary()))
    assert summary["coverage"]["90%"]["nominal"] == 0.9
    assert summary["observations"] == n and len(summary["residuals"]["C"]) == n
    assert summary["ok"] == (summary["problems"] == [])


def test_law_without_its_floor_is_flagged_with_a_trend_along_compute(wrong_check):
    assert wrong_check.p_values["residual_autocorrelation_C"] < ALPHA / 2
    assert any("misses a trend along C" in problem for problem in wrong_check.problems)
    assert not wrong_check.ok
    # A power law through data that flatten towards a floor leaves convex residuals:
    # above the law at both ends, the largest runs among them.
    assert _curvature_z(wrong_check) > TREND_Z


def test_ppc_figure_marks_observations_outside_their_interval(fake_fits, key):
    fit = fake_fits()
    data = fit.data
    figure = Figure()
    ax = figure.add_subplot()
    assert plot_ppc(fit, key=key, ax=ax) is figure
    low, high = np.exp(np.quantile(posterior_predictive(fit, key=key), [0.05, 0.95], axis=0))
    outside = int(np.sum((data["loss"] < low) | (data["loss"] > high)))
    shown = {container.get_label(): len(container.lines[0].get_xdata()) for container in ax.containers}
    assert sum(shown.values()) == len(data)
    assert shown.get(f"outside 90% interval ({outside} of {len(data)})", 0) == outside
    assert any(line.get_label() == "replicated = observed" for line in ax.get_lines())
    assert ax.get_xscale() == ax.get_yscale() == "log"


def test_loo_pit_figure_draws_the_ecdf_difference_and_its_band(fake_fits):
    fit = fake_fits()
    ax = plot_loo_pit(fit).axes[0]
    [band] = [c for c in ax.collections if isinstance(c, PolyCollection)]
    half_width = ks_band(len(fit.data))
    assert band.get_paths()[0].vertices[:, 1].min() == pytest.approx(-half_width)
    assert band.get_paths()[0].vertices[:, 1].max() == pytest.approx(half_width)
    curve = next(line for line in ax.get_lines() if line.get_label() == "ECDF - uniform")
    x, y = curve.get_xdata(), curve.get_ydata()
    assert (x[0], y[0], x[-1], y[-1]) == (0.0, 0.0, 1.0, 0.0)
    # The curve's largest excursion is the KS statistic.
    assert np.max(np.abs(y)) == pytest.approx(ks_uniform(loo_pit(fit)[0])[0])
    assert ax.get_xlim() == (0.0, 1.0)


def test_residual_figure_has_a_log_panel_per_input(fake_fits):
    fit = fake_fits()
    figure = plot_residuals(fit)
    assert [ax.get_xlabel() for ax in figure.axes] == ["N", "D", "C"]
    residual, inputs = residuals(fit)
    for ax in figure.axes:
        [points] = [c for c in ax.collections if isinstance(c, PathCollection)]
        np.testing.assert_allclose(points.get_offsets(), np.column_stack([inputs[ax.get_xlabel()], residual]))
        assert ax.get_xscale() == "log"
        assert any(line.get_label() == "binned median" for line in ax.get_lines())
