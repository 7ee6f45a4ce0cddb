"""Helpers for testing code that uses bayescale: simulated data, fits without NUTS, calibration.

:func:`simulate` draws a table of runs from a law at known parameters; :func:`fake_fit`
builds a :class:`~bayescale.Fit` of the same structure as a real one from prior draws, in
well under a second, for tests of forecasts, plots and I/O that need no real posterior.
:func:`sbc` checks a law's whole inference, model and sampler together, by simulation-based
calibration (Talts et al. 2018), on a design from :func:`sbc_design` or the caller's own.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer import Predictive

from bayescale.config import SamplerConfig
from bayescale.data import ScalingData
from bayescale.diagnostics import MAX_RHAT
from bayescale.inference import Fit, _assemble, _metadata, _to_idata, fit_problems, model_args
from bayescale.law import LIKELIHOODS, Law, ModelSpec, noise_distribution
from bayescale.schedules import DROP_INPUTS, annealing_features, drop_features, named_schedule

__all__ = [
    "SBC_CONFIG",
    "SBCResult",
    "fake_fit",
    "ladder",
    "prior_means",
    "rank_uniformity",
    "sbc",
    "sbc_design",
    "simulate",
    "simulate_curves",
]


def prior_means(law: Law, likelihood: str = "normal") -> dict[str, float]:
    """Return the mean of each prior (law parameters, then noise parameters): a sane default truth."""
    return {name: float(prior.mean) for name, prior in ModelSpec(law, likelihood).priors.items()}


def ladder(num_runs: int, *, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return runs like a real IsoFLOP ladder: budgets over four decades, 1-1000 tokens per parameter.

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
        Simulated losses, (num_draws, observations); ``inf`` where a draw's log loss passes
        the float64 range, which the wide rate priors of some curve families allow, for the
        caller to filter.
    """
    args = model_args(spec, data, size=len(data))
    model = handlers.condition(spec.model(), {name: jnp.asarray(value) for name, value in (params or {}).items()})
    draws = Predictive(model, num_samples=num_draws)(key, args[0], None, *args[2:])
    draws = {**{name: jnp.full(num_draws, value) for name, value in (params or {}).items()}, **draws}
    params = {name: np.asarray(draws[name]) for name in (*spec.law.priors, *spec.noise)}
    with np.errstate(over="ignore"):
        loss = np.exp(np.asarray(draws["log_loss"], dtype=np.float64))
    return params, loss


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
    """Return a :class:`~bayescale.Fit` whose "posterior" is made of prior draws; no NUTS.

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
    """Return every site (deterministic ones too) and the pointwise log-likelihood, for one draw.

    The draw is one of the sampled sites; the log-likelihood is of the observed losses.
    """

    def one(*values):
        conditioned = handlers.condition(model, dict(zip(names, values, strict=True)))
        trace = handlers.trace(handlers.seed(conditioned, jax.random.key(0))).get_trace(*args)
        sites = {name: site["value"] for name, site in trace.items() if site["type"] in ("sample", "deterministic")}
        sites = {name: value for name, value in sites.items() if name != "log_loss"}
        log_lik = trace["log_loss"]["fn"].log_prob(trace["log_loss"]["value"])
        return sites, log_lik

    return one


# Simulation-based calibration --------------------------------------------------------

#: Sampler settings of :func:`sbc`: shorter than a user's fit, so that a law's SBC fits in
#: minutes on two CPU cores. After the Laplace whitening 300 warmup iterations adapt a
#: well-identified law; 2 x 200 draws hold the 49 near-independent ones the ranks need
#: (an ESS of 100 or more). Fits that fail their checks at these settings are counted in
#: :attr:`SBCResult.healthy`; the checks' ESS floor (100 per chain) is strict for 200 draws.
SBC_CONFIG = SamplerConfig(num_warmup=300, num_samples=200, num_chains=2)
# Draws of the chi-square statistic under exact uniformity, for the p-values of
# :func:`rank_uniformity`: their resolution, 1 / 200,001, is 20 times finer than the
# smallest per-parameter threshold of the catalogue's SBC (0.001 over bnsl2's 10 parameters).
_NULL_DRAWS = 200_000
# Rounds of prior predictive draws before :func:`sbc` gives up on a law whose simulated
# data are mostly not finite.
_MAX_ROUNDS = 20


def sbc_design(law: Law, *, rng: np.random.Generator, num_points: int = 40) -> dict[str, np.ndarray]:
    """Return a fixed, realistic design for ``law``'s inputs, of the kind the catalogue is fitted to.

    - ``N``, ``D``, ``C`` (and ``U``): an IsoFLOP-like ladder (:func:`ladder`), unique
      tokens repeated for 1 to 40 epochs;
    - ``N`` with ``step``: four model sizes (1e7 to 1e10 parameters), each logged at the
      same steps, 100 to 1e5;
    - ``x`` (training progress of a learning curve): two runs, one logged up to the
      reference x = 1 and one in progress, up to 0.5, both from 0.02 (``x_first``);
    - ``S1``, ``S2`` and the binned decreases (``drop_*``): the same two runs under known
      schedules, a cosine over the full run and a warmup-stable-decay one over half of it,
      with ``S1 = 1`` at the end of the longer run;
    - ``lm_loss``: language-modelling losses of a model ladder, 1.5 to 4 nats.

    Parameters
    ----------
    law : Law
        A law whose inputs are among the names above.
    rng : numpy.random.Generator
        Source of the ladder's budgets and splits (fix its seed for a fixed design).
    num_points : int, default 40
        Number of rows.

    Returns
    -------
    dict of numpy.ndarray
        The law's input columns, and ``run`` (labels) for designs of several runs.

    Raises
    ------
    ValueError
        When the law reads an input none of these designs provides.
    """
    inputs = set(law.inputs)
    if "step" in inputs:
        sizes, per_size = np.geomspace(1e7, 1e10, 4), num_points // 4
        columns = {
            "N": np.repeat(sizes, per_size),
            "step": np.tile(np.geomspace(1e2, 1e5, per_size), len(sizes)),
            "run": np.repeat(np.array([f"N={size:.0e}" for size in sizes], dtype=object), per_size),
        }
    elif inputs & {"N", "D", "C", "U"}:
        columns = dict(ladder(num_points, rng=rng))
        columns["U"] = columns["D"] / 10 ** rng.uniform(0, math.log10(40), num_points)
    elif inputs & {"x", "x_first", "S1", "S2", *DROP_INPUTS}:
        columns = _two_runs(num_points)
    elif "lm_loss" in inputs:
        columns = {"lm_loss": rng.uniform(1.5, 4.0, num_points)}
    else:
        columns = {}
    missing = inputs - columns.keys()
    if missing:
        raise ValueError(
            f"law {law.name!r} reads {sorted(missing)}, which no SBC design provides; pass your own design"
        )
    return {name: values for name, values in columns.items() if name in inputs or name == "run"}


def _two_runs(num_points: int) -> dict[str, np.ndarray]:
    """Return the checkpoints of two learning curves, with every curve input.

    Progress ``x``, the annealing areas ``S1``, ``S2`` and the binned decreases of the
    Multi-Power Law, with areas in units of the longer run's.
    """
    first, second = num_points // 2, num_points - num_points // 2
    total = 10_000  # steps of the longer run; the other stops at half
    steps = [np.geomspace(0.02 * total, total, first).round(), np.geomspace(0.02 * total, total // 2, second).round()]
    schedules = [
        named_schedule("cosine", peak=3e-4, final=3e-5, warmup=total // 50, total=total),
        named_schedule("wsd", peak=3e-4, final=0.0, warmup=total // 50, total=total // 2, decay=0.2),
    ]
    areas = [annealing_features(schedule, at) for schedule, at in zip(schedules, steps, strict=True)]
    reference = areas[0]["S1"][-1]
    drops = [drop_features(schedule, at, area_unit=reference) for schedule, at in zip(schedules, steps, strict=True)]
    columns = {name: np.concatenate([drop[name] for drop in drops]) for name in DROP_INPUTS}
    return {
        "x": np.concatenate(steps) / total,
        "x_first": np.concatenate([np.full(len(at), at[0]) for at in steps]) / total,
        "S1": np.concatenate([area["S1"] for area in areas]) / reference,
        "S2": np.concatenate([area["S2"] for area in areas]),
        **columns,
        "run": np.array(["full"] * first + ["half"] * second, dtype=object),
    }


@dataclasses.dataclass(frozen=True)
class SBCResult:
    """Ranks of the true parameters among posterior draws, and their test of uniformity.

    Attributes
    ----------
    law : str
        The fitted law.
    parameters : tuple of str
        One name per column of ``ranks``: the law's parameters (``name[run]`` for per-run
        ones), then the noise parameters.
    ranks : numpy.ndarray
        (simulations, parameters) ranks, each in 0 ... ``num_draws``: how many of the
        thinned posterior draws lie below the true value.
    num_draws : int
        Thinned draws per posterior (L).
    num_bins : int
        Bins of the ranks in the chi-square test.
    p_values : Mapping[str, float]
        Per parameter, the p-value of uniform ranks.
    alpha : float
        Level of the test of the law as a whole.
    num_rejected : int
        Prior predictive draws redrawn because a simulated loss was not finite.
    healthy : numpy.ndarray
        (simulations,) whether each fit passed its sampler checks.
    divergences : numpy.ndarray
        (simulations,) divergent transitions of each fit.
    max_r_hat : numpy.ndarray
        (simulations,) the largest R-hat over the sampled parameters of each fit.
    min_ess : numpy.ndarray
        (simulations,) the smallest bulk or tail ESS over the sampled parameters.
    log_loss_range : tuple of float
        The 1% and 99% quantiles of the simulated log losses: the prior predictive's spread.
    """

    law: str
    parameters: tuple[str, ...]
    ranks: np.ndarray
    num_draws: int
    num_bins: int
    p_values: Mapping[str, float]
    alpha: float
    num_rejected: int
    healthy: np.ndarray
    divergences: np.ndarray
    max_r_hat: np.ndarray
    min_ess: np.ndarray
    log_loss_range: tuple[float, float]

    def __post_init__(self):
        for values in (self.ranks, self.healthy, self.divergences, self.max_r_hat, self.min_ess):
            values.setflags(write=False)

    @property
    def num_simulations(self) -> int:
        """Simulated data sets."""
        return self.ranks.shape[0]

    @property
    def threshold(self) -> float:
        """Per-parameter level: ``alpha`` over the number of parameters (Bonferroni).

        The ranks of one simulation's parameters are dependent, and Bonferroni holds under
        any dependence: a calibrated law fails with probability at most ``alpha``.
        """
        return self.alpha / len(self.parameters)

    @property
    def min_p_value(self) -> float:
        """The smallest per-parameter p-value."""
        return min(self.p_values.values())

    @property
    def passed(self) -> bool:
        """Whether every parameter's ranks pass the uniformity test at :attr:`threshold`."""
        return self.min_p_value >= self.threshold

    @property
    def autocorrelated(self) -> int:
        """Fits with fewer effective draws than ``num_draws``, whose thinned draws are not independent."""
        return int(np.sum(self.min_ess < self.num_draws))

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready values (ranks as lists of integers)."""
        return {
            "law": self.law,
            "num_simulations": self.num_simulations,
            "num_draws": self.num_draws,
            "num_bins": self.num_bins,
            "alpha": self.alpha,
            "threshold": self.threshold,
            "passed": self.passed,
            "min_p_value": self.min_p_value,
            "p_values": dict(self.p_values),
            "ranks": {name: self.ranks[:, i].tolist() for i, name in enumerate(self.parameters)},
            "num_rejected": self.num_rejected,
            "unhealthy": int(np.sum(~self.healthy)),
            "divergences": int(np.sum(self.divergences)),
            "divergent_fits": int(np.sum(self.divergences > 0)),
            "r_hat_above": int(np.sum(~(self.max_r_hat < MAX_RHAT))),
            "autocorrelated": self.autocorrelated,
            "min_ess": float(self.min_ess.min()),
            "log_loss_range": list(self.log_loss_range),
            "per_simulation": {
                "healthy": self.healthy.tolist(),
                "divergences": self.divergences.tolist(),
                "max_r_hat": self.max_r_hat.tolist(),
                "min_ess": self.min_ess.tolist(),
            },
        }


def rank_uniformity(ranks: np.ndarray, num_draws: int, num_bins: int) -> np.ndarray:
    """P-values of a chi-square test that each column of ``ranks`` is uniform on 0 ... ``num_draws``.

    The ranks are binned into ``num_bins`` equal bins (``num_draws + 1`` must be a multiple
    of it, so that each bin is equally likely under uniformity). The p-value is exact up to
    Monte Carlo error: the statistic's null distribution is drawn from the multinomial with
    fixed seed, rather than taken from its chi-square limit, which is poor in the far tail
    for the few simulations per bin of a short SBC.

    Parameters
    ----------
    ranks : numpy.ndarray
        (simulations, columns) integer ranks.
    num_draws : int
        The largest possible rank (L, the number of draws ranked against).
    num_bins : int
        Number of bins.

    Returns
    -------
    numpy.ndarray
        (columns,) p-values.

    Raises
    ------
    ValueError
        When ``num_draws + 1`` is not a multiple of ``num_bins`` or a rank is out of range.
    """
    ranks = np.asarray(ranks)
    if (num_draws + 1) % num_bins:
        raise ValueError(f"{num_draws + 1} possible ranks do not split into {num_bins} equal bins")
    if ranks.min(initial=0) < 0 or ranks.max(initial=0) > num_draws:
        raise ValueError(f"ranks must lie in 0 ... {num_draws}; got {ranks.min()} ... {ranks.max()}")
    counts = np.stack([np.bincount(column, minlength=num_bins) for column in ranks.T * num_bins // (num_draws + 1)])
    null = _null_chi_square(ranks.shape[0], num_bins)
    observed = _chi_square(counts, ranks.shape[0])
    # One-sided, with the observed statistic counted among the draws: never exactly 0.
    return (1 + np.sum(null[None, :] >= observed[:, None] - 1e-9, axis=1)) / (len(null) + 1)


def _chi_square(counts: np.ndarray, total: int) -> np.ndarray:
    """Pearson's statistic of bin counts (last axis) against equal expected counts."""
    expected = total / counts.shape[-1]
    return np.sum((counts - expected) ** 2, axis=-1) / expected


@functools.lru_cache(maxsize=16)
def _null_chi_square(total: int, num_bins: int) -> np.ndarray:
    """Draws of the chi-square statistic of ``total`` uniform ranks in ``num_bins`` bins."""
    counts = np.random.default_rng(0).multinomial(total, np.full(num_bins, 1.0 / num_bins), size=_NULL_DRAWS)
    return _chi_square(counts, total)


def sbc(
    law: Law,
    design: Mapping[str, np.ndarray],
    *,
    key: jax.Array,
    num_simulations: int = 50,
    num_draws: int = 49,
    num_bins: int = 5,
    likelihood: str = "normal",
    config: SamplerConfig = SBC_CONFIG,
    alpha: float = 0.001,
    simulate_from: Law | None = None,
) -> SBCResult:
    """Simulation-based calibration of ``law``'s inference (Talts et al. 2018).

    For each of ``num_simulations`` simulations, parameters are drawn from the priors of
    the model :func:`~bayescale.law.build_model` builds (the law's, then the noise's) and
    losses from its likelihood at ``design``; the law is fitted with NUTS, and the rank
    of each true parameter among ``num_draws`` posterior draws is recorded. If the
    posterior is computed correctly, each parameter's ranks are uniform; a bug in the
    model, a mismatch between simulation and model, or a sampler that does not converge
    shows as ranks piled at the ends (a biased or too narrow posterior) or in the middle
    (too wide). All simulations are fitted in one compiled program
    (:func:`~bayescale.inference.fit_problems`).

    The posterior draws are thinned to ``num_draws`` evenly spaced ones, as Talts et al.
    recommend, so that autocorrelation does not bias the ranks: a fit with an effective
    sample size of at least ``num_draws`` then contributes near-independent draws, and
    :attr:`SBCResult.autocorrelated` counts the fits with fewer.

    A simulation whose losses are not all finite (the law's mean overflows at some prior
    draws) cannot be fitted; it is redrawn, and :attr:`SBCResult.num_rejected` counts the
    redraws. The rule reads only the simulated data, so the accepted parameters are drawn
    from the prior restricted to data sets of finite losses, whose posterior is the model's
    own: the ranks stay uniform, and the check covers the data sets the model can score.

    Parameters
    ----------
    law : Law
        The law to check.
    design : Mapping[str, numpy.ndarray]
        The law's inputs at every simulated row (e.g. from :func:`sbc_design`), and ``run``
        for laws with per-run parameters; rows of a run consecutive.
    key : jax.Array
        PRNG key for the simulations, the fits and the tie-breaking of ranks.
    num_simulations : int, default 50
        Simulated data sets (S). Fifty, in five bins, detect gross miscalibration: at the
        threshold of a law of four parameters, a posterior biased by one sd fails with
        probability 0.98, but one biased by half an sd only 0.17, and one half as wide as
        it should be 0.33. More simulations sharpen the test at proportional cost.
    num_draws : int, default 49
        Thinned posterior draws per fit (L); ranks take ``num_draws + 1`` values. Fits
        must have at least this many draws.
    num_bins : int, default 5
        Bins of the chi-square test; must divide ``num_draws + 1``.
    likelihood : str, default "normal"
        The observation model of log loss, for simulation and fit.
    config : SamplerConfig, default SBC_CONFIG
        Sampler settings of the fits.
    alpha : float, default 0.001
        Level of the test of the law: each parameter is tested at ``alpha`` divided by the
        number of parameters (see :attr:`SBCResult.threshold`).
    simulate_from : Law, optional
        A law with the same parameters that draws the truths and the data instead of
        ``law``; one that differs from ``law`` (another prior, another mean) makes a
        negative control, which SBC should reject.

    Returns
    -------
    SBCResult

    Raises
    ------
    ValueError
        When the draws are too few for ``num_draws``, or most simulated data sets have
        losses that are not finite.
    """
    if config.num_chains * config.num_samples < num_draws:
        raise ValueError(f"{config.num_chains} x {config.num_samples} draws cannot be thinned to {num_draws}")
    rank_uniformity(np.zeros((1, 1), int), num_draws, num_bins)  # the bins, checked before any fit
    spec = ModelSpec(law, likelihood)
    generator = ModelSpec(simulate_from or law, likelihood)
    columns = {name: np.asarray(values) for name, values in design.items()}
    size = len(next(iter(columns.values())))
    template = ScalingData({**columns, "loss": np.ones(size)}, f"SBC design of {law.name}", np.arange(1, size + 1))
    key_simulate, key_fit, key_ties = jax.random.split(key, 3)
    truths, losses, num_rejected = _prior_predictive(generator, template, key_simulate, num_simulations)
    datasets = [
        ScalingData(
            {**columns, "loss": loss}, f"SBC simulation {i + 1} of {law.name}", template.rows, notes=("simulated",)
        )
        for i, loss in enumerate(losses)
    ]
    keys = [jax.random.fold_in(key_fit, i) for i in range(num_simulations)]
    # Health is recorded per fit below, not warned about; NumPy's warnings about prior draws
    # far in the tails (a derived constant overflowing in some draws) would only repeat it.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        fits = fit_problems([spec] * num_simulations, datasets, keys=keys, config=config, warn=False)
    ties = np.random.default_rng(np.asarray(jax.random.key_data(key_ties)))
    parameters, columns_of_ranks = [], []
    for name in (*law.priors, *spec.noise):
        labels = fits[0].runs if np.ndim(truths[name]) == 2 else [None]
        for position, label in enumerate(labels):
            parameters.append(name if label is None else f"{name}[{label}]")
            ranks = []
            for index, fitted in enumerate(fits):
                draws = _thinned(fitted, name, num_draws)
                truth = truths[name][index] if label is None else truths[name][index, position]
                draws = draws if label is None else draws[:, position]
                ranks.append(np.sum(draws < truth) + ties.integers(0, np.sum(draws == truth) + 1))
            columns_of_ranks.append(ranks)
    ranks = np.asarray(columns_of_ranks, dtype=np.int64).T
    log_losses = np.log(losses)
    return SBCResult(
        law=law.name,
        parameters=tuple(parameters),
        ranks=ranks,
        num_draws=num_draws,
        num_bins=num_bins,
        p_values=dict(zip(parameters, rank_uniformity(ranks, num_draws, num_bins).tolist(), strict=True)),
        alpha=alpha,
        num_rejected=num_rejected,
        healthy=np.array([fitted.diagnostics.ok for fitted in fits]),
        divergences=np.array([fitted.diagnostics.divergences for fitted in fits]),
        max_r_hat=np.array([fitted.diagnostics.max_r_hat for fitted in fits]),
        min_ess=np.array([min(fitted.diagnostics.min_ess_bulk, fitted.diagnostics.min_ess_tail) for fitted in fits]),
        log_loss_range=tuple(float(q) for q in np.quantile(log_losses, [0.01, 0.99])),
    )


def _prior_predictive(spec: ModelSpec, template: ScalingData, key: jax.Array, num_simulations: int):
    """``num_simulations`` prior draws with data sets whose losses are all finite, and how many were redrawn."""
    kept_truths, kept_losses, num_rejected = [], [], 0
    for round_ in range(_MAX_ROUNDS):
        truths, losses = simulate_curves(spec, template, key=jax.random.fold_in(key, round_), num_draws=num_simulations)
        finite = np.all(np.isfinite(losses) & (losses > 0), axis=1)
        num_rejected += int(np.sum(~finite))
        kept_truths.append({name: values[finite] for name, values in truths.items()})
        kept_losses.append(losses[finite])
        if sum(map(len, kept_losses)) >= num_simulations:
            break
    else:
        raise ValueError(
            f"law {spec.law.name!r}: only {sum(map(len, kept_losses))} of {_MAX_ROUNDS * num_simulations} prior "
            f"predictive data sets have finite losses at this design; expected at least {num_simulations} (check the "
            "priors against the design)"
        )
    truths = {name: np.concatenate([kept[name] for kept in kept_truths])[:num_simulations] for name in kept_truths[0]}
    return truths, np.concatenate(kept_losses)[:num_simulations], num_rejected


def _thinned(fitted: Fit, name: str, num_draws: int) -> np.ndarray:
    """``num_draws`` evenly spaced draws of a parameter, chains pooled: (num_draws,) or (num_draws, runs)."""
    values = np.asarray(fitted.posterior[name])
    pooled = values.reshape(-1, *values.shape[2:])
    return pooled[np.linspace(0, len(pooled) - 1, num_draws).round().astype(int)]
