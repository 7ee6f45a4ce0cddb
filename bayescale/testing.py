"""Helpers for testing code that uses bayescale: simulated data and fits without NUTS.

:func:`simulate` draws a table of runs from a law at known parameters; :func:`fake_fit`
builds a :class:`~bayescale.Fit` of the same structure as a real one from prior draws, in
well under a second, for tests of forecasts, plots and I/O that need no real posterior.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer import Predictive

from bayescale.config import SamplerConfig
from bayescale.data import ScalingData
from bayescale.inference import Fit, _assemble, _metadata, _to_idata, model_args
from bayescale.law import LIKELIHOODS, NOISE_PRIORS, Law, ModelSpec, noise_distribution

__all__ = ["fake_fit", "ladder", "prior_means", "simulate", "simulate_curves"]


def prior_means(law: Law, likelihood: str = "normal") -> dict[str, float]:
    """The mean of each prior (law parameters, then noise parameters): a sane default truth."""
    priors = {**law.priors, **{name: NOISE_PRIORS[name] for name in LIKELIHOODS[likelihood].noise}}
    return {name: float(prior.mean) for name, prior in priors.items()}


def ladder(num_runs: int, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Runs like a real IsoFLOP ladder: budgets over four decades, 1-1000 tokens per parameter.

    Parameters
    ----------
    num_runs : int
        Number of runs.
    rng : numpy.random.Generator
        Source of the budgets and splits.

    Returns
    -------
    dict of numpy.ndarray
        ``N``, ``D`` and ``C = 6 N D`` of each run.
    """
    compute = 10 ** rng.uniform(18, 22, num_runs)
    tokens_per_param = 10 ** rng.uniform(0, 3, num_runs)
    n = np.sqrt(compute / (6 * tokens_per_param))
    return {"N": n, "D": tokens_per_param * n, "C": compute}


def simulate(
    law: Law,
    params: Mapping[str, float],
    inputs: Mapping[str, np.ndarray],
    *,
    key: jax.Array,
    likelihood: str = "normal",
) -> ScalingData:
    """Simulate observed losses from ``law`` at known parameters.

    Parameters
    ----------
    law : Law
        The generating law.
    params : Mapping[str, float]
        Its parameters and the likelihood's noise parameters (``sigma``, and ``nu`` for
        Student-t).
    inputs : Mapping[str, numpy.ndarray]
        The law's inputs (e.g. ``N`` and ``D``), equal-length arrays.
    key : jax.Array
        PRNG key for the noise.
    likelihood : str, default "normal"
        Noise model on log loss.

    Returns
    -------
    ScalingData
        The inputs (with C = 6ND where N and D are given) and the simulated ``loss``.
    """
    columns = {name: np.asarray(values, dtype=np.float64) for name, values in inputs.items()}
    x64 = {name: jnp.asarray(values) for name, values in columns.items()}
    mu = law.log_mean({name: jnp.asarray(value) for name, value in params.items()}, x64)
    noise = {name: jnp.asarray(params[name]) for name in LIKELIHOODS[likelihood].noise}
    log_loss = noise_distribution(likelihood, mu, noise).sample(key)
    columns["loss"] = np.exp(np.asarray(log_loss, dtype=np.float64))
    if {"N", "D"} <= columns.keys() and "C" not in columns:
        columns["C"] = 6.0 * columns["N"] * columns["D"]
    size = len(columns["loss"])
    return ScalingData(columns, f"simulated from {law.name}", np.arange(1, size + 1), notes=("simulated",))


def simulate_curves(
    spec: ModelSpec,
    data: ScalingData,
    *,
    key: jax.Array,
    num_draws: int,
    params: Mapping[str, float] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draw losses from the observation model of ``spec``, parameters fixed or from the priors.

    With ``spec.correlated`` the residuals follow the model's process along each run. With
    every parameter drawn from its prior the draws are what the model believes learning
    curves look like: the ground truth of a calibration check (a well-specified posterior
    covers the truth at its nominal rate on average over these draws).

    Parameters
    ----------
    spec : ModelSpec
        Law, likelihood and whether residuals are correlated.
    data : ScalingData
        The law's inputs at the checkpoints to simulate (``loss`` is ignored), and ``run``
        for correlated residuals; sorted by run, then step.
    key : jax.Array
        PRNG key.
    num_draws : int
        Number of simulated data sets.
    params : Mapping[str, float], optional
        Values of law or noise parameters to hold fixed; the others are drawn from their
        priors.

    Returns
    -------
    params : dict of numpy.ndarray
        The drawn law and noise parameters, each with a leading axis of ``num_draws``.
    loss : numpy.ndarray
        Simulated losses, (num_draws, observations).
    """
    args = model_args(spec, data, size=len(data))
    model = handlers.condition(spec.model(), {name: jnp.asarray(value) for name, value in (params or {}).items()})
    draws = Predictive(model, num_samples=num_draws)(key, args[0], None, *args[2:])
    draws = {**{name: jnp.full(num_draws, value) for name, value in (params or {}).items()}, **draws}
    params = {name: np.asarray(draws[name]) for name in (*spec.law.priors, *spec.noise)}
    return params, np.exp(np.asarray(draws["log_loss"], dtype=np.float64))


def fake_fit(
    law: Law,
    data: ScalingData,
    *,
    key: jax.Array,
    likelihood: str = "normal",
    correlated: bool = False,
    num_chains: int = 2,
    num_samples: int = 100,
) -> Fit:
    """A :class:`~bayescale.Fit` whose "posterior" is made of prior draws; no NUTS.

    Its groups, metadata and diagnostics have the shapes and names of a real fit, so
    code downstream of :func:`bayescale.fit` can be tested in milliseconds.

    Parameters
    ----------
    law : Law
        The law.
    data : ScalingData
        Data with the law's inputs and ``loss`` (learning curves sorted by run, then step).
    key : jax.Array
        PRNG key for the prior draws.
    likelihood : str, default "normal"
        Likelihood recorded in the fit.
    correlated : bool, default False
        Correlated residuals along runs, as in :func:`bayescale.fit`.
    num_chains, num_samples : int
        Shape of the draws.

    Returns
    -------
    Fit
    """
    spec = ModelSpec(law, likelihood, correlated)
    args = model_args(spec, data, size=len(data))
    model = spec.model()
    total = num_chains * num_samples
    key_prior, key_stats = jax.random.split(key)
    prior = Predictive(model, num_samples=total)(key_prior, args[0], None, *args[2:])
    sampled = [name for name in prior if name not in ("log_loss", "innovation", "mu")]
    sites, log_lik = jax.vmap(_observed_log_likelihood(model, args, sampled))(*(prior[name] for name in sampled))
    shape = (num_chains, num_samples)
    stats = {
        "diverging": np.zeros(shape, dtype=bool),
        "n_steps": np.full(shape, 3, dtype=np.int64),
        "accept_prob": np.full(shape, 0.8),
        "energy": np.asarray(jax.random.normal(key_stats, shape), dtype=np.float64),
        "potential_energy": np.zeros(shape),
        "step_size": np.full(num_chains, 0.5),
    }
    config = SamplerConfig(num_warmup=0, num_samples=num_samples, num_chains=num_chains)
    idata = _to_idata(spec, data, sites, log_lik, stats, _metadata(spec, data, config, key))
    return _assemble(spec, data, idata, config)


def _observed_log_likelihood(model, args, names):
    """For one prior draw of the sampled sites: every site (deterministic ones too) and the
    pointwise log-likelihood of the observed losses under it."""

    def one(*values):
        conditioned = handlers.condition(model, dict(zip(names, values, strict=True)))
        trace = handlers.trace(handlers.seed(conditioned, jax.random.key(0))).get_trace(*args)
        sites = {name: site["value"] for name, site in trace.items() if site["type"] in ("sample", "deterministic")}
        sites = {name: value for name, value in sites.items() if name != "log_loss"}
        log_lik = trace["log_loss"]["fn"].log_prob(trace["log_loss"]["value"])
        return sites, log_lik

    return one
