r"""Posterior forecasts from a fit: the loss at new (N, D), or at a compute budget.

At a budget :math:`C` under :math:`C = 6ND`, each posterior draw gives its own
compute-optimal split :math:`N^*(C), D^*(C) = C / (6 N^*)`, the loss there, and the local
allocation exponents :math:`a = d\log N^*/d\log C`, :math:`b = 1 - a`. Laws with a closed
form (Chinchilla: :math:`a = \beta / (\alpha + \beta)`) use it; for the others the
optimum is found by bisection on the sign of :math:`\partial L / \partial \log N`
(precise to float resolution, where minimising the loss itself stops at its square root),
and :math:`a` comes from the implicit-function theorem at the optimum, so the two routes
agree where both exist.

Forecasts are computed in float64 whatever JAX's global setting: they are cheap, and the
allocation exponent is a ratio of second derivatives of the loss that loses all its
digits in float32 where a law's reducible part is small against E.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayescale import _arviz
from bayescale.compare import Comparison, compare, label_fits, mixture_indices
from bayescale.diagnostics import QUANTILES, probability_at_or_below, tail_checked_means
from bayescale.errors import DataError
from bayescale.inference import Fit, _key_data, versions
from bayescale.law import Law, noise_distribution

__all__ = [
    "FORECAST_FORMAT_VERSION",
    "Forecast",
    "expected_loss",
    "expected_loss_at_compute",
    "forecast",
    "forecast_downstream",
]

#: Version of the layout of a saved forecast; bumped when a saved file could be misread.
FORECAST_FORMAT_VERSION = 1

_LOG6 = math.log(6.0)
# The search for log N* spans +-_SEARCH_HALF_WIDTH around log sqrt(C/6), i.e. tokens per
# parameter from e^-120 to e^120, far past any physical split (a law whose optimum lies
# outside has exponents near zero); bisection halves it per step, and 64 steps pass
# float64 resolution.
_SEARCH_HALF_WIDTH = 60.0
_SEARCH_STEPS = 64


#: How tables (the CLI, the report) name a forecast's quantities.
QUANTITY_LABELS = {
    "loss": "expected loss",
    "loss_observed": "observed loss (new run)",
    "N_opt": "N* (parameters)",
    "D_opt": "D* (tokens)",
    "tokens_per_param": "tokens per parameter",
    "a": "a (N* ~ C^a)",
    "b": "b (D* ~ C^b)",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Forecast:
    """Posterior draws of forecast quantities at one or more targets.

    Attributes
    ----------
    law : str
        Name of the law behind the forecast (for an average, the laws with their weights).
    targets : Mapping[str, numpy.ndarray]
        Where the forecast is made: ``{"C": ...}`` for a budget, or ``{"N": ..., "D": ...}``.
    idata : arviz.InferenceData or xarray.DataTree
        Draws in the ``predictions`` group, dims (chain, draw, target); the targets in
        ``constant_data``; in the attributes, the key and the metadata of each fit behind
        the forecast (law and version, likelihood, priors, data hash, ...).
    healthy : bool
        Whether the fit behind the forecast passed its sampler checks.
    problems : tuple of str
        The fit's failed checks, carried so that the forecast's output says so.
    weights : Mapping[str, float]
        For a forecast averaged over laws, each law's mixture weight; empty otherwise.
    """

    law: str
    targets: Mapping[str, np.ndarray]
    idata: Any
    healthy: bool
    problems: tuple[str, ...] = ()
    weights: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def quantities(self) -> tuple[str, ...]:
        """Names of the forecast quantities (``loss``, ``loss_observed``, ``N_opt``, ...)."""
        return tuple(_arviz.group(self.idata, "predictions").data_vars)

    def draws(self, name: str) -> np.ndarray:
        """Draws of ``name``, shape (chains * draws, targets)."""
        values = np.asarray(_arviz.group(self.idata, "predictions")[name])
        return values.reshape(-1, values.shape[-1])

    def probability_at_or_below(self, loss: float, quantity: str = "loss_observed") -> np.ndarray:
        """Posterior probability that the loss at each target is at or below ``loss``.

        How likely a run of this size or budget is to reach the loss needed: by default
        the loss a new run would measure (``loss_observed``, noise included); ``"loss"``
        asks it of the law's expected loss.

        Parameters
        ----------
        loss : float
            The loss needed; a positive number.
        quantity : {"loss_observed", "loss"}
            Which loss.

        Returns
        -------
        numpy.ndarray
            One probability per target.

        Raises
        ------
        ValueError
            When ``loss`` is not a positive number, or ``quantity`` is not a loss of this forecast.
        """
        if quantity not in ("loss_observed", "loss") or quantity not in self.quantities:
            raise ValueError(f"quantity must be 'loss_observed' or 'loss' of this forecast; got {quantity!r}")
        return probability_at_or_below(self.draws(quantity), loss, "the forecast")

    def summary(self, *, need: float | None = None) -> dict[str, Any]:
        """JSON-ready summary: targets, then each quantity as median, q05, q95 and mean.

        With one target the values are numbers, otherwise lists (one per target).
        ``healthy`` says whether the fits behind it passed their sampler checks, and
        ``problems`` lists the checks that failed (empty when healthy). A mean is None
        where the draws' tail is too heavy for one, and ``notes`` says where. With
        ``need`` (a loss), ``"need": {"loss", "probability"}`` gives the probability that
        a new run measures a loss at or below it (:meth:`probability_at_or_below`).
        """
        single = len(next(iter(self.targets.values()))) == 1
        squeeze = (lambda values: values[0]) if single else list
        out: dict[str, Any] = {name: squeeze([float(v) for v in values]) for name, values in self.targets.items()}
        notes = []
        for name in self.quantities:
            draws = self.draws(name)
            q05, median, q95 = (list(map(float, values)) for values in np.quantile(draws, QUANTILES, axis=0))
            means, note = tail_checked_means(draws, QUANTITY_LABELS.get(name, name))
            out[name] = {"median": squeeze(median), "q05": squeeze(q05), "q95": squeeze(q95), "mean": squeeze(means)}
            notes += [note] if note else []
        if need is not None:
            probability = [float(p) for p in self.probability_at_or_below(need)]
            out["need"] = {"loss": float(need), "probability": squeeze(probability)}
        out["healthy"] = self.healthy
        out["problems"] = list(self.problems)
        out["notes"] = notes
        if self.weights:
            out["weights"] = dict(self.weights)
        return out

    def save(self, path: str) -> None:
        """Save to NetCDF (atomically); reload with :func:`bayescale.load_forecast`."""
        from bayescale.store import save_forecast

        save_forecast(self, path)


def _positive_array(name: str, value: Any) -> np.ndarray:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array) & (array > 0)):
        raise DataError(f"forecast: {name} must be a positive finite number or a 1-D list of them, got {value!r}")
    return array


def _float64(values: Any) -> Any:
    """Float64 device arrays, for an array or a mapping of them; call inside ``jax.enable_x64(True)``."""
    return jax.tree.map(lambda leaf: jnp.asarray(np.asarray(leaf, dtype=np.float64)), values)


@functools.lru_cache(maxsize=64)
def _log_mean_program(law: Law):
    """Jitted log expected loss for every draw (rows) at every target (columns)."""
    return jax.jit(jax.vmap(law.log_mean, in_axes=(0, None)))


def _log_mean(law: Law, fit: Fit, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log expected loss per draw (rows) and target (columns), in float64."""
    with jax.enable_x64(True):
        return np.asarray(_log_mean_program(law)(_float64(fit.draws()), _float64(inputs)))


def expected_loss(fit: Fit, inputs: Mapping[str, Any]) -> np.ndarray:
    """Per-draw expected loss at given inputs, in float64.

    Parameters
    ----------
    fit : Fit
        A fit of a law whose parameters are shared by all runs.
    inputs : Mapping[str, array_like]
        Each input the law reads, as arrays of one length.

    Returns
    -------
    numpy.ndarray
        (draws, points) expected loss.
    """
    return np.exp(_log_mean(fit.law, fit, {name: np.asarray(inputs[name]) for name in fit.law.inputs}))


def _log_mean_split(law: Law, p, log_N, log_C, fixed):
    """Log expected loss of one draw with N = e^log_N, D = C / (6N) and the other inputs fixed."""
    return law.log_mean(p, {**fixed, "N": jnp.exp(log_N), "D": jnp.exp(log_C - _LOG6 - log_N)})


def _bisect_stationary(f, lo, hi):
    """Where the derivative of a convex ``f`` changes sign in [lo, hi] (elementwise)."""
    slope = jnp.vectorize(jax.grad(f))

    def halve(_, bounds):
        a, b = bounds
        middle = 0.5 * (a + b)
        rising = slope(middle) > 0
        return jnp.where(rising, a, middle), jnp.where(rising, middle, b)

    a, b = jax.lax.fori_loop(0, _SEARCH_STEPS, halve, (lo, hi))
    return 0.5 * (a + b)


@functools.lru_cache(maxsize=64)
def _optimum_program(law: Law):
    """Jitted per-draw compute optimum: (log N*, log loss at N*, allocation exponent a)."""

    def one_draw(p, log_C, fixed):
        if law.optimal_log_N is not None:
            log_N = law.optimal_log_N(p, log_C)
        else:
            centre = 0.5 * (log_C - _LOG6)
            log_N = jnp.vectorize(
                lambda c, c_log: _bisect_stationary(
                    lambda u: _log_mean_split(law, p, u, c_log, fixed), c - _SEARCH_HALF_WIDTH, c + _SEARCH_HALF_WIDTH
                )
            )(centre, log_C)
        # Implicit-function theorem at the optimum: d log N*/d log C = -f_uc / f_uu.
        f_u = jax.grad(lambda u, c: _log_mean_split(law, p, u, c, fixed), argnums=0)
        scalar = jnp.vectorize(lambda u, c: -jax.grad(f_u, 1)(u, c) / jax.grad(f_u, 0)(u, c))
        exponent = scalar(log_N, log_C)
        return log_N, _log_mean_split(law, p, log_N, log_C, fixed), exponent

    return jax.jit(jax.vmap(one_draw, in_axes=(0, None, None)))


def _fixed_inputs(law: Law, inputs: Mapping[str, Any] | None, besides: set[str]) -> dict[str, np.ndarray]:
    """Return the law's inputs other than ``besides``, each one positive number given by the caller."""
    inputs = dict(inputs or {})
    needed = [name for name in law.inputs if name not in besides]
    missing = [name for name in needed if name not in inputs]
    unused = [name for name in inputs if name not in needed]
    if missing or unused:
        raise DataError(
            f"forecast: law {law.name!r} reads {', '.join(law.inputs)}; "
            + (f"give {', '.join(missing)} in inputs={{...}}" if missing else f"it does not read {', '.join(unused)}")
        )
    fixed = {name: _positive_array(name, inputs[name]) for name in needed}
    for name, value in fixed.items():
        if value.size != 1:
            raise DataError(f"forecast: inputs[{name!r}] must be one number, held fixed, got {value.size}")
    return {name: value[0] for name, value in fixed.items()}


def expected_loss_at_compute(fit: Fit, compute: Any, inputs: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Per-draw expected loss at compute budgets, at the optimal split where the law has one.

    Parameters
    ----------
    fit : Fit
        A fit of a law of N and D, or of C.
    compute : float or array_like
        Budgets in FLOPs.
    inputs : Mapping[str, float], optional
        The law's inputs other than N and D (e.g. unique tokens ``U``), held fixed.

    Returns
    -------
    dict
        ``loss`` (draws, budgets) and, for laws of N and D, ``N_opt``, ``D_opt`` and the
        allocation exponent ``a``.
    """
    law = fit.law
    log_C = np.log(_positive_array("compute", compute))
    if law.has_compute_frontier:
        fixed = _fixed_inputs(law, inputs, {"N", "D"})
        with jax.enable_x64(True):
            program = _optimum_program(law)
            outputs = program(_float64(fit.draws()), _float64(log_C), _float64(fixed))
            log_N, log_loss, exponent = map(np.asarray, outputs)
        return {"loss": np.exp(log_loss), "N_opt": np.exp(log_N), "D_opt": np.exp(log_C - _LOG6 - log_N), "a": exponent}
    if law.inputs == ("C",):
        return {"loss": np.exp(_log_mean(law, fit, {"C": np.exp(log_C)}))}
    raise DataError(
        f"forecast: law {law.name!r} depends on {', '.join(law.inputs)} only, so a compute budget does not fix "
        f"its loss; give {', '.join(f'{name}=' for name in law.inputs)} instead, or fit a law of N and D"
    )


def forecast(
    fit: Fit | Sequence[Fit] | Comparison,
    *,
    key: jax.Array,
    compute: Any = None,
    N: Any = None,
    D: Any = None,
    weights: Sequence[float] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Forecast:
    """Posterior forecast of the loss at a compute budget or at given N and D.

    Given several fits (or a :class:`~bayescale.compare.Comparison`) the forecast is
    averaged over the laws: draws of each law's forecast are mixed in proportion to its
    stacking weight, so the spread includes the uncertainty about which law holds.

    Parameters
    ----------
    fit : Fit, sequence of Fit, or Comparison
        The fitted law, or several laws fitted to the same data. For a sequence the
        weights are ``weights`` or else PSIS-LOO stacking weights (:func:`bayescale.compare`);
        a Comparison brings its own (leave-future-out ones when it scored a holdout).
    key : jax.Array
        PRNG key for the observation noise of ``loss_observed``.
    compute : float or array_like, optional
        Budget(s) C in FLOPs. For laws of N and D gives the compute-optimal ``N_opt``,
        ``D_opt``, ``tokens_per_param``, the loss at that split, and the allocation exponents
        ``a`` (N* ~ C^a) and ``b = 1 - a`` (D* ~ C^b).
    N, D : float or array_like, optional
        Parameters and tokens of the runs to forecast (broadcast together); give those
        the law reads.
    weights : sequence of float, optional
        Mixture weights of several fits, in their order; by default stacking weights.
    inputs : Mapping[str, float], optional
        Values of the law's other inputs, held fixed (e.g. ``{"U": 1e11}``, the unique
        tokens of ``data_constrained``).

    Returns
    -------
    Forecast
        ``loss`` is the posterior of the expected loss; ``loss_observed`` adds the
        observation noise, the spread of a new run's measured loss. An averaged forecast
        has the quantities every law gives, and ``weights``.

    Raises
    ------
    DataError
        When the targets are invalid or do not match the law's inputs.
    """
    if isinstance(fit, Fit):
        return _assemble(fit, key, *_forecast_one(fit, key, compute, N, D, inputs))
    fits, weights = _fits_and_weights(fit, weights)
    if len(fits) == 1:
        return _assemble(fits[0], key, *_forecast_one(fits[0], key, compute, N, D, inputs))
    keys = jax.random.split(key, len(fits) + 1)
    parts = [_forecast_one(one, subkey, compute, N, D, inputs) for one, subkey in zip(fits, keys[:-1], strict=True)]
    common = [name for name in parts[0][1] if all(name in quantities for _, quantities in parts)]
    picks = mixture_indices([one.num_draws for one in fits], weights, keys[-1])
    mixed = {
        name: np.concatenate([quantities[name][chosen] for (_, quantities), chosen in zip(parts, picks, strict=True)])
        for name in common
    }
    names = list(label_fits(fits))
    problems = tuple(f"{name}: {problem}" for name, one in zip(names, fits) for problem in one.diagnostics.problems)
    weights = dict(zip(names, map(float, weights), strict=True))
    return _averaged(parts[0][0], mixed, weights, problems, _provenance(fits, [key]))


def forecast_downstream(upstream: Forecast, link: Fit, *, key: jax.Array, via: str = "lm_loss") -> Forecast:
    """Push a loss forecast through a fitted downstream link: compute -> loss -> metric.

    Draw ``s`` of the upstream expected loss is paired with draw ``s`` of the link (the
    two posteriors are independent, so any pairing is a joint draw), so the metric's
    spread carries the uncertainty of both the scaling law and the link.

    Parameters
    ----------
    upstream : Forecast
        A forecast of the loss (for example at a compute budget).
    link : Fit
        A fit of a law of the loss, such as ``sigmoid_link`` or ``exact_match``.
    key : jax.Array
        PRNG key for the metric's observation noise and the pairing.
    via : str, default "lm_loss"
        The link's input that receives the upstream loss.

    Returns
    -------
    Forecast
        The upstream's quantities and targets, plus ``metric`` (expected) and
        ``metric_observed`` (with the link's noise).
    """
    if link.law.inputs != (via,):
        raise DataError(
            f"forecast_downstream: law {link.law.name!r} reads {', '.join(link.law.inputs)}, not {via!r} alone"
        )
    loss = upstream.draws("loss")
    pair_key, noise_key = jax.random.split(key)
    chosen = np.asarray(jax.random.choice(pair_key, link.num_draws, (len(loss),), replace=len(loss) > link.num_draws))
    draws = {name: values[chosen] for name, values in link.draws().items()}
    with jax.enable_x64(True):
        params = _float64({name: draws[name] for name in link.law.priors})
        log_metric = np.asarray(_link_program(link.law, via)(params, _float64(loss)))
    noise = {name: draws[name][:, None] for name in link.spec.noise}
    observed = np.exp(np.asarray(_noise_program(link.likelihood)(noise_key, log_metric, noise), np.float64))
    quantities = {name: upstream.draws(name) for name in upstream.quantities}
    quantities.update(metric=np.exp(log_metric), metric_observed=observed)
    predictions = {name: values[None] for name, values in quantities.items()}
    problems = (*upstream.problems, *(f"{link.law.name}: {problem}" for problem in link.diagnostics.problems))
    label = f"{upstream.law} -> {link.law.name}"
    upstream_attrs = _arviz.get_attrs(upstream.idata)
    provenance = {
        "fits": [*json.loads(upstream_attrs["fits"]), *_provenance([link], [])["fits"]],
        "keys": [*json.loads(upstream_attrs["keys"]), _key_data(key)],
    }
    return _forecast_object(label, upstream.targets, predictions, problems, upstream.weights, provenance)


@functools.lru_cache(maxsize=16)
def _link_program(law: Law, via: str):
    """Jitted log metric of each link draw (rows) at its paired upstream losses (columns)."""
    return jax.jit(jax.vmap(lambda p, x: law.log_mean(p, {via: x})))


def _fits_and_weights(fits, weights) -> tuple[list[Fit], np.ndarray]:
    """Return the fits of an averaged forecast and their weights (given, or stacking ones)."""
    if isinstance(fits, Comparison):
        if weights is not None:
            raise ValueError("forecast: a Comparison brings its own weights; pass its fits to give others")
        return list(fits.fits.values()), np.asarray(list(fits.weights.values()))
    fits = list(fits)
    if not fits or not all(isinstance(one, Fit) for one in fits):
        raise TypeError("forecast takes a Fit, a sequence of Fit objects, or a Comparison")
    if weights is None and len(fits) == 1:  # nothing to weigh: no LOO, and none of its warnings
        return fits, np.ones(1)
    if weights is None:
        comparison = compare(fits)
        by_fit = {id(one): comparison.table[name]["weight"] for name, one in comparison.fits.items()}
        return fits, np.asarray([by_fit[id(one)] for one in fits])
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(fits),) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(
            f"forecast: weights must be {len(fits)} non-negative numbers summing to 1, got {weights.tolist()}"
        )
    return fits, weights


def _forecast_one(fit: Fit, key, compute, N, D, inputs) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets and per-draw quantities of one fit's forecast."""
    law = fit.law
    if compute is not None and (N is not None or D is not None):
        raise DataError("forecast: give either compute or N/D, not both")
    if compute is not None:
        targets = {"C": _positive_array("compute", compute)}
        quantities = expected_loss_at_compute(fit, targets["C"], inputs)
        if "N_opt" in quantities:
            quantities["tokens_per_param"] = quantities["D_opt"] / quantities["N_opt"]
            quantities["b"] = 1.0 - quantities["a"]
    else:
        given = {name: value for name, value in (("N", N), ("D", D)) if value is not None}
        missing = [name for name in law.inputs if name not in given and name not in (inputs or {})]
        if missing or not given:
            raise DataError(
                f"forecast: law {law.name!r} reads {', '.join(law.inputs)}; give {', '.join(missing or law.inputs)}"
                + (" or compute=" if law.has_compute_frontier or law.inputs == ("C",) else "")
                + (" (inputs other than N and D go in inputs={...})" if set(missing) - {"N", "D"} else "")
            )
        arrays = np.broadcast_arrays(*(_positive_array(name, value) for name, value in given.items()))
        targets = dict(zip(given, arrays, strict=True))
        if {"N", "D"} <= targets.keys():
            targets["C"] = 6.0 * targets["N"] * targets["D"]
        fixed = _fixed_inputs(law, inputs, set(given))
        columns = {**{name: np.full(len(arrays[0]), value) for name, value in fixed.items()}, **targets}
        quantities = {"loss": np.exp(_log_mean(law, fit, {name: columns[name] for name in law.inputs}))}
    quantities["loss_observed"] = _observed(fit, quantities["loss"], key)
    return targets, quantities


def _observed(fit: Fit, expected: np.ndarray, key: jax.Array) -> np.ndarray:
    """Return a new run's measured loss: the expected loss times the likelihood's noise, per draw."""
    draws = fit.draws()
    noise = {name: draws[name][:, None] for name in fit.parameter_names if name not in fit.law.priors}
    return np.exp(np.asarray(_noise_program(fit.likelihood)(key, np.log(expected), noise), np.float64))


@functools.lru_cache(maxsize=8)
def _noise_program(likelihood: str):
    """Jitted draw of log loss around ``mu`` from the named likelihood."""
    return jax.jit(lambda key, mu, noise: noise_distribution(likelihood, mu, noise).sample(key))


def _assemble(fit: Fit, key, targets: Mapping[str, np.ndarray], quantities: Mapping[str, np.ndarray]) -> Forecast:
    sizes = fit.posterior.sizes
    shape = (sizes["chain"], sizes["draw"])
    predictions = {name: np.asarray(values).reshape(*shape, -1) for name, values in quantities.items()}
    return _forecast_object(fit.law.name, targets, predictions, fit.diagnostics.problems, {}, _provenance([fit], [key]))


def _averaged(targets, quantities, weights: Mapping[str, float], problems, provenance) -> Forecast:
    """Build a forecast mixed over laws: one chain of the mixed draws."""
    predictions = {name: np.asarray(values)[None] for name, values in quantities.items()}
    label = " + ".join(f"{weight:.2f} {name}" for name, weight in weights.items())
    return _forecast_object(label, targets, predictions, problems, weights, provenance)


# Attributes of a fit that say where a forecast's numbers come from, and which of them
# hold JSON (decoded, so the forecast's record is one JSON document, not JSON in strings).
_FIT_PROVENANCE = (
    "law",
    "law_version",
    "likelihood",
    "correlated",
    "drift",
    "priors",
    "data_source",
    "data_sha256",
    "column_mapping",
    "key",
    "sampler_config",
    "bayescale_version",
    "created",
)
_JSON_ATTRS = {"priors", "column_mapping", "key", "sampler_config"}


def _provenance(fits: Sequence[Fit], keys) -> dict[str, list]:
    """Collect the metadata of the fits behind a forecast, and the keys of its random steps."""
    records = []
    for one in fits:
        attrs = _arviz.get_attrs(one.idata)
        record = {}
        for name in _FIT_PROVENANCE:
            if name in attrs:
                value = attrs[name].item() if isinstance(attrs[name], np.generic) else attrs[name]
                record[name] = json.loads(value) if name in _JSON_ATTRS else value
        records.append(record)
    return {"fits": records, "keys": [_key_data(key) for key in keys]}


def _forecast_object(label, targets, predictions, problems, weights, provenance) -> Forecast:
    """Build the :class:`Forecast`, with attributes holding all that :func:`bayescale.load_forecast` reads."""
    attrs = {
        "bayescale_forecast_format": FORECAST_FORMAT_VERSION,
        "law": label,
        "healthy": int(not problems),
        "problems": json.dumps(list(problems)),
        "weights": json.dumps(dict(weights)),
        # NetCDF keeps variables in order, but the order of the targets (and so of the
        # summary) is recorded rather than left to the file format.
        "targets": json.dumps(list(targets)),
        "fits": json.dumps(provenance["fits"]),
        "keys": json.dumps(provenance["keys"]),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **versions(),
    }
    idata = _arviz.from_groups(
        {"predictions": predictions, "constant_data": {f"target_{k}": v for k, v in targets.items()}},
        {**{name: ["target"] for name in predictions}, **{f"target_{k}": ["target"] for k in targets}},
        attrs,
    )
    return Forecast(label, dict(targets), idata, not problems, tuple(problems), dict(weights))
