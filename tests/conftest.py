"""Shared fixtures: fixed PRNG keys, the ``slow`` marker, and shared fits.

Every random number in the suite comes from the ``key`` fixture, seeded by
``BAYESCALE_TEST_SEED`` (default 0), so a failure reproduces exactly.
"""

import os
import tempfile

import jax
import matplotlib
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
