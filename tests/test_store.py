"""Saved fits: identical numbers and forecasts after a round trip; atomic writes."""

import copy
import dataclasses
import json
import os

import h5py
import jax
import numpy as np
import pytest

import bayescale as bs
from bayescale import _arviz
from bayescale.errors import DataError
from bayescale.inference import Attempt, _assemble
from bayescale.models import get_law
from bayescale.testing import fake_fit, prior_means, simulate


@pytest.fixture(scope="module")
def fitted():
    law = get_law("chinchilla")
    key = jax.random.key(0)
    inputs = {"N": np.geomspace(1e7, 1e10, 12), "D": np.geomspace(1e9, 1e12, 12)}
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=key)
    return fake_fit(law, data, key=key)


def test_round_trip_gives_identical_numbers_and_forecasts(fitted, tmp_path, key):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    loaded = bs.load_fit(path)
    assert loaded.summary == fitted.summary
    assert loaded.diagnostics == fitted.diagnostics
    assert loaded.data.fingerprint() == fitted.data.fingerprint()
    assert loaded.data.notes == fitted.data.notes
    before = bs.forecast(fitted, compute=[1e21, 1e23], key=key).summary()
    after = bs.forecast(loaded, compute=[1e21, 1e23], key=key).summary()
    assert before == after


def test_metadata_is_saved(fitted, tmp_path):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    attrs = _arviz.get_attrs(bs.load_fit(path).idata)
    for name in ("law", "law_version", "likelihood", "priors", "data_sha256", "key", "bayescale_version", "jax_version"):
        assert name in attrs
    assert attrs["data_sha256"] == fitted.data.fingerprint()


def test_retry_attempts_are_saved(fitted, tmp_path):
    # The draws of a second attempt, as fit_problems assembles them after a retry.
    first, config = fitted.attempts[0], fitted.config.replace(target_accept=0.95)
    idata = copy.deepcopy(fitted.idata)
    _arviz.set_attrs(idata, sampler_config=json.dumps(dataclasses.asdict(config)))
    retried = _assemble(fitted.spec, fitted.data, idata, config, earlier=[first])
    retried.save(tmp_path / "fit.nc")
    loaded = bs.load_fit(tmp_path / "fit.nc")
    assert [attempt.config.target_accept for attempt in loaded.attempts] == [0.8, 0.95]
    assert loaded.attempts == retried.attempts
    assert Attempt.from_dict(first.to_dict()) == first


def test_failed_write_leaves_the_old_file(fitted, tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    original = path.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0600

    def broken(data, target):
        with open(target, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(_arviz, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_loading_something_else_fails_clearly(tmp_path, fitted):
    with pytest.raises(DataError, match="no such file"):
        bs.load_fit(tmp_path / "absent.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(DataError, match="not a readable NetCDF file"):
        bs.load_fit(junk)


def test_newer_format_is_refused(fitted, tmp_path):
    idata = copy.deepcopy(fitted.idata)
    idata.attrs["bayescale_format"] = 99
    path = tmp_path / "future.nc"
    _arviz.save(idata, path)
    with pytest.raises(DataError, match="written in format 99"):
        bs.load_fit(path)


def test_a_loaded_fit_keeps_its_numbers_when_the_file_changes(fitted, tmp_path):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    loaded = bs.load_fit(path)
    with h5py.File(path, "r+"):  # the file is closed: it can be opened for writing
        pass
    path.write_bytes(b"overwritten")
    np.testing.assert_array_equal(loaded.posterior["alpha"], fitted.posterior["alpha"])
