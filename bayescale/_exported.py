"""Traced programs kept on disk, so that a new process skips tracing as well as compiling.

JAX's persistent compilation cache is keyed on the traced program, so every new process
traces the sampler again (seconds: NUTS's nested while-loops under two levels of vmap)
before it can find the compiled one. Here the traced program is exported
(:mod:`jax.export`, StableHLO) and written beside that cache; a later process reads it
back in milliseconds and compiles it, which the persistent cache then serves.

A stored program is found again by a fingerprint of everything it was traced from: the
models' own traced potentials (so an edited law or prior is a new program), bayescale's
source, the sampler settings, the argument shapes and types, and the versions of JAX,
jaxlib and NumPyro with the backend. Programs are stored only while JAX's persistent
cache is on (:func:`bayescale.enable_compilation_cache`, which the CLI calls).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import jax
import jaxlib
import numpy as np
import numpyro

# The stored programs' subfolder of JAX's cache folder (JAX's cache keeps its entries as files).
PROGRAMS_FOLDER = "bayescale-programs"


def program_folder() -> Path | None:
    """Return the folder of stored programs, or None while JAX's persistent compilation cache is off."""
    cache = jax.config.jax_compilation_cache_dir
    return Path(cache) / PROGRAMS_FOLDER if cache else None


def _source_digest() -> str:
    """Digest of bayescale's own modules: a change to the sampler is a new program."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(name: str, traced: Iterable, settings: object, call) -> str:
    """Key of the program ``name`` built from the ``traced`` model functions, for ``call``'s shapes.

    Parameters
    ----------
    name : str
        Which program (the sampler, the post-processing).
    traced : iterable of ClosedJaxpr
        The model functions the program is built from, traced for one problem: their text
        and constants identify the laws, priors and likelihood.
    settings : object
        Settings baked into the program; its ``repr`` must name all of them.
    call : pytree of arrays
        The program's arguments (only their shapes and types are read).

    Returns
    -------
    str
        A hex digest.
    """
    digest = hashlib.sha256()
    for part in (
        name,
        _source_digest(),
        repr(settings),
        str(jax.tree.structure(call)),
        str([(leaf.shape, str(leaf.dtype)) for leaf in jax.tree.leaves(call)]),
        jax.__version__,
        jaxlib.__version__,
        numpyro.__version__,
        jax.default_backend(),
        jax.devices()[0].device_kind,
        str(jax.numpy.result_type(float)),  # float32, or float64 under x64 (a context, not only a flag)
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    for jaxpr in traced:
        digest.update(str(jaxpr).encode())
        for constant in jaxpr.consts:
            digest.update(np.asarray(constant).tobytes())
    return digest.hexdigest()


def stored_program(key: str, export: Callable[[], jax.export.Exported], folder: Path) -> Callable:
    """Return the callable of the program stored under ``key`` in ``folder``, exporting and storing it first if absent.

    ``export()`` traces and exports the program; it runs only when no readable program is
    stored under ``key`` (an unreadable one, left by another version of JAX, is replaced).
    Writes go through a temporary file and a rename, so processes that store the same
    program at once (shards of one call) never read a partial file.

    Returns
    -------
    callable
        The deserialized program's ``call``, to be jitted by the caller.
    """
    path = folder / f"{key}.jaxexport"
    if path.exists():
        try:
            return jax.export.deserialize(bytearray(path.read_bytes())).call
        except Exception:  # written by an incompatible JAX, or damaged: export it again below
            pass
    exported = export()
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".partial")
    with os.fdopen(handle, "wb") as file:
        file.write(exported.serialize())
    os.replace(temporary, path)
    return exported.call
