"""The one place bayescale calls ArviZ, for both the 0.x line and the 1.x line.

ArviZ 0.x returns ``InferenceData``; ArviZ 1.x (arviz-base, arviz-stats) returns an xarray
``DataTree``. Everything else in bayescale goes through the functions here, which take and
return plain xarray Datasets, NumPy arrays and dicts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

with warnings.catch_warnings():
    # ArviZ 0.23 announces its 1.x refactor with a FutureWarning on import; users of
    # bayescale cannot act on it.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

__all__ = [
    "ARVIZ_1",
    "ess",
    "from_groups",
    "get_attrs",
    "group",
    "has_group",
    "load",
    "loo_pit",
    "loo_pointwise",
    "mcse",
    "pareto_khat",
    "rhat",
    "save",
    "set_attrs",
]

ARVIZ_1 = int(az.__version__.split(".")[0]) >= 1


def from_groups(
    groups: Mapping[str, Mapping[str, np.ndarray]],
    dims: Mapping[str, Sequence[str]],
    attrs: Mapping[str, Any],
    coords: Mapping[str, Sequence] | None = None,
):
    """Build ArviZ data from groups of arrays.

    Parameters
    ----------
    groups : Mapping[str, Mapping[str, numpy.ndarray]]
        Group name (``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``,
        ``constant_data``, ``predictions``) to variables. Sampled groups lead with
        (chain, draw).
    dims : Mapping[str, sequence of str]
        Dimension names after (chain, draw) for each variable that has them.
    attrs : Mapping[str, Any]
        Attributes stored on the root, saved with the data.
    coords : Mapping[str, sequence], optional
        Coordinate values for named dimensions.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
    """
    datasets = {
        name: _dataset(variables, dims, coords or {}, sampled=name in _SAMPLED_GROUPS)
        for name, variables in groups.items()
        if variables
    }
    if ARVIZ_1:
        data = xr.DataTree.from_dict(datasets)
    else:
        data = az.InferenceData(**datasets)
    data.attrs = dict(attrs)
    return data


#: Groups whose variables lead with (chain, draw).
_SAMPLED_GROUPS = ("posterior", "sample_stats", "log_likelihood", "posterior_predictive", "prior", "predictions")


def _dataset(variables, dims, coords, sampled: bool) -> xr.Dataset:
    """One group as ArviZ's ``from_dict`` lays it out, built directly (about 4x faster).

    Dimensions not named in ``dims`` are ``{variable}_dim_{i}``, and every dimension
    without given coordinates gets 0, 1, ...; ArviZ 1.x also records the sample
    dimensions in the group's attributes.
    """
    lead = ["chain", "draw"] if sampled else []
    data_vars, sizes = {}, {}
    for name, values in variables.items():
        values = np.asarray(values)
        named = list(dims.get(name, ()))
        names = lead + named + [f"{name}_dim_{axis}" for axis in range(len(named), values.ndim - len(lead))]
        data_vars[name] = (names, values)
        sizes.update(zip(names, values.shape))
    index = {dim: coords[dim] if dim in coords else np.arange(size) for dim, size in sizes.items()}
    dataset = xr.Dataset(data_vars, coords=index)
    if ARVIZ_1:
        dataset.attrs["sample_dims"] = lead
    return dataset


def group(data, name: str) -> xr.Dataset:
    """Return the Dataset of group ``name``."""
    return data[name].to_dataset() if ARVIZ_1 else getattr(data, name)


def has_group(data, name: str) -> bool:
    """Whether ``data`` has the group ``name``."""
    return name in data.children if ARVIZ_1 else name in data.groups()


def get_attrs(data) -> dict[str, Any]:
    """Return the root attributes (metadata saved with the data)."""
    return dict(data.attrs)


def set_attrs(data, **attrs: Any) -> None:
    """Add or replace root attributes of ``data`` (saved with it)."""
    data.attrs.update(attrs)


def _arrays(result, var_names: Sequence[str]) -> dict[str, np.ndarray]:
    dataset = result.to_dataset() if hasattr(result, "to_dataset") else result
    return {name: np.asarray(dataset[name]) for name in var_names}


def rhat(data, var_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat (Vehtari et al. 2021) of posterior variables (scalar or not)."""
    return _arrays(az.rhat(data, var_names=list(var_names), method="rank"), var_names)


#: Quantiles whose indicator ESS is the tail ESS (Vehtari et al. 2021). ArviZ 0.x uses these by
#: default; ArviZ 1.x takes them from its credible-interval setting (0.89 by default).
TAIL_QUANTILES = (0.05, 0.95)


def ess(data, var_names: Sequence[str], method: str = "bulk") -> dict[str, np.ndarray]:
    """Effective sample size (``bulk`` or ``tail``, at the 5% and 95% quantiles) of posterior variables."""
    prob = {"prob": TAIL_QUANTILES} if method == "tail" else {}
    return _arrays(az.ess(data, var_names=list(var_names), method=method, **prob), var_names)


def mcse(data, var_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Monte-Carlo standard error of the posterior mean of posterior variables."""
    return _arrays(az.mcse(data, var_names=list(var_names), method="mean"), var_names)


def loo_pointwise(log_lik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSIS-LOO pointwise elpd and Pareto k from a (chains, draws, observations) log-likelihood.

    The relative efficiency is taken as 1: the draws of the samplers here have bulk ESS
    close to their number.
    """
    log_lik = np.asarray(log_lik, dtype=np.float64)
    groups = {"posterior": {"_": np.zeros(log_lik.shape[:2])}, "log_likelihood": {"y": log_lik}}
    data = from_groups(groups, {"y": ["obs"]}, {})
    with warnings.catch_warnings():
        # ArviZ warns when k is high; callers report k themselves.
        warnings.simplefilter("ignore", UserWarning)
        result = az.loo(data, pointwise=True, reff=1.0)
    elpd = result.elpd_i if ARVIZ_1 else result.loo_i
    return np.asarray(elpd), np.asarray(result.pareto_k)


def loo_pit(log_lik: np.ndarray, cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LOO-PIT values and Pareto k from a log-likelihood and each draw's predictive CDF at the data.

    The PIT of observation i under its leave-one-out predictive is ``sum_s w_is F_s(y_i)``,
    with ``w_is`` the Pareto-smoothed importance weights of draw s for leaving i out and
    ``F_s`` the CDF of the observation model at draw s. ``arviz.loo_pit`` counts one
    predictive draw per s below ``y_i`` instead; averaging the CDF has the same
    expectation without that Monte-Carlo noise, and needs no random key. The relative
    efficiency is taken as 1, as in :func:`loo_pointwise`.

    Parameters
    ----------
    log_lik : numpy.ndarray
        (chains, draws, observations) pointwise log-likelihood.
    cdf : numpy.ndarray
        (chains, draws, observations) CDF of each observation's predictive at each draw,
        evaluated at the observed value.

    Returns
    -------
    pit : numpy.ndarray
        (observations,) LOO-PIT values in [0, 1].
    pareto_k : numpy.ndarray
        (observations,) Pareto k of the importance weights.
    """
    log_lik = np.asarray(log_lik, dtype=np.float64)
    if ARVIZ_1:  # arviz-stats takes the log-likelihood and returns weights (obs, chain, draw)
        weights = xr.DataArray(log_lik, dims=("chain", "draw", "obs"))
        log_weights, pareto_k = weights.azstats.psislw(r_eff=1.0, dim=["chain", "draw"])
        log_weights = np.asarray(log_weights.transpose("obs", "chain", "draw")).reshape(log_lik.shape[-1], -1)
    else:  # ArviZ 0.x takes the log importance ratios, samples last
        log_weights, pareto_k = az.psislw(-log_lik.reshape(-1, log_lik.shape[-1]).T, reff=1.0)
    log_weights = log_weights - log_weights.max(axis=1, keepdims=True)
    weights = np.exp(log_weights) / np.exp(log_weights).sum(axis=1, keepdims=True)
    cdf = np.asarray(cdf, dtype=np.float64).reshape(-1, log_lik.shape[-1]).T
    return np.clip(np.sum(weights * cdf, axis=1), 0.0, 1.0), np.asarray(pareto_k)


def pareto_khat(draws: np.ndarray) -> np.ndarray:
    """Pareto k-hat of the heavier tail of each column of (draws, columns) Monte-Carlo draws.

    The shape of a generalised Pareto distribution fitted to the ``3 sqrt(S)`` most extreme
    of the S draws on each side (Vehtari et al. 2024, "Pareto smoothed importance
    sampling"), relative efficiency 1 as in :func:`loo_pointwise`. Above 0.5 the draws'
    variance is infinite, at 1 and above their mean. A column whose draws are all equal
    has no tail (-inf).
    """
    # k is invariant to shift and scale: measured from the median in units of the farthest
    # draw, the fits cannot overflow even on draws at the float range's edge.
    beyond = np.asarray(draws, dtype=np.float64) - np.median(draws, axis=0)
    reach = np.max(np.abs(beyond), axis=0)
    khat = np.full(beyond.shape[1], -np.inf)
    spread = reach > 0
    if spread.any():
        khat[spread] = _pareto_khat(beyond[:, spread] / reach[spread])
    return khat


def _pareto_khat(draws: np.ndarray) -> np.ndarray:
    """k-hat of each column of draws centred on their median and scaled into [-1, 1]."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # Extremely heavy tails overflow inside the fits; their k comes out large or inf.
        warnings.simplefilter("ignore", RuntimeWarning)
        if ARVIZ_1:
            return np.array([_pareto_khat_arviz_stats(column) for column in draws.T])
        # ArviZ 0.x fits only the right tail of importance weights: the draws on each side
        # of the median (0), by their distance from it, are passed as weights.
        beyond = np.concatenate([draws, -draws], axis=1).T
        log_weights = np.where(beyond > 0, np.log(beyond), -np.inf)
        _, both = az.psislw(log_weights, reff=1.0)
        return np.maximum(*np.split(np.asarray(both), 2))


def _pareto_khat_arviz_stats(column: np.ndarray) -> float:
    values = xr.DataArray(column[None], dims=("chain", "draw"))
    try:
        return float(values.azstats.pareto_khat(sample_dims=["chain", "draw"], r_eff=1.0, tail="both"))
    except ValueError:
        # A tail of identical draws: draws clipped at the float range (as ArviZ 0.x, inf).
        return np.inf


def save(data, path: str) -> None:
    """Write ``data`` to a NetCDF file at ``path`` (not atomic; see bayescale.store)."""
    data.to_netcdf(path, engine="h5netcdf")


def load(path: str):
    """Read ArviZ data from a NetCDF file fully into memory (no open file handle kept)."""
    with warnings.catch_warnings():
        # h5netcdf warns about HDF5 datasets without dimension names ("phony_dims"): files
        # bayescale writes have none, and a foreign file is refused by the caller anyway.
        warnings.simplefilter("ignore", UserWarning)
        # Read everything and close the file: xarray otherwise keeps it open, so that a
        # loaded fit could change under its user when the file is replaced (xarray reopens
        # files by path) and the file could not be rewritten in place. ArviZ 0.x also
        # reads lazily by default.
        if ARVIZ_1:
            with xr.open_datatree(path, engine="h5netcdf") as tree:
                return tree.load()
        with az.rc_context({"data.load": "eager"}):
            return az.InferenceData.from_netcdf(path, engine="h5netcdf")
