"""Shared fixtures: fixed PRNG keys, the ``slow`` marker, and shared fits.

Every random number in the suite comes from the ``key`` fixture, seeded by
``BAYESCALE_TEST_SEED`` (default 0), so a failure reproduces exactly.
"""

import os
import tempfile
import warnings

import jax
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
# The CLI turns on JAX's persistent compilation cache; keep the suite's out of the user's
# ~/.cache and away from programs compiled by earlier runs.
os.environ["BAYESCALE_CACHE_DIR"] = tempfile.mkdtemp(prefix="bayescale-test-cache-")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def key():
    """A fixed PRNG key; split it for each use within a test."""
    return jax.random.key(int(os.environ.get("BAYESCALE_TEST_SEED", 0)))


@pytest.fixture(scope="session")
def session_key():
    """The fixed key for session-scoped fits."""
    return jax.random.key(int(os.environ.get("BAYESCALE_TEST_SEED", 0)) + 1)


# The settings (law, sampler, two runs of 20 checkpoints) of every small extrapolation in
# the suite, the CLI's included (EXTRAPOLATE in tests/test_cli.py), so they share one
# compiled program.
EXTRAPOLATION_CONFIG_ARGS = {"num_warmup": 100, "num_samples": 100, "num_chains": 2}


def curve_table(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Two runs of 20 checkpoints (steps 10 to 200) of L = 2 + scale step^-0.5, 1% noise."""
    steps = np.arange(10, 201, 10)
    return {
        "run": np.repeat(["a", "b"], len(steps)),
        "step": np.tile(steps, 2),
        "loss": np.concatenate([2.0 + scale * steps**-0.5 for scale in (3.0, 2.0)]) * np.exp(rng.normal(0, 0.01, 40)),
    }


def extrapolate_small_curves():
    """pow3 extrapolated to steps 400 (run a) and 800 (run b) from two runs of 20 checkpoints."""
    import bayescale as bs
    from bayescale.extrapolate import CURVE_CONFIG, extrapolate

    # So few draws may fail the convergence checks, and the backtests' short cuts leave a
    # run's level loosely pinned; what uses it does not depend on either.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        warnings.simplefilter("ignore", bs.IdentifiabilityWarning)
        return extrapolate(
            curve_table(np.random.default_rng(0)),
            to_step={"a": 400, "b": 800},
            key=jax.random.key(0),
            law="pow3",
            config=CURVE_CONFIG.replace(**EXTRAPOLATION_CONFIG_ARGS),
        )


@pytest.fixture(scope="session")
def small_extrapolation():
    """The extrapolation of :func:`extrapolate_small_curves`, made once."""
    return extrapolate_small_curves()


def held_back_table() -> dict[str, np.ndarray]:
    """:func:`curve_table`'s runs logged on to their targets (a to step 400, b to 800).

    The later checkpoints come after every row of the original table, which stays as it
    was, row for row.
    """
    early = curve_table(np.random.default_rng(0))
    later = {"a": np.arange(210, 401, 10), "b": np.arange(210, 801, 10)}
    rng = np.random.default_rng(1)
    loss = {
        run: (2.0 + scale * later[run] ** -0.5) * np.exp(rng.normal(0, 0.01, len(later[run])))
        for run, scale in (("a", 3.0), ("b", 2.0))
    }
    return {
        "run": np.concatenate([early["run"], np.repeat(["a", "b"], [len(later["a"]), len(later["b"])])]),
        "step": np.concatenate([early["step"], later["a"], later["b"]]),
        "loss": np.concatenate([early["loss"], loss["a"], loss["b"]]),
    }


@pytest.fixture(scope="session")
def held_back_extrapolation():
    """:func:`extrapolate_small_curves` again, from :func:`held_back_table` with ``observed_until=200``."""
    import bayescale as bs
    from bayescale.extrapolate import CURVE_CONFIG, extrapolate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        warnings.simplefilter("ignore", bs.IdentifiabilityWarning)
        return extrapolate(
            held_back_table(),
            observed_until=200,
            key=jax.random.key(0),
            law="pow3",
            config=CURVE_CONFIG.replace(**EXTRAPOLATION_CONFIG_ARGS),
        )


class CallStopped(Exception):
    """Raised by a function that :func:`record_call` stood in for, once it has recorded its call."""


def record_call(monkeypatch, owner, name):
    """Replace ``owner.name`` by a stand-in that records its keyword arguments, then raises
    :class:`CallStopped`: for checking what a caller passes on without running it.

    Returns the dict the keyword arguments are recorded in, the positional ones under
    ``"positional"``."""
    seen = {}

    def stand_in(*args, **kwargs):
        seen.update(kwargs, positional=args)
        raise CallStopped

    monkeypatch.setattr(owner, name, stand_in)
    return seen
