"""What a scaling law is, and the one NumPyro model builder that serves every law.

A :class:`Law` is data plus one function: the names of the inputs it reads, its priors,
and ``log_mean(params, inputs)``, the log of the expected loss. Laws live in the catalogue
(``bayescale.models``); the engine knows them only through this interface.

:func:`build_model` turns any law into a NumPyro model: the priors, the deterministic
mean ``mu`` (log loss), a noise scale, and a likelihood on the log loss chosen by name
(:data:`LIKELIHOODS`). Working on log loss makes the noise relative, which is how loss
measurements behave across orders of magnitude of scale.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes, validate_sample

from bayescale.errors import BayescaleError

__all__ = [
    "LIKELIHOODS",
    "NOISE_PRIORS",
    "Law",
    "Likelihood",
    "ModelSpec",
    "SplitLogNormal",
    "build_model",
    "catalogue",
    "derived_quantities",
    "law_summary",
    "noise_distribution",
    "repr_prior",
    "resolve_law",
    "split_level",
    "whitened_level_name",
]

Params = Mapping[str, jax.Array]
Inputs = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Law:
    """A scaling law: inputs, priors and the log of its expected loss.

    Laws compare and hash by identity, so a law object can key caches of compiled
    programs.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"chinchilla"``.
    inputs : tuple of str
        Canonical data columns the law reads, e.g. ``("N", "D")``.
    priors : Mapping[str, numpyro.distributions.Distribution]
        Prior of each sampled parameter, in a fixed order.
    log_mean : callable
        ``log_mean(params, inputs) -> log expected loss``; must broadcast over the input
        arrays and stay finite in float32 over the documented ranges, so write it with
        logs and ``logsumexp`` rather than powers.
    formula : str
        The law in plain text, shown by ``bayescale laws``.
    reference : str
        The paper the law comes from.
    derived : Mapping[str, callable], optional
        Quantities computed from the sampled parameters and reported beside them, e.g. the
        paper's constant ``A`` when the sampler works with a reference-scale term.
    exponents : tuple of str, optional
        The exponent parameters, shown in the pair plot.
    optimal_log_N : callable, optional
        Closed-form compute-optimal allocation ``optimal_log_N(params, log_C) -> log N*``
        for laws of ``N`` and ``D`` under ``C = 6 N D``; laws without one are optimised
        numerically.
    per_run : tuple of str, optional
        Parameters that take one value per run when several runs are fitted together
        (the levels of learning-curve laws); the others (exponents, shapes) are shared by
        all runs, so that finished runs inform the shape of one in progress.
    level : str, optional
        A parameter that shifts the log mean uniformly (``log_mean`` with ``level = a``
        is ``log_mean`` with ``level = 0`` plus ``a``, for every input), such as the log
        loss at a reference step of a learning-curve law. Naming it lets learning-curve
        fits sample it around its value given the other parameters (see
        :func:`build_model`); the posterior is the same, the sampler's geometry better.
    version : str, optional
        Bumped when the law's parameterisation or priors change, and saved with fits.
    """

    name: str
    inputs: tuple[str, ...]
    priors: Mapping[str, dist.Distribution]
    log_mean: Callable[[Params, Inputs], jax.Array]
    formula: str
    reference: str
    derived: Mapping[str, Callable[[Params], jax.Array]] = dataclasses.field(default_factory=dict)
    exponents: tuple[str, ...] = ()
    optimal_log_N: Callable[[Params, jax.Array], jax.Array] | None = None
    per_run: tuple[str, ...] = ()
    level: str | None = None
    version: str = "1"

    def __post_init__(self):
        if self.level is not None and self.level not in self.priors:
            raise ValueError(
                f"law {self.name!r}: level {self.level!r} is not one of its parameters {list(self.priors)}"
            )

    def with_priors(self, **priors: dist.Distribution) -> Law:
        """Return a copy of the law with some priors replaced.

        Parameters
        ----------
        **priors : numpyro.distributions.Distribution
            New prior per parameter name; every name must be a parameter of the law.

        Returns
        -------
        Law
        """
        unknown = set(priors) - set(self.priors)
        if unknown:
            raise ValueError(f"law {self.name!r} has no parameter(s) {sorted(unknown)}; it has {list(self.priors)}")
        return dataclasses.replace(self, priors={**self.priors, **priors})

    @property
    def has_compute_frontier(self) -> bool:
        """Whether the law depends on N and D, so a compute budget has an optimal split."""
        return {"N", "D"} <= set(self.inputs)


class SplitLogNormal(dist.Distribution):
    """A log-normal whose log has a different scale below its mode than above it.

    ``log x`` follows a two-piece (split) normal: density proportional to
    ``exp(-(log x - loc)**2 / (2 * scale**2))`` with ``scale = scale_below`` under ``loc``
    and ``scale_above`` over it, continuous at ``loc``; the mass below ``loc`` is
    ``scale_below / (scale_below + scale_above)``.

    Parameters
    ----------
    loc : float
        The mode of ``log x``.
    scale_below, scale_above : float
        The scales of ``log x`` below and above ``loc``.
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale_below": constraints.positive,
        "scale_above": constraints.positive,
    }
    support = constraints.positive
    # The side of the mode is a discrete draw, so only the location is reparametrized.
    reparametrized_params = ["loc"]

    def __init__(self, loc=0.0, scale_below=1.0, scale_above=1.0, *, validate_args=None):
        self.loc, self.scale_below, self.scale_above = promote_shapes(loc, scale_below, scale_above)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(scale_below), jnp.shape(scale_above))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    @property
    def _below(self):
        return self.scale_below / (self.scale_below + self.scale_above)

    def sample(self, key, sample_shape=()):
        """Draw the side of the mode (with its mass), then a half-normal distance on that side."""
        side_key, size_key = jax.random.split(key)
        shape = sample_shape + self.batch_shape
        below = jax.random.uniform(side_key, shape) < self._below
        size = jnp.abs(jax.random.normal(size_key, shape))
        return jnp.exp(self.loc + jnp.where(below, -self.scale_below, self.scale_above) * size)

    @validate_sample
    def log_prob(self, value):
        """Return the split normal's log density of ``log value``, less ``log value`` (the Jacobian)."""
        log_value = jnp.log(value)
        scale = jnp.where(log_value < self.loc, self.scale_below, self.scale_above)
        log_normaliser = jnp.log(2.0 / (self.scale_below + self.scale_above)) - 0.5 * jnp.log(2 * jnp.pi)
        return log_normaliser - 0.5 * ((log_value - self.loc) / scale) ** 2 - log_value

    @property
    def mean(self):
        """Return ``E[x]``, the two sides' shares summed (each from a half-normal's moment generating function)."""
        below = self.scale_below * jnp.exp(self.scale_below**2 / 2) * jax.scipy.stats.norm.cdf(-self.scale_below)
        above = self.scale_above * jnp.exp(self.scale_above**2 / 2) * jax.scipy.stats.norm.cdf(self.scale_above)
        return 2 * jnp.exp(self.loc) * (below + above) / (self.scale_below + self.scale_above)


#: Prior of the noise scale on log loss. A relative scatter of a few percent is typical of
#: final losses across runs; 0.1 puts 95% of the mass below 20%, so it allows messy logs
#: while keeping the scale away from implausible values.
NOISE_PRIORS: Mapping[str, dist.Distribution] = {
    "sigma": dist.HalfNormal(0.1),
    # Degrees of freedom of the Student-t: Gamma(2, 0.1) (Juarez & Steel 2010) lets the data
    # choose between heavy tails (a stray run) and near-Normal noise.
    "nu": dist.Gamma(2.0, 0.1),
    # Correlation length of the residuals along a run, in units of log(step): neighbouring
    # checkpoints share noise (the same data order, a slow drift the law misses), or none
    # (a loss evaluated afresh at each checkpoint). Mode 1, checkpoints correlated within
    # an e-fold of steps. Above it, a log-normal's scale 1 reaches one offset for a whole
    # run and no further (longer lengths let a step-shaped metric's residual stay put
    # between rare jumps of any size). Below it, scale 2.5 reaches independent checkpoints
    # at the spacing of a run logged every 1% of its steps (0.01 in log step; a correlation
    # of 0.1 needs a length of 0.004). 95% in (0.005, 5.5), median 0.38.
    "corr_length": SplitLogNormal(jnp.log(1.0), 2.5, 1.0),
    # Drift of a run away from the law, as a random walk in log(step): its standard
    # deviation after one e-fold of steps, in log loss. Laws fitted to whole training runs
    # miss by a fraction of a percent where the schedule changes (a warmup's end, an
    # anneal); HalfNormal(0.01) has median 0.7% and puts 95% below 2% per e-fold.
    "drift": dist.HalfNormal(0.01),
}

#: With the drift, the residual process is left the noise of neighbouring checkpoints: its
#: correlation length has median 0.05 and 95% below 0.35 in log(step), under the drift's
#: knot spacing (a fifth of a run's log-step range), so that the two do not compete for
#: the same slow misses (with the wide prior they do, and the chains split between them).
DRIFT_CORR_LENGTH = dist.LogNormal(jnp.log(0.05), 1.0)

#: Knots of the drift's random walk along each run, evenly spaced in log(step) from the
#: run's first checkpoint to its last: a coarse walk, so that it carries the law's slow
#: misses and leaves checkpoint-to-checkpoint noise to the residual process.
DRIFT_KNOTS = 6


def _student_t(mu, noise):
    return dist.StudentT(noise["nu"], mu, noise["sigma"])


def _normal(mu, noise):
    return dist.Normal(mu, noise["sigma"])


def _laplace(mu, noise):
    return dist.Laplace(mu, noise["sigma"])


@dataclasses.dataclass(frozen=True)
class Likelihood:
    """An observation model of log loss around the law's mean.

    Attributes
    ----------
    noise : tuple of str
        Its noise parameters, with priors in :data:`NOISE_PRIORS`.
    family : callable
        ``family(mu, noise) -> Distribution``.
    smooth : callable
        A twice-differentiable stand-in with the same Fisher information for the location,
        used only to precondition the sampler (the Laplace density has no curvature away
        from its kink, so its own Hessian says nothing about the posterior's scale).
    """

    noise: tuple[str, ...]
    family: Callable[[jax.Array, Params], dist.Distribution]
    smooth: Callable[[jax.Array, Params], dist.Distribution]


#: Likelihoods on log loss by name. ``laplace`` is the one whose maximum is Epoch's Huber
#: refit in the small-delta limit; ``student_t`` (the default) is robust to a stray run.
LIKELIHOODS: Mapping[str, Likelihood] = {
    "student_t": Likelihood(("sigma", "nu"), _student_t, _student_t),
    "normal": Likelihood(("sigma",), _normal, _normal),
    "laplace": Likelihood(("sigma",), _laplace, _normal),
}


def _check_likelihood(likelihood: str) -> None:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {', '.join(LIKELIHOODS)}")


def noise_distribution(likelihood: str, mu: jax.Array, noise: Params) -> dist.Distribution:
    """Return the observation distribution of log loss around ``mu`` for a named likelihood.

    Parameters
    ----------
    likelihood : str
        A key of :data:`LIKELIHOODS`.
    mu : jax.Array
        Expected log loss.
    noise : Mapping[str, jax.Array]
        The noise parameters (``sigma`` and, for Student-t, ``nu``).

    Returns
    -------
    numpyro.distributions.Distribution
    """
    _check_likelihood(likelihood)
    return LIKELIHOODS[likelihood].family(mu, noise)


def split_level(log_level: jax.Array, log_ratio: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Split a loss level L = F + R into log F and log R, given log(R / F).

    Laws sample a level (the loss at a reference point, which the data pin down) and the
    ratio of its two parts, rather than the parts themselves, whose posterior is a ridge
    along F + R = L. Computed in log space, so it holds for any ratio.

    Parameters
    ----------
    log_level : jax.Array
        log L.
    log_ratio : jax.Array
        log(R / F).

    Returns
    -------
    log_first, log_second : jax.Array
        log F and log R.
    """
    log_first = log_level - jnp.logaddexp(0.0, log_ratio)
    return log_first, log_first + log_ratio


def build_model(
    law: Law, likelihood: str = "student_t", *, smooth: bool = False, correlated: bool = False, drift: bool = False
) -> Callable[..., None]:
    """Build the NumPyro model of ``law`` with a likelihood on log loss.

    The model samples the law's priors, records the expected log loss ``mu`` as a
    deterministic site, samples the noise parameters, and scores the observed log losses
    at the site ``log_loss``. (The law's derived quantities are computed after sampling,
    in float64, by :func:`derived_quantities`.)

    With several runs (``runs`` given, two or more of them) each of the law's ``per_run``
    parameters takes one value per run, each with the law's prior, and the other
    parameters are shared: shared exponents let completed runs inform a run in progress.
    (Hierarchical priors on the levels were tried: with a handful of runs, each with
    hundreds of checkpoints, their scales form funnels that NUTS crosses only at tree
    depth 7 or more, and the levels are what each run's own data pin down anyway.)

    With ``correlated=True`` the residuals along each run follow an Ornstein-Uhlenbeck
    process in log(step): the residual of a checkpoint, given the previous one of its run,
    has mean ``rho * previous`` and scale ``sigma * sqrt(1 - rho^2)``, with
    ``rho = exp(-gap / corr_length)``. Consecutive checkpoints share noise; an iid
    likelihood over hundreds of them would make the intervals far too narrow, and a
    process in log(step) makes the inference independent of how often a run was logged.
    A law that names its ``level`` (a uniform shift of the log mean) then has the level
    sampled last, as its estimate given the other parameters plus a multiple of its
    standard error (the site ``<level>_whitened``; the level itself is recorded as a
    deterministic site of its own name): the same posterior, without the funnel between
    the level and the correlation length that the direct parameterisation puts before NUTS.

    With ``drift=True`` (learning curves) each run also departs from the law by a random
    walk in log(step), of standard deviation ``drift`` per e-fold: Gaussian steps between
    :data:`DRIFT_KNOTS` knots spread over the run's checkpoints, the first at 0, linear in
    between, and added to ``mu``. The residual process covers the noise of neighbouring
    checkpoints; the walk covers a law that misses whole stretches of a run (a schedule
    change it does not model), and past a run's last checkpoint it keeps walking, so that a
    forecast widens with its horizon at the rate the runs' own misses imply. The value at
    each run's last knot is kept as ``drift_end``.

    Parameters
    ----------
    law : Law
        Any law of the catalogue or a user's own.
    likelihood : {"student_t", "normal", "laplace"}
        Observation distribution of log loss; Student-t is robust to a stray run.
    smooth : bool, default False
        Use the likelihood's smooth stand-in (see :class:`Likelihood`); for preconditioning.
    correlated : bool, default False
        Correlated residuals along each run (needs ``runs``).
    drift : bool, default False
        A random-walk departure of each run from the law (needs ``runs`` with the knots).

    Returns
    -------
    callable
        ``model(inputs, log_loss=None, mask=None, runs=None)``: ``inputs`` maps each name
        in ``law.inputs`` to an array; ``mask`` (bool) marks real observations when the
        arrays are padded to a shared shape; ``runs`` describes learning curves: ``index``
        (run of each observation, observations sorted by run then step), ``real`` (which
        runs are not padding), ``first`` (first observation of its run) and ``gap``
        (log-step distance to the previous observation of the run), and with ``drift``
        ``knot`` and ``weight`` (each observation's knot to its left and its distance from
        it, in knot spacings) and ``knot_gap`` (each run's knot spacing in log step).

    Examples
    --------
    >>> from bayescale.models import get_law
    >>> model = build_model(get_law("chinchilla"), "laplace")
    """
    _check_likelihood(likelihood)
    noise_priors = _noise_priors(likelihood, correlated, drift)
    family = LIKELIHOODS[likelihood].smooth if smooth else LIKELIHOODS[likelihood].family

    def model(
        inputs: Inputs,
        log_loss: jax.Array | None = None,
        mask: jax.Array | None = None,
        runs: Mapping[str, jax.Array] | None = None,
    ) -> None:
        num_runs = runs["real"].shape[0] if runs is not None else 1
        # The level is sampled last, around its value given everything else (observed
        # learning curves only: that value comes from the observations).
        level = law.level if correlated and log_loss is not None else None
        params = {}
        for name, prior in law.priors.items():
            if name == level:
                params[name] = 0.0
            elif num_runs >= 2 and name in law.per_run:
                params[name] = numpyro.sample(name, prior.expand([num_runs]))[runs["index"]]
            else:
                params[name] = numpyro.sample(name, prior)
        mu = law.log_mean(params, inputs)
        noise = {name: numpyro.sample(name, prior) for name, prior in noise_priors.items()}
        if correlated:
            rho, shrink = _correlation(runs, noise["corr_length"])
        if drift:
            mu = mu + _drift_at_observations(runs, noise["drift"], num_runs)
        if level is not None:
            per_run = num_runs >= 2 and level in law.per_run
            index = runs["index"] if per_run else jnp.zeros_like(runs["index"])
            mask_or_all = jnp.ones_like(log_loss, bool) if mask is None else mask
            levels = _level_near_its_estimate(
                level,
                law.priors[level],
                log_loss - mu,
                mask_or_all,
                index,
                num_runs if per_run else 1,
                noise,
                rho,
                shrink,
            )
            mu = mu + (levels[index] if per_run else levels)
        mu = numpyro.deterministic("mu", mu)
        with numpyro.plate("obs", mu.shape[-1]), numpyro.handlers.mask(mask=True if mask is None else mask):
            if not correlated:
                numpyro.sample("log_loss", family(mu, noise), obs=log_loss)
            elif log_loss is not None:
                previous = _previous(log_loss - mu)
                conditional = {**noise, "sigma": noise["sigma"] * shrink}
                numpyro.sample("log_loss", family(mu + rho * previous, conditional), obs=log_loss)
            else:  # simulate the process forward, one innovation per checkpoint
                standard = {**noise, "sigma": jnp.ones_like(noise["sigma"])}
                innovation = numpyro.sample("innovation", family(jnp.zeros_like(mu), standard))
                steps = (rho, noise["sigma"] * shrink * innovation)
                residual = jax.lax.scan(lambda carry, step: (step[0] * carry + step[1],) * 2, 0.0 * mu[0], steps)[1]
                numpyro.deterministic("log_loss", mu + residual)

    return model


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A law with its observation model: everything one compiled potential is built from.

    Attributes
    ----------
    law : Law
        The law.
    likelihood : str
        A key of :data:`LIKELIHOODS`.
    correlated : bool
        Correlated residuals along each run (learning curves), see :func:`build_model`.
    """

    law: Law
    likelihood: str = "student_t"
    correlated: bool = False
    drift: bool = False

    def __post_init__(self):
        _check_likelihood(self.likelihood)
        if self.drift and not self.correlated:
            raise ValueError("drift is a departure along each run; it needs correlated=True (learning curves)")

    @property
    def noise(self) -> tuple[str, ...]:
        """The noise parameters of the observation model."""
        return _noise_names(self.likelihood, self.correlated, self.drift)

    @property
    def priors(self) -> dict[str, dist.Distribution]:
        """Every prior of the model: the law's, then those of the noise parameters."""
        return {**self.law.priors, **_noise_priors(self.likelihood, self.correlated, self.drift)}

    def model(self, *, smooth: bool = False) -> Callable[..., None]:
        """Return the NumPyro model, see :func:`build_model`."""
        return build_model(self.law, self.likelihood, smooth=smooth, correlated=self.correlated, drift=self.drift)


def _noise_names(likelihood: str, correlated: bool, drift: bool) -> tuple[str, ...]:
    return LIKELIHOODS[likelihood].noise + (("corr_length",) if correlated else ()) + (("drift",) if drift else ())


def _noise_priors(likelihood: str, correlated: bool, drift: bool) -> dict[str, dist.Distribution]:
    priors = {name: NOISE_PRIORS[name] for name in _noise_names(likelihood, correlated, drift)}
    if drift:
        priors["corr_length"] = DRIFT_CORR_LENGTH
    return priors


def _drift_at_observations(runs, scale, num_runs):
    """Each run's random walk at its knots (recorded), interpolated to its observations."""
    steps = numpyro.sample("drift_steps", dist.Normal(0.0, 1.0).expand([num_runs, DRIFT_KNOTS - 1]))
    increments = scale * jnp.sqrt(runs["knot_gap"])[:, None] * steps
    knots = jnp.concatenate([jnp.zeros((num_runs, 1), increments.dtype), jnp.cumsum(increments, axis=1)], axis=1)
    numpyro.deterministic("drift_end", knots[:, -1])
    left = knots[runs["index"], runs["knot"]]
    right = knots[runs["index"], runs["knot"] + 1]
    return left + runs["weight"] * (right - left)


def whitened_level_name(level: str) -> str:
    """Name of the sampled standardised level (see :func:`build_model`), a sampler coordinate only."""
    return f"{level}_whitened"


def _level_near_its_estimate(name, prior, residual, mask, index, num_levels, noise, rho, shrink):
    """Sample the level(s) of a learning-curve law as an estimate plus a scaled standard Normal.

    Given the other parameters, the residual process pins each run's level to within
    ``s L / sqrt(2 L + range)`` (innovation scale s, correlation length L, range of log
    steps): a scale that varies twentyfold over L's prior, a funnel in which NUTS mixes
    the noise scales poorly. So the level is written as ``centre + scale * z``, with the
    centre and scale of its Gaussian least-squares estimate under the residual process
    (weighted sums of the innovations the residuals ``residual`` imply with the level at
    0), and ``z`` sampled. The map is a bijection for fixed other parameters with Jacobian
    ``scale``, so adding the level's prior and ``log scale`` leaves the posterior as it is.
    ``rho`` and ``shrink`` are the residual process's, from :func:`_correlation`.
    """
    # Innovation i is residual_i - rho_i residual_{i-1} - level (1 - rho_i), of scale sigma shrink_i.
    innovation = jnp.where(mask, residual - rho * _previous(residual), 0.0)  # padding may hold anything
    slope = 1.0 - rho
    weight = jnp.where(mask, 1.0 / jnp.square(noise["sigma"] * shrink), 0.0)
    precision = jax.ops.segment_sum(weight * slope**2, index, num_levels)
    informed = precision > 0.0  # padding runs have no observations
    safe_precision = jnp.where(informed, precision, 1.0)
    centre = jnp.where(
        informed, jax.ops.segment_sum(weight * slope * innovation, index, num_levels) / safe_precision, 0.0
    )
    scale = jnp.where(informed, jax.lax.rsqrt(safe_precision), 1.0)
    standard = dist.Normal(0.0, 1.0).expand([num_levels])
    whitened = numpyro.sample(whitened_level_name(name), standard)
    levels = centre + scale * whitened
    numpyro.factor(f"{name}_prior", jnp.sum(prior.log_prob(levels) + jnp.log(scale) - standard.log_prob(whitened)))
    # Returned through the site, so that a value substituted for the level is the one used.
    return numpyro.deterministic(name, levels if num_levels >= 2 else levels[0])


def _previous(residual):
    """Each observation's predecessor in the sequence (0 for the first; runs' first ones get rho = 0)."""
    return jnp.concatenate([jnp.zeros(1, residual.dtype), residual[:-1]])


def _correlation(runs, corr_length):
    """Correlation with the previous checkpoint of the run, and sqrt(1 - rho^2)."""
    scaled = jnp.where(runs["first"], jnp.inf, runs["gap"] / corr_length)
    return jnp.exp(-scaled), jnp.sqrt(-jnp.expm1(-2.0 * scaled))


def derived_quantities(law: Law, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Return the law's derived quantities for arrays of parameter draws, computed in float64.

    The papers' constants can exceed the float32 range (Kaplan's C_c is about 1e28 FLOPs
    and grows as e^(1/a) for a small exponent a), so they are never computed in float32.
    """
    with jax.enable_x64(True):
        draws = {name: jnp.asarray(np.asarray(values, dtype=np.float64)) for name, values in params.items()}
        return {name: np.asarray(values) for name, values in _derive_program(law)(draws).items()}


@functools.lru_cache(maxsize=64)
def _derive_program(law: Law):
    """All of a law's derived quantities as one jitted program (not one compile per operation)."""
    return jax.jit(lambda draws: {name: derive(draws) for name, derive in law.derived.items()})


def resolve_law(law: Law | str) -> Law:
    """Return ``law`` itself, or the catalogue's law of that name.

    The catalogue depends on the engine, so the name is looked up late, at call time.

    Raises
    ------
    UnknownLawError
        When no law has that name.
    """
    if isinstance(law, Law):
        return law
    if not isinstance(law, str):
        raise TypeError(f"expected a Law or a law name, got {type(law).__name__}")
    return catalogue().get_law(law)


def catalogue():
    """Return the law catalogue module, ``bayescale.models``, imported late (it imports the engine).

    Raises
    ------
    BayescaleError
        When the catalogue cannot be imported: typically bayescale was imported from a
        source checkout (the current directory) while installed without ``-e``.
    """
    try:
        return importlib.import_module("bayescale.models")
    except ModuleNotFoundError as error:
        if error.name != "bayescale.models":
            raise
        location = os.path.dirname(os.path.abspath(__file__))
        raise BayescaleError(
            f"the law catalogue bayescale.models is not importable next to {location}: this looks like a source "
            "checkout shadowing the installed package; run from another directory or install with pip install -e ."
        ) from None


def law_summary(law: Law) -> dict[str, Any]:
    """Name, formula, inputs, parameters with priors, and reference, for listings."""
    return {
        "name": law.name,
        "formula": law.formula,
        "inputs": list(law.inputs),
        "parameters": {name: repr_prior(prior) for name, prior in law.priors.items()},
        "derived": list(law.derived),
        "reference": law.reference,
    }


def repr_prior(prior: dist.Distribution) -> str:
    """Return a short text form of a prior, e.g. ``Normal(loc=-1.0, scale=1.5)``."""
    fields = []
    for name in prior.arg_constraints:
        value = getattr(prior, name, None)
        if value is not None and jnp.ndim(value) == 0:
            fields.append(f"{name}={float(value):g}")
    return f"{type(prior).__name__}({', '.join(fields)})"
