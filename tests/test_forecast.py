"""Forecasts on fake fits (prior draws): the compute optimum, its closed form, the targets."""

import dataclasses
import functools
import json
import os

import jax
import numpy as np
import pytest
from bayescale.models import get_law

import bayescale as bs
from bayescale.data import ScalingData
from bayescale.errors import DataError
from bayescale.forecast import QUANTITY_LABELS
from bayescale.testing import fake_fit, ladder, prior_means, simulate

BUDGETS = np.array([1e20, 5.76e23, 1e27])


@functools.cache
def _fake(name):
    """A fake fit of the law ``name`` on a small ladder, made once per session."""
    key = jax.random.key(int(os.environ.get("BAYESCALE_TEST_SEED", 0)))
    law = get_law(name)
    inputs = {"N": np.geomspace(1e7, 1e10, 16), "D": np.geomspace(1e9, 1e12, 16), "C": np.geomspace(1e17, 1e22, 16)}
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, {k: inputs[k] for k in law.inputs}, key=key)
    return fake_fit(law, data, key=jax.random.fold_in(key, 1), num_samples=200)


@pytest.fixture
def chinchilla():
    return _fake("chinchilla")


def test_optimum_spends_the_budget(chinchilla, key):
    prediction = bs.forecast(chinchilla, compute=BUDGETS, key=key)
    n, d = prediction.draws("N_opt"), prediction.draws("D_opt")
    assert n.shape == (400, 3)
    np.testing.assert_allclose(6 * n * d, np.broadcast_to(BUDGETS, n.shape), rtol=1e-4)
    np.testing.assert_allclose(prediction.draws("tokens_per_param"), d / n, rtol=1e-12)
    np.testing.assert_allclose(prediction.draws("a") + prediction.draws("b"), 1.0, rtol=1e-12)


def test_closed_form_optimum_matches_numerical_search(chinchilla, key):
    law = dataclasses.replace(chinchilla.law, optimal_log_N=None)
    numerical = dataclasses.replace(chinchilla, spec=dataclasses.replace(chinchilla.spec, law=law))
    closed = bs.forecast(chinchilla, compute=BUDGETS, key=key)
    searched = bs.forecast(numerical, compute=BUDGETS, key=key)
    # float32 arithmetic on log N of about 25: relative agreement to a few 1e-5.
    for name in ("N_opt", "loss", "a"):
        np.testing.assert_allclose(closed.draws(name), searched.draws(name), rtol=2e-4)
    assert np.isfinite(searched.draws("N_opt")).all()


def test_allocation_exponent_is_beta_over_alpha_plus_beta(chinchilla, key):
    a = bs.forecast(chinchilla, compute=BUDGETS, key=key).draws("a")
    alpha = np.asarray(chinchilla.posterior["alpha"]).reshape(-1, 1)
    beta = np.asarray(chinchilla.posterior["beta"]).reshape(-1, 1)
    np.testing.assert_allclose(a, np.broadcast_to(beta / (alpha + beta), a.shape), rtol=1e-4)


def test_optimum_is_a_minimum(chinchilla, key):
    prediction = bs.forecast(chinchilla, compute=[1e22], key=key)
    n_opt = prediction.draws("N_opt")[:, 0]
    for factor in (0.8, 1.25):
        off = bs.forecast(chinchilla, N=n_opt * factor, D=1e22 / (6 * n_opt * factor), key=key)
        assert np.all(off.draws("loss")[np.arange(400), np.arange(400)] >= prediction.draws("loss")[:, 0] * (1 - 1e-6))


def test_forecast_at_given_size_matches_the_law(chinchilla, key):
    prediction = bs.forecast(chinchilla, N=[1e9, 7e10], D=[2e10, 1.4e12], key=key)
    np.testing.assert_allclose(prediction.targets["C"], [1.2e20, 6 * 7e10 * 1.4e12])
    draws = chinchilla.draws()
    law = chinchilla.law
    params = {name: draws[name][5] for name in law.priors}
    expected = np.exp(np.asarray(law.log_mean(params, {"N": np.array([1e9, 7e10]), "D": np.array([2e10, 1.4e12])})))
    np.testing.assert_allclose(prediction.draws("loss")[5], expected, rtol=1e-5)


def test_observed_loss_is_wider_than_expected_loss(chinchilla, key):
    prediction = bs.forecast(chinchilla, compute=1e22, key=key)
    expected, observed = prediction.draws("loss")[:, 0], prediction.draws("loss_observed")[:, 0]
    np.testing.assert_allclose(np.median(np.log(observed / expected)), 0.0, atol=0.02)
    assert np.std(np.log(observed)) > np.std(np.log(expected))


def test_the_chance_of_reaching_a_loss_is_the_share_of_draws_at_or_below_it(chinchilla, key):
    prediction = bs.forecast(chinchilla, compute=[1e21, 1e23], key=key)
    observed, expected = prediction.draws("loss_observed"), prediction.draws("loss")
    needed = float(np.median(observed[:, 1]))
    np.testing.assert_array_equal(prediction.probability_at_or_below(needed), np.mean(observed <= needed, axis=0))
    np.testing.assert_array_equal(
        prediction.probability_at_or_below(needed, "loss"), np.mean(expected <= needed, axis=0)
    )
    summary = prediction.summary(need=needed)
    assert summary["need"] == {"loss": needed, "probability": list(np.mean(observed <= needed, axis=0))}
    assert "need" not in prediction.summary()
    single = bs.forecast(chinchilla, compute=1e23, key=key)
    assert single.summary(need=needed)["need"]["probability"] == float(single.probability_at_or_below(needed)[0])
    for bad in (0.0, float("nan"), True):
        with pytest.raises(ValueError, match="the loss needed for the forecast is .*; expected a positive number"):
            prediction.probability_at_or_below(bad)
    with pytest.raises(ValueError, match="quantity must be 'loss_observed' or 'loss' of this forecast; got 'N_opt'"):
        prediction.probability_at_or_below(needed, "N_opt")


def test_summary_is_json_ready(chinchilla, key):
    summary = bs.forecast(chinchilla, compute=5.76e23, key=key).summary()
    assert summary["C"] == 5.76e23
    assert set(summary["loss"]) == {"median", "q05", "q95", "mean"}
    assert summary["loss"]["q05"] <= summary["loss"]["median"] <= summary["loss"]["q95"]
    assert {"N_opt", "D_opt", "tokens_per_param", "healthy", "notes"} <= set(summary)
    assert json.loads(json.dumps(summary)) == summary
    # A mean is left out (None) exactly where a note says its draws' tail is too heavy. The
    # fake fit's draws are the prior's, so the compute-optimal N* spans orders of magnitude
    # and has such a tail.
    lacking = {QUANTITY_LABELS[name] for name in QUANTITY_LABELS if name in summary and summary[name]["mean"] is None}
    assert QUANTITY_LABELS["N_opt"] in lacking
    assert {note.split(": ")[0] for note in summary["notes"]} == lacking


def test_a_list_of_one_fit_is_that_fit_with_no_comparison(chinchilla, key):
    # One fit has weight 1: scoring it by PSIS-LOO would only add warnings about its Pareto k.
    alone, listed = bs.forecast(chinchilla, compute=1e22, key=key), bs.forecast([chinchilla], compute=1e22, key=key)
    np.testing.assert_array_equal(listed.draws("loss_observed"), alone.draws("loss_observed"))
    assert listed.summary() == alone.summary()


def test_law_of_compute_alone(key):
    fitted = _fake("kaplan_c")
    prediction = bs.forecast(fitted, compute=BUDGETS, key=key)
    assert "N_opt" not in prediction.quantities
    assert prediction.draws("loss").shape == (400, 3)


@pytest.mark.parametrize(
    ("law", "request_", "pattern"),
    [
        ("chinchilla", {"compute": 1e22, "N": 1e9}, "not both"),
        ("chinchilla", {"compute": -1.0}, "positive finite"),
        ("chinchilla", {"N": 1e9}, "give D"),
        ("kaplan_n", {"compute": 1e22}, "depends on N only"),
        ("chinchilla", {"compute": [[1e20]]}, "1-D list"),
    ],
)
def test_bad_requests(law, request_, pattern, key):
    with pytest.raises(DataError, match=pattern):
        bs.forecast(_fake(law), key=key, **request_)


def test_a_law_with_more_inputs_forecasts_with_them_held_fixed(key):
    columns = ladder(20, rng=np.random.default_rng(0))
    table = ScalingData({**columns, "U": columns["D"], "loss": np.full(20, 2.5)}, "test", np.arange(1, 21))
    fitted = fake_fit(get_law("data_constrained"), table, key=key)
    with pytest.raises(DataError, match="give U in inputs"):
        bs.forecast(fitted, compute=1e23, key=key)
    scarce = bs.forecast(fitted, compute=1e23, key=key, inputs={"U": 1e10})
    plenty = bs.forecast(fitted, compute=1e23, key=key, inputs={"U": 1e14})
    # Less unique data can only raise the compute-optimal loss, draw by draw.
    assert np.all(scarce.draws("loss") >= plenty.draws("loss") * (1 - 1e-12))
    at_point = bs.forecast(fitted, N=1e9, D=2e10, key=key, inputs={"U": 1e10})
    assert at_point.draws("loss").shape[1] == 1
