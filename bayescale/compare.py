"""Comparing and combining laws by out-of-sample predictive accuracy.

Two estimates of how well a law predicts data it has not seen:

* **PSIS-LOO** (Vehtari, Gelman and Gabry 2017, through ``bayescale._arviz``): the
  expected log predictive density of each run given all the others, from one fit by
  Pareto-smoothed importance sampling. It asks how well a law *interpolates* the ladder.
* **Leave-future-out** (LFO): refit each law on the runs at or below a compute (or size)
  threshold and score the log predictive density of the runs above it. It asks the
  question an extrapolation depends on, at the price of one refit per law.

Stacking weights (Yao, Vehtari, Simpson and Gelman 2018) choose the mixture of the laws'
predictive distributions that would have predicted the held-out points best; forecasts
averaged over laws (:func:`bayescale.forecast` given several fits) use them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from numpyro.infer.util import log_likelihood

from bayescale import _arviz, _progress
from bayescale.config import SamplerConfig
from bayescale.data import ScalingData
from bayescale.errors import DataError, UnreliableLOOWarning
from bayescale.inference import Fit, check_problem, fit_problems, model_args, require_pointwise
from bayescale.law import ModelSpec

__all__ = [
    "BAGGING_REPLICATES",
    "PARETO_K_THRESHOLD",
    "Comparison",
    "bagged_stacking_weights",
    "check_laws",
    "compare",
    "label_fits",
    "leave_future_out",
    "log_predictive_density",
    "mixture_indices",
    "pointwise_log_likelihood",
    "pointwise_loo",
    "stacking_weights",
]

#: Pareto k above which the importance-sampling estimate of a point's LOO density is
#: unreliable (Vehtari et al. 2024, "Pareto smoothed importance sampling").
PARETO_K_THRESHOLD = 0.7
# EM steps of the stacking optimisation; the objective is concave on the simplex and the
# steps increase it monotonically.
_STACKING_STEPS = 1000
#: Bayesian-bootstrap replicates averaged by :func:`bagged_stacking_weights`; the Monte-Carlo
#: error of a weight is at most 0.5 / sqrt(replicates), 0.035 at 200.
BAGGING_REPLICATES = 200


def pointwise_loo(log_lik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise PSIS-LOO expected log predictive densities and Pareto k.

    Parameters
    ----------
    log_lik : numpy.ndarray
        Log-likelihood of each observation, shape (chains, draws, observations).

    Returns
    -------
    elpd : numpy.ndarray
        (observations,) leave-one-out log predictive density of each observation.
    pareto_k : numpy.ndarray
        (observations,) Pareto k of the importance weights (above 0.7: unreliable). Where
        Pareto smoothing fails (ArviZ returns NaN, e.g. when a stuck chain makes the
        weights degenerate), the raw importance-sampling estimate is used and k is set to
        infinity, so the point counts as unreliable rather than poisoning the sum.
    """
    elpd, pareto_k = _arviz.loo_pointwise(log_lik)
    failed = ~np.isfinite(elpd)
    if failed.any():
        draws = np.asarray(log_lik, dtype=np.float64).reshape(-1, log_lik.shape[-1])[:, failed]
        elpd, pareto_k = elpd.copy(), pareto_k.copy()
        elpd[failed] = -_log_mean_exp(-draws, axis=0)  # 1 / E[1 / p(y_i | theta)]
        pareto_k[failed] = np.inf
    return elpd, pareto_k


def _stacking_em(densities: np.ndarray, observation_weights: np.ndarray) -> np.ndarray:
    """Stacking weights maximising ``sum_i v_i log sum_k w_k densities[i, k]``, one problem per row of v.

    The EM update for mixture weights, which increases each objective every step; rows of
    ``observation_weights`` (problems, observations) sum to 1, and so do the weights returned
    (problems, models).
    """
    weights = np.full((len(observation_weights), densities.shape[1]), 1.0 / densities.shape[1])
    if densities.shape[1] == 1:
        return weights
    for _ in range(_STACKING_STEPS):
        responsibilities = observation_weights / (weights @ densities.T)
        weights = weights * (responsibilities @ densities)  # each weight times its average responsibility
        weights /= weights.sum(axis=1, keepdims=True)
    return weights


def _densities(elpd) -> np.ndarray:
    elpd = np.asarray(elpd, dtype=np.float64)
    return np.exp(elpd - elpd.max(axis=1, keepdims=True))  # rescaling a row leaves the argmax alone


def stacking_weights(elpd: np.ndarray) -> np.ndarray:
    """Stacking weights from pointwise out-of-sample log predictive densities.

    Maximises ``sum_i log sum_k w_k exp(elpd[i, k])`` over the simplex (Yao et al. 2018,
    eq. 4) by the EM update for mixture weights, which increases the objective every step.

    Parameters
    ----------
    elpd : numpy.ndarray
        (observations, models) pointwise leave-one-out (or leave-future-out) log
        predictive densities.

    Returns
    -------
    numpy.ndarray
        (models,) non-negative weights summing to 1.
    """
    densities = _densities(elpd)
    return _stacking_em(densities, np.full((1, len(densities)), 1.0 / len(densities)))[0]


def bagged_stacking_weights(elpd: np.ndarray, *, key: jax.Array, replicates: int = BAGGING_REPLICATES) -> np.ndarray:
    """Stacking weights averaged over Bayesian-bootstrap replicates of the observations.

    Stacking on a few dozen observations follows small pointwise differences: when the
    models predict about equally well it puts all the weight on whichever is ahead on this
    sample. Each replicate reweights the observations by Dirichlet(1, ..., 1) weights (the
    Bayesian bootstrap, Rubin 1981) and solves the weighted stacking problem; the mean of
    the replicates' weights (bagging, Breiman 1996) gives each model the weight it earns
    across the samples the data could have been, so models the data cannot tell apart
    share it, and a model that predicts worse on most replicates still gets none.

    Parameters
    ----------
    elpd : numpy.ndarray
        (observations, models) pointwise out-of-sample log predictive densities.
    key : jax.Array
        PRNG key of the bootstrap weights.
    replicates : int, default BAGGING_REPLICATES
        Bootstrap replicates averaged.

    Returns
    -------
    numpy.ndarray
        (models,) non-negative weights summing to 1.
    """
    densities = _densities(elpd)
    observation_weights = jax.random.dirichlet(key, np.ones(len(densities)), (replicates,))
    return _stacking_em(densities, np.asarray(observation_weights, dtype=np.float64)).mean(axis=0)


def mixture_indices(sizes: Sequence[int], weights: Sequence[float], key: jax.Array) -> list[np.ndarray]:
    """Which draws of each component make up a weighted mixture of posterior draws.

    Each component contributes in proportion to its weight, as many draws in all as the
    smallest component has; the draws are chosen at random without replacement, and the
    same indices serve every quantity of a component, so joint draws stay joint.

    Parameters
    ----------
    sizes : sequence of int
        Number of draws of each component.
    weights : sequence of float
        Mixture weights, summing to 1.
    key : jax.Array
        PRNG key.

    Returns
    -------
    list of numpy.ndarray
        Draw indices per component (some may be empty).
    """
    total = min(sizes)
    counts = np.floor(np.asarray(weights) * total).astype(int)
    counts[np.argmax(weights)] += total - counts.sum()
    return [
        np.asarray(jax.random.permutation(subkey, size))[:count]
        for size, count, subkey in zip(sizes, counts, jax.random.split(key, len(sizes)), strict=True)
    ]


# ---------------------------------------------------------------------------------------
# Predictive densities


def pointwise_log_likelihood(fit: Fit) -> np.ndarray:
    """Return the fit's stored log-likelihood of each observation, (chains, draws, observations).

    Raises
    ------
    BayescaleError
        When the fit kept no pointwise values (see ``fit(..., pointwise=...)``).
    """
    require_pointwise(fit, "PSIS-LOO")
    return np.asarray(_arviz.group(fit.idata, "log_likelihood")["log_loss"], dtype=np.float64)


@functools.lru_cache(maxsize=32)
def _log_lik_program(spec):
    model = spec.model()
    return jax.jit(lambda draws, args: log_likelihood(model, draws, *args, batch_ndims=1)["log_loss"])


def log_predictive_density(fit: Fit, data: ScalingData) -> np.ndarray:
    """Pointwise log posterior predictive density of new observations under a fit.

    ``log mean_s p(y_i | theta_s)`` over the fit's draws, for each row of ``data``.

    Parameters
    ----------
    fit : Fit
        A fit of a law whose parameters are shared by all runs (a new run has no per-run
        level to predict it with).
    data : ScalingData
        New rows, with the law's inputs and ``loss``.

    Returns
    -------
    numpy.ndarray
        (rows,) log predictive densities.

    Raises
    ------
    DataError
        When the law has per-run parameters and several runs, or the data lack a column.
    """
    if fit.spec.drift:
        raise DataError(
            f"law {fit.law.name!r} was fitted with the drift, whose walk along the rows it did not see is not in its "
            "draws; score it on its own rows (PSIS-LOO) instead"
        )
    if fit.runs and len(fit.runs) > 1:
        raise DataError(
            f"law {fit.law.name!r} gives each run its own level, so it cannot predict runs it was not fitted to"
        )
    data.require((*fit.law.inputs, "loss"), f"law {fit.law.name!r}")
    log_lik = np.asarray(_log_lik_program(fit.spec)(fit.draws(), model_args(fit.spec, data)), dtype=np.float64)
    log_lik = log_lik[:, : len(data)]
    return _log_mean_exp(log_lik, axis=0)


def _log_mean_exp(values: np.ndarray, axis: int) -> np.ndarray:
    peak = values.max(axis=axis, keepdims=True)
    return np.squeeze(peak, axis) + np.log(np.mean(np.exp(values - peak), axis=axis))


def _holdout_rows(data: ScalingData, above: float, column: str) -> np.ndarray:
    """Rows above the threshold, with an error when either side is empty."""
    data.require((column,), "leave-future-out validation")
    held_out = data[column] > above
    if held_out.all() or not held_out.any():
        low, high = data[column].min(), data[column].max()
        raise DataError(
            f"{data.source}: leave-future-out threshold {column} > {above:g} must split the rows, "
            f"but {column} spans {low:g} to {high:g}; choose a threshold inside that range"
        )
    return held_out


def _check_training(spec: ModelSpec, train: ScalingData, column: str, above: float) -> None:
    """:func:`check_problem` on the rows a leave-future-out refit trains on, saying which split."""
    try:
        check_problem(spec, train)
    except DataError as error:
        raise DataError(f"leave-future-out, training on {column} <= {above:g}: {error}") from None


def check_laws(
    specs: Sequence[ModelSpec], data: ScalingData, *, holdout_above: float | None = None, holdout_column: str = "C"
) -> None:
    """Raise :class:`DataError` unless every law can be fitted to ``data``, and to its holdout split.

    A comparison fits each law, then refits them for leave-future-out; checking all of
    them first makes bad data fail in a second rather than after the first fits.

    Parameters
    ----------
    specs : sequence of ModelSpec
        The models to compare.
    data : ScalingData
        The runs.
    holdout_above, holdout_column : optional
        The leave-future-out split, as in :func:`compare`.

    Raises
    ------
    DataError
        When a law's inputs are missing, the data (or the rows at or below the threshold)
        have fewer distinct points than a law has parameters, or the threshold does not
        split the rows.
    """
    for spec in specs:
        data.require((*spec.law.inputs, "loss"), f"law {spec.law.name!r}")
        check_problem(spec, data)
    if holdout_above is not None:
        train = data.select(~_holdout_rows(data, holdout_above, holdout_column), "leave-future-out training rows")
        for spec in specs:
            _check_training(spec, train, holdout_column, holdout_above)


def leave_future_out(
    fits: Sequence[Fit],
    *,
    above: float,
    key: jax.Array,
    column: str = "C",
    config: SamplerConfig | None = None,
    progress: bool | None = None,
) -> list[np.ndarray]:
    """Leave-future-out log predictive densities of the runs above a threshold.

    Each law is refitted, with its own likelihood, on the rows whose ``column`` is at most
    ``above``, and scores the rows above it.

    Parameters
    ----------
    fits : sequence of Fit
        Fits on the same data.
    above : float
        Threshold on ``column``: rows above it are held out.
    key : jax.Array
        PRNG key of the refits.
    column : str, default "C"
        The column that orders the runs (compute, or ``N`` for a size threshold).
    config : SamplerConfig, optional
        Sampler settings of the refits; by default each fit's own.
    progress : bool, optional
        Show on stderr the refits done and the step of the one running; by default only
        when stderr is a terminal.

    Returns
    -------
    list of numpy.ndarray
        Per fit, the (held-out rows,) log predictive densities.
    """
    data = fits[0].data
    held_out = _holdout_rows(data, above, column)
    train = data.select(~held_out, f"leave-future-out: training on {column} <= {above:g}")
    test = data.select(held_out, f"leave-future-out: scoring {column} > {above:g}")
    keys = jax.random.split(key, len(fits))
    scores = []
    for fitted in fits:  # every law checked before the first refit
        _check_training(fitted.spec, train, column, above)
    what = f"leave-future-out refits on {column} <= {above:g}"
    with _progress.task(what, total=len(fits), progress=progress) as status:
        for fitted, subkey in zip(fits, keys, strict=True):
            label = f"leave-future-out refit of law {fitted.law.name!r} to the rows with {column} <= {above:g}"
            # Padded to the full data's size, the refit runs the program the fit compiled.
            options = {"config": config or fitted.config, "labels": [label], "pad_to": len(data)}
            (refit,) = fit_problems([fitted.spec], [train], keys=[subkey], progress=status.shown, **options)
            scores.append(log_predictive_density(refit, test))
            status.advance()
    return scores


# ---------------------------------------------------------------------------------------
# The comparison


@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """Laws compared on the same data by out-of-sample predictive accuracy.

    Attributes
    ----------
    fits : Mapping[str, Fit]
        The compared fits by name, best first.
    table : Mapping[str, Mapping[str, Any]]
        Per law: ``elpd_loo``, its standard error ``se``, the effective number of
        parameters ``p_loo``, ``pareto_k_high`` (points whose LOO estimate is unreliable),
        ``elpd_diff`` and ``dse`` (difference from the best by LOO and its standard error),
        ``elpd_lfo``, ``se_lfo`` and ``dse_lfo`` (the standard error of the difference from
        the best by leave-future-out; None without a holdout), ``weight`` and ``healthy``.
    best : str
        The law ranked first: by ``elpd_lfo`` when a holdout was scored (extrapolation is
        the question), otherwise by ``elpd_loo``.
    criterion : {"elpd_loo", "elpd_lfo"}
        What ranks the laws and what the stacking weights are computed from.
    pointwise : Mapping[str, numpy.ndarray]
        Per law, the pointwise scores the criterion sums: LOO elpd of every row, or the
        log predictive density of every held-out row.
    holdout : Mapping[str, Any] or None
        ``column``, ``above`` and ``held_out`` (row count) of the leave-future-out split.
    """

    fits: Mapping[str, Fit]
    table: Mapping[str, Mapping[str, Any]]
    best: str
    criterion: str
    pointwise: Mapping[str, np.ndarray]
    holdout: Mapping[str, Any] | None = None

    @property
    def weights(self) -> dict[str, float]:
        """Stacking weight of each law."""
        return {name: row["weight"] for name, row in self.table.items()}

    def summary(self) -> dict[str, Any]:
        """JSON-ready: ``{"laws": {NAME: {...}}, "best": NAME, "criterion": ..., "holdout": ...}``."""
        return {
            "laws": {name: dict(row) for name, row in self.table.items()},
            "best": self.best,
            "criterion": self.criterion,
            "holdout": dict(self.holdout) if self.holdout else None,
        }


def label_fits(fits: Sequence[Fit] | Mapping[str, Fit]) -> dict[str, Fit]:
    """Fits by name: the mapping's keys, or law names (with the likelihood when they repeat)."""
    if isinstance(fits, Mapping):
        named = dict(fits)
    else:
        fits = list(fits)
        names = [f.law.name for f in fits]
        repeated = {name for name in names if names.count(name) > 1}
        named = {}
        for position, fitted in enumerate(fits):
            name = f"{fitted.law.name} ({fitted.likelihood})" if fitted.law.name in repeated else fitted.law.name
            named[name if name not in named else f"{name} #{position + 1}"] = fitted
    if not named:
        raise ValueError("compare needs at least one fit")
    if not all(isinstance(f, Fit) for f in named.values()):
        raise TypeError("compare takes Fit objects (from bayescale.fit or bayescale.load_fit)")
    return named


def _check_same_observations(named: Mapping[str, Fit]) -> None:
    reference_name, reference = next(iter(named.items()))
    for name, fitted in named.items():
        same = len(fitted.data) == len(reference.data) and np.array_equal(fitted.data.log_loss, reference.data.log_loss)
        if not same:
            raise DataError(
                f"compare: {name!r} was fitted to other observations than {reference_name!r} "
                f"({len(fitted.data)} rows against {len(reference.data)}); predictive accuracy is only comparable "
                "on the same data"
            )


def _loo_row(log_lik: np.ndarray, elpd_i: np.ndarray, pareto_k: np.ndarray) -> dict[str, Any]:
    n = len(elpd_i)
    lppd = _log_mean_exp(log_lik.reshape(-1, n), axis=0).sum()
    return {
        "elpd_loo": float(elpd_i.sum()),
        "se": float(math.sqrt(n * np.var(elpd_i))),
        "p_loo": float(lppd - elpd_i.sum()),
        "pareto_k_high": int(np.sum(pareto_k > PARETO_K_THRESHOLD)),
    }


def _differences_from_best(pointwise: np.ndarray) -> list[tuple[float, float]]:
    """Per column of (rows, laws) scores: the summed shortfall from the best law, and its standard error."""
    best = pointwise[:, int(np.argmax(pointwise.sum(axis=0)))]
    shortfalls = best[:, None] - pointwise
    n = len(pointwise)
    return [(float(d.sum()), float(math.sqrt(n * np.var(d)))) for d in shortfalls.T]


def compare(
    fits: Sequence[Fit] | Mapping[str, Fit],
    *,
    key: jax.Array | None = None,
    holdout_above: float | None = None,
    holdout_column: str = "C",
    config: SamplerConfig | None = None,
    progress: bool | None = None,
) -> Comparison:
    """Compare laws fitted to the same data by PSIS-LOO and, optionally, leave-future-out.

    Parameters
    ----------
    fits : sequence of Fit, or mapping of name to Fit
        Fits of the laws to compare, all on the same observations.
    key : jax.Array, optional
        PRNG key of the leave-future-out refits; required with ``holdout_above``.
    holdout_above : float, optional
        Hold out the runs whose ``holdout_column`` exceeds this, refit every law on the
        rest and score the held-out runs (``elpd_lfo``). The ranking and the stacking
        weights then come from these scores.
    holdout_column : str, default "C"
        Column the threshold applies to (``"N"`` to hold out the largest models).
    config : SamplerConfig, optional
        Sampler settings of the refits; by default each fit's own.
    progress : bool, optional
        Show on stderr the leave-future-out refits (the slow part: PSIS-LOO needs no refit)
        with the step of each and the time spent; by default only when stderr is a terminal.

    Returns
    -------
    Comparison

    Raises
    ------
    DataError
        When the fits saw different observations, or the threshold does not split them.

    Warns
    -----
    UnreliableLOOWarning
        When some points have Pareto k above 0.7: their LOO estimate is unreliable, and
        leave-future-out (or K-fold) scores should be trusted instead.
    """
    named = label_fits(fits)
    _check_same_observations(named)
    table: dict[str, dict[str, Any]] = {}
    pointwise_elpd = []
    for name, fitted in named.items():
        log_lik = pointwise_log_likelihood(fitted)
        elpd_i, pareto_k = pointwise_loo(log_lik)
        table[name] = _loo_row(log_lik, elpd_i, pareto_k)
        pointwise_elpd.append(elpd_i)
        if table[name]["pareto_k_high"]:
            warnings.warn(
                f"PSIS-LOO of {name!r} is unreliable at {table[name]['pareto_k_high']} of {len(elpd_i)} points "
                f"(Pareto k > {PARETO_K_THRESHOLD}): those runs are influential; trust leave-future-out "
                "(holdout_above=) or refits without them over elpd_loo",
                UnreliableLOOWarning,
                stacklevel=2,
            )
    pointwise_elpd = np.column_stack(pointwise_elpd)
    for row, (difference, dse) in zip(table.values(), _differences_from_best(pointwise_elpd), strict=True):
        row["elpd_diff"], row["dse"] = difference, dse
        row["elpd_lfo"] = row["se_lfo"] = row["dse_lfo"] = None
    holdout = None
    criterion = "elpd_loo"
    scores = pointwise_elpd
    if holdout_above is not None:
        if key is None:
            raise ValueError("compare: leave-future-out refits need a PRNG key (key=...)")
        lfo = leave_future_out(
            list(named.values()), above=holdout_above, key=key, column=holdout_column, config=config, progress=progress
        )
        scores = np.column_stack(lfo)
        for row, elpd_i, (_, dse) in zip(table.values(), lfo, _differences_from_best(scores), strict=True):
            row["elpd_lfo"] = float(elpd_i.sum())
            row["se_lfo"] = float(math.sqrt(len(elpd_i) * np.var(elpd_i)))
            row["dse_lfo"] = dse
        criterion = "elpd_lfo"
        holdout = {"column": holdout_column, "above": float(holdout_above), "held_out": len(lfo[0])}
    for row, weight, fitted in zip(table.values(), stacking_weights(scores), named.values(), strict=True):
        row["weight"] = float(weight)
        row["healthy"] = fitted.diagnostics.ok
    order = sorted(table, key=lambda name: -table[name][criterion])
    return Comparison(
        fits={name: named[name] for name in order},
        table={name: table[name] for name in order},
        best=order[0],
        criterion=criterion,
        pointwise={name: scores[:, list(table).index(name)] for name in order},
        holdout=holdout,
    )
