r"""Posterior predictive checks: where a fitted law misses the data it was fitted to.

A law that describes the runs reproduces them: data sets replicated from its posterior
predictive look like the observed one, and each observation is a typical draw of its
leave-one-out predictive. :func:`check` tests both and names where the law misses.

* **Replications** (:func:`posterior_predictive`): for each posterior draw, the law's
  expected log loss plus the likelihood's noise (for correlated residuals, the model's
  Ornstein-Uhlenbeck process along each run). They give the coverage of central
  predictive intervals and Bayesian p-values :math:`P(T(y^{rep}, \theta) \ge T(y, \theta))`
  of test statistics (Gelman, Meng and Stern 1996; Gelman et al., *Bayesian Data
  Analysis*, 3rd ed., ch. 6).
* **LOO-PIT** (:func:`loo_pit`): the probability integral transform of each observation
  under its leave-one-out predictive, by Pareto-smoothed importance sampling; uniform on
  (0, 1) when law and noise model are right (Gabry et al. 2019, "Visualization in
  Bayesian workflow"). The values of one data set are slightly dependent, which makes a
  uniformity test of them conservative.

Every flag in :attr:`PredictiveCheck.problems` is a test at level :data:`ALPHA`: with
about ten of them a well-specified law is flagged on at most one data set in ten (a union
bound), fewer in practice, as p-values of statistics the fit adapts to (mean, sd) are
conservative.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from numpyro.infer import Predictive

from bayescale import _arviz
from bayescale.compare import PARETO_K_THRESHOLD, pointwise_log_likelihood
from bayescale.inference import Fit, model_args, require_pointwise
from bayescale.law import LIKELIHOODS, ModelSpec, _correlation, noise_distribution

__all__ = [
    "ALPHA",
    "INTERVALS",
    "RESIDUAL_AXES",
    "PredictiveCheck",
    "check",
    "ks_band",
    "ks_uniform",
    "loo_pit",
    "posterior_predictive",
    "residuals",
]

#: Level of each test behind a flag in :attr:`PredictiveCheck.problems` (two-sided
#: tests put half of it in each tail).
ALPHA = 0.01
#: Central posterior predictive intervals whose coverage is reported; nominal = width.
INTERVALS = (0.5, 0.9)
#: Columns that residuals are reported and tested against, where the data have them; the
#: law's own inputs otherwise.
RESIDUAL_AXES = ("N", "D", "C", "step")
_DESCRIPTIONS = {
    "mean": "mean log loss",
    "sd": "sd of log loss",
    "min": "min log loss",
    "max": "max log loss",
    "max_abs_residual": "largest |residual| / sigma",
}


@dataclasses.dataclass(frozen=True, eq=False)
class PredictiveCheck:
    """How well a fit reproduces its data: coverage, Bayesian p-values, LOO-PIT, residuals.

    Attributes
    ----------
    law : str
        Name of the fitted law.
    coverage : Mapping[float, float]
        For each width in :data:`INTERVALS`, the fraction of observations inside their
        central posterior predictive interval of that width.
    coverage_range : Mapping[float, tuple of float]
        The central ``1 - ALPHA`` range of that fraction for the replicated noise around
        the posterior median fit: how far it strays by chance, correlations along runs
        included.
    p_values : Mapping[str, float]
        Bayesian p-value (fraction of replications whose statistic is at least the
        observed one) of ``mean``, ``sd``, ``min``, ``max`` of log loss, the largest
        absolute standardized residual ``max_abs_residual`` and, for each residual axis
        X, ``residual_autocorrelation_X``: the lag-1 autocorrelation of residuals ordered
        by X, high when the law misses a trend along X.
    loo_pit : numpy.ndarray
        (observations,) LOO-PIT values.
    pareto_k : numpy.ndarray
        (observations,) Pareto k of their importance weights.
    ks_statistic, ks_p_value : float
        Kolmogorov-Smirnov test of the LOO-PIT values against U(0, 1).
    residuals : numpy.ndarray
        (observations,) observed log loss minus the posterior median of its expectation.
    inputs : Mapping[str, numpy.ndarray]
        The columns residuals are reported against (see :data:`RESIDUAL_AXES`).
    problems : tuple of str
        One sentence per failed check.
    """

    law: str
    coverage: Mapping[float, float]
    coverage_range: Mapping[float, tuple[float, float]]
    p_values: Mapping[str, float]
    loo_pit: np.ndarray
    pareto_k: np.ndarray
    ks_statistic: float
    ks_p_value: float
    residuals: np.ndarray
    inputs: Mapping[str, np.ndarray]
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: coverage, p-values, LOO-PIT test, residuals and problems."""
        return {
            "law": self.law,
            "observations": len(self.residuals),
            "coverage": {
                f"{width:.0%}": {
                    "observed": self.coverage[width],
                    "nominal": width,
                    "expected_range": list(self.coverage_range[width]),
                }
                for width in self.coverage
            },
            "p_values": dict(self.p_values),
            "loo_pit": {
                "ks_statistic": self.ks_statistic,
                "ks_p_value": self.ks_p_value,
                "pareto_k_high": int(np.sum(self.pareto_k > PARETO_K_THRESHOLD)),
            },
            "residuals": {
                "residual": self.residuals.tolist(),
                **{name: values.tolist() for name, values in self.inputs.items()},
            },
            "ok": self.ok,
            "problems": list(self.problems),
        }


def posterior_predictive(fit: Fit, *, key: jax.Array) -> np.ndarray:
    """Replicated log losses: one data set per posterior draw, from the fit's own model.

    Each replication is the law's expected log loss at the draw plus noise from the
    likelihood (Student-t, Normal or Laplace) at the draw's noise parameters; with
    correlated residuals the noise follows the model's Ornstein-Uhlenbeck process along
    each run (see :func:`bayescale.law.build_model`).

    Parameters
    ----------
    fit : Fit
        Any fit.
    key : jax.Array
        PRNG key for the noise.

    Returns
    -------
    numpy.ndarray
        (draws, observations) log losses, draws flattened over chains, observations in
        the order of ``fit.data``.
    """
    inputs, _, mask, runs = model_args(fit.spec, fit.data, size=len(fit.data))
    draws = fit.draws()
    return np.asarray(_replicate_program(fit.spec)(key, draws, inputs, mask, runs), dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _replicate_program(spec: ModelSpec):
    """Jitted replication of log loss from the model of ``spec``, one per posterior draw."""
    model = spec.model()

    def replicate(key, draws, inputs, mask, runs):
        predictive = Predictive(model, posterior_samples=draws, return_sites=["log_loss"], parallel=True)
        return predictive(key, inputs, None, mask, runs)["log_loss"]

    return jax.jit(replicate)


def loo_pit(fit: Fit) -> tuple[np.ndarray, np.ndarray]:
    """LOO-PIT values: each observation's CDF under its leave-one-out predictive.

    Computed as the PSIS-weighted average over draws of the likelihood's CDF at the
    observation (see :func:`bayescale._arviz.loo_pit`), so no key is needed. With
    correlated residuals each observation's predictive is given the run's previous
    checkpoint, as in the pointwise log-likelihood; the values of a right model are then
    independent as well as uniform.

    Parameters
    ----------
    fit : Fit
        Any fit.

    Returns
    -------
    pit : numpy.ndarray
        (observations,) values in [0, 1].
    pareto_k : numpy.ndarray
        (observations,) Pareto k; above 0.7 a value is unreliable.
    """
    log_lik = pointwise_log_likelihood(fit)
    location, noise = _pointwise_predictive(fit)
    cdf = _cdf_program(fit.likelihood)(fit.data.log_loss[None], location, noise)
    return _arviz.loo_pit(log_lik, np.asarray(cdf).reshape(log_lik.shape))


def _flat_mu(fit: Fit) -> np.ndarray:
    """Posterior draws of the expected log loss, (draws, observations), in float64."""
    require_pointwise(fit, "a posterior predictive check")
    mu = np.asarray(fit.posterior["mu"], dtype=np.float64)
    return mu.reshape(-1, mu.shape[-1])


def _pointwise_predictive(fit: Fit) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Location and noise of each observation's predictive at each draw, (draws, observations).

    These give the distribution the pointwise log-likelihood scores: given the run's
    previous residual when residuals are correlated.
    """
    mu = _flat_mu(fit)
    draws = fit.draws()
    noise = {name: draws[name][:, None] for name in LIKELIHOODS[fit.likelihood].noise}
    if not fit.spec.correlated:
        return mu, noise
    runs = model_args(fit.spec, fit.data, size=len(fit.data))[3]
    structure = {"first": runs["first"][None], "gap": runs["gap"][None]}
    rho, shrink = (np.asarray(value) for value in _correlation(structure, draws["corr_length"][:, None]))
    previous = np.concatenate([np.zeros((len(mu), 1)), (fit.data.log_loss - mu)[:, :-1]], axis=1)
    return mu + rho * previous, {**noise, "sigma": noise["sigma"] * shrink}


@functools.lru_cache(maxsize=8)
def _cdf_program(likelihood: str):
    """Jitted CDF of the named likelihood at ``y``."""
    return jax.jit(lambda y, location, noise: noise_distribution(likelihood, location, noise).cdf(y))


def residuals(fit: Fit) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Observed log loss minus the posterior median of the law's expected log loss.

    Parameters
    ----------
    fit : Fit
        Any fit.

    Returns
    -------
    residuals : numpy.ndarray
        (observations,) in the order of ``fit.data``.
    inputs : dict of numpy.ndarray
        The columns of :data:`RESIDUAL_AXES` the data have (the law's inputs when they
        have none), to plot the residuals against.
    """
    names = [name for name in RESIDUAL_AXES if name in fit.data] or list(fit.law.inputs)
    return fit.data.log_loss - np.median(_flat_mu(fit), axis=0), {name: fit.data[name] for name in names}


def check(fit: Fit, *, key: jax.Array) -> PredictiveCheck:
    """Posterior predictive check of a fit: whether the law reproduces its data.

    Replicates the data from the posterior (:func:`posterior_predictive`) and compares:
    the coverage of central predictive intervals against the range it takes on
    replicated data sets; Bayesian p-values of test statistics; and LOO-PIT values
    (:func:`loo_pit`) against U(0, 1) with a Kolmogorov-Smirnov test. A statistic in
    either tail (``ALPHA / 2``) of its replications is flagged; residual autocorrelation
    along an input is the flag of a law that misses a trend, e.g. a floor or a bend at
    the largest runs.

    Parameters
    ----------
    fit : Fit
        Any fit.
    key : jax.Array
        PRNG key for the replications.

    Returns
    -------
    PredictiveCheck

    Examples
    --------
    >>> import jax, bayescale as bs
    >>> from bayescale.checks import check
    >>> result = bs.fit("chinchilla", bs.load_example("chinchilla"), key=jax.random.key(0))  # doctest: +SKIP
    >>> check(result, key=jax.random.key(1)).problems  # doctest: +SKIP
    ()
    """
    log_loss = fit.data.log_loss
    replicated = posterior_predictive(fit, key=key)
    mu = _flat_mu(fit)
    problems = []

    # How far coverage strays by chance: the replications' noise, rescaled to the median
    # sigma, around the posterior median fit, as the observed data lie around the fit they
    # pinned. Whole replications move with their draw's parameters, and would widen the
    # range by the posterior's uncertainty, which the observed data do not have.
    sigma = fit.draws()["sigma"][:, None]
    noise_only = np.median(mu, axis=0) + (replicated - mu) * np.median(sigma) / sigma
    coverage, coverage_range = {}, {}
    for width in INTERVALS:
        low, high = np.quantile(replicated, [(1 - width) / 2, (1 + width) / 2], axis=0)
        coverage[width] = float(np.mean((low <= log_loss) & (log_loss <= high)))
        by_chance = np.mean((low <= noise_only) & (noise_only <= high), axis=1)
        bounds = tuple(float(bound) for bound in np.quantile(by_chance, [ALPHA / 2, 1 - ALPHA / 2]))
        coverage_range[width] = bounds
        if not bounds[0] <= coverage[width] <= bounds[1]:
            problems.append(
                f"{width:.0%} predictive intervals cover {coverage[width]:.0%} of the observations, outside the "
                f"{bounds[0]:.0%}-{bounds[1]:.0%} expected by chance"
            )

    residual, inputs = residuals(fit)
    orders = {name: np.argsort(values, kind="stable") for name, values in inputs.items()}
    observed = _statistics(log_loss, mu, sigma, orders)
    simulated = _statistics(replicated, mu, sigma, orders)
    p_values = {name: float(np.mean(simulated[name] >= observed[name])) for name in observed}
    for name, p in p_values.items():
        if p < ALPHA / 2 or p > 1 - ALPHA / 2:
            problems.append(_describe(name, p))

    pit, pareto_k = loo_pit(fit)
    ks_statistic, ks_p_value = ks_uniform(pit)
    if ks_p_value < ALPHA:
        problems.append(
            f"LOO-PIT not uniform (KS p = {ks_p_value:.2g}): the observations are not typical draws of their "
            "leave-one-out predictives (see plot_loo_pit)"
        )
    unreliable = int(np.sum(pareto_k > PARETO_K_THRESHOLD))
    if unreliable:
        problems.append(
            f"LOO-PIT unreliable at {unreliable} of {len(pit)} observations (Pareto k > {PARETO_K_THRESHOLD}): "
            "they are influential"
        )
    return PredictiveCheck(
        law=fit.law.name,
        coverage=coverage,
        coverage_range=coverage_range,
        p_values=p_values,
        loo_pit=pit,
        pareto_k=pareto_k,
        ks_statistic=ks_statistic,
        ks_p_value=ks_p_value,
        residuals=residual,
        inputs=inputs,
        problems=tuple(problems),
    )


def _statistics(log_loss, mu, sigma, orders) -> dict[str, np.ndarray]:
    """Test statistics of observed (observations,) or replicated (draws, observations) log loss.

    Those of residuals use each draw's ``mu`` and ``sigma``, so they are per draw.
    """
    residual = log_loss - mu
    out = {
        "mean": np.mean(log_loss, axis=-1),
        "sd": np.std(log_loss, axis=-1),
        "min": np.min(log_loss, axis=-1),
        "max": np.max(log_loss, axis=-1),
        "max_abs_residual": np.max(np.abs(residual) / sigma, axis=-1),
    }
    for name, order in orders.items():
        ordered = residual[:, order]
        centred = ordered - ordered.mean(axis=-1, keepdims=True)
        out[f"residual_autocorrelation_{name}"] = np.sum(centred[:, 1:] * centred[:, :-1], axis=-1) / np.sum(
            centred**2, axis=-1
        )
    return out


def _describe(name: str, p: float) -> str:
    """Return the sentence flagging a statistic in a tail of its replications."""
    tail = f"upper {ALPHA / 2:.1%}" if p < ALPHA / 2 else f"lower {ALPHA / 2:.1%}"
    if name.startswith("residual_autocorrelation_"):
        axis = name.removeprefix("residual_autocorrelation_")
        what = f"autocorrelation of residuals ordered by {axis} in the {tail} of replications (p = {p:.3g})"
        return what + (f": the law misses a trend along {axis}" if p < ALPHA / 2 else "")
    return f"observed {_DESCRIPTIONS[name]} in the {tail} of replications (p = {p:.3g})"


def _kolmogorov_scale(n: int) -> float:
    """Stephens' (1970) factor that makes the asymptotic Kolmogorov law accurate for small n."""
    return math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)


def ks_uniform(values: np.ndarray) -> tuple[float, float]:
    r"""One-sample Kolmogorov-Smirnov test of ``values`` against U(0, 1).

    The p-value is the asymptotic Kolmogorov tail :math:`Q(\lambda)` at
    :math:`\lambda = (\sqrt{n} + 0.12 + 0.11/\sqrt{n}) D` (Stephens 1970; Press et al.,
    *Numerical Recipes*, 3rd ed., sec. 14.3.3). Against the exact p-value it is off by at
    most 0.025 for n >= 5, and by a few per cent of p below p = 0.05 for n >= 20 (for
    n = 10 up to 20% higher). SciPy, which has the exact law, is not a dependency.

    Parameters
    ----------
    values : numpy.ndarray
        Sample, e.g. LOO-PIT values.

    Returns
    -------
    statistic : float
        :math:`D = \sup_u |F_n(u) - u|`.
    p_value : float
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    statistic = float(max(np.max(np.arange(1, n + 1) / n - ordered), np.max(ordered - np.arange(n) / n)))
    scaled = _kolmogorov_scale(n) * statistic
    k = np.arange(1, 101)
    if scaled < 1.18:  # the alternating series converges slowly here; use Jacobi's theta form
        cdf = math.sqrt(2 * math.pi) / scaled * np.sum(np.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * scaled**2)))
        p_value = 1.0 - cdf
    else:
        p_value = 2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * scaled**2))
    return statistic, float(np.clip(p_value, 0.0, 1.0))


def ks_band(n: int, alpha: float = ALPHA) -> float:
    r"""Half-width of the simultaneous ``1 - alpha`` band of an ECDF of n uniform values.

    The ECDF leaves the band exactly where :func:`ks_uniform` gives p < ``alpha``. Uses
    the first term of the Kolmogorov tail, :math:`Q(\lambda) \approx 2 e^{-2\lambda^2}`,
    whose error is below 1e-6 for ``alpha <= 0.05``.
    """
    return math.sqrt(-math.log(alpha / 2) / 2) / _kolmogorov_scale(n)
