"""Save fits to NetCDF and load them back, atomically and with a version check.

A saved fit is its ArviZ data: draws, sampler statistics, the data it was fitted to (in
``constant_data`` and ``observed_data``) and metadata in the root attributes (law name and
version, likelihood, priors, column mapping, data hash, key, sampler settings and every
attempt of a retried fit, versions of bayescale, jax, numpyro and arviz). Loading rebuilds the :class:`~bayescale.Fit` from
these alone; the summary and diagnostics are recomputed from the same draws, so they are
identical.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

import numpy as np

from bayescale import _arviz
from bayescale.config import SamplerConfig
from bayescale.data import ScalingData
from bayescale.errors import DataError
from bayescale.inference import FORMAT_VERSION, Attempt, Fit, _assemble
from bayescale.law import Law, ModelSpec, resolve_law

__all__ = ["atomic_write", "load_fit", "save_fit"]


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


def _data_from_groups(idata, attrs) -> ScalingData:
    constant = _arviz.group(idata, "constant_data")
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
        When the file is missing, is not a bayescale fit, was written in a newer format,
        or was fitted with another version of the law.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        idata = _arviz.load(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable NetCDF file ({error})") from None
    attrs = _arviz.get_attrs(idata)
    if "bayescale_format" not in attrs:
        raise DataError(f"{path}: not a bayescale fit (no bayescale_format attribute)")
    if int(attrs["bayescale_format"]) > FORMAT_VERSION:
        raise DataError(
            f"{path}: written in format {attrs['bayescale_format']} by bayescale {attrs.get('bayescale_version')}; "
            f"this bayescale reads format {FORMAT_VERSION} and older; upgrade bayescale"
        )
    law = law or resolve_law(attrs["law"])
    if law.name != attrs["law"] or law.version != attrs["law_version"]:
        raise DataError(
            f"{path}: fitted with law {attrs['law']!r} version {attrs['law_version']}, but the law given is "
            f"{law.name!r} version {law.version}; refit, or pass the matching law with law="
        )
    config = SamplerConfig(**json.loads(attrs["sampler_config"]))
    data = _data_from_groups(idata, attrs)
    spec = ModelSpec(law, attrs["likelihood"], bool(int(attrs.get("correlated", 0))))
    # The last attempt is the saved draws themselves, diagnosed again on assembly.
    earlier = [Attempt.from_dict(record) for record in json.loads(attrs.get("attempts", "[]"))[:-1]]
    return _assemble(spec, data, idata, config, earlier=earlier)
