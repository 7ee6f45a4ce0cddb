"""Backtests: finished runs cut where the runs in progress stand (or, pooled with nothing
finished, the runs in progress cut short of their last checkpoints), forecast again, and the
discrepancy their misses teach added to the forecasts of the runs in progress."""

import importlib
import warnings

import jax
import numpy as np
import pytest
from bayescale.models import get_law
from conftest import EXTRAPOLATION_CONFIG_ARGS

import bayescale as bs
from bayescale.cli import _extrapolation_text
from bayescale.errors import ConvergenceWarning, IdentifiabilityWarning
from bayescale.extrapolate import CURVE_CONFIG, extrapolate

# The module, which bayescale's namespace shadows with its function extrapolate.
extrapolate_module = importlib.import_module("bayescale.extrapolate")

STEPS = np.arange(10, 1001, 10)
# Runs a and b are finished at step 1000; c stands at step 250, a quarter of its target.
RUNS = {"a": (3.0, 1000), "b": (2.0, 1000), "c": (2.5, 250)}
TARGET = 1000


def _runs_table(seed=0):
    rng = np.random.default_rng(seed)
    columns = {"run": [], "step": [], "loss": []}
    for run, (scale, last) in RUNS.items():
        steps = STEPS[STEPS <= last]
        columns["run"] += [run] * len(steps)
        columns["step"] += list(steps)
        columns["loss"] += list((2.0 + scale * steps**-0.5) * np.exp(rng.normal(0, 0.003, len(steps))))
    return bs.read_table({name: np.asarray(values) for name, values in columns.items()})


@pytest.fixture(scope="module")
def with_and_without():
    """The same pooled extrapolation with and without backtests (same key)."""
    config = CURVE_CONFIG.replace(**EXTRAPOLATION_CONFIG_ARGS)
    results = {}
    with warnings.catch_warnings():  # so few draws; the backtest's arithmetic is checked here, not the fits
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        for backtest in (True, False):
            results[backtest] = extrapolate(
                _runs_table(), to_step=TARGET, law="pow3", backtest=backtest, config=config, key=jax.random.key(0)
            )
    return results


def test_finished_runs_are_cut_at_the_horizon_of_the_runs_in_progress(with_and_without):
    backtest = with_and_without[True].backtest
    assert set(backtest["runs"]) == {"a", "b"}
    data = _runs_table()
    for run, entry in backtest["runs"].items():
        # Run c stands at a quarter of its target, so each finished run is cut at a quarter of its length.
        assert entry["cut_step"] == 250 and entry["observed_until_step"] == 250 and entry["to_step"] == TARGET
        assert entry["logged"] == pytest.approx(data["loss"][data["run"] == run][-1], rel=1e-12)
        assert entry["q05"] <= entry["median"] <= entry["q95"]
        assert entry["error"] == pytest.approx(entry["median"] / entry["logged"] - 1.0, rel=1e-12)
    scale = backtest["scale"]
    assert 0 < scale["q05"] <= scale["median"] <= scale["q95"]


def test_backtests_widen_only_the_runs_in_progress_by_one_walk_per_draw(with_and_without):
    widened, plain = with_and_without[True], with_and_without[False]
    for run in ("a", "b"):  # finished: nothing to widen, and the same fits
        np.testing.assert_array_equal(widened.final_loss(run), plain.final_loss(run))
    steps, curve = widened.curve("c")
    _, plain_curve = plain.curve("c")
    walk = np.log(curve[:, 1:]) - np.log(plain_curve[:, 1:])
    root_horizon = np.sqrt(np.log(steps[1:] / steps[0]))
    # A walk of scale tau past the last checkpoint: tau * z * sqrt(horizon), one (tau, z) per draw,
    # to the rounding of the stored losses (a few units in the last place of each log).
    expected = walk[:, -1:] * root_horizon / root_horizon[-1]
    np.testing.assert_allclose(walk, expected, rtol=0, atol=8 * np.finfo(curve.dtype).eps)
    widths = [np.ptp(np.quantile(result.final_loss("c"), [0.05, 0.95])) for result in (widened, plain)]
    assert widths[0] > widths[1]


def test_discrepancy_scale_recovers_the_scale_that_made_the_misses():
    rng = np.random.default_rng(1)
    true_scale, count = 0.004, 400
    horizons = rng.uniform(0.5, 2.0, count)
    variances = rng.uniform(0.5, 2.0, count) * 1e-6
    errors = rng.normal(0.0, np.sqrt(variances + true_scale**2 * horizons))
    discrepancy = extrapolate_module._Discrepancy.from_misses(list(zip(errors, variances, horizons)))
    draws = discrepancy.sample(20_000, jax.random.key(2))
    # With this many misses the posterior is near normal: the truth within 4 of its sd.
    assert abs(np.mean(draws) - true_scale) < 4 * np.std(draws)
    assert np.std(draws) < 0.1 * true_scale  # and it did learn from the misses


def test_discrepancy_scale_without_misses_is_the_prior():
    draws = extrapolate_module._Discrepancy.from_misses([]).sample(20_000, jax.random.key(3))
    prior = extrapolate_module.DISCREPANCY_PRIOR
    for level in (0.1, 0.5, 0.9):
        # The sample quantile's standard error, sqrt(p (1 - p) / n) / density, 4 of them.
        density = float(np.exp(prior.log_prob(prior.icdf(level))))
        tolerance = 4 * np.sqrt(level * (1 - level) / len(draws)) / density
        assert np.quantile(draws, level) == pytest.approx(float(prior.icdf(level)), abs=tolerance)


def test_the_backtest_is_in_the_summary_the_saved_file_and_the_printed_table(with_and_without, tmp_path):
    result = with_and_without[True]
    summary = result.summary()
    assert summary["backtest"] == result.backtest
    assert any(note.startswith("backtest: runs cut and forecast again") for note in summary["notes"])
    path = tmp_path / "extrapolation.nc"
    result.save(str(path))
    assert bs.load_extrapolation(str(path)).backtest == result.backtest
    text = _extrapolation_text(summary)
    for run, entry in result.backtest["runs"].items():
        assert f"backtest of {run}: cut at step {entry['observed_until_step']}" in text


def test_pooled_runs_all_in_progress_backtest_each_other(small_extrapolation):
    """Runs a and b (steps 10-200, targets 400 and 800), pooled, nothing finished: each is
    cut at the median horizon, sqrt(2 x 4) = 2.83 times short of its last checkpoint, fitted
    with the other as it stands, and forecast to its last checkpoint."""
    backtest = small_extrapolation.backtest
    assert set(backtest["runs"]) == {"a", "b"}
    for entry in backtest["runs"].values():
        assert entry["cut_step"] == round(200 / np.sqrt(8)) and entry["observed_until_step"] == 70
        assert entry["to_step"] == 200
    assert any(note.startswith("backtest: no run is finished") for note in small_extrapolation.notes)


def _plans(data, pooling, targets=None):
    return extrapolate_module._plan_backtests(
        data,
        ["a", "b", "c"],
        targets or dict.fromkeys("abc", TARGET),
        None,
        [get_law("pow3")],
        lambda law: extrapolate_module._spec(law, pooling, "student_t", False),
        pooling,
    )


def test_runs_alone_with_nothing_finished_are_not_backtested_and_a_note_says_why():
    plans, notes = _plans(_runs_table(), "none", dict.fromkeys("abc", 2 * TARGET))
    assert plans == []
    assert notes == [
        "no backtest: no run is finished (its target its last checkpoint), so the intervals rest on the law and "
        "its noise model alone"
    ]


def test_a_run_in_progress_is_cut_at_most_half_its_own_range():
    """Targets 2000 for all: horizons log 2, log 2 and log 8, median log 2. Runs a and b (steps
    10-1000) are cut at 500; run c (10-250) would be cut at 125 by the median, and half its
    log-step range allows sqrt(250 / 10) = 5 times short, so 125 stands."""
    plans, notes = _plans(_runs_table(), "shape", dict.fromkeys("abc", 2 * TARGET))
    assert [plan.run for plan in plans] == ["a", "b", "c"] and len(notes) == 1
    full = _runs_table()
    for plan, cut in zip(plans, (500, 500, 125), strict=True):
        rows = plan.data["run"] == plan.run
        np.testing.assert_array_equal(plan.data["step"][rows], STEPS[STEPS <= cut])
        for other in {"a", "b", "c"} - {plan.run}:  # the other runs as they stand
            assert np.sum(plan.data["run"] == other) == np.sum(full["run"] == other)
        assert plan.to_step == full["step"][full["run"] == plan.run][-1]
        assert plan.log_loss == full.log_loss[full["run"] == plan.run][-1]
    # A long horizon is capped by half of run c's own range: log 8 for every run makes c's cut 50.
    plans, _ = _plans(_runs_table(), "shape", {"a": 8000, "b": 8000, "c": 2000})
    assert [plan.cut_step for plan in plans] == pytest.approx([1000 / 8, 1000 / 8, 50])


@pytest.mark.parametrize(
    ("pooling", "pooled_with"), [("shape", {"a": {"b"}, "b": {"a"}}), ("none", {"a": set(), "b": set()})]
)
def test_a_backtest_is_fitted_as_the_runs_in_progress_are(pooling, pooled_with):
    plans, notes = _plans(_runs_table(), pooling)
    assert notes == [] and [plan.run for plan in plans] == ["a", "b"]
    full = _runs_table()
    for plan in plans:
        rows = plan.data["run"] == plan.run
        np.testing.assert_array_equal(plan.data["step"][rows], STEPS[STEPS <= 250])  # cut where c stands
        assert set(plan.data["run"][~rows]) == pooled_with[plan.run]
        for other in pooled_with[plan.run]:  # the other finished runs, whole
            assert np.sum(plan.data["run"] == other) == np.sum(full["run"] == other)
        assert plan.to_step == TARGET and plan.log_loss == full.log_loss[full["run"] == plan.run][-1]


def test_a_cut_too_short_for_the_law_is_skipped_with_a_note():
    data = _runs_table()
    # Run c at step 20 of 1000: a cut at 2% of a finished run leaves 2 checkpoints, fewer than pow3's 5 parameters.
    plans, notes = _plans(data.select((data["run"] != "c") | (data["step"] <= 20), "c at step 20"), "none")
    assert plans == []
    assert [note.split(":")[0] for note in notes] == ["backtest of run 'a' skipped", "backtest of run 'b' skipped"]


def test_a_cut_before_a_run_starts_or_at_its_end_is_skipped_with_a_note():
    data = _runs_table()
    # Run c 148 times short of its target: finished runs a and b (steps 10-1000) would be
    # cut at step 6.7, before their first checkpoint.
    plans, notes = _plans(data, "shape", {"a": TARGET, "b": TARGET, "c": 37_100})
    assert plans == []
    assert notes == [
        f"backtest of run {run!r} skipped: the cut at step 7 falls before its first checkpoint" for run in "ab"
    ]
    # Pooled, all in progress, run c with a single checkpoint: nothing of it to forecast.
    plans, notes = _plans(
        data.select((data["run"] != "c") | (data["step"] == 10), "c at step 10"),
        "shape",
        dict.fromkeys("abc", 2 * TARGET),
    )
    assert [plan.run for plan in plans] == ["a", "b"]
    assert notes[-1] == "backtest of run 'c' skipped: the cut at step 10 falls at its last checkpoint"


def test_the_report_tables_the_backtests(with_and_without, tmp_path):
    result = with_and_without[True]
    path = tmp_path / "report.html"
    bs.write_report([], str(path), key=jax.random.key(0), extrapolations=[result])
    text = path.read_text()
    assert "Backtests: runs cut short and forecast again" in text
    for run, entry in result.backtest["runs"].items():
        assert f'<td class="text">{run}</td>' in text and f"{100 * entry['error']:+.2f}%" in text
