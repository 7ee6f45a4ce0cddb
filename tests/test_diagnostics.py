"""Sampler-health checks on synthetic draws: each failure is caught and explained."""

import jax
import numpy as np
import pytest

import bayescale as bs
from bayescale import _arviz
from bayescale.diagnostics import MAX_RHAT, diagnose, summarize
from bayescale.inference import _assemble
from bayescale.models import get_law
from bayescale.testing import fake_fit, prior_means, simulate


def _draws(rng, chains=4, draws=500, shift=0.0, divergent=0, depth=3, sticky_energy=False):
    values = rng.normal(size=(chains, draws))
    values[0] += shift  # one chain off on its own
    diverging = np.zeros((chains, draws), bool)
    diverging.flat[:divergent] = True
    stats = {
        "diverging": diverging,
        "tree_depth": np.full((chains, draws), depth),
        # Independent energies give E-BFMI near 2; a random walk gives near 0.
        "energy": np.cumsum(rng.normal(size=(chains, draws)), axis=1) if sticky_energy else rng.normal(size=(chains, draws)),
    }
    return _arviz.from_groups({"posterior": {"theta": values}, "sample_stats": stats}, {}, {})


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _diagnose(data):
    return diagnose(data, summarize(data, ["theta"]), max_tree_depth=10)


def test_healthy_draws_pass(rng):
    report = _diagnose(_draws(rng))
    assert report.ok, report.problems
    assert report.max_r_hat < MAX_RHAT


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"shift": 3.0}, "R-hat of theta"),
        ({"divergent": 5}, "5 divergent transitions"),
        ({"depth": 10}, "hit the tree-depth cap 10"),
        ({"draws": 40}, "effective sample size"),
        ({"sticky_energy": True}, "E-BFMI"),
    ],
)
def test_each_failure_is_explained(rng, kwargs, pattern):
    report = _diagnose(_draws(rng, **kwargs))
    assert not report.ok
    assert any(pattern in problem for problem in report.problems), report.problems


def test_an_unhealthy_fit_warns_and_its_forecast_says_so(key):
    law = get_law("chinchilla")
    inputs = {"N": np.geomspace(1e8, 1e10, 8), "D": np.geomspace(2e9, 2e11, 8)}
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=key)
    fake = fake_fit(law, data, key=key, num_samples=20)  # 40 draws: too few for the ESS check
    with pytest.warns(bs.ConvergenceWarning, match="effective sample size"):
        unhealthy = _assemble(fake.spec, data, fake.idata, fake.config)
    summary = bs.forecast(unhealthy, compute=1e22, key=jax.random.fold_in(key, 1)).summary()
    assert summary["healthy"] is False
    assert any("effective sample size" in problem for problem in summary["problems"])
