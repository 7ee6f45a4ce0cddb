"""Downstream metrics: the links from loss to error, and compute -> loss -> metric forecasts."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayescale.models import get_law

import bayescale as bs
from bayescale import _arviz
from bayescale.data import ScalingData
from bayescale.errors import DataError
from bayescale.testing import fake_fit, ladder

EXACT_MATCH = get_law("exact_match")


def test_exact_match_is_the_per_token_probability_to_the_power_k():
    params = {"log_k": jnp.log(8.0), "x0": 1.2}
    lm_loss = jnp.linspace(0.5, 4.0, 50)
    error = jnp.exp(EXACT_MATCH.log_mean(params, {"lm_loss": lm_loss}))
    per_token = np.exp(-np.log1p(np.exp(np.asarray(lm_loss) - 1.2)))  # p = exp(-softplus(x - x0))
    np.testing.assert_allclose(1 - np.asarray(error), per_token**8, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def chained():
    key = jax.random.key(3)
    columns = ladder(30, rng=np.random.default_rng(1))
    runs = ScalingData({**columns, "loss": np.full(30, 2.5)}, "test ladder", np.arange(1, 31))
    upstream = bs.forecast(fake_fit(get_law("chinchilla"), runs, key=key), N=[1e9, 1e10], D=[2e10, 2e11], key=key)
    pairs = {"lm_loss": np.linspace(1.8, 3.5, 20), "loss": np.full(20, 0.5)}
    link = fake_fit(get_law("sigmoid_link"), ScalingData(pairs, "test pairs", np.arange(1, 21)), key=key)
    return upstream, link, bs.forecast_downstream(upstream, link, key=jax.random.key(4))


def test_each_metric_draw_is_the_link_at_a_paired_loss(chained):
    upstream, link, result = chained
    assert set(upstream.quantities) | {"metric", "metric_observed"} == set(result.quantities)
    np.testing.assert_array_equal(result.draws("loss"), upstream.draws("loss"))
    link_draws = link.draws()
    for row in (0, 7, 123):
        expected = [
            np.exp(link.law.log_mean({name: link_draws[name][s] for name in link.law.priors}, {"lm_loss": loss}))
            for s in range(link.num_draws)
            for loss in [result.draws("loss")[row]]
        ]
        # The draw's metric is the link of some posterior draw at this row's losses.
        assert any(np.allclose(result.draws("metric")[row], candidate, rtol=1e-6) for candidate in expected)


def test_the_chain_keeps_targets_and_reports_both_fits(chained):
    upstream, _, result = chained
    np.testing.assert_array_equal(result.targets["N"], upstream.targets["N"])
    assert result.law == "chinchilla -> sigmoid_link"
    summary = result.summary()
    assert set(summary["metric"]) == {"median", "q05", "q95", "mean"}
    # Its saved metadata names both fits and both keys, so the chain can be traced.
    attrs = _arviz.get_attrs(result.idata)
    assert [source["law"] for source in json.loads(attrs["fits"])] == ["chinchilla", "sigmoid_link"]
    assert json.loads(attrs["keys"]) == [[0, 3], [0, 4]]


def test_a_link_of_another_input_is_an_error(chained, key):
    upstream, _, _ = chained
    table = ScalingData({"C": np.geomspace(1e18, 1e21, 5), "loss": np.full(5, 3.0)}, "test", np.arange(1, 6))
    other = fake_fit(get_law("kaplan_c_e"), table, key=key)
    with pytest.raises(DataError, match="not 'lm_loss'"):
        bs.forecast_downstream(upstream, other, key=key)
