"""Save fits and forecasts to NetCDF and load them back, atomically and with a version check.

A saved fit is its ArviZ data: draws, sampler statistics, the data it was fitted to (in
``constant_data`` and ``observed_data``) and metadata in the root attributes (law name and
version, likelihood, priors, column mapping, data hash, key, sampler settings and every
attempt of a retried fit, versions of bayescale, jax, numpyro and arviz). Loading rebuilds
the :class:`~bayescale.Fit` from these alone; the summary and diagnostics are recomputed
from the same draws, so they are identical.

A saved forecast is its draws (``predictions``), its targets (``constant_data``) and
attributes: the label, health and weights, the key, and the metadata of every fit behind
it. Its numbers do not depend on the law's code, so it loads whatever the law's version.

A saved extrapolation is its predictions, the checkpoints (``observed_data``), the target
steps and, in attributes, the weights and every fit's diagnostics: what a report needs to
draw its fan charts.

Fits carry the attribute ``bayescale_format``, forecasts ``bayescale_forecast_format``,
extrapolations ``bayescale_extrapolation_format``: a name per kind rather than one name
with a kind, so that a bayescale from before forecasts could be saved refuses a forecast
file as "not a bayescale fit" instead of misreading it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NamedTuple

import jax
import numpy as np

from bayescale import _arviz
from bayescale.config import SamplerConfig
from bayescale.data import ScalingData
from bayescale.diagnostics import Diagnostics
from bayescale.errors import DataError, UnknownLawError
from bayescale.extrapolate import EXTRAPOLATION_FORMAT_VERSION, Extrapolation
from bayescale.forecast import FORECAST_FORMAT_VERSION, Forecast
from bayescale.inference import FORMAT_VERSION, Attempt, Fit, _assemble, _metadata
from bayescale.law import Law, ModelSpec, resolve_law

__all__ = [
    "atomic_write",
    "load_extrapolation",
    "load_fit",
    "load_forecast",
    "load_saved",
    "save_extrapolation",
    "save_fit",
    "save_forecast",
]

# Runs of characters other than these become "_" in the file name made from a problem's
# label: the name is then valid and unquoted on every common file system.
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
# File names are cut to this length, well under the usual 255-byte limit.
_MAX_NAME = 120
# The metadata that identify a problem of a batched fit: a file saved by a run whose
# problem differs in any of these (or in sampler settings) is not that problem's fit.
_PROBLEM_ATTRS = ("law", "law_version", "likelihood", "correlated", "drift", "priors", "data_sha256", "key", "x64")


class _Kind(NamedTuple):
    """What marks a kind of saved file, and what it must hold."""

    marker: str  # the root attribute holding the format version
    version: int  # the newest format this bayescale reads (and the one it writes)
    reader: str  # the function that loads it
    groups: tuple[str, ...]


_KINDS = {
    "fit": _Kind(
        "bayescale_format",
        FORMAT_VERSION,
        "bayescale.load_fit",
        # No log_likelihood: a large fit keeps no pointwise values (fit(..., pointwise=...)).
        ("posterior", "sample_stats", "observed_data", "constant_data"),
    ),
    "forecast": _Kind(
        "bayescale_forecast_format",
        FORECAST_FORMAT_VERSION,
        "bayescale.load_forecast",
        ("predictions", "constant_data"),
    ),
    "extrapolation": _Kind(
        "bayescale_extrapolation_format",
        EXTRAPOLATION_FORMAT_VERSION,
        "bayescale.load_extrapolation",
        ("predictions", "constant_data", "observed_data"),
    ),
}


@contextlib.contextmanager
def atomic_write(path: str):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    An interrupt or error leaves any earlier file at ``path`` untouched and no partial
    file. The new file is flushed to disk before it replaces the old one, so a crash
    just after cannot leave an empty file in its place, and it gets the permissions of a
    newly created file (``mkstemp`` makes it readable by its owner only).
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    os.close(handle)
    try:
        yield temporary
        umask = os.umask(0)  # Python can read the umask only by setting it
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_fit(fit: Fit, path: str) -> None:
    """Write ``fit`` to the NetCDF file ``path``, replacing it atomically."""
    with atomic_write(path) as temporary:
        _arviz.save(fit.idata, temporary)


def save_forecast(forecast: Forecast, path: str) -> None:
    """Write ``forecast`` to the NetCDF file ``path``, replacing it atomically."""
    with atomic_write(path) as temporary:
        _arviz.save(forecast.idata, temporary)


def save_extrapolation(extrapolation: Extrapolation, path: str) -> None:
    """Write ``extrapolation`` to the NetCDF file ``path``, replacing it atomically."""
    with atomic_write(path) as temporary:
        _arviz.save(extrapolation.idata, temporary)


def _open(path: str) -> tuple[Any, dict[str, Any]]:
    """Read the ArviZ data and root attributes of a NetCDF file."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        idata = _arviz.load(path)
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: not a readable NetCDF file ({error})") from None
    return idata, _arviz.get_attrs(idata)


def _kind_of(path: str, attrs: dict[str, Any]) -> str:
    for kind, marks in _KINDS.items():
        if marks.marker in attrs:
            return kind
    raise DataError(f"{path}: not a bayescale fit, forecast or extrapolation (none of their format attributes)")


def _read(path: str, kind: str, opened: tuple[Any, dict[str, Any]] | None = None) -> tuple[Any, dict[str, Any]]:
    """Read the ArviZ data and root attributes of a bayescale file of ``kind``, format checked."""
    path = os.fspath(path)
    idata, attrs = opened or _open(path)
    expected = _KINDS[kind]
    if expected.marker not in attrs:
        for other, other_kind in _KINDS.items():
            if other_kind.marker in attrs:
                raise DataError(f"{path}: a saved bayescale {other}, not a {kind}; read it with {other_kind.reader}")
        raise DataError(f"{path}: not a bayescale {kind} (no {expected.marker} attribute)")
    try:
        found = int(attrs[expected.marker])
    except (TypeError, ValueError):
        raise DataError(f"{path}: {expected.marker} is {attrs[expected.marker]!r}, expected a whole number") from None
    if found > expected.version:
        raise DataError(
            f"{path}: {kind} written in format {found} by bayescale {attrs.get('bayescale_version', '(unknown)')}; "
            f"this bayescale ({metadata.version('bayescale')}) reads format {expected.version} and older; "
            "upgrade bayescale"
        )
    missing = [name for name in expected.groups if not _arviz.has_group(idata, name)]
    if missing:
        raise DataError(f"{path}: not a complete bayescale {kind} (no {', '.join(missing)} group)")
    return idata, attrs


def _data_from_groups(idata, attrs, group: str = "constant_data") -> ScalingData:
    constant = _arviz.group(idata, group)
    columns = {}
    for name, values in constant.data_vars.items():
        if name == "row":
            continue
        values = np.asarray(values)
        columns[name] = values.astype(object) if values.dtype.kind in "US" else values.astype(np.float64)
    rows = np.asarray(constant["row"]).astype(str)
    rows = rows.astype(np.int64) if all(label.lstrip("-").isdigit() for label in rows) else rows.astype(object)
    return ScalingData(
        columns,
        attrs["data_source"],
        rows,
        json.loads(attrs["column_mapping"]),
        tuple(json.loads(attrs["data_notes"])),
    )


def _saved_law(path: str, saved_name: str, saved_version: str, law: Law | None) -> Law:
    """Pick the law of a loaded fit: the one given or the catalogue's, of the saved version."""
    if law is None:
        try:
            law = resolve_law(saved_name)
        except UnknownLawError:
            raise DataError(
                f"{path}: fitted with law {saved_name!r}, which is not in the catalogue; pass that law with law="
            ) from None
        source = "the catalogue's law"
    else:
        source = "the law passed"
    if law.name != saved_name or law.version != saved_version:
        raise DataError(
            f"{path}: fitted with law {saved_name!r} version {saved_version}, but {source} is {law.name!r} version "
            f"{law.version}; refit the data, or pass the law of the saved version with law="
        )
    return law


def _fit_from(path: str, idata, attrs: dict[str, Any], law: Law | None) -> Fit:
    """Rebuild the :class:`Fit` saved in ``idata`` (read from ``path``) from its attributes."""
    try:
        law = _saved_law(path, attrs["law"], str(attrs["law_version"]), law)
    except KeyError as error:
        raise DataError(f"{path}: not a complete bayescale fit (no attribute {error})") from None
    try:
        config = SamplerConfig(**json.loads(attrs["sampler_config"]))
        data = _data_from_groups(idata, attrs)
        spec = ModelSpec(
            law, attrs["likelihood"], bool(int(attrs.get("correlated", 0))), bool(int(attrs.get("drift", 0)))
        )
        # The last attempt is the saved draws themselves, diagnosed again on assembly.
        earlier = [Attempt.from_dict(record) for record in json.loads(attrs.get("attempts", "[]"))[:-1]]
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a complete bayescale fit ({type(error).__name__}: {error})") from None
    return _assemble(spec, data, idata, config, earlier=earlier)


def load_fit(path: str, *, law: Law | None = None) -> Fit:
    """Load a fit saved by :meth:`Fit.save`.

    Parameters
    ----------
    path : str
        The NetCDF file.
    law : Law, optional
        The law object to attach, for a law that is not in the catalogue; by default the
        catalogue's law of the saved name.

    Returns
    -------
    Fit
        With the saved draws, data, settings and attempts; summary and diagnostics are
        recomputed from the draws, so they equal the saved fit's.

    Raises
    ------
    DataError
        When the file is missing, is not a bayescale fit (a forecast, a foreign or corrupt
        file), was written in a newer format, or was fitted with another version of the law.
    """
    idata, attrs = _read(path, "fit")
    return _fit_from(path, idata, attrs, law)


def load_forecast(path: str) -> Forecast:
    """Load a forecast saved by :meth:`Forecast.save`.

    Parameters
    ----------
    path : str
        The NetCDF file.

    Returns
    -------
    Forecast
        With the saved draws, targets, health and weights: its draws and summary equal
        the saved forecast's.

    Raises
    ------
    DataError
        When the file is missing, is not a bayescale forecast, or was written in a newer
        format.
    """
    return _forecast_from(path, *_read(path, "forecast"))


def _forecast_from(path: str, idata, attrs: dict[str, Any]) -> Forecast:
    try:
        constant = _arviz.group(idata, "constant_data")
        targets = {name: np.asarray(constant[f"target_{name}"]) for name in json.loads(attrs["targets"])}
        problems = tuple(json.loads(attrs["problems"]))
        weights = {name: float(weight) for name, weight in json.loads(attrs["weights"]).items()}
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a complete bayescale forecast ({type(error).__name__}: {error})") from None
    return Forecast(str(attrs["law"]), targets, idata, not problems, problems, weights)


def load_extrapolation(path: str) -> Extrapolation:
    """Load an extrapolation saved by :meth:`Extrapolation.save`.

    Parameters
    ----------
    path : str
        The NetCDF file.

    Returns
    -------
    Extrapolation
        With the saved predictions, checkpoints, weights, diagnostics and notes: its draws,
        summary and fan chart equal the saved extrapolation's. Its ``fits`` are empty (the
        fits' draws are not saved with it).

    Raises
    ------
    DataError
        When the file is missing, is not a bayescale extrapolation, or was written in a
        newer format.
    """
    return _extrapolation_from(path, *_read(path, "extrapolation"))


def _extrapolation_from(path: str, idata, attrs: dict[str, Any]) -> Extrapolation:
    try:
        runs = tuple(json.loads(attrs["runs"]))
        data = _data_from_groups(idata, attrs, "observed_data")
        weights = {run: dict(by_law) for run, by_law in json.loads(attrs["weights"]).items()}
        diagnostics = {
            run: {law: Diagnostics.from_dict(report) for law, report in by_law.items()}
            for run, by_law in json.loads(attrs["diagnostics"]).items()
        }
        notes = tuple(json.loads(attrs["notes"]))
        backtest = json.loads(attrs.get("backtest", "{}"))  # files from before backtests have none
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a complete bayescale extrapolation ({type(error).__name__}: {error})") from None
    return Extrapolation(runs, idata, {}, weights, data, diagnostics, notes, backtest)


def load_saved(path: str, *, law: Law | None = None) -> Fit | Forecast | Extrapolation:
    """Load any file bayescale saved: a fit, a forecast or an extrapolation, whichever it holds.

    Parameters
    ----------
    path : str
        The NetCDF file.
    law : Law, optional
        For a fit, as in :func:`load_fit`.

    Returns
    -------
    Fit, Forecast or Extrapolation

    Raises
    ------
    DataError
        When the file is missing, is not a bayescale file, or was written in a newer format.
    """
    path = os.fspath(path)
    opened = _open(path)
    kind = _kind_of(path, opened[1])
    idata, attrs = _read(path, kind, opened)
    if kind == "fit":
        return _fit_from(path, idata, attrs, law)
    return _forecast_from(path, idata, attrs) if kind == "forecast" else _extrapolation_from(path, idata, attrs)


def problem_files(directory: str, labels: Sequence[str] | None, count: int) -> list[str]:
    """Return the file of each problem of a batched fit saved to ``directory``.

    A problem's file is named by its label, each run of characters other than letters,
    digits, ``.``, ``_`` and ``-`` made one ``_``, or, without labels, by its number
    (``problem-0001.nc``).

    Raises
    ------
    ValueError
        When two problems would share a file (names compared ignoring case, for file
        systems that do).
    """
    if labels is None:
        names = [f"problem-{index + 1:04d}" for index in range(count)]
    else:
        # Leading dots would hide the file; a label with no safe character gets its number.
        names = [
            _UNSAFE_RUN.sub("_", label).strip("._")[:_MAX_NAME] or f"problem-{index + 1:04d}"
            for index, label in enumerate(labels)
        ]
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        other = first.setdefault(name.lower(), index)
        if other != index:
            raise ValueError(
                f"problems {other + 1} and {index + 1} would both be saved to {names[other]}.nc in {directory} "
                f"(labels {labels[other]!r} and {labels[index]!r}); give them labels that differ in letters or digits"
            )
    return [os.path.join(directory, f"{name}.nc") for name in names]


def load_saved_problem(
    path: str, spec: ModelSpec, data: ScalingData, key: jax.Array, config: SamplerConfig, retry: bool
) -> Fit | None:
    """Return the fit of a problem saved at ``path`` by an earlier batched fit, or None without a file.

    Parameters
    ----------
    path : str
        The problem's file (see :func:`problem_files`).
    spec, data, key, config, retry
        The problem as this call of :func:`~bayescale.inference.fit_problems` poses it.

    Returns
    -------
    Fit or None

    Raises
    ------
    DataError
        When the file is not a readable bayescale fit, or holds the fit of another problem:
        another law or law version, likelihood, priors, data, key, precision or sampler
        settings, or retries this call did not ask for. The message names what differs.
    """
    if not os.path.exists(path):
        return None
    idata, attrs = _read(path, "fit")
    expected = _metadata(spec, data, config, key)
    differences = [
        f"{name} {attrs.get(name)!r} saved, {expected[name]!r} here"
        for name in _PROBLEM_ATTRS
        if str(attrs.get(name)) != str(expected[name])
    ]
    try:
        runs = json.loads(attrs["attempts"])
        first = SamplerConfig(**runs[0]["config"])  # the settings asked for; later runs are retries
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a complete bayescale fit (no record of its sampler runs: {error})") from None
    differences += [
        f"{field.name} {getattr(first, field.name)!r} saved, {getattr(config, field.name)!r} here"
        for field in dataclasses.fields(SamplerConfig)
        if getattr(first, field.name) != getattr(config, field.name)
    ]
    if len(runs) > 1 and not retry:
        differences.append(f"retried ({len(runs)} runs of the sampler) saved, retry=False here")
    if differences:
        raise DataError(
            f"{path}: holds the fit of another problem ({'; '.join(differences)}); "
            "save to another directory, or delete the file to refit this problem"
        )
    return _fit_from(path, idata, attrs, spec.law)
