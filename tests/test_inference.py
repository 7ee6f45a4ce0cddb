"""NUTS fits: an exact posterior, parameter recovery for every law, Epoch's refit.

Tolerances come from the posterior itself: Monte-Carlo standard errors for the exact
posterior, posterior standard deviations for recovery.
"""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from bayescale.models import LAWS, get_law
from scipy import stats

import bayescale as bs
from bayescale.diagnostics import MAX_RHAT
from bayescale.errors import ConvergenceWarning
from bayescale.extrapolate import CURVE_CONFIG
from bayescale.law import NOISE_PRIORS
from bayescale.testing import prior_means, simulate

# Gate before comparing means: the MCSE is only trustworthy with enough effective draws.
MIN_ESS = 400
# |posterior mean - exact mean| within this many Monte-Carlo standard errors.
MCSE_TOLERANCE = 5.0
# Recovery: true value within this many posterior sds (4 with five or more parameters,
# where a 3-sd excursion of one of them is no longer rare).
Z_FEW, Z_MANY = 3.0, 4.0
RECOVERY_CONFIG = bs.SamplerConfig()
N_RUNS = 60


def _design(law, rng):
    """Inputs like a real IsoFLOP ladder (budgets over four decades, 1-1000 tokens per
    parameter, unique tokens repeated for 1-40 epochs), or for curve laws like one learning
    curve: progress x over 50x up to the reference, a schedule annealed over its last 40%,
    and steps of runs of many sizes."""
    compute = 10 ** rng.uniform(18, 22, N_RUNS)
    tokens_per_param = 10 ** rng.uniform(0, 3, N_RUNS)
    n = np.sqrt(compute / (6 * tokens_per_param))
    progress = np.geomspace(0.02, 1.0, N_RUNS)
    columns = {
        "N": n,
        "D": tokens_per_param * n,
        "C": compute,
        "x": progress,
        "x_first": np.full(N_RUNS, progress[0]),
        "S1": progress,
        "S2": 0.8 * np.clip((progress - 0.6) / 0.4, 0.0, 1.0),
        "step": 10 ** rng.uniform(2, 5, N_RUNS),
    }
    # Drawn last, so the other columns stay those of every other law. Up to 40 epochs
    # reaches past the paper's R*_D = 15.4, where repeated tokens visibly lose their worth.
    columns["U"] = columns["D"] / 10 ** rng.uniform(0, np.log10(40), N_RUNS)
    # LM losses of a model ladder, 1.5-4 nats: the range downstream links are fitted over.
    columns["lm_loss"] = rng.uniform(1.5, 4.0, N_RUNS)
    return {name: columns[name] for name in law.inputs}


# Laws whose posterior NUTS cannot yet follow on this design, with the reason. Not strict:
# how many divergences a seed meets varies (log_power: 0, 6, 2, 8 on seeds 0-3).
# The curve families with a bend (x0 or a rate) are kept out of extrapolate's default stack
# (see bayescale.models.CURVE_ENSEMBLE) until reparametrised.
RIDGED = {
    **dict.fromkeys(("pow4", "log_power", "exp4", "mmf"), "bend parameter ridge"),
    # log_power's ridge, and the sharpness alpha of the bend against it: 9 divergences,
    # ESS of c 224 on seed 0.
    "m4": "bend parameter ridge, and the bend's sharpness against it",
    # A break trades off against the floor's own bend: 1-4 divergences on 1 seed in 10.
    **dict.fromkeys(("bnsl", "bnsl2"), "break sharpness against the floor's bend"),
}


# One law per family file runs in the default suite; the rest with --runslow. Each law
# compiles its own sampler (about 20 s on 2 cores), so every law here would take the
# default suite past ten minutes; tests/test_laws.py checks every law's density quickly.
DEFAULT_SUITE = {
    "kaplan_c_e",
    "kaplan_nd",
    "chinchilla",
    "pow3",
    "kaplan_ns",
    "lr_annealing",
    "data_constrained",
    "sigmoid_link",
    "exact_match",
}


def test_the_default_recovery_laws_are_in_the_catalogue():
    assert DEFAULT_SUITE <= LAWS.keys()


def _recovery_marks(name):
    marks = [] if name in DEFAULT_SUITE else [pytest.mark.slow]
    if name in RIDGED:
        marks.append(pytest.mark.xfail(raises=ConvergenceWarning, strict=False, reason=RIDGED[name]))
    return marks


@pytest.mark.parametrize(
    "law", [pytest.param(law, marks=_recovery_marks(name)) for name, law in LAWS.items()], ids=LAWS.keys()
)
def test_recovers_simulated_parameters(law, key):
    truth = {**prior_means(law, "normal"), "sigma": 0.02}
    data = simulate(law, truth, _design(law, np.random.default_rng(0)), key=key)
    # Curve laws are fitted with the settings extrapolate() uses for them: at the default
    # target_accept 0.8, ilog2 gives an occasional divergence near its transition x0.
    config = CURVE_CONFIG if law.per_run else RECOVERY_CONFIG
    fitted = bs.fit(law, data, key=jax.random.fold_in(key, 1), likelihood="normal", config=config)
    limit = Z_MANY if len(law.priors) >= 5 else Z_FEW
    for name in (*law.priors, "sigma"):
        row = fitted.summary[name]
        z = abs(row["mean"] - truth[name]) / row["sd"]
        assert z < limit, f"{law.name}.{name}: true {truth[name]:.4g}, posterior {row['mean']:.4g} +- {row['sd']:.3g}"


def _exact_linear_posterior(x, y, prior_mean, prior_cov, sigma_prior):
    """Posterior means of (intercept, slope, sigma) for y = X b + N(0, sigma^2), X = [1, -x].

    Given sigma the posterior of b is Normal in closed form; sigma is integrated out on a
    fine grid with its exact marginal likelihood.
    """
    design = np.column_stack([np.ones_like(x), -x])
    sigmas = np.linspace(1e-4, 0.2, 20_000)
    log_weight, means = [], []
    for sigma in sigmas:
        marginal_cov = sigma**2 * np.eye(len(y)) + design @ prior_cov @ design.T
        log_weight.append(stats.multivariate_normal.logpdf(y, design @ prior_mean, marginal_cov))
        precision = np.linalg.inv(prior_cov) + design.T @ design / sigma**2
        means.append(np.linalg.solve(precision, np.linalg.solve(prior_cov, prior_mean) + design.T @ y / sigma**2))
    log_weight = np.asarray(log_weight) + np.asarray(sigma_prior.log_prob(sigmas))
    weight = np.exp(log_weight - log_weight.max())
    weight /= weight.sum()
    intercept, slope = weight @ np.asarray(means)
    return {"log_L_ref": intercept, "aN": slope, "sigma": weight @ sigmas}


@pytest.mark.parametrize(
    "config", [bs.SamplerConfig(), bs.SamplerConfig(fixed_steps=2)], ids=["nuts", "fixed_length_hmc"]
)
def test_matches_closed_form_posterior_of_a_pure_power_law(key, config):
    # kaplan_n with Normal priors and Normal noise on log loss is a Bayesian linear
    # regression of log L on log N; both kernels must sample its exact posterior.
    prior_mean, prior_sd = np.array([1.0, 0.1]), np.array([1.0, 0.1])
    law = get_law("kaplan_n").with_priors(
        log_L_ref=dist.Normal(prior_mean[0], prior_sd[0]), aN=dist.Normal(prior_mean[1], prior_sd[1])
    )
    rng = np.random.default_rng(1)
    data = simulate(law, {"log_L_ref": 0.9, "aN": 0.08, "sigma": 0.02}, {"N": 10 ** rng.uniform(7, 11, 20)}, key=key)
    fitted = bs.fit(law, data, key=jax.random.fold_in(key, 1), likelihood="normal", config=config)
    x = np.log(data["N"]) - np.log(1e9)
    exact = _exact_linear_posterior(x, data.log_loss, prior_mean, np.diag(prior_sd**2), NOISE_PRIORS["sigma"])
    for name, value in exact.items():
        row = fitted.summary[name]
        assert row["ess_bulk"] >= MIN_ESS and row["r_hat"] < MAX_RHAT
        assert abs(row["mean"] - value) < MCSE_TOLERANCE * row["mcse_mean"], (
            name,
            row["mean"],
            value,
            row["mcse_mean"],
        )


@pytest.fixture(scope="session")
def epoch_fit(session_key):
    return bs.fit("chinchilla", bs.load_example("chinchilla"), key=session_key, likelihood="laplace")


# Epoch's 95% bootstrap intervals (Besiroglu et al. 2024, Table 1) for their Huber refit.
EPOCH_INTERVALS = {
    "E": (1.769, 1.871),
    "A": (285, 744),
    "B": (1042, 5810),
    "alpha": (0.317, 0.373),
    "beta": (0.331, 0.415),
}


def test_epoch_refit_lands_inside_epochs_intervals(epoch_fit):
    assert len(epoch_fit.data) == 240
    for name, (low, high) in EPOCH_INTERVALS.items():
        assert low <= epoch_fit.summary[name]["median"] <= high, (name, epoch_fit.summary[name]["median"])
    assert epoch_fit.diagnostics.max_r_hat < MAX_RHAT
    assert epoch_fit.diagnostics.divergences == 0
    assert epoch_fit.diagnostics.ok
    # 240 runs over three decades of N pin down every parameter.
    assert epoch_fit.diagnostics.weakly_identified == ()


def test_tokens_per_parameter_at_chinchilla_budget(epoch_fit, key):
    summary = bs.forecast(epoch_fit, compute=5.76e23, key=key).summary()
    tokens = summary["tokens_per_param"]
    # Epoch's point fit gives about 18 tokens per parameter; Hoffmann's published law about 70.
    assert tokens["q05"] < 18 < tokens["q95"]
    assert tokens["q95"] < 70


def test_same_key_same_draws(key):
    # The shapes and settings of the recovery test, so the compiled program is reused.
    law = get_law("kaplan_n")
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, _design(law, np.random.default_rng(2)), key=key)
    first = bs.fit(law, data, key=key, likelihood="normal", config=RECOVERY_CONFIG)
    second = bs.fit(law, data, key=key, likelihood="normal", config=RECOVERY_CONFIG)
    for name in law.priors:
        np.testing.assert_array_equal(first.posterior[name], second.posterior[name])


def test_fit_records_pointwise_log_likelihood_and_mean(epoch_fit):
    log_lik = bs._arviz.group(epoch_fit.idata, "log_likelihood")["log_loss"]
    assert log_lik.shape == (4, 1000, 240)
    assert epoch_fit.posterior["mu"].shape == (4, 1000, 240)
    assert np.all(np.isfinite(log_lik))
