"""The drift: a slow random walk of each run away from its law, and the forecast it widens.

The walk's construction is checked against a hand computation, its forecast against the
variance it implies (within Monte-Carlo error), and a saved fit against its reload.
"""

import dataclasses
import warnings

import jax
import numpy as np
import pytest
from bayescale.models import get_law
from numpyro import handlers

import bayescale as bs
from bayescale.compare import log_predictive_density
from bayescale.data import ScalingData
from bayescale.errors import ConvergenceWarning, IdentifiabilityWarning
from bayescale.extrapolate import _predict, extrapolate
from bayescale.inference import model_args
from bayescale.law import DRIFT_KNOTS, ModelSpec
from bayescale.testing import simulate_curves

POW3 = get_law("pow3")
TRUTH = {
    "log_L_ref": 1.0,
    "log_ratio": 0.0,
    "alpha": 0.5,
    "sigma": 0.005,
    "nu": 10.0,
    "corr_length": 0.05,
    "drift": 0.01,
}


def _curves(steps_by_run, x_ref):
    """Checkpoint table of the given runs (losses 1, to be simulated or ignored)."""
    runs = np.concatenate([np.full(len(steps), run, dtype=object) for run, steps in steps_by_run.items()])
    steps = np.concatenate(list(steps_by_run.values()))
    columns = {"run": runs, "step": steps, "loss": np.ones(len(steps)), "x": steps / x_ref}
    return ScalingData(columns, "simulation inputs", np.arange(1, len(steps) + 1))


def test_drift_needs_correlated_residuals():
    with pytest.raises(ValueError, match="correlated=True"):
        ModelSpec(POW3, drift=True)


def test_the_walk_starts_at_zero_and_is_linear_between_its_knots(key):
    steps = {"a": np.array([10, 20, 40, 80, 160, 320]), "b": np.array([100, 150, 1000])}
    data = _curves(steps, 320)
    spec = ModelSpec(POW3, "normal", correlated=True, drift=True)
    inputs, log_loss, mask, runs = model_args(spec, data, size=len(data))
    walk_steps = np.asarray(jax.random.normal(key, (2, DRIFT_KNOTS - 1)))
    levels = {"log_L_ref": np.array([1.0, 1.2]), "log_ratio": np.array([0.0, -0.5])}  # one per run
    values = {**levels, "alpha": 0.5, "sigma": 0.01, "corr_length": 0.1, "drift": 0.02}
    model = handlers.substitute(spec.model(), {**values, "drift_steps": walk_steps})
    trace = handlers.trace(handlers.seed(model, 0)).get_trace(inputs, log_loss, mask, runs)
    at_rows = {**values, **{name: level[np.asarray(runs["index"])] for name, level in levels.items()}}
    departure = np.asarray(trace["mu"]["value"]) - np.asarray(POW3.log_mean(at_rows, inputs))
    for position, (run, run_steps) in enumerate(steps.items()):
        log_steps = np.log(run_steps)
        knots_at = np.linspace(log_steps[0], log_steps[-1], DRIFT_KNOTS)
        spacing = knots_at[1] - knots_at[0]
        knots = np.concatenate([[0.0], np.cumsum(0.02 * np.sqrt(spacing) * walk_steps[position])])
        np.testing.assert_allclose(departure[data["run"] == run], np.interp(log_steps, knots_at, knots), atol=1e-6)
        np.testing.assert_allclose(np.asarray(trace["drift_end"]["value"])[position], knots[-1], rtol=1e-6)


@pytest.fixture(scope="module")
def drifting(session_key):
    """A pow3 run whose checkpoints drift from the law, extrapolated with the drift."""
    steps = np.unique(np.geomspace(10, 250, 25).round()).astype(int)
    data = _curves({"run": steps}, 250)
    spec = ModelSpec(POW3, "student_t", correlated=True, drift=True)
    _, losses = simulate_curves(spec, data, key=session_key, num_draws=1, params=TRUTH)
    observed = bs.read_table({"run": data["run"], "step": steps, "loss": losses[0]})
    config = bs.SamplerConfig(num_warmup=500, num_samples=500, num_chains=2, target_accept=0.95)
    with warnings.catch_warnings():
        # 25 checkpoints pin neither the floor nor the walk's scale well; the test is of the
        # forecast's arithmetic given whatever posterior the fit reached.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        result = extrapolate(
            observed, to_step=100_000, law="pow3", drift=True, pooling="none", config=config, key=session_key
        )
    return result


def test_the_forecast_widens_at_the_rate_of_the_walk(drifting, key):
    # With the same key, a forecast with the walk minus one without it is the walk alone
    # (far past the last checkpoint, where the residual process has forgotten it): its
    # variance grows between two horizons by E[drift^2] times their log-step distance.
    fit = drifting.fits["pow3"]["run"]
    last = int(fit.data["step"].max())
    far = np.array([last * 400, last * 400 * np.e**2]).round().astype(np.int64)
    inputs = {"x": far * float(fit.data["x"][-1]) / last}
    with_walk = _predict(fit, "run", inputs, np.log(far), key)
    without = _predict(
        dataclasses.replace(fit, spec=ModelSpec(POW3, fit.likelihood, correlated=True)), "run", inputs, np.log(far), key
    )
    walk = with_walk - without
    squared = (walk - walk.mean(axis=0)) ** 2
    growth = squared[:, 1] - squared[:, 0]
    expected = np.mean(fit.draws()["drift"] ** 2) * np.log(far[1] / far[0])
    error = 4.0 * growth.std() / np.sqrt(len(growth))
    assert abs(growth.mean() - expected) < error, (
        f"variance grew by {growth.mean():.3g}; the walk implies {expected:.3g} (+- {error:.2g})"
    )


def test_a_drift_fit_cannot_score_rows_it_did_not_see(drifting):
    fit = drifting.fits["pow3"]["run"]
    with pytest.raises(bs.DataError, match="drift"):
        log_predictive_density(fit, fit.data)


def test_a_drift_fit_saves_and_reloads_with_its_walk(drifting, tmp_path):
    fit = drifting.fits["pow3"]["run"]
    path = tmp_path / "drift.nc"
    bs.save_fit(fit, str(path))
    loaded = bs.load_fit(str(path))
    assert loaded.spec == fit.spec and loaded.spec.drift
    np.testing.assert_array_equal(np.asarray(loaded.posterior["drift_end"]), np.asarray(fit.posterior["drift_end"]))
    assert "drift" in loaded.summary


def test_the_walk_is_reported_in_the_summary_with_its_prior(drifting):
    fit = drifting.fits["pow3"]["run"]
    row = fit.summary["drift"]
    assert 0.0 <= row["q05"] <= row["median"] <= row["q95"]
    assert "contraction" in row
    assert set(fit.posterior["drift_steps"].dims) == {"chain", "draw", "run", "knot_step"}
    assert np.all(np.isfinite(drifting.final_loss("run")))
