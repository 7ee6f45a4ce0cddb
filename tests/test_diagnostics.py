"""Sampler-health checks on synthetic draws: each failure is caught and explained."""

import copy
import dataclasses
import inspect
import json
import warnings
from statistics import NormalDist

import numpy as np
import numpyro.distributions as dist
import pytest
from bayescale.models import get_law

import bayescale as bs
from bayescale import _arviz, inference
from bayescale.diagnostics import (
    MAX_RHAT,
    MIN_CONTRACTION,
    Diagnostics,
    batch_chain_columns,
    chain_columns,
    diagnose,
    max_pareto_k,
    prior_interval,
    summarize,
    tail_checked_means,
)
from bayescale.errors import DataError
from bayescale.inference import _assemble
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
        "energy": np.cumsum(rng.normal(size=(chains, draws)), axis=1)
        if sticky_energy
        else rng.normal(size=(chains, draws)),
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
    assert Diagnostics.from_dict(report.to_dict()) == report


def test_a_stuck_chain_fails_the_energy_check(rng):
    data = _draws(rng)
    _arviz.group(data, "sample_stats")["energy"][0] = 1.0  # chain 0 never moves
    report = _diagnose(data)
    assert report.min_bfmi == 0.0
    assert any("E-BFMI 0.00" in problem for problem in report.problems), report.problems


def test_the_chain_columns_of_a_batch_are_those_of_each_fit(rng):
    def draws(shift, runs):
        posterior = {"theta": rng.normal(size=(4, 300)), "level": rng.normal(size=(4, 300, runs))}
        posterior["theta"][0] += shift  # some fits mix badly, so R-hat and ESS vary across the batch
        return _arviz.from_groups({"posterior": posterior}, {"level": ["run"]}, {})

    fits = [draws(shift, runs=3) for shift in (0.0, 1.0, 3.0)]
    batch = batch_chain_columns(fits, ["theta", "level"])
    for data, columns in zip(fits, batch, strict=True):
        alone = chain_columns(data, ["theta", "level"])
        for column, values in alone.items():
            for name, value in values.items():
                np.testing.assert_allclose(columns[column][name], value, rtol=1e-12)
        assert summarize(data, ["theta", "level"], columns=columns) == summarize(data, ["theta", "level"])
    assert batch_chain_columns([*fits, draws(0.0, runs=2)], ["theta", "level"]) is None


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


def test_the_advice_on_divergences_starts_from_the_fits_target_acceptance(rng):
    """It advised target_accept=0.95 to fits that had run at 0.95 (every learning-curve fit)."""
    data = _draws(rng, divergent=5)
    summary = summarize(data, ["theta"])
    (ran_at,) = diagnose(data, summary, max_tree_depth=10, target_accept=0.95).problems
    assert "try target_accept above 0.95," in ran_at and "target_accept=0.95" not in ran_at
    (unknown,) = diagnose(data, summary, max_tree_depth=10).problems
    assert "try a higher target_accept," in unknown


# Quantile-spaced draws of a standard normal, in random order: their 5% and 95% quantiles
# are exact, and the chains mix.
STANDARD_DRAWS = np.random.default_rng(1).permutation([NormalDist().inv_cdf((i + 0.5) / 4000) for i in range(4000)])


def _prior_width_sd(prior, draws=2**16):
    """Monte-Carlo sd of the width of a normal prior's 90% interval from ``draws`` draws."""
    z = NormalDist().inv_cdf(0.95)
    density = NormalDist().pdf(z) / prior.scale
    variance = 0.05 * 0.95 / (draws * density**2)  # each quantile (asymptotic)
    covariance = 0.05 * 0.05 / (draws * density**2)  # between the two
    return float(np.sqrt(2 * variance - 2 * covariance))


@pytest.mark.parametrize(
    "prior",
    [
        dist.Normal(1.0, 2.0),
        dist.HalfNormal(0.1),
        dist.LogNormal(0.5, 0.3),
        dist.Beta(2.0, 4.0),
        dist.Gamma(2.0, 3.0),
        dist.StudentT(3.0, 0.0, 1.0),  # no quantile function in the table: sampled
    ],
    ids=lambda prior: type(prior).__name__,
)
def test_prior_intervals_are_the_quantiles_of_the_prior(key, prior):
    draws = 2**16
    sample = np.asarray(prior.sample(key, (draws,)), np.float64)
    for q, end in zip((0.05, 0.95), prior_interval(prior), strict=True):
        # Asymptotic sd of a sample quantile: sqrt(q (1 - q) / n) / density; two samples
        # (the interval's own, as many draws, when it is sampled) add their variances.
        density = float(np.exp(prior.log_prob(end)))
        sd = np.sqrt(q * (1 - q) * 2 / draws) / density
        assert abs(np.quantile(sample, q) - end) < 4 * sd


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.1])
def test_contraction_is_one_minus_the_squared_width_ratio(rng, scale):
    prior = dist.Normal(0.0, 2.0)
    low, high = prior_interval(prior)
    width_sd = _prior_width_sd(prior)
    assert abs(low + 1.645 * 2) < 4 * width_sd and abs(high - 1.645 * 2) < 4 * width_sd
    stats = _arviz.group(_draws(rng), "sample_stats")
    posterior = {"theta": 2.0 * scale * STANDARD_DRAWS.reshape(4, 1000)}
    data = _arviz.from_groups({"posterior": posterior, "sample_stats": stats}, {}, {})
    summary = summarize(data, ["theta"], {"theta": prior})
    # Error of the estimate: the prior width's Monte-Carlo error, propagated through 1 - r^2.
    ratio = 2.0 * scale * 2 * NormalDist().inv_cdf(0.95) / (high - low)
    tolerance = 4 * 2 * ratio**2 * width_sd / (high - low)
    assert summary["theta"]["contraction"] == pytest.approx(1 - scale**2, abs=tolerance)
    report = diagnose(data, summary, max_tree_depth=10, law_parameters=["theta"])
    assert report.weakly_identified == (("theta",) if 1 - scale**2 < MIN_CONTRACTION else ())
    assert report.ok  # weak identification is not a sampler failure
    # Only law parameters are flagged: a noise parameter may rightly keep its prior.
    assert diagnose(data, summary, max_tree_depth=10, law_parameters=[]).weakly_identified == ()


@pytest.mark.parametrize("draws_each", [400, 4000])
def test_a_mean_is_given_only_where_the_draws_tails_allow_one(rng, draws_each):
    # A Student-t of 0.4 degrees of freedom has tails of Pareto k 1/0.4 = 2.5 (no mean); a
    # normal's are of k 0. k-hat from the 3 sqrt(S) extreme draws of a tail has a standard
    # error of about (1 + k) / sqrt(3 sqrt(S)): 0.07 and 0.25 at S = 4000 (0.13 and 0.45 at
    # 400), while the limit, 0.72 (0.62), is at least 4 of them from either (4.2 for the
    # heavy draws at 400).
    light = rng.normal(3.0, 0.01, draws_each)
    heavy = 3.0 + 0.01 * rng.standard_t(0.4, draws_each)
    means, note = tail_checked_means(np.stack([light, heavy, light], axis=1), "the loss")
    assert means == [pytest.approx(light.mean(), rel=1e-12), None, pytest.approx(light.mean(), rel=1e-12)]
    assert note.startswith("the loss: tails too heavy for a mean at 1 of 3 targets (Pareto k ")
    assert f"above {max_pareto_k(draws_each):.2f} for {draws_each} draws" in note
    assert tail_checked_means(heavy[:, None], "the loss")[0] == [None]
    assert tail_checked_means(light[:, None], "the loss") == ([pytest.approx(light.mean(), rel=1e-12)], None)


def test_draws_without_spread_or_with_one_beyond_the_float_range_are_handled(rng):
    equal = np.full(4000, 2.5)
    # Kept at the largest float, as extrapolate keeps draws past it; their sum overflows.
    flung = np.append(rng.normal(3.0, 0.01, 3998), [np.finfo(np.float64).max] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor does it warn of the overflow
        means, note = tail_checked_means(np.stack([equal, flung], axis=1), "the loss")
    assert means == [2.5, None] and "1 of 2 targets" in note


@pytest.fixture(scope="module")
def unhealthy(session_key):
    """A fake chinchilla fit of 40 draws: too few for the ESS check."""
    law = get_law("chinchilla")
    inputs = {"N": np.geomspace(1e8, 1e10, 8), "D": np.geomspace(2e9, 2e11, 8)}
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=session_key)
    fake = fake_fit(law, data, key=session_key, num_samples=20)
    assert not fake.diagnostics.ok
    return fake


def _fake_sampler(monkeypatch, unhealthy, passes, weakly_identified=()):
    """Stand in for the sampler: each problem gets ``unhealthy``'s draws, and passes its checks
    where ``passes(data, config)``. Returns the settings and problem count of every call.

    The prior draws of a fake fit contract nothing; the fits report ``weakly_identified``."""
    calls = []

    def sample(
        fits, which, specs, datasets, keys, config, models, bucket_size, save, pad_to, devices, pointwise, status
    ):
        if which:  # the real one calls no sampler for no problems
            calls.append((config.target_accept, config.num_warmup, len(which)))
        for index in which:
            data, past = datasets[index], fits[index].attempts if fits[index] is not None else ()
            health = dataclasses.replace(unhealthy.diagnostics, weakly_identified=weakly_identified)
            if passes(data, config):
                health = dataclasses.replace(health, problems=())
            attempts = (*past, inference.Attempt(config, health))
            fits[index] = dataclasses.replace(
                unhealthy, data=data, config=config, diagnostics=health, attempts=attempts
            )

    monkeypatch.setattr(inference, "_sample", sample)
    return calls


def _only_warning_at(record, line):
    """The message of the one warning recorded, after checking it points at ``line`` of this file."""
    (warning,) = record
    assert (warning.filename, warning.lineno) == (__file__, line)
    return str(warning.message)


def test_the_warning_points_at_the_callers_line_and_says_what_to_do(unhealthy, monkeypatch, key):
    _fake_sampler(monkeypatch, unhealthy, lambda data, config: False)
    with pytest.warns(bs.ConvergenceWarning) as record:
        bs.fit(unhealthy.law, unhealthy.data, key=key, likelihood="normal")
    message = _only_warning_at(record, inspect.currentframe().f_lineno - 1)
    assert message.startswith("fit of law 'chinchilla' (normal likelihood) on 8 rows of simulated from chinchilla")
    assert "effective sample size" in message
    assert "retry=True" in message and "a prior in conflict with the data" in message


def test_weakly_identified_parameters_are_named_in_a_warning(unhealthy, monkeypatch, key):
    _fake_sampler(monkeypatch, unhealthy, lambda data, config: True, weakly_identified=("alpha", "beta"))
    with pytest.warns(bs.IdentifiabilityWarning) as record:
        fitted = bs.fit(unhealthy.law, unhealthy.data, key=key, likelihood="normal")
    message = _only_warning_at(record, inspect.currentframe().f_lineno - 1)
    assert message.startswith("fit of law 'chinchilla'")
    assert "almost nothing about alpha (contraction " in message and ", beta (contraction " in message
    assert fitted.diagnostics.ok  # not a sampler failure
    assert Diagnostics.from_dict(fitted.diagnostics.to_dict()) == fitted.diagnostics


def test_retry_stops_at_the_first_healthy_attempt(unhealthy, monkeypatch, key):
    calls = _fake_sampler(monkeypatch, unhealthy, lambda data, config: config.target_accept >= 0.95)
    config = bs.SamplerConfig(num_warmup=100)
    fitted = bs.fit(unhealthy.law, unhealthy.data, key=key, likelihood="normal", config=config, retry=True)
    assert calls == [(0.8, 100, 1), (0.95, 200, 1)]
    assert [(a.config.target_accept, a.config.num_warmup, a.diagnostics.ok) for a in fitted.attempts] == [
        (0.8, 100, False),
        (0.95, 200, True),
    ]
    assert fitted.config == fitted.attempts[-1].config and fitted.diagnostics.ok


def test_retry_reruns_only_the_failing_problems_and_names_them(unhealthy, monkeypatch, key):
    good = unhealthy.data.select(np.arange(8) < 7, "a smaller table")
    calls = _fake_sampler(monkeypatch, unhealthy, lambda data, config: data is good)
    spec, config = unhealthy.spec, bs.SamplerConfig(num_warmup=100)
    with pytest.warns(bs.ConvergenceWarning) as record:
        fits = inference.fit_problems([spec, spec], [good, unhealthy.data], keys=[key, key], config=config, retry=True)
    assert calls == [(0.8, 100, 2), (0.95, 200, 1), (0.99, 400, 1)]
    assert [len(one.attempts) for one in fits] == [1, 3]
    (warning,) = record
    assert warning.filename == __file__
    assert str(warning.message).startswith("problem 2 of 2 (fit of law 'chinchilla' (normal likelihood) on 8 rows")
    settings = "target_accept 0.8 (warmup 100), 0.95 (warmup 200), 0.99 (warmup 400)"
    assert f"failed at every setting tried ({settings})" in str(warning.message)
    labels = ["a", "refit of run 'b'"]
    with pytest.warns(bs.ConvergenceWarning, match="^refit of run 'b' did not pass its sampler checks"):
        inference.fit_problems([spec, spec], [good, unhealthy.data], keys=[key, key], config=config, labels=labels)


def test_retry_settings():
    assert [(c.target_accept, c.num_warmup) for c in bs.SamplerConfig().retries()] == [(0.95, 2000), (0.99, 4000)]
    assert [(c.target_accept, c.num_warmup) for c in bs.SamplerConfig(target_accept=0.99, num_warmup=10).retries()] == [
        (0.99, 20),
        (0.99, 40),
    ]
    assert bs.SamplerConfig(target_accept=0.99, num_warmup=0).retries() == ()


def test_a_forecast_from_an_unhealthy_fit_says_so(unhealthy, key):
    summary = bs.forecast(unhealthy, compute=1e22, key=key).summary()
    assert summary["healthy"] is False
    assert summary["problems"] == list(unhealthy.diagnostics.problems)
    assert any("effective sample size" in problem for problem in summary["problems"])


@pytest.mark.slow  # three compiles and runs of NUTS, about a minute on two cores
def test_a_real_unhealthy_fit_retries_records_its_attempts_and_saves_them(key, tmp_path):
    # Twenty draws per chain fail the ESS check at any settings, so every retry runs.
    law = get_law("kaplan_c")
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, {"C": np.geomspace(1e18, 1e22, 10)}, key=key)
    config = bs.SamplerConfig(num_chains=2, num_warmup=50, num_samples=20)
    with pytest.warns(bs.ConvergenceWarning) as record:
        fitted = bs.fit(law, data, key=key, likelihood="normal", config=config, retry=True)
    assert "failed at every setting tried" in _only_warning_at(record, inspect.currentframe().f_lineno - 1)
    settings = [(attempt.config.target_accept, attempt.config.num_warmup) for attempt in fitted.attempts]
    assert settings == [(0.8, 50), (0.95, 100), (0.99, 200)]
    assert fitted.config == fitted.attempts[-1].config
    assert fitted.attempts[-1].diagnostics == fitted.diagnostics
    fitted.save(tmp_path / "fit.nc")
    loaded = bs.load_fit(tmp_path / "fit.nc")
    assert loaded.attempts == fitted.attempts and loaded.config == fitted.config


def test_a_saved_unhealthy_fit_resumes_its_retries_where_they_stopped(unhealthy, monkeypatch, tmp_path, session_key):
    calls = _fake_sampler(monkeypatch, unhealthy, lambda data, config: False)
    spec, config = unhealthy.spec, unhealthy.config
    # The file an interrupt after the first retry leaves: its draws, settings and attempts.
    first_retry = config.retries()[0]
    idata = copy.deepcopy(unhealthy.idata)
    _arviz.set_attrs(idata, sampler_config=json.dumps(dataclasses.asdict(first_retry)))
    _assemble(spec, unhealthy.data, idata, first_retry, earlier=unhealthy.attempts).save(tmp_path / "problem-0001.nc")

    options = {"keys": [session_key], "config": config, "save_to": tmp_path}
    fits = inference.fit_problems([spec], [unhealthy.data], retry=True, warn=False, **options)
    assert calls == [(0.99, 0, 1)]  # only the retry it had not had
    assert [attempt.config for attempt in fits[0].attempts] == [config, *config.retries()]
    with pytest.raises(DataError, match=r"problem-0001\.nc: .*retried \(2 runs of the sampler\) saved, retry=False"):
        inference.fit_problems([spec], [unhealthy.data], **options)
