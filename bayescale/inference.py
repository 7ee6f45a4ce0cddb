"""Fit a scaling law to a table of runs with NUTS: :func:`fit` returns an immutable :class:`Fit`.

Every fit, alone or one of many, goes through one batched program (see ``_sampler``):
:func:`fit` is a batch of one, and :func:`fit_problems` fits several data sets, each with
its own model, in one compiled program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayescale import _arviz, _progress
from bayescale._sampler import compiled_postprocess, model_dim, sampler_program
from bayescale.config import SamplerConfig
from bayescale.data import CANONICAL_COLUMNS, ScalingData, read_table
from bayescale.diagnostics import Diagnostics, batch_chain_columns, diagnose, summarize
from bayescale.errors import BayescaleError, ConvergenceWarning, DataError, IdentifiabilityWarning, external_stacklevel
from bayescale.law import (
    DRIFT_KNOTS,
    Law,
    ModelSpec,
    derived_quantities,
    repr_prior,
    resolve_law,
    whitened_level_name,
)

__all__ = [
    "POINTWISE_BUDGET",
    "Attempt",
    "Fit",
    "check_problem",
    "fit",
    "fit_problems",
    "padded_size",
    "require_pointwise",
]

#: Version of the layout of a saved fit; bumped when a saved file could be misread.
FORMAT_VERSION = 1
#: Draws x observations above which a fit keeps no pointwise values by default (see
#: ``fit(..., pointwise=...)``); at the budget, ``mu`` and the log-likelihood take 0.5 GiB
#: each in float32.
POINTWISE_BUDGET = 2**27


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One run of the sampler behind a fit: its settings and the health of its draws.

    Attributes
    ----------
    config : SamplerConfig
        The settings it ran with.
    diagnostics : Diagnostics
        Its sampler checks.
    """

    config: SamplerConfig
    diagnostics: Diagnostics

    def to_dict(self) -> dict[str, Any]:
        """Return the record as plain JSON-ready values."""
        return {"config": dataclasses.asdict(self.config), "diagnostics": self.diagnostics.to_dict()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Attempt:
        """Rebuild a record from :meth:`to_dict`'s output."""
        return cls(SamplerConfig(**values["config"]), Diagnostics.from_dict(values["diagnostics"]))


@dataclasses.dataclass(frozen=True, eq=False)
class Fit:
    """The posterior of a law given data, with its diagnostics.

    Attributes
    ----------
    spec : ModelSpec
        The law, its likelihood on log loss and whether residuals are correlated along runs.
    data : ScalingData
        The rows the law was fitted to (learning curves sorted by run, then step).
    idata : arviz.InferenceData or xarray.DataTree
        Draws (``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``,
        ``constant_data``) and metadata in its attributes.
    summary : dict
        Per parameter (``name`` or ``name[run]``): mean, sd, median, q05, q95, r_hat,
        ess_bulk, ess_tail, mcse_mean.
    diagnostics : Diagnostics
        Sampler health; ``diagnostics.ok`` is false when a check failed.
    config : SamplerConfig
        The sampler settings of the draws kept.
    attempts : tuple of Attempt
        Every run of the sampler, in order, the last one the draws kept: one, or more when
        ``fit(..., retry=True)`` reran an unhealthy fit with other settings.
    """

    spec: ModelSpec
    data: ScalingData
    idata: Any
    summary: Mapping[str, Mapping[str, float]]
    diagnostics: Diagnostics
    config: SamplerConfig
    attempts: tuple[Attempt, ...] = ()

    @property
    def law(self) -> Law:
        """The fitted law."""
        return self.spec.law

    @property
    def likelihood(self) -> str:
        """The likelihood on log loss."""
        return self.spec.likelihood

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws, dims (chain, draw, ...)."""
        return _arviz.group(self.idata, "posterior")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The law's parameters, then the noise parameters."""
        return (*self.law.priors, *self.spec.noise)

    @property
    def runs(self) -> tuple[str, ...]:
        """Labels of the runs, in the order of the ``run`` dimension of per-run parameters."""
        posterior = self.posterior
        return tuple(str(label) for label in posterior["run"].values) if "run" in posterior.coords else ()

    def draws(self) -> dict[str, np.ndarray]:
        """Return the law's and noise parameters, flattened over chains and draws.

        Shared parameters have shape (draws,); per-run parameters (draws, runs).
        """
        posterior = self.posterior
        out = {}
        for name in self.parameter_names:
            values = np.asarray(posterior[name])
            out[name] = values.reshape(-1, *values.shape[2:])
        return out

    @property
    def num_draws(self) -> int:
        """Total posterior draws (chains times draws per chain)."""
        sizes = self.posterior.sizes
        return sizes["chain"] * sizes["draw"]

    @property
    def has_pointwise(self) -> bool:
        """Whether the fit kept each draw's ``mu`` and log-likelihood at every observation."""
        return "mu" in self.posterior

    def save(self, path: str) -> None:
        """Save to NetCDF (atomically); reload with :func:`bayescale.load_fit`."""
        from bayescale.store import save_fit

        save_fit(self, path)


def require_pointwise(fit: Fit, purpose: str) -> None:
    """Raise a :class:`BayescaleError` naming ``purpose`` when ``fit`` kept no pointwise values."""
    if not fit.has_pointwise:
        raise BayescaleError(
            f"{purpose} needs each draw's mu and log-likelihood at every observation, which this fit of law "
            f"{fit.law.name!r} did not keep ({fit.num_draws} draws x {len(fit.data)} observations; kept by "
            f"default up to {POINTWISE_BUDGET}); refit with fit(..., pointwise=True) to keep them (8 bytes per "
            "draw and observation)"
        )


def padded_size(n: int, minimum: int = 8) -> int:
    """Round ``n`` up to a quarter-octave bucket (8, 10, 12, 14, 16, 20, ..., 256, 320, ...).

    Data padded to these sizes reuse compiled programs for tables of similar length, at
    most 25% of the work spent on padding.
    """
    if n <= minimum:
        return minimum
    octave = 1 << (n - 1).bit_length() - 1
    return next(octave * m // 4 for m in (4, 5, 6, 7, 8) if octave * m // 4 >= n)


def _uses_runs(spec: ModelSpec) -> bool:
    return spec.correlated or bool(spec.law.per_run)


def run_count(spec: ModelSpec, data: ScalingData) -> int:
    """How many runs the model of ``spec`` sees in ``data`` (1 when it does not use runs)."""
    if not _uses_runs(spec) or "run" not in data:
        return 1
    return len(np.unique(data["run"]))


def _runs_structure(data: ScalingData, size: int, runs_size: int, drift: bool = False):
    """Run index, first-of-run flags and log-step gaps, padded; runs in order of appearance.

    With ``drift``, also each observation's place among its run's drift knots (see
    :func:`bayescale.law.build_model`).
    """
    n = len(data)
    labels = data["run"] if "run" in data else np.full(n, "", dtype=object)
    _, first_seen, index = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first_seen))  # relabel runs by order of first appearance
    index = order[index]
    first = np.ones(size, bool)
    first[1:n] = index[1:] != index[:-1]
    log_step = np.log(data["step"]) if "step" in data else np.arange(n, dtype=np.float64)
    gap = np.ones(size)
    gap[1:n] = np.diff(log_step)
    gap[first] = 1.0
    dtype = jnp.result_type(float)
    structure = {
        "index": jnp.asarray(np.concatenate([index, np.zeros(size - n, np.int64)]).astype(np.int32)),
        "real": jnp.asarray(np.arange(runs_size) < index.max(initial=0) + 1),
        "first": jnp.asarray(first),
        "gap": jnp.asarray(gap, dtype=dtype),
    }
    if drift:
        structure.update(_drift_knots(index, log_step, size, runs_size, dtype))
    return structure


def _drift_knots(index: np.ndarray, log_step: np.ndarray, size: int, runs_size: int, dtype) -> dict[str, jax.Array]:
    """Return the drift's knots: each run's spacing, each observation's left knot and distance.

    A run's knot spacing is its log-step range over DRIFT_KNOTS - 1 (1 for a run of one step
    or padding); an observation's distance from its left knot is a fraction of a spacing.
    """
    low = np.full(runs_size, np.inf)
    high = np.full(runs_size, -np.inf)
    np.minimum.at(low, index, log_step)
    np.maximum.at(high, index, log_step)
    spacing = np.where(high > low, (high - low) / (DRIFT_KNOTS - 1), 1.0)
    position = np.zeros(size)
    position[: len(index)] = np.clip((log_step - low[index]) / spacing[index], 0.0, DRIFT_KNOTS - 1)
    knot = np.minimum(np.floor(position), DRIFT_KNOTS - 2).astype(np.int32)
    return {
        "knot": jnp.asarray(knot),
        "weight": jnp.asarray(position - knot, dtype=dtype),
        "knot_gap": jnp.asarray(spacing, dtype=dtype),
    }


def model_args(spec: ModelSpec, data: ScalingData, *, size: int | None = None, runs_size: int | None = None):
    """Return the model's arguments ``(inputs, log_loss, mask, runs)`` as device arrays, padded.

    Padding repeats the first row (a valid point) and masks it out of the likelihood;
    padded runs have no observations. ``runs`` is None for laws that do not use runs.
    """
    n = len(data)
    size = size or padded_size(n)
    index = np.concatenate([np.arange(n), np.zeros(size - n, dtype=np.int64)])
    dtype = jnp.result_type(float)
    inputs = {name: jnp.asarray(data[name][index], dtype=dtype) for name in spec.law.inputs}
    log_loss = jnp.asarray(data.log_loss[index], dtype=dtype)
    mask = jnp.asarray(np.arange(size) < n)  # built in NumPy: no compile for a comparison
    runs = None
    if _uses_runs(spec):
        runs = _runs_structure(data, size, runs_size or run_count(spec, data), drift=spec.drift)
    return inputs, log_loss, mask, runs


def _key_data(key: jax.Array) -> list[int]:
    """Return the words of a PRNG key, as saved: ``jax.random.wrap_key_data`` rebuilds the key."""
    return np.asarray(jax.random.key_data(key)).tolist()


def check_problem(spec: ModelSpec, data: ScalingData) -> None:
    """Raise :class:`DataError` when ``data`` cannot be fitted with the model of ``spec``.

    Two checks, before anything is compiled: the data must hold at least as many distinct
    points (rows with different inputs; per run, for per-run parameters) as the law has
    parameters, or the likelihood cannot tell them apart and the posterior is the prior's
    ridge; and the law's inputs must be representable in the float type the sampler
    runs in (float32 unless x64 is enabled), or ``log N`` is infinite in the model.

    Parameters
    ----------
    spec : ModelSpec
        The model to fit.
    data : ScalingData
        Validated data with the law's inputs and ``loss``.
    """
    law = spec.law
    source = data.source
    if "run" in data and len(np.unique(data["run"])) == 1:
        source += f" (run {data['run'][0]!r})"
    runs = run_count(spec, data)
    per_run = [name for name in law.per_run if name in law.priors] if runs >= 2 else []
    num_params = len(law.priors) + len(per_run) * (runs - 1)
    point = [np.asarray(data[name], dtype=np.float64) for name in law.inputs]
    if per_run:
        point.append(np.unique(data["run"], return_inverse=True)[1].astype(np.float64))
    distinct = len(np.unique(np.column_stack(point), axis=0)) if point else min(len(data), 1)
    if distinct < num_params:
        listing = ", ".join(law.priors) + (f"; {', '.join(per_run)} once for each of {runs} runs" if per_run else "")
        raise DataError(
            f"{source}: law {law.name!r} has {num_params} parameters ({listing}) but the data have {distinct} "
            f"distinct ({', '.join(law.inputs)}) point(s) in {len(data)} rows; expected at least {num_params} "
            "to identify them (add runs, or choose a law with fewer parameters: `bayescale laws`)"
        )
    dtype = np.dtype(jnp.result_type(float))
    for name in law.inputs:
        values = np.asarray(data[name], dtype=np.float64).reshape(len(data), -1)  # a row per checkpoint
        with np.errstate(over="ignore", under="ignore"):
            cast = values.astype(dtype)
        outside = ~np.isfinite(cast) | ((cast == 0) & (values != 0))
        beyond = np.flatnonzero(outside.any(axis=1))
        if len(beyond):
            finfo = np.finfo(dtype)
            rows = ", ".join(str(label) for label in data.rows[beyond][:8])
            raise DataError(
                f"{source}, column {data.mapping.get(name, name)!r}: "
                f"found {values[beyond[0]][outside[beyond[0]]][0]:.3g} at "
                f"{data.row_word} {rows}, beyond the range of {dtype}; expected magnitudes from {finfo.tiny:.1e} "
                f"to {finfo.max:.1e} (or enable float64: jax.config.update('jax_enable_x64', True))"
            )


def versions() -> dict[str, str]:
    """Return the versions of bayescale and the libraries behind its numbers, as saved with results."""
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    # Reading package metadata costs about a millisecond per package: once per process.
    packages = ("bayescale", "jax", "numpyro", "arviz")
    return tuple((f"{package}_version", metadata.version(package)) for package in packages)


def _metadata(spec: ModelSpec, data: ScalingData, config: SamplerConfig, key) -> dict[str, Any]:
    """Attributes saved with a fit: enough to reproduce it and to check a reload."""
    return {
        "bayescale_format": FORMAT_VERSION,
        "law": spec.law.name,
        "law_version": spec.law.version,
        "likelihood": spec.likelihood,
        "correlated": int(spec.correlated),
        "drift": int(spec.drift),
        "priors": json.dumps({name: repr_prior(prior) for name, prior in spec.priors.items()}),
        "data_source": data.source,
        "data_sha256": data.fingerprint(),
        "column_mapping": json.dumps(dict(data.mapping)),
        "data_notes": json.dumps(list(data.notes)),
        "sampler_config": json.dumps(dataclasses.asdict(config)),
        "key": json.dumps(_key_data(key)),
        "x64": int(jax.config.jax_enable_x64),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **versions(),
    }


def data_columns(data: ScalingData) -> dict[str, np.ndarray]:
    """Every column of the data (the law's inputs and the rest) and the row labels, as saved.

    Text columns become fixed-width strings (NetCDF has no objects); :func:`bayescale.store`
    reads them back.
    """
    columns = {name: values.astype(str) if values.dtype == object else values for name, values in data.columns.items()}
    return {**columns, "row": np.asarray(data.rows).astype(str)}


def data_dims(columns: Mapping[str, np.ndarray], row_dim: str) -> dict[str, list[str]]:
    """Return the dimension names of saved columns.

    The row, then one per further axis of a column (inputs with a value per bin, such as
    the Multi-Power Law's).
    """
    return {
        name: [row_dim, *(f"{name}_axis{axis}" for axis in range(1, np.ndim(values)))]
        for name, values in columns.items()
    }


def _run_labels(data: ScalingData) -> list[str]:
    """Run labels in order of first appearance (the order of the ``run`` dimension)."""
    return list(dict.fromkeys(str(label) for label in data["run"])) if "run" in data else [""]


def _to_idata(spec, data, sites, log_lik, stats, attrs):
    """Assemble ArviZ data from flat draws and per-iteration sampler statistics.

    The law's derived quantities are added to the posterior. ``sites`` and ``log_lik`` lead
    with one axis over all draws (chain-major); ``stats`` holds (chain, draw) arrays
    ``diverging``, ``n_steps``, ``accept_prob``, ``energy``, ``potential_energy``, and the
    per-chain ``step_size``. Observation and run axes are cut to the data's, dropping padding.
    Without ``log_lik`` (None), the data have no ``log_likelihood`` group.
    """
    law = spec.law
    n = len(data)
    shape = np.shape(stats["diverging"])
    labels = _run_labels(data)
    pooled = any(np.ndim(sites[name]) == 2 for name in law.per_run)
    per_run = set(law.per_run) if pooled else set()
    params = {name: np.asarray(sites[name]) for name in law.priors}
    if pooled:  # per-run parameters cut to the real runs, shared ones broadcast against them
        params = {
            name: values[:, : len(labels)] if name in per_run else values[:, None] for name, values in params.items()
        }
    posterior, dims = {}, {"mu": ["obs"], "log_loss": ["obs"]}
    whitened = whitened_level_name(law.level) if law.level else None
    for name, values in {**sites, **derived_quantities(law, params)}.items():
        values = np.asarray(values).reshape(*shape, *np.shape(values)[1:])
        if name == "mu":
            values = values[..., :n]
        elif name in _DRIFT_SITES:  # one walk per run, also for a run alone
            values = values[:, :, : len(labels)]
            dims[name] = ["run", "knot_step"][: values.ndim - 2]
        elif name in per_run or (pooled and name in law.derived):
            values = (
                np.broadcast_to(values, (*shape, len(labels))) if name in law.derived else values[..., : len(labels)]
            )
            dims[name] = ["run"]
        if name in ("log_loss", "innovation") or name == whitened:
            continue
        posterior[name] = values
    n_steps = np.asarray(stats["n_steps"])
    sample_stats = {
        "diverging": np.asarray(stats["diverging"]),
        "n_steps": n_steps,
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1,
        "acceptance_rate": np.asarray(stats["accept_prob"]),
        "energy": np.asarray(stats["energy"]),
        "lp": -np.asarray(stats["potential_energy"]),
        "step_size": np.broadcast_to(np.asarray(stats["step_size"])[:, None], shape),
    }
    groups = {"posterior": posterior, "sample_stats": sample_stats}
    if log_lik is not None:
        groups["log_likelihood"] = {"log_loss": np.asarray(log_lik).reshape(*shape, -1)[..., :n]}
    groups.update(observed_data={"log_loss": data.log_loss}, constant_data=data_columns(data))
    dims.update(data_dims(groups["constant_data"], "obs"))
    coords = {"run": labels} if pooled or spec.drift else None
    return _arviz.from_groups(groups, dims, attrs, coords)


#: The drift's sites (see :func:`bayescale.law.build_model`), with a run axis however many runs.
_DRIFT_SITES = ("drift_steps", "drift_end")


def _prepare(law: Law | str, data: Any, mapping, correlated: bool) -> tuple[ModelSpec, ScalingData]:
    law = resolve_law(law)
    if not isinstance(data, ScalingData):
        data = read_table(data, mapping, columns=[name for name in law.inputs if name not in CANONICAL_COLUMNS])
    data.require((*law.inputs, "loss"), f"law {law.name!r}")
    if correlated:  # residuals are correlated along each run, in order of step
        data.require(("step",), "correlated residuals")
        data = data.sorted_by(("run", "step") if "run" in data else ("step",))
    return law, data


def fit(
    law: Law | str,
    data: Any,
    *,
    key: jax.Array,
    likelihood: str = "student_t",
    correlated: bool = False,
    num_warmup: int | None = None,
    num_samples: int | None = None,
    num_chains: int | None = None,
    target_accept: float | None = None,
    config: SamplerConfig | None = None,
    mapping: Mapping[str, str] | None = None,
    retry: bool = False,
    progress: bool | None = None,
    pointwise: bool | None = None,
) -> Fit:
    r"""Fit a scaling law to training runs with NUTS.

    The likelihood is on log loss, :math:`\log L_i \sim \mathcal{F}(\mu(x_i; \theta), \sigma)`
    with :math:`\mu` the law's log expected loss and :math:`\mathcal{F}` Student-t, Normal
    or Laplace. Chains start from the Laplace approximation at the best of several MAP
    searches and run vectorized on one device.

    Parameters
    ----------
    law : Law or str
        A law object or a catalogue name such as ``"chinchilla"``.
    data : ScalingData, path, DataFrame or mapping
        The runs; anything :func:`bayescale.read_table` reads.
    key : jax.Array
        PRNG key; the same key and data give identical draws on one platform.
    likelihood : {"student_t", "normal", "laplace"}, default "student_t"
        Observation model of log loss.
    correlated : bool, default False
        Residuals correlated along each run (for learning curves; see
        :func:`bayescale.law.build_model`).
    num_warmup, num_samples, num_chains, target_accept : optional
        Override the corresponding :class:`SamplerConfig` fields.
    config : SamplerConfig, optional
        Sampler settings; defaults to ``SamplerConfig()``.
    mapping : Mapping[str, str], optional
        Column mapping when ``data`` is read here.
    retry : bool, default False
        When the fit fails a sampler check, run it again with the settings of
        :meth:`SamplerConfig.retries` (target acceptance 0.95, then 0.99, with longer
        warmup) until one passes; the fit keeps the last run's draws, and
        :attr:`Fit.attempts` records every run. This cures divergences and poor
        adaptation, not a law the data cannot identify.
    progress : bool, optional
        Show on stderr which step runs (compiling, sampling, summarizing) and for how
        long; by default only when stderr is a terminal.
    pointwise : bool, optional
        Keep each draw's expected log loss ``mu`` and log-likelihood at every observation
        (LOO, stacking and the predictive checks read them). By default
        they are kept while draws x observations is at most :data:`POINTWISE_BUDGET`;
        beyond it they would take gigabytes (16 GB each for 4,000 draws of 1e6
        observations), and the fit keeps its parameters only.

    Returns
    -------
    Fit

    Raises
    ------
    DataError
        When the data lack the law's inputs, hold invalid values, or have fewer distinct
        points than the law has parameters.

    Warns
    -----
    ConvergenceWarning
        When a diagnostic fails (after the retries, with ``retry``); the message says
        what failed, the likely cause and what to try.
    IdentifiabilityWarning
        When the posterior of a law parameter is about as wide as its prior (see
        :attr:`Diagnostics.weakly_identified`); the message names the parameters.

    Examples
    --------
    >>> import jax, bayescale as bs
    >>> data = bs.load_example("chinchilla")
    >>> result = bs.fit("chinchilla", data, key=jax.random.key(0), likelihood="laplace")  # doctest: +SKIP
    """
    law, data = _prepare(law, data, mapping, correlated)
    config = (config or SamplerConfig()).replace(
        num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains, target_accept=target_accept
    )
    spec = ModelSpec(law, likelihood, correlated)
    options = {"config": config, "retry": retry, "progress": progress, "pointwise": pointwise}
    return fit_problems([spec], [data], keys=[key], **options)[0]


def fit_problems(
    specs: Sequence[ModelSpec],
    datasets: Sequence[ScalingData],
    *,
    keys: Sequence[jax.Array],
    config: SamplerConfig,
    warn: bool = True,
    retry: bool = False,
    labels: Sequence[str] | None = None,
    save_to: str | os.PathLike | None = None,
    bucket_size: int | None = None,
    progress: bool | None = None,
    pad_to: int = 0,
    devices: Sequence[jax.Device] | None = None,
    shard: tuple[int, int] | None = None,
    pointwise: bool | None = None,
) -> list[Fit | None]:
    """Fit several independent problems (a model and a data set each) in one compiled program.

    Problems are padded to shared shapes and grouped into buckets by model and number of
    runs, so that a problem gets the same model alone and in a batch; each keeps its own
    MAP point, whitening, step size and mass matrix. Each bucket is one call of the sampler.

    With ``save_to``, a long fit loses nothing to an interrupt but the bucket in flight:
    each problem is written to its own NetCDF file in that directory as soon as its
    bucket finishes, and a rerun with the same directory loads the problems already there
    instead of fitting them again. ``bucket_size`` bounds what an interrupt can lose.

    On several devices (by default every local device of JAX's default backend), each
    bucket of two or more problems is split over them, so each device samples its own
    problems. Several hosts, or several processes, each take a ``shard`` of the buckets and
    write to one ``save_to`` directory; a final call without ``shard`` loads them all.
    Independent processes, rather than JAX's multi-process runtime, need no coordinator
    and no lockstep: each starts, finishes or fails on its own, and a lost one is replaced
    by running its shard again.

    Parameters
    ----------
    specs : sequence of ModelSpec
        The model of each problem.
    datasets : sequence of ScalingData
        The data of each problem, validated (learning curves sorted by run, then step).
    keys : sequence of jax.Array
        One PRNG key per problem.
    config : SamplerConfig
        Sampler settings shared by all problems.
    warn : bool, default True
        Issue a :class:`ConvergenceWarning` for each problem that fails a check, and an
        :class:`IdentifiabilityWarning` for each whose data barely informed a law parameter.
    retry : bool, default False
        Refit the problems that fail a check with the settings of
        :meth:`SamplerConfig.retries`, in turn, until they pass (see :func:`fit`).
    labels : sequence of str, optional
        A name for each problem, used in warnings (by default its number, law and data)
        and for its file under ``save_to``.
    save_to : str or path, optional
        Directory (created if missing) holding one file per problem: its label with
        characters other than letters, digits, ``.``, ``_`` and ``-`` made ``_``, or
        without labels its number (``problem-0001.nc``), each written atomically by
        :func:`bayescale.save_fit`. A problem whose file exists is loaded, not refitted,
        after checking that the file holds this problem: same law and law version,
        likelihood, priors, data, key, precision and sampler settings. With ``retry``,
        retries are saved too, and a loaded fit that failed its checks resumes its retries.
    bucket_size : int, optional
        At most this many problems per call of the sampler; by default a bucket holds
        every problem of its model and run count. A smaller last bucket compiles its own
        program.
    progress : bool, optional
        Show on stderr how many problems are done, which bucket runs and its step
        (compiling, sampling, summarizing), and the time spent; by default only when
        stderr is a terminal. The sampler of a bucket is one compiled call, so there is no
        finer progress within it.
    pad_to : int, default 0
        Pad every problem to at least this many rows, so that smaller data run a program
        already compiled for larger (leave-future-out refits run the full fit's program).
    devices : sequence of jax.Device, optional
        The devices a bucket's problems are split over, in equal shares (the last problem
        repeated to fill them, its copies dropped); by default ``jax.local_devices()``. A
        bucket of one problem, or a single device, runs unsharded on the first of them.
        Split problems get other draws of the same posterior than on one device (they
        agree within Monte-Carlo error): XLA compiles a device's share with roundings
        that differ in the last bit, and NUTS's adaptation amplifies the difference.
    shard : tuple of int, optional
        ``(index, count)``: fit only buckets ``index``, ``index + count``, ... of the
        buckets of the whole call, for spreading one batch over ``count`` processes. Every
        process passes all the problems, in one order, with the same ``bucket_size`` and
        ``save_to`` (a directory they all see). Each problem is then fitted in the bucket,
        and saved under the file name, it has in a single process, so on machines with the
        same devices its draws are those of a single process; a later call without
        ``shard`` loads every problem. Taking whole buckets rather than every
        ``count``-th problem is what keeps the buckets, hence the draws, the same; it
        needs ``bucket_size``, or one bucket per model would leave most processes idle.
        Retries are bucketed within a shard, so a retried fit's draws can differ from a
        single process's.
    pointwise : bool, optional
        Keep each draw's pointwise values, as in :func:`fit`; by default while a
        problem's draws x observations is at most :data:`POINTWISE_BUDGET`.

    Returns
    -------
    list of Fit or None
        In the order of the problems; with ``shard``, None for the other shards' problems.

    Raises
    ------
    DataError
        When a problem's data cannot identify its law (see :func:`check_problem`); with
        ``save_to``, when a problem's file holds another problem (the message names the
        file and what differs) or is not a readable bayescale fit. Such a file is never
        overwritten.
    ValueError
        When two labels would name the same file under ``save_to``, ``devices`` is empty,
        or ``shard`` is not ``(index, count)`` with ``0 <= index < count`` and a ``bucket_size``.
    """
    if not len(specs) == len(datasets) == len(keys):
        raise ValueError(f"got {len(specs)} specs, {len(datasets)} data sets and {len(keys)} keys")
    for spec, data in zip(specs, datasets, strict=True):  # before anything compiles or samples
        check_problem(spec, data)
    given_labels = labels
    if labels is None:
        labels = [_default_label(i, len(specs), spec, data) for i, (spec, data) in enumerate(zip(specs, datasets))]
    elif len(labels) != len(specs):
        raise ValueError(f"got {len(labels)} labels for {len(specs)} problems")
    if bucket_size is not None and bucket_size < 1:
        raise ValueError(f"bucket_size must be at least 1; got {bucket_size}")
    devices = tuple(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("got no devices; expected at least one (by default every local device)")
    mine = range(len(specs))
    if shard is not None:
        share, shares = shard
        if not 0 <= share < shares or bucket_size is None:
            raise ValueError(
                f"got shard={shard!r} and bucket_size={bucket_size!r}; expected shard=(index, count) with "
                "0 <= index < count, and a bucket_size (a shard is a share of the buckets)"
            )
        # Buckets of every problem, whatever is on disk: each process then takes the same share.
        mine = sorted(i for _, _, bucket in _buckets(mine, specs, datasets, bucket_size)[share::shares] for i in bucket)
    fits: list[Fit | None] = [None] * len(specs)
    save = None
    if len(specs) == 1:
        title, total = f"fit {specs[0].law.name} ({specs[0].likelihood})", None
    else:
        title, total = f"fit {len(specs)} problems", len(specs)
    with _progress.task(title, total=total, progress=progress) as status:
        if save_to is not None:
            from bayescale.store import load_saved_problem, problem_files, save_fit

            paths = problem_files(os.fspath(save_to), given_labels, len(specs))
            os.makedirs(save_to, exist_ok=True)
            with status.phase(f"loading saved fits from {os.fspath(save_to)}"):
                for index in mine:
                    fits[index] = load_saved_problem(
                        paths[index], specs[index], datasets[index], keys[index], config, retry
                    )
            status.advance(sum(fitted is not None for fitted in fits))

            def save(index: int, fitted: Fit) -> None:
                save_fit(fitted, paths[index])

        # Every model of the call shares one program, retries included, whatever was loaded:
        # a resumed bucket then runs the program of an uninterrupted fit and gives its draws.
        models = tuple(dict.fromkeys(specs))
        # A subset of whole buckets splits into those same buckets again.
        pending = [index for index in mine if fits[index] is None]
        batch = (models, bucket_size, save, pad_to, devices, pointwise)
        _sample(fits, pending, specs, datasets, keys, config, *batch, status)
        for step, escalated in enumerate(config.retries() if retry else (), start=1):
            # Failing fits with ``step`` runs of the sampler; one loaded with more has had this retry.
            failing = [i for i in mine if not fits[i].diagnostics.ok and len(fits[i].attempts) == step]
            if failing:
                retrying = f"retry {step} (target_accept {escalated.target_accept:g}, warmup {escalated.num_warmup})"
                with status.subtask(retrying, total=len(failing) if len(failing) > 1 else None) as retry_status:
                    _sample(fits, failing, specs, datasets, keys, escalated, *batch, retry_status)
    if warn:
        for index in mine:
            label, fitted = labels[index], fits[index]
            if not fitted.diagnostics.ok:
                warnings.warn(_convergence_message(label, fitted), ConvergenceWarning, stacklevel=external_stacklevel())
            if fitted.diagnostics.weakly_identified:
                message = _identifiability_message(label, fitted)
                warnings.warn(message, IdentifiabilityWarning, stacklevel=external_stacklevel())
    return fits


def _default_label(index: int, count: int, spec: ModelSpec, data: ScalingData) -> str:
    """How a warning names a problem of :func:`fit_problems` when the caller gave no label."""
    what = f"law {spec.law.name!r} ({spec.likelihood} likelihood) on {len(data)} rows of {data.source}"
    return f"fit of {what}" if count == 1 else f"problem {index + 1} of {count} (fit of {what})"


def _identifiability_message(label: str, fitted: Fit) -> str:
    """Word the warning for a fit whose data barely informed some of the law's parameters."""
    weak = fitted.diagnostics.weakly_identified
    names = ", ".join(f"{name} (contraction {fitted.summary[name]['contraction']:.2f})" for name in weak)
    return (
        f"{label}: the data taught the posterior almost nothing about {names}; each 90% interval is still "
        f"more than 95% as wide as the prior's, so these parameters, and any forecast that leans on them, "
        "come from the prior. Add runs that constrain them (for an irreducible loss, runs near "
        "saturation; for an exponent, more decades of N or D), give them priors from outside knowledge "
        "(Law.with_priors), or fit a law without them"
    )


def _convergence_message(label: str, fitted: Fit) -> str:
    """Word the warning for a fit that failed its checks: what failed, the likely cause, the next step."""
    attempts = fitted.attempts
    message = f"{label} did not pass its sampler checks: " + "; ".join(fitted.diagnostics.problems)
    cause = (
        "a parameter the data cannot identify, or a prior in conflict with the data: compare each "
        "parameter's posterior with its prior, then tighten or move that prior, or fit a simpler law"
    )
    if len(attempts) > 1:
        settings = ", ".join(f"{a.config.target_accept:g} (warmup {a.config.num_warmup})" for a in attempts)
        return (
            f"{message}. It failed at every setting tried (target_accept {settings}), so the settings are "
            f"unlikely to be the cause; the likely cause is {cause}"
        )
    return (
        f"{message}. Next step: refit with a higher target_accept and a longer warmup (retry=True does this, "
        f"on the command line --retry); if the checks still fail, the likely cause is {cause}"
    )


def _buckets(which, specs, datasets, bucket_size) -> list[tuple[ModelSpec, int, list[int]]]:
    """Split the problems ``which`` into buckets: ``(model, padded run count, problems)`` each.

    Problems of one model and padded run count share a bucket, in order, at most
    ``bucket_size`` of them (by default all).
    """
    groups: dict[tuple[ModelSpec, int], list[int]] = {}
    for index in which:
        runs = run_count(specs[index], datasets[index])
        groups.setdefault((specs[index], 1 if runs == 1 else padded_size(runs, minimum=2)), []).append(index)
    return [
        (spec, runs_size, members[start : start + (bucket_size or len(members))])
        for (spec, runs_size), members in groups.items()
        for start in range(0, len(members), bucket_size or len(members))
    ]


def _sample(
    fits, which, specs, datasets, keys, config, models, bucket_size, save, pad_to, devices, pointwise, status
) -> None:
    """Run the sampler with ``config`` on the problems ``which`` and put their fits in ``fits``.

    Each fit follows the attempts of the one it replaces, if any. ``models`` are the
    models of the compiled program; ``save(index, fit)``, if given, is called for every
    fit as soon as its bucket finishes. ``status`` (a progress task) counts the fits done.
    ``pointwise`` as in :func:`fit_problems`.
    """
    buckets = _buckets(which, specs, datasets, bucket_size)
    for number, (spec, runs_size, bucket) in enumerate(buckets, start=1):
        earlier = [fits[index].attempts if fits[index] is not None else () for index in bucket]
        label = f"bucket {number}/{len(buckets)}: {spec.law.name} x {len(bucket)}"
        with status.subtask(label) if len(buckets) > 1 else contextlib.nullcontext(status) as bucket_status:
            group = (runs_size, config, earlier, pad_to, devices, pointwise, bucket_status)
            results = _fit_group(models, spec, datasets, keys, bucket, *group)
            for index, result in zip(bucket, results, strict=True):
                fits[index] = result
                if save is not None:
                    save(index, result)
                status.advance()


def bucket_inputs(unique, spec, datasets, keys, members, runs_size, pad_to=0, multiple=1):
    """Return the sampler's inputs for the problems ``members`` (all of model ``spec``), padded to one shape.

    With ``multiple`` > 1 the batch repeats its last problem until its size is a multiple
    of it (for a split over that many devices); the repeats' draws are to be dropped.

    Returns
    -------
    args : list
        Each problem's own model arguments (for summarizing its draws).
    call : tuple
        ``(keys, args, which)`` for the program of :func:`bayescale._sampler.compiled_sampler`
        over the models ``unique``: stacked keys, stacked arguments with every model's
        inputs, and the index of ``spec``.
    """
    size = max(padded_size(max(len(datasets[i]), pad_to)) for i in members)
    args = [model_args(spec, datasets[i], size=size, runs_size=runs_size) for i in members]
    uniform = [_with_all_inputs(a, unique) for a in args]
    problem_keys = [keys[i] for i in members]
    extra = -len(members) % multiple
    uniform += uniform[-1:] * extra
    problem_keys += problem_keys[-1:] * extra
    batch = jax.tree.map(lambda *leaves: jnp.stack(leaves), *uniform)
    which = jnp.asarray(unique.index(spec), dtype=jnp.int32)
    return args, (jnp.stack(problem_keys), batch, which)


def _fit_group(unique, spec, datasets, keys, members, runs_size, config, earlier, pad_to, devices, pointwise, status):
    """Fit the problems ``members``, all of model ``spec``, as one call of the program of ``unique``.

    With two or more ``devices`` and problems, the problems are split over the devices,
    their number padded to a multiple of the devices' by repeating the last problem (its
    copies' draws are dropped); otherwise the call runs unsharded on ``devices[0]``.
    ``status`` (a progress task) shows the step: compiling (or finding the program in a
    cache), sampling, then summarizing the bucket (its chain statistics in one pass).
    """
    sharded = len(devices) > 1 and len(members) > 1
    multiple = len(devices) if sharded else 1
    args, call = bucket_inputs(unique, spec, datasets, keys, members, runs_size, pad_to, multiple)
    if not sharded and devices[0] != jax.devices()[0]:
        call = jax.device_put(call, devices[0])
    with status.phase("compiling"):
        program = sampler_program(unique, config, *call, devices=devices if sharded else ())
    sampling = f"sampling {config.num_chains} chains x ({config.num_warmup} warmup + {config.num_samples} draws)"
    with status.phase(sampling):
        raw = jax.block_until_ready(program(*call))
    # Onto the host: slicing out each problem is then free (device slices cost ~0.4 ms each),
    # and a sharded run's post-processing runs on the default device.
    raw = jax.device_get(raw)
    with status.phase("summarizing"):
        idatas = [
            problem_idata(spec, datasets[index], args[position], raw, position, config, keys[index], pointwise)
            for position, index in enumerate(members)
        ]
        columns = batch_chain_columns(idatas, summary_names(spec)) or [None] * len(idatas)
    for position, index in enumerate(members):
        options = {"earlier": earlier[position], "columns": columns[position]}
        yield _assemble(spec, datasets[index], idatas[position], config, **options)


def problem_idata(spec, data, args, raw, position, config, key, pointwise=None):
    """Return the ArviZ data of problem ``position`` of a bucket's draws ``raw``.

    Its parameters, sampler statistics and metadata, and with ``pointwise`` (by default
    while draws x observations is at most :data:`POINTWISE_BUDGET`) the expected log loss
    and log-likelihood of every draw at every observation; ``args`` are the problem's own
    model arguments (see :func:`bucket_inputs`).
    """
    dim = model_dim(spec, args)
    z = raw.z[position, ..., :dim].reshape(-1, dim)
    if pointwise is None:
        pointwise = len(z) * len(data) <= POINTWISE_BUDGET
    sites, log_lik = compiled_postprocess(spec, pointwise)(args, z)
    stats = {
        name: getattr(raw, name)[position]
        for name in ("diverging", "n_steps", "accept_prob", "energy", "potential_energy", "step_size")
    }
    return _to_idata(spec, data, sites, log_lik, stats, _metadata(spec, data, config, key))


def _with_all_inputs(args, specs):
    """Give every problem the inputs of every model in the batch (zeros where unused).

    The batch then stacks into one pytree.
    """
    inputs, log_loss, mask, runs = args
    names = dict.fromkeys(name for spec in specs for name in spec.law.inputs)
    full = {name: inputs.get(name, jnp.ones_like(log_loss)) for name in names}
    return full, log_loss, mask, runs


def summary_names(spec: ModelSpec) -> list[str]:
    """Return the variables a fit's summary holds: the law's parameters, its derived quantities, the noise."""
    return [*spec.law.priors, *spec.law.derived, *spec.noise]


def _assemble(
    spec: ModelSpec, data: ScalingData, idata, config: SamplerConfig, *, earlier: Sequence[Attempt] = (), columns=None
) -> Fit:
    """Summarise and diagnose draws into a :class:`Fit`, after the ``earlier`` attempts.

    ``columns``, if given, are the draws' :func:`~bayescale.diagnostics.chain_columns`,
    computed for a whole batch at once. The attempts are also written to the attributes
    of ``idata`` (new, or freshly loaded), so that they are saved with it.
    """
    law = spec.law
    priors = spec.priors
    summary = summarize(idata, summary_names(spec), priors, columns)
    # The sampler is judged on what it sampled; derived constants can be heavy-tailed
    # transforms (e^(1/a)) whose moments say nothing about mixing.
    on_sampled = {name: row for name, row in summary.items() if name.split("[")[0] in priors}
    tree_cap = config.max_tree_depth if config.fixed_steps is None else None
    diagnostics = diagnose(
        idata, on_sampled, tree_cap, law_parameters=tuple(law.priors), target_accept=config.target_accept
    )
    attempts = (*earlier, Attempt(config, diagnostics))
    _arviz.set_attrs(idata, attempts=json.dumps([attempt.to_dict() for attempt in attempts]))
    return Fit(spec, data, idata, summary, diagnostics, config, attempts)
