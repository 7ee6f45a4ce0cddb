"""Extrapolating learning curves: inputs, pooled and stacked fits, schedules, calibration.

Simulated curves are drawn from the model itself, so the posterior predictive is exact
up to Monte-Carlo error and a 90% interval must cover the truth 90% of the time; the
tolerances below are binomial standard errors of that rate.
"""

import importlib
import warnings

import jax
import numpy as np
import pytest
from bayescale.models import get_law
from bayescale.models.domhan import CURVE_FAMILIES
from conftest import EXTRAPOLATION_CONFIG_ARGS, CallStopped, extrapolate_small_curves, held_back_table, record_call

import bayescale as bs
from bayescale import _arviz, inference
from bayescale.compare import stacking_weights
from bayescale.data import ScalingData
from bayescale.errors import ConvergenceWarning, DataError, IdentifiabilityWarning
from bayescale.extrapolate import CURVE_CONFIG, _design, extrapolate, score_held_back
from bayescale.law import ModelSpec, whitened_level_name
from bayescale.schedules import DROP_BINS, named_schedule
from bayescale.testing import prior_means, simulate, simulate_curves

# The module, which bayescale's namespace shadows with its function extrapolate.
extrapolate_module = importlib.import_module("bayescale.extrapolate")

STEPS = np.unique(np.geomspace(10, 1000, 30).round()).astype(int)
# The last observed step, about a quarter of the run: x = step / CUT as in extrapolate.
CUT = int(STEPS[STEPS <= 250][-1])


def _table(runs, size=None):
    """A checkpoint table from {run: (steps, losses)}; every run of model size ``size`` if given."""
    columns = {"run": [], "step": [], "loss": []}
    for run, (steps, losses) in runs.items():
        columns["run"] += [run] * len(steps)
        columns["step"] += list(steps)
        columns["loss"] += list(losses)
    if size is not None:
        columns["N"] = [size] * len(columns["run"])
    return bs.read_table({name: np.asarray(values) for name, values in columns.items()})


def _inputs_table(steps, inputs):
    """One run's law inputs at ``steps``, the table a simulation reads (losses unused)."""
    columns = {"run": np.full(len(steps), "run", dtype=object), "step": steps, "loss": np.ones(len(steps)), **inputs}
    return ScalingData(columns, "simulation inputs", np.arange(1, len(steps) + 1))


def _pow3_curve(log_l_ref, key):
    """A pow3 curve with correlated noise and x = step / CUT: the observed steps (<= CUT),
    their losses, and the true mean loss at the last step."""
    law = get_law("pow3")
    truth = {"log_L_ref": log_l_ref, "log_ratio": 0.0, "alpha": 0.5, "sigma": 0.01, "nu": 10.0, "corr_length": 0.5}
    steps = STEPS[STEPS <= CUT]
    data = _inputs_table(steps, {"x": steps / CUT})
    _, losses = simulate_curves(ModelSpec(law, "student_t", correlated=True), data, key=key, num_draws=1, params=truth)
    final = np.exp(float(law.log_mean(truth, {"x": np.array(STEPS[-1] / CUT)})))
    return steps, losses[0], final


@pytest.fixture(scope="module")
def pooled(session_key):
    curves = {
        run: _pow3_curve(level, jax.random.fold_in(session_key, i))
        for i, (run, level) in enumerate({"a": 1.0, "b": 1.3}.items())
    }
    data = _table({run: curve[:2] for run, curve in curves.items()})
    # A fit may report a stray divergence (the noise scale and correlation length trade off
    # near their lower corner); the result must then say it is unhealthy, which is checked.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = extrapolate(data, to_step={"a": 1000, "b": 600}, law="pow3", key=session_key)
    return result, curves, caught


def test_the_chance_of_reaching_a_loss_is_the_share_of_final_loss_draws_at_or_below_it(small_extrapolation):
    result = small_extrapolation
    draws = {run: result.final_loss(run) for run in result.runs}
    needed = float(np.median(draws["a"]))
    assert result.probability_at_or_below(needed) == {run: np.mean(d <= needed) for run, d in draws.items()}
    assert result.probability_at_or_below({"b": float(draws["b"].max())}) == {"b": 1.0}
    summary = result.summary(need={"a": needed})
    assert summary["runs"]["a"]["need"] == {
        "loss": needed,
        "probability": np.mean(draws["a"] <= needed),
        "reached_at": result.steps_to_reach({"a": needed})["a"],
    }
    assert "need" not in summary["runs"]["b"] and "need" not in result.summary()["runs"]["a"]
    for bad in (0.0, -1.0, float("nan"), float("inf"), True, "2.1"):
        with pytest.raises(ValueError, match=r"the loss needed for run 'a' is .*; expected a positive number"):
            result.probability_at_or_below(bad)
    with pytest.raises(ValueError, match="no run 'c' in this extrapolation; runs: a, b"):
        result.summary(need={"c": 2.0})


def test_the_first_step_a_chance_reaches_a_level_is_interpolated_in_log_step():
    steps = np.array([100, 200, 400, 800])
    chances = np.array([0.0, 0.2, 0.6, 1.0])
    first = extrapolate_module._first_step_reaching
    # 0.5 lies three quarters of the way from 0.2 (step 200) to 0.6 (step 400) in chance.
    assert first(steps, chances, 0.5) == round(200 * 2**0.75)
    assert first(steps, chances, 0.6) == 400  # reached exactly at a point
    assert first(steps, chances, 0.0) == 100  # already at the first point
    assert first(steps, np.array([0.0, 0.2, 0.4, 0.3]), 0.5) is None


def test_the_steps_to_reach_a_loss_are_where_the_chance_of_logging_it_passes_5_50_and_95_percent(
    small_extrapolation,
):
    result = small_extrapolation
    steps, draws = result.curve("b")
    # The median of the draws at a point of the curve: the chance of logging it or lower
    # is at least a half there and, the curve falling, below a half at the point before.
    point = len(steps) // 2
    needed = float(np.median(draws[:, point]))
    chances = np.mean(draws <= needed, axis=0)
    assert chances[point] >= 0.5 > chances[point - 1]
    reached = result.steps_to_reach({"b": needed})
    assert set(reached) == {"b"}
    assert steps[point - 1] < reached["b"]["median"] <= steps[point]
    assert reached["b"]["q05"] <= reached["b"]["median"] <= (reached["b"]["q95"] or np.inf)
    # A loss every draw beats from the last checkpoint on is reached there; one no draw
    # reaches by the target is not reached at all.
    assert result.steps_to_reach(float(draws.max()) * 1.01)["b"] == dict.fromkeys(("q05", "median", "q95"), steps[0])
    assert result.steps_to_reach(float(draws.min()) * 0.99)["a"] == dict.fromkeys(("q05", "median", "q95"))
    with pytest.raises(ValueError, match="no run 'c' in this extrapolation"):
        result.steps_to_reach({"c": 2.0})


def test_with_checkpoints_held_back_the_summary_says_when_the_run_logged_the_loss_needed(held_back_extrapolation):
    result, table = held_back_extrapolation, held_back_table()
    b = table["run"] == "b"
    steps, losses = table["step"][b], table["loss"][b]
    # A loss first logged after the cut, one logged before it (fitted), and one never logged.
    after, before, never = float(losses[steps > 200].min()), float(losses[steps <= 200].min()), 0.5 * losses.min()
    logged_at = {
        loss: result.summary(need={"b": loss})["runs"]["b"]["need"]["logged_at"] for loss in (after, before, never)
    }
    assert logged_at[after] == steps[losses <= after].min() > 200
    assert logged_at[before] == steps[losses <= before].min() <= 200
    assert logged_at[never] is None


def test_the_reach_is_said_in_one_line():
    describe = extrapolate_module.describe_reach
    assert describe(3.0, {"q05": 150, "median": 180, "q95": 220}) == "<= 3 from step 180 (90%: step 150 to step 220)"
    assert describe(3.0, {"q05": 150, "median": 180, "q95": None}) == (
        "<= 3 from step 180 (90%: step 150 to after the target)"
    )
    assert describe(3.0, {"q05": 150, "median": None, "q95": None}) == (
        "<= 3: not by the target on the median (a 5% chance from step 150)"
    )
    assert describe(3.0, dict.fromkeys(("q05", "median", "q95"))) == "<= 3: not by the target (a chance under 5% there)"
    # With the checkpoints held back, when the run did log it.
    reached = {"q05": 150, "median": 180, "q95": 220}
    need = extrapolate_module.describe_need
    assert need({"loss": 3.0, "reached_at": reached}) == describe(3.0, reached)
    assert need({"loss": 3.0, "reached_at": reached, "logged_at": 190}) == (
        f"{describe(3.0, reached)}; first logged at step 190"
    )
    assert need({"loss": 3.0, "reached_at": reached, "logged_at": None}) == (
        f"{describe(3.0, reached)}; not logged by the target"
    )


def test_checkpoints_held_back_are_not_fitted_and_are_set_beside_the_forecast(
    small_extrapolation, held_back_extrapolation, tmp_path
):
    """observed_until=200 on runs logged to 400 and 800: the forecast from their first 200 steps.

    The fitted checkpoints, targets (each run's last checkpoint), key and settings are those
    of the small extrapolation, so the draws must be the same ones.
    """
    result, table = held_back_extrapolation, held_back_table()
    assert result.data["step"].max() == 200 and len(result.data) == 40
    for run, target in (("a", 400), ("b", 800)):
        np.testing.assert_array_equal(result.final_loss(run), small_extrapolation.final_loss(run))
        later = (table["run"] == run) & (table["step"] > 200)
        steps, losses = result.held_back(run)
        np.testing.assert_array_equal(steps, table["step"][later])
        np.testing.assert_array_equal(losses, table["loss"][later])
        entry = result.summary()["runs"][run]
        assert entry["to_step"] == target and entry["logged"] == table["loss"][later][-1]
        assert entry["error"] == entry["final_loss"]["median"] / entry["logged"] - 1.0
    held_back_note = "held back (observed_until), to compare with the forecast: kept 40 of 120 rows (held back "
    assert any(held_back_note in note for note in result.notes)
    assert "logged" not in small_extrapolation.summary()["runs"]["a"]
    assert small_extrapolation.held_back("a")[0].size == 0
    path = tmp_path / "held.nc"
    result.save(str(path))
    loaded = bs.load_extrapolation(str(path))
    assert loaded.summary()["runs"] == result.summary()["runs"]
    np.testing.assert_array_equal(loaded.held_back("b")[1], result.held_back("b")[1])


def test_held_back_checkpoints_are_scored_against_the_curve_as_drawn():
    """A power law in step is a straight line in log-log, so the interpolated median and band are exact.

    Each draw is the curve times exp(z), z evenly spaced on [-0.02, 0.02]: the median is
    the curve itself and the 90% band is exp(+-0.018) around it.
    """
    grid = np.geomspace(100, 1000, 7)
    offsets = np.linspace(-0.02, 0.02, 4001)[:, None]
    draws = 3.0 * grid**-0.1 * np.exp(offsets)
    steps = np.array([50.0, 100.0, 150.0, 420.0, 999.0, 1200.0])  # the first and last outside the grid
    curve = 3.0 * steps**-0.1
    near = score_held_back(grid, draws, steps, curve * np.exp(0.01))
    assert near["checkpoints"] == 4 and near["inside_90"] == 1.0
    assert near["rmsle"] == pytest.approx(0.01, rel=1e-9)
    far = score_held_back(grid, draws, steps, curve * np.exp(0.03 * np.array([1, -1, 1, -1, 1, -1])))
    assert far["inside_90"] == 0.0 and far["rmsle"] == pytest.approx(0.03, rel=1e-9)
    assert score_held_back(grid, draws, steps[[0, -1]], curve[[0, -1]]) is None


def test_the_summary_scores_each_runs_held_back_checkpoints(held_back_extrapolation, small_extrapolation):
    result = held_back_extrapolation
    for run, count in (("a", 20), ("b", 60)):
        scores = result.summary()["runs"][run]["held_back"]
        assert scores == score_held_back(*result.curve(run), *result.held_back(run))
        # A sanity bound, not a tolerance: the held-back losses scatter 1% around a pow3
        # curve, so an RMSLE of 0.1 would be a median ten noise scales off.
        assert scores["checkpoints"] == count and 0 < scores["rmsle"] < 0.1
    assert "held_back" not in small_extrapolation.summary()["runs"]["a"]


def test_the_fan_chart_draws_held_back_checkpoints_hollow(held_back_extrapolation):
    figure = bs.plot_extrapolation(held_back_extrapolation, "a")
    (held,) = [c for c in figure.axes[0].collections if c.get_label() == "held back (not fitted)"]
    np.testing.assert_array_equal(held.get_offsets()[:, 0], held_back_extrapolation.held_back("a")[0])
    assert held.get_facecolors().size == 0  # hollow: only the edges drawn


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({}, ValueError, "needs to_step, or observed_until"),
        ({"observed_until": 0}, ValueError, "observed_until must be a positive whole step; got 0"),
        ({"observed_until": 150.5}, ValueError, "positive whole step; got 150.5"),
        ({"observed_until": True}, ValueError, "positive whole step; got True"),
        ({"observed_until": 5}, bs.DataError, r"no checkpoint up to step 5 \(observed_until\) for run\(s\) a \(first"),
        ({"observed_until": 200, "to_step": 150}, bs.DataError, "target step before the last checkpoint"),
    ],
)
def test_bad_observed_until_is_explained_before_fitting(options, error, message, key):
    table = held_back_table()
    with pytest.raises(error, match=message):
        extrapolate(table, key=key, law="pow3", **options)
    if error is ValueError:  # the arguments alone are wrong: refused before any file is read
        with pytest.raises(error, match=message):
            extrapolate("absent.csv", key=key, law="pow3", **options)


def test_health_in_the_summary_matches_the_warnings(pooled):
    """Each run's health is that of the pooled fit; each backtest's, that of its own fit."""
    result, _, caught = pooled
    assert all(issubclass(item.category, ConvergenceWarning) for item in caught)
    own = [item for item in caught if "(backtest)" not in str(item.message)]
    assert all(entry["healthy"] == (not own) for entry in result.summary()["runs"].values())
    assert set(result.backtest["runs"]) == {"a", "b"}  # pooled, both in progress
    for run, entry in result.backtest["runs"].items():
        flagged = any(f"to run {run!r} cut at step" in str(item.message) for item in caught)
        assert entry["healthy"] == (not flagged)


def test_pooled_runs_share_one_fit_with_a_level_each(pooled):
    result, _, _ = pooled
    fit_a, fit_b = (result.fits["pow3"][run] for run in ("a", "b"))
    assert fit_a is fit_b and fit_a.runs == ("a", "b")
    draws = fit_a.draws()
    assert draws["log_L_ref"].shape[1] == 2 and draws["alpha"].ndim == 1
    assert fit_a.spec.correlated
    # The level is recorded under its own name; the sampler's whitened coordinate is not kept.
    assert fit_a.posterior["log_L_ref"].dims == ("chain", "draw", "run")
    assert whitened_level_name("log_L_ref") not in fit_a.posterior


@pytest.mark.xfail(
    strict=False,
    reason="open in issue 3: the pooled fit's median misses this simulated truth by 8%; the backtests' widening "
    "reaches it at the 99.5% edge",
)
def test_prediction_covers_the_true_final_loss(pooled):
    result, curves, _ = pooled
    final = curves["a"][2]  # the true mean loss at step 1000, run a's target
    low, high = np.quantile(result.final_loss("a"), [0.005, 0.995])
    assert low < final < high, (low, final, high)


def test_summary_and_curve_describe_each_run(pooled):
    result, _, _ = pooled
    summary = result.summary()
    assert set(summary["runs"]) == {"a", "b"}
    for run, target in (("a", 1000), ("b", 600)):
        entry = summary["runs"][run]
        assert entry["law"] == "pow3" and entry["to_step"] == target and entry["observed_until_step"] == CUT
        quantiles = entry["final_loss"]
        assert quantiles["q05"] < quantiles["median"] < quantiles["q95"]
        # Noise of 10 degrees of freedom: tails light enough for a mean.
        assert quantiles["mean"] == pytest.approx(result.final_loss(run).mean(), rel=1e-12)
        steps, draws = result.curve(run)
        assert steps[0] == CUT and steps[-1] == target and np.all(np.diff(steps) >= 0)
        assert draws.shape == (CURVE_CONFIG.num_chains * CURVE_CONFIG.num_samples, len(steps))
        np.testing.assert_array_equal(draws[:, -1], result.final_loss(run))
    assert any(note.startswith(f"x = step / {CUT}") for note in summary["notes"])


def test_a_fit_without_pointwise_values_extrapolates_alike(monkeypatch):
    # A run's last residual comes from the parameters, not from the stored pointwise mu.
    # Both extrapolations are made here, back to back, to be compared bit for bit: on jax
    # 0.12.1 the session's fixture, made modules earlier in the suite, differed from a later
    # identical call (the two agree when run alone, and in one process here).
    full = extrapolate_small_curves()
    monkeypatch.setattr(inference, "POINTWISE_BUDGET", 0)
    lean = extrapolate_small_curves()
    fits = [fitted for by_law in lean.fits.values() for fitted in by_law.values()]
    assert fits and not any(fitted.has_pointwise for fitted in fits)
    assert all(fitted.has_pointwise for by_law in full.fits.values() for fitted in by_law.values())
    expected = _arviz.group(full.idata, "predictions")
    for name, values in _arviz.group(lean.idata, "predictions").items():
        np.testing.assert_allclose(values, expected[name], rtol=1e-12, err_msg=name)


def test_stacking_two_laws_weights_them_per_run(session_key, monkeypatch):
    """By PSIS-LOO on the run's checkpoints; with stacking="lfo", a run alone is cut at its
    horizon, log(1000 / its last step), within half its log-step range, to weight the laws
    by their forecasts of the checkpoints after the cut."""
    steps, losses, _ = _pow3_curve(1.0, session_key)
    run_weights, bootstrap_keys = extrapolate_module._run_weights, {}

    def keep_key(fits, run, key):
        bootstrap_keys[run] = key
        return run_weights(fits, run, key)

    monkeypatch.setattr(extrapolate_module, "_run_weights", keep_key)
    config = CURVE_CONFIG.replace(**EXTRAPOLATION_CONFIG_ARGS)
    results = {}
    with warnings.catch_warnings():  # the weights are checked here, not the fits' health
        warnings.simplefilter("ignore", ConvergenceWarning)
        for stacking in ("lfo", "loo"):
            results[stacking] = extrapolate(
                _table({"a": (steps, losses)}),
                to_step=1000,
                law=["pow3", "weibull"],
                stacking=stacking,
                config=config,
                key=session_key,
            )
    for result in results.values():
        weights = result.weights["a"]
        assert set(weights) == {"pow3", "weibull"} and sum(weights.values()) == pytest.approx(1.0)
        assert len(result.final_loss("a")) == config.num_chains * config.num_samples
    cut = steps[-1] * np.exp(-min(np.log(1000 / steps[-1]), 0.5 * np.log(steps[-1] / steps[0])))
    expected = f"a cut at step {cut:.0f} ({np.sum(steps > cut)} after it)"
    assert [note for note in results["lfo"].notes if "stacking" in note] == [
        f"law weights by leave-future-out stacking, each run on its checkpoints after its cut: {expected}"
    ]
    # The bagged PSIS-LOO weights of the run's own checkpoints, with the bootstrap key the call drew.
    loo = results["loo"]
    fits_of_a = {name: fits["a"] for name, fits in loo.fits.items()}
    assert loo.weights["a"] == run_weights(fits_of_a, "a", bootstrap_keys["a"])


def _scored(scores):
    """A stand-in for _log_predictive_density: the scores of (fit, run) whatever the inputs."""

    def log_predictive_density(fit, run, inputs, steps, log_loss, key):
        assert len(scores[fit, run]) == len(steps) == len(log_loss)
        return np.asarray(scores[fit, run], dtype=np.float64)

    return log_predictive_density


def test_each_run_alone_is_weighted_by_its_own_cut_and_pooled_runs_by_all_cuts(monkeypatch):
    """Law p forecasts run a well and run b badly, law q the reverse; run c has no cut."""
    scores = {("p", "a"): [-1.0, -1.5, -1.2], ("q", "a"): [-3.0, -0.5, -4.0], ("p", "b"): [-6.0, -7.0]}
    scores["q", "b"] = [-1.0, -2.0]
    monkeypatch.setattr(extrapolate_module, "_log_predictive_density", _scored(scores))
    by_loo = {"p": 0.25, "q": 0.75}
    monkeypatch.setattr(extrapolate_module, "_run_weights", lambda fits, run, key: dict(by_loo))
    design = extrapolate_module._Design(1.0, {}, None, 1.0, {}, frozenset())
    laws = {"p": "p", "q": "q"}  # the stand-in scores a fit by its name
    cuts = []
    for run in ("a", "b"):
        held_out = len(scores["p", run])
        cut = extrapolate_module._Cut(run, 10.0, None, design, np.arange(1.0, held_out + 1), np.zeros(held_out))
        cuts.append((cut, laws))
    fits = {name: dict.fromkeys("abc", name) for name in laws}

    def stacked(*runs):
        columns = [np.concatenate([scores[name, run] for run in runs]) for name in laws]
        return dict(zip(laws, stacking_weights(np.column_stack(columns)), strict=True))

    alone, notes = extrapolate_module._law_weights(fits, ["a", "b", "c"], True, cuts, jax.random.key(0))
    for run in ("a", "b"):
        assert alone[run] == pytest.approx(stacked(run))
    assert alone["a"]["p"] > 0.5 > alone["b"]["p"] and alone["c"] == by_loo
    assert notes[1] == "law weights by bagged PSIS-LOO stacking for 'c'"
    pooled, _ = extrapolate_module._law_weights(fits, ["a", "b", "c"], False, cuts, jax.random.key(0))
    assert all(pooled[run] == pytest.approx(stacked("a", "b")) for run in "abc")
    by_loo_only, _ = extrapolate_module._law_weights(fits, ["a", "b", "c"], True, None, jax.random.key(0))
    assert by_loo_only == dict.fromkeys("abc", by_loo)


def test_losses_that_repeat_the_checkpoint_before_are_noted_per_run(monkeypatch):
    """Exact repeats are zero innovations; the notes count them per run (fits stubbed)."""
    steps = STEPS[STEPS <= CUT]
    smooth = 2.0 * steps**-0.3
    stale = smooth.copy()
    stale[4:7] = stale[3]  # three checkpoints carry the fourth's value forward
    monkeypatch.setattr(
        extrapolate_module, "_fit_laws", lambda laws, datasets, *_: [{law.name: None for law in laws} for _ in datasets]
    )
    seen = {}

    def assemble(fits, data, runs, targets, design, notes, *_):
        seen["notes"] = notes
        raise CallStopped

    monkeypatch.setattr(extrapolate_module, "_assemble", assemble)
    with pytest.raises(CallStopped):
        extrapolate(
            _table({"smooth": (steps, smooth), "stale": (steps, stale)}),
            to_step=1000,
            law="pow3",
            key=jax.random.key(0),
        )
    repeats = [note for note in seen["notes"] if "repeat the loss before them" in note]
    assert len(repeats) == 1 and repeats[0].startswith(f"run 'stale': 3 of {len(steps)} checkpoints repeat")


def test_the_scored_predictive_density_is_that_of_the_forecast_draws(session_key):
    """Leave-future-out stacking scores the density the forecast's draws come from: at the
    draws' quantiles, the density integrated from below matches the share of draws within
    four binomial standard errors."""
    steps, losses, _ = _pow3_curve(1.0, session_key)
    config = CURVE_CONFIG.replace(**EXTRAPOLATION_CONFIG_ARGS)
    with warnings.catch_warnings():  # the density is checked here, not the fit's health
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = extrapolate(_table({"a": (steps, losses)}), to_step=1000, law="pow3", config=config, key=session_key)
    fit = result.fits["pow3"]["a"]
    design = _design(result.data, ["a"], None, [fit.law])
    step = np.array([600.0])
    draws = np.concatenate(
        [
            extrapolate_module._predict(fit, "a", design.inputs("a", step), np.log(step), jax.random.key(k))[:, 0]
            for k in range(20)
        ]
    )
    spread = np.subtract(*np.quantile(draws, [0.75, 0.25]))
    grid = np.linspace(draws.min() - 10 * spread, draws.max() + 10 * spread, 20_001)
    at = np.full(len(grid), step[0])
    log_density = extrapolate_module._log_predictive_density(
        fit, "a", design.inputs("a", at), at, grid, jax.random.key(0)
    )
    density = np.exp(log_density)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(grid))])
    # No draw lies beyond the grid, so the mass beyond it is below 3 / draws (the rule of three, 95%).
    assert abs(cdf[-1] - 1.0) < 3 / len(draws)
    for level in (0.05, 0.25, 0.5, 0.75, 0.95):
        value = np.quantile(draws, level)
        tolerance = 4 * np.sqrt(level * (1 - level) / len(draws))
        assert abs(np.interp(value, grid, cdf) - np.mean(draws <= value)) < tolerance, level


@pytest.mark.slow  # a minute of compilation to show a known failure
@pytest.mark.xfail(
    raises=ConvergenceWarning, strict=True, reason="open in issue 3: divergences of lr_annealing with correlated noise"
)
def test_known_schedule_selects_the_annealing_law(session_key):
    schedule = named_schedule("cosine", peak=1e-3, final=1e-4, warmup=20, total=1000)
    steps = STEPS[STEPS <= 500]
    law = get_law("lr_annealing")
    data = _table({"run": (steps, np.full(len(steps), 3.0))})
    inputs = _design(data, ["run"], {"run": schedule}, [law]).inputs("run", STEPS)
    truth = {"log_L_ref": 1.0, "log_ratio": 0.0, "alpha": 0.5, "phi": 0.1, "sigma": 0.005}
    curve = simulate(law, truth, {name: inputs[name] for name in law.inputs}, key=session_key)
    observed = _table({"run": (steps, curve["loss"][: len(steps)])})
    result = extrapolate(observed, to_step=1000, schedule=schedule, key=session_key)
    assert result.summary()["runs"]["run"]["law"] == "lr_annealing"
    true_final = np.exp(float(law.log_mean(truth, {name: inputs[name][-1] for name in law.inputs})))
    low, high = np.quantile(result.final_loss("run"), [0.005, 0.995])
    assert low < true_final < high


def test_multi_power_keeps_its_binned_inputs_through_save_and_load(key, tmp_path):
    """A run into its decay: the fit holds a column per bin of the decreases, saves and
    reloads them, and the reloaded fit predicts the same draws."""
    schedule = named_schedule("wsd", peak=1e-3, final=1e-4, warmup=20, total=1000, decay=0.3)
    law = get_law("multi_power")
    steps = STEPS[STEPS <= 800]
    inputs = _design(_table({"run": (steps, np.ones(len(steps)))}), ["run"], {"run": schedule}, [law]).inputs(
        "run", STEPS
    )
    truth = {
        "log_L_ref": 1.0,
        "log_ratio": 0.0,
        "alpha": 0.5,
        "phi": 0.1,
        "log_C": 3.0,
        "beta": 0.5,
        "gamma": 0.5,
        "sigma": 0.005,
    }
    curve = simulate(law, truth, {name: inputs[name] for name in law.inputs}, key=key)
    config = CURVE_CONFIG.replace(**EXTRAPOLATION_CONFIG_ARGS)
    with warnings.catch_warnings():  # so few draws; the columns are checked here, not the fit
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        result = extrapolate(
            _table({"run": (steps, curve["loss"][: len(steps)])}),
            to_step=1000,
            law="multi_power",
            schedule=schedule,
            config=config,
            key=key,
        )
    fit = result.fits["multi_power"]["run"]
    assert fit.data["drop_mass"].shape == (len(steps), DROP_BINS)
    assert np.any(fit.data["drop_mass"][-1] > 0)  # the decay began at step 700
    path = tmp_path / "multi_power.nc"
    bs.save_fit(fit, str(path))
    loaded = bs.load_fit(str(path))
    for name in law.inputs:
        np.testing.assert_array_equal(loaded.data[name], fit.data[name], err_msg=name)
    future = {name: inputs[name][-3:] for name in law.inputs}
    log_steps = np.log(STEPS[-3:].astype(float))
    np.testing.assert_array_equal(
        extrapolate_module._predict(loaded, "run", future, log_steps, key),
        extrapolate_module._predict(fit, "run", future, log_steps, key),
    )


def test_a_law_of_model_size_and_steps_predicts_the_steps_ahead(key):
    """kaplan_ns reads N and the raw step: the prediction's inputs carry both to the target."""
    law = get_law("kaplan_ns")
    truth = {**prior_means(law, "normal"), "sigma": 0.005}
    steps = STEPS[STEPS <= 500]
    sizes = {"small": 1e8, "large": 1e9}
    design = {"N": np.repeat(list(sizes.values()), len(STEPS)), "step": np.tile(STEPS, len(sizes)).astype(float)}
    curves = simulate(law, truth, design, key=key)
    observed = np.tile(STEPS <= 500, len(sizes))
    columns = {name: curves[name][observed] for name in ("N", "step", "loss")}
    table = bs.read_table({"run": np.repeat(list(sizes), len(steps)), **columns})
    with warnings.catch_warnings():  # so few draws, and the backtests' short cuts; the inputs are checked here
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        result = extrapolate(
            table, to_step=1000, law="kaplan_ns", config=CURVE_CONFIG.replace(**EXTRAPOLATION_CONFIG_ARGS), key=key
        )
    for run, size in sizes.items():
        true_final = np.exp(float(law.log_mean(truth, {"N": np.array(size), "step": np.array(1000.0)})))
        low, high = np.quantile(result.final_loss(run), [0.005, 0.995])
        assert low < true_final < high, (run, low, true_final, high)


def test_a_draw_past_the_float_range_stays_finite_and_is_noted(monkeypatch):
    # A Student-t innovation of small nu can throw one predictive draw past exp's range.
    predict = extrapolate_module._predict

    def one_huge_draw(*args):
        draws = predict(*args)
        draws[0] += 1000.0
        return draws

    monkeypatch.setattr(extrapolate_module, "_predict", one_huge_draw)
    result = extrapolate_small_curves()
    for run in result.runs:
        final = result.final_loss(run)
        assert np.all(np.isfinite(final)) and np.all(np.isfinite(result.curve(run)[1]))
        assert final.max() > np.finfo(np.float64).max / 2
        assert f"run {run!r}: 1 of {len(final)} predictive draws pass the float range" in " ".join(result.notes)
        # Their mean would be that one draw's; the summary leaves it out and says why.
        summary = result.summary()
        assert summary["runs"][run]["final_loss"]["mean"] is None
        assert any(note.startswith(f"run {run!r}, final loss: tails too heavy for a mean") for note in summary["notes"])


def test_schedule_law_without_a_schedule_is_an_error(key):
    data = bs.read_table({"step": np.array([10, 20, 30]), "loss": np.array([3.0, 2.9, 2.8]), "lr": np.full(3, 1e-3)})
    with pytest.raises(DataError, match="needs the learning-rate schedule"):
        extrapolate(data, to_step=100, law="lr_annealing", key=key)


@pytest.mark.parametrize(
    ("columns", "to_step", "expected"),
    [
        ({"step": [0, 10], "loss": [3.0, 2.0]}, 100, "steps below 1"),
        ({"step": [10, 10], "loss": [3.0, 2.0]}, 100, "repeat the same"),
        ({"step": [10, 20], "loss": [3.0, 2.0]}, 15, "target step before the last checkpoint"),
        ({"step": [10, 20], "loss": [3.0, 2.0], "total": [100, 200]}, "total", "has 2 target steps"),
        ({"step": [10, 20], "loss": [3.0, 2.0]}, "total", "total"),
        ({"step": [10, 20], "loss": [3.0, 2.0], "run": ["a", "b"]}, {"a": 100}, "no target step for run"),
        ({"step": [10, 20], "run": ["a", "b"]}, 100, "loss"),
    ],
)
def test_bad_checkpoints_and_targets_are_explained(columns, to_step, expected, key):
    with pytest.raises(DataError, match=expected):
        extrapolate(columns, to_step=to_step, law="pow3", key=key)


@pytest.mark.parametrize("retry", [False, True])
def test_retry_reaches_every_fit(retry, key, monkeypatch):
    seen = record_call(monkeypatch, extrapolate_module, "fit_problems")
    with pytest.raises(CallStopped):
        extrapolate({"step": [10, 20, 40], "loss": [3.0, 2.0, 1.8]}, to_step=100, law="pow3", retry=retry, key=key)
    assert seen["retry"] is retry


def test_unknown_pooling_is_rejected(key):
    with pytest.raises(ValueError, match="pooling must be one of"):
        extrapolate({"step": [10, 20], "loss": [3.0, 2.0]}, to_step=100, law="pow3", pooling="partial", key=key)


def test_laws_that_are_not_curve_laws_are_rejected(key):
    with pytest.raises(DataError, match="not a learning-curve input"):
        extrapolate({"step": [10, 20], "loss": [3.0, 2.0]}, to_step=100, law="chinchilla", key=key)


# Calibration ------------------------------------------------------------------------

# 200 finals per law: the binomial standard error of a 90% rate is 2.1%, so the test's three
# standard errors (83.6-96.4%) sit just outside the 85-95% that issue 3 asks for.
CALIBRATION_DRAWS = 200
# Every single-run curve family of the catalogue, the schedule-aware laws, and Kaplan's
# L(N, S) on runs of one model size (its N-term is then the run's floor).
CALIBRATION_LAWS = (
    *(law.name for law in CURVE_FAMILIES),
    "pow3_shift",
    "m4",
    "lr_annealing",
    "multi_power",
    "kaplan_ns",
)
# The model size of the simulated runs for laws that read N: kaplan_ns's reference size.
CALIBRATION_SIZE = 1e9
# The same check for the model with the drift, on curves that drift: a single-run family
# and the schedule-aware law.
CALIBRATION_CASES = [
    *(pytest.param(name, False, id=name) for name in CALIBRATION_LAWS),
    *(pytest.param(name, True, id=f"{name}-drift") for name in ("pow3", "lr_annealing")),
]


def _plausible(losses):
    """Keep simulated curves whose observed part looks like a training log: finite losses
    between 0.1 and 20 that fall from the first checkpoint to the last. The filter reads
    only observed data, so the posterior stays calibrated on the curves it keeps."""
    return (
        np.all(np.isfinite(losses), axis=1)
        & np.all((losses > 0.1) & (losses < 20), axis=1)
        & (losses[:, -1] < losses[:, 0])
    )


@pytest.mark.slow
@pytest.mark.parametrize(("law_name", "drift"), CALIBRATION_CASES)
def test_ninety_percent_intervals_cover_ninety_percent_of_finals(law_name, drift, key):
    """Curves drawn from the model's prior with correlated residuals, cut at 25% of their
    steps; the 90% interval of the final loss must cover the truth at 90%, within three
    binomial standard errors."""
    law = get_law(law_name)
    schedule = named_schedule("cosine", peak=1e-3, final=1e-4, warmup=20, total=int(STEPS[-1]))
    observed_steps = STEPS[STEPS <= CUT]
    size = CALIBRATION_SIZE if "N" in law.inputs else None
    stub = _table({"run": (observed_steps, np.ones(len(observed_steps)))}, size)
    design = _design(stub, ["run"], {"run": schedule} if "S1" in law.inputs else None, [law])
    inputs = design.inputs("run", STEPS)
    full = _inputs_table(STEPS, {name: inputs[name] for name in law.inputs})
    spec = ModelSpec(law, "student_t", correlated=True, drift=drift)
    # Some prior draws overflow the float range (inf), and some laws put most of theirs far
    # from any training log (janoschek keeps 1 in 4, vapor_pressure 1 in 14); _plausible
    # drops them, and batches of prior draws are added until enough are kept.
    observed = len(observed_steps)
    kept = []
    for batch in range(10):
        batch_key = key if batch == 0 else jax.random.fold_in(key, 100 + batch)  # the first batch: as measured before
        _, losses = simulate_curves(spec, full, key=batch_key, num_draws=10 * CALIBRATION_DRAWS)
        kept.append(losses[_plausible(losses[:, :observed])])
        if sum(map(len, kept)) >= CALIBRATION_DRAWS:
            break
    losses = np.concatenate(kept)[:CALIBRATION_DRAWS]
    assert len(losses) == CALIBRATION_DRAWS
    runs = {f"sim{i:03d}": (observed_steps, curve[:observed]) for i, curve in enumerate(losses)}
    # Some of the many fits report divergences, or a parameter the prefix did not constrain;
    # calibration is judged over all of them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        result = extrapolate(
            _table(runs, size),
            to_step=int(STEPS[-1]),
            law=law_name,
            pooling="none",
            drift=drift,
            key=jax.random.fold_in(key, 1),
            schedule=schedule if "S1" in law.inputs else None,
        )
    covered = [
        np.quantile(result.final_loss(run), 0.05) <= curve[-1] <= np.quantile(result.final_loss(run), 0.95)
        for run, curve in zip(runs, losses, strict=True)
    ]
    rate = np.mean(covered)
    measured = (
        f"{law_name}{' with drift' if drift else ''}: 90% intervals covered {rate:.1%} of {CALIBRATION_DRAWS} finals"
    )
    print(measured)  # pytest -rA shows it for BENCHMARKS.md
    standard_error = np.sqrt(0.9 * 0.1 / CALIBRATION_DRAWS)
    assert abs(rate - 0.9) < 3 * standard_error, measured
