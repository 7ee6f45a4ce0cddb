"""Fit a scaling law to a table of runs with NUTS: :func:`fit` returns an immutable :class:`Fit`."""

from __future__ import annotations

import dataclasses
import datetime
import json
import warnings
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayescale import _arviz
from bayescale._sampler import compiled_postprocess, compiled_sampler
from bayescale.config import SamplerConfig
from bayescale.data import CANONICAL_COLUMNS, ScalingData, read_table
from bayescale.diagnostics import Diagnostics, diagnose, summarize
from bayescale.errors import ConvergenceWarning
from bayescale.law import LIKELIHOODS, Law, derived_quantities, repr_prior, resolve_law

__all__ = ["Fit", "fit", "padded_size"]

#: Version of the layout of a saved fit; bumped when a saved file could be misread.
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class Fit:
    """The posterior of a law given data, with its diagnostics.

    Attributes
    ----------
    law : Law
        The law that was fitted.
    likelihood : str
        The likelihood on log loss (a key of :data:`bayescale.law.LIKELIHOODS`).
    data : ScalingData
        The rows the law was fitted to.
    idata : arviz.InferenceData or xarray.DataTree
        Draws (``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``,
        ``constant_data``) and metadata in its attributes.
    summary : dict
        Per scalar parameter: mean, sd, median, q05, q95, r_hat, ess_bulk, ess_tail, mcse_mean.
    diagnostics : Diagnostics
        Sampler health; ``diagnostics.ok`` is false when a check failed.
    config : SamplerConfig
        The sampler settings used.
    """

    law: Law
    likelihood: str
    data: ScalingData
    idata: Any
    summary: Mapping[str, Mapping[str, float]]
    diagnostics: Diagnostics
    config: SamplerConfig

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws, dims (chain, draw, ...)."""
        return _arviz.group(self.idata, "posterior")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The sampled parameters: the law's, then the likelihood's noise parameters."""
        return (*self.law.priors, *LIKELIHOODS[self.likelihood].noise)

    def draws(self) -> dict[str, np.ndarray]:
        """Sampled parameters, each flattened over chains and draws."""
        posterior = self.posterior
        return {name: np.asarray(posterior[name]).reshape(-1) for name in self.parameter_names}

    @property
    def num_draws(self) -> int:
        """Total posterior draws (chains times draws per chain)."""
        sizes = self.posterior.sizes
        return sizes["chain"] * sizes["draw"]

    def save(self, path: str) -> None:
        """Save to NetCDF (atomically); reload with :func:`bayescale.load_fit`."""
        from bayescale.store import save_fit

        save_fit(self, path)


def padded_size(n: int) -> int:
    """Round ``n`` up to a quarter-octave bucket (8, 10, 12, 14, 16, 20, ..., 256, 320, ...).

    Data padded to these sizes reuse compiled programs for tables of similar length, at
    most 25% of the work spent on padding.
    """
    if n <= 8:
        return 8
    octave = 1 << (n - 1).bit_length() - 1
    return next(octave * m // 4 for m in (4, 5, 6, 7, 8) if octave * m // 4 >= n)


def model_args(law: Law, data: ScalingData, *, pad: bool = True):
    """The model's arguments ``(inputs, log_loss, mask)`` as device arrays, padded.

    Padding repeats the first row (a valid point) and masks it out of the likelihood.
    """
    n = len(data)
    size = padded_size(n) if pad else n
    index = np.concatenate([np.arange(n), np.zeros(size - n, dtype=np.int64)])
    dtype = jnp.result_type(float)
    inputs = {name: jnp.asarray(data[name][index], dtype=dtype) for name in law.inputs}
    log_loss = jnp.asarray(data.log_loss[index], dtype=dtype)
    mask = jnp.asarray(np.arange(size) < n)  # built in NumPy: no compile for a comparison
    return inputs, log_loss, mask


def _versions() -> dict[str, str]:
    return {f"{package}_version": metadata.version(package) for package in ("bayescale", "jax", "numpyro", "arviz")}


def _metadata(law, likelihood, data, config, key) -> dict[str, Any]:
    """Attributes saved with a fit: enough to reproduce it and to check a reload."""
    return {
        "bayescale_format": FORMAT_VERSION,
        "law": law.name,
        "law_version": law.version,
        "likelihood": likelihood,
        "priors": json.dumps({name: repr_prior(prior) for name, prior in law.priors.items()}),
        "data_source": data.source,
        "data_sha256": data.fingerprint(),
        "column_mapping": json.dumps(dict(data.mapping)),
        "data_notes": json.dumps(list(data.notes)),
        "sampler_config": json.dumps(dataclasses.asdict(config)),
        "key": json.dumps(np.asarray(jax.random.key_data(key)).tolist()),
        "x64": int(jax.config.jax_enable_x64),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **_versions(),
    }


def _constant_data(data: ScalingData) -> dict[str, np.ndarray]:
    """Every canonical column of the data (the law's inputs and the rest), for the record."""
    columns = {name: values.astype(str) if values.dtype == object else values for name, values in data.columns.items()}
    return {**columns, "row": np.asarray(data.rows).astype(str)}


def _to_idata(law, data, sites, log_lik, stats, attrs):
    """Assemble ArviZ data from flat draws and per-iteration sampler statistics.

    The law's derived quantities are added to the posterior. ``sites`` and ``log_lik`` lead with one axis over all draws (chain-major); ``stats``
    holds (chain, draw) arrays ``diverging``, ``n_steps``, ``accept_prob``, ``energy``,
    ``potential_energy``, and the per-chain ``step_size``. Observation axes are cut to the
    data's length, dropping padding.
    """
    n = len(data)
    shape = np.shape(stats["diverging"])
    posterior = {}
    for name, values in {**sites, **derived_quantities(law, {name: sites[name] for name in law.priors})}.items():
        values = np.asarray(values).reshape(*shape, *np.shape(values)[1:])
        posterior[name] = values[..., :n] if name == "mu" else values
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
    groups = {
        "posterior": posterior,
        "sample_stats": sample_stats,
        "log_likelihood": {"log_loss": np.asarray(log_lik).reshape(*shape, -1)[..., :n]},
        "observed_data": {"log_loss": data.log_loss},
        "constant_data": _constant_data(data),
    }
    dims = {"mu": ["obs"], "log_loss": ["obs"], **{name: ["obs"] for name in groups["constant_data"]}}
    return _arviz.from_groups(groups, dims, attrs)


def fit(
    law: Law | str,
    data: Any,
    *,
    key: jax.Array,
    likelihood: str = "student_t",
    num_warmup: int | None = None,
    num_samples: int | None = None,
    num_chains: int | None = None,
    target_accept: float | None = None,
    config: SamplerConfig | None = None,
    mapping: Mapping[str, str] | None = None,
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
    num_warmup, num_samples, num_chains, target_accept : optional
        Override the corresponding :class:`SamplerConfig` fields.
    config : SamplerConfig, optional
        Sampler settings; defaults to ``SamplerConfig()``.
    mapping : Mapping[str, str], optional
        Column mapping when ``data`` is read here.

    Returns
    -------
    Fit

    Raises
    ------
    DataError
        When the data lack the law's inputs or hold invalid values.

    Warns
    -----
    ConvergenceWarning
        When a diagnostic fails; the message says what to try.

    Examples
    --------
    >>> import jax, bayescale as bs
    >>> data = bs.load_example("chinchilla")
    >>> result = bs.fit("chinchilla", data, key=jax.random.key(0), likelihood="laplace")  # doctest: +SKIP
    """
    law = resolve_law(law)
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {', '.join(LIKELIHOODS)}")
    if not isinstance(data, ScalingData):
        data = read_table(data, mapping, columns=[name for name in law.inputs if name not in CANONICAL_COLUMNS])
    data.require((*law.inputs, "loss"), f"law {law.name!r}")
    config = (config or SamplerConfig()).replace(
        num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains, target_accept=target_accept
    )
    args = model_args(law, data)
    raw = jax.block_until_ready(compiled_sampler(law, likelihood, config)(key, args))
    sites, log_lik = compiled_postprocess(law, likelihood)(args, raw.z.reshape(-1, raw.z.shape[-1]))
    stats = {name: getattr(raw, name) for name in ("diverging", "n_steps", "accept_prob", "energy", "potential_energy")}
    idata = _to_idata(law, data, sites, log_lik, {**stats, "step_size": raw.step_size}, _metadata(law, likelihood, data, config, key))
    return _assemble(law, likelihood, data, idata, config)


def _assemble(law, likelihood, data, idata, config, *, warn: bool = True) -> Fit:
    """Summarise and diagnose draws into a :class:`Fit`, warning when a check fails."""
    sampled = (*law.priors, *LIKELIHOODS[likelihood].noise)
    summary = summarize(idata, [*law.priors, *law.derived, *LIKELIHOODS[likelihood].noise])
    # The sampler is judged on what it sampled; derived constants can be heavy-tailed
    # transforms (e^(1/a)) whose moments say nothing about mixing.
    diagnostics = diagnose(idata, {name: summary[name] for name in sampled}, config.max_tree_depth)
    if warn and not diagnostics.ok:
        warnings.warn(
            f"fit of law {law.name!r} did not pass its checks: " + "; ".join(diagnostics.problems),
            ConvergenceWarning,
            stacklevel=3,
        )
    return Fit(law, likelihood, data, idata, summary, diagnostics, config)
