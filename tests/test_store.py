"""Saved fits and forecasts: identical numbers after a round trip, metadata, atomic writes,
and clear refusals of files this version cannot read."""

import copy
import dataclasses
import json
import os

import h5py
import jax
import numpy as np
import pytest
import xarray as xr
from bayescale.models import get_law

import bayescale as bs
from bayescale import _arviz
from bayescale.errors import BayescaleError, DataError
from bayescale.inference import Attempt, _assemble
from bayescale.testing import fake_fit, prior_means, simulate


@pytest.fixture(scope="module")
def fitted(session_key):
    law = get_law("chinchilla")
    inputs = {"N": np.geomspace(1e7, 1e10, 12), "D": np.geomspace(1e9, 1e12, 12)}
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=session_key)
    data = dataclasses.replace(data, mapping={"N": "params", "D": "tokens", "loss": "eval_loss"})
    return fake_fit(law, data, key=session_key)


def _edit_attrs(path, **attrs):
    """Change root attributes of a saved file in place, as another version might have written it."""
    with h5py.File(path, "r+") as handle:
        handle.attrs.update(attrs)


def _assert_same_forecast(before, after):
    assert after.quantities == before.quantities
    for name in before.quantities:
        np.testing.assert_array_equal(after.draws(name), before.draws(name))
    assert after.summary() == before.summary()


def test_round_trip_gives_identical_numbers_and_forecasts(fitted, tmp_path, key):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    loaded = bs.load_fit(path)
    for name in fitted.parameter_names:
        np.testing.assert_array_equal(loaded.posterior[name], fitted.posterior[name])
    assert loaded.summary == fitted.summary
    assert loaded.diagnostics == fitted.diagnostics
    assert loaded.attempts == fitted.attempts
    assert loaded.config == fitted.config
    assert loaded.data.fingerprint() == fitted.data.fingerprint()
    assert loaded.data.mapping == fitted.data.mapping and loaded.data.notes == fitted.data.notes
    for targets in ({"compute": [1e21, 1e23]}, {"N": 1e9, "D": 2e10}):
        _assert_same_forecast(bs.forecast(fitted, **targets, key=key), bs.forecast(loaded, **targets, key=key))


def test_metadata_is_saved(fitted, tmp_path):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    attrs = _arviz.get_attrs(bs.load_fit(path).idata)
    assert (attrs["law"], attrs["law_version"], attrs["likelihood"]) == ("chinchilla", "1", "normal")
    assert json.loads(attrs["priors"])["alpha"] == "Beta(concentration1=2, concentration0=4)"
    assert json.loads(attrs["priors"])["sigma"] == "HalfNormal(scale=0.1)"  # the noise prior too
    assert json.loads(attrs["column_mapping"]) == {"N": "params", "D": "tokens", "loss": "eval_loss"}
    assert attrs["data_sha256"] == fitted.data.fingerprint()
    assert json.loads(attrs["key"]) == [0, 1]  # the words of jax.random.key(1), the session key
    for package in ("bayescale", "jax", "numpyro", "arviz"):
        assert attrs[f"{package}_version"]


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


def test_forecast_round_trip_is_identical(fitted, tmp_path, key):
    other = fake_fit(fitted.law, fitted.data, key=jax.random.fold_in(key, 1))
    forecasts = {
        "single": bs.forecast(fitted, compute=[1e21, 1e23], key=key),
        "at_n_and_d": bs.forecast(fitted, N=[1e9, 2e9], D=2e10, key=key),
        "averaged": bs.forecast([fitted, other], compute=1e22, weights=[0.3, 0.7], key=key),
    }
    for name, forecast in forecasts.items():
        path = tmp_path / f"{name}.nc"
        forecast.save(path)
        loaded = bs.load_forecast(path)
        _assert_same_forecast(forecast, loaded)
        assert list(loaded.targets) == list(forecast.targets)
        for target, values in forecast.targets.items():
            np.testing.assert_array_equal(loaded.targets[target], values)
        assert (loaded.law, loaded.healthy, loaded.problems) == (forecast.law, forecast.healthy, forecast.problems)
        assert loaded.weights == forecast.weights
    attrs = _arviz.get_attrs(bs.load_forecast(tmp_path / "averaged.nc").idata)
    sources = json.loads(attrs["fits"])
    assert [source["law_version"] for source in sources] == ["1", "1"]
    assert sources[0]["data_sha256"] == fitted.data.fingerprint()
    assert sources[0]["column_mapping"] == {"N": "params", "D": "tokens", "loss": "eval_loss"}
    assert sources[0]["priors"]["alpha"] == "Beta(concentration1=2, concentration0=4)"
    assert json.loads(attrs["keys"]) == [np.asarray(jax.random.key_data(key)).tolist()]
    assert attrs["bayescale_version"] and attrs["numpyro_version"]


def test_extrapolation_round_trip_is_identical(small_extrapolation, tmp_path):
    path = tmp_path / "extrapolation.nc"
    small_extrapolation.save(path)
    loaded = bs.load_extrapolation(path)
    assert loaded.runs == small_extrapolation.runs and loaded.notes == small_extrapolation.notes
    for run in loaded.runs:
        np.testing.assert_array_equal(loaded.final_loss(run), small_extrapolation.final_loss(run))
        for saved, original in zip(loaded.curve(run), small_extrapolation.curve(run), strict=True):
            np.testing.assert_array_equal(saved, original)
    assert loaded.summary() == small_extrapolation.summary()
    assert loaded.data.fingerprint() == small_extrapolation.data.fingerprint()
    assert loaded.fits == {}  # the fits' draws stay behind; their diagnostics come along
    assert type(bs.load_saved(path)) is bs.Extrapolation
    with pytest.raises(DataError, match="a saved bayescale extrapolation, not a fit; read it with bayescale.load_ex"):
        bs.load_fit(path)


def test_load_saved_reads_each_kind(fitted, tmp_path, key):
    fitted.save(tmp_path / "fit.nc")
    bs.forecast(fitted, compute=1e22, key=key).save(tmp_path / "forecast.nc")
    assert type(bs.load_saved(tmp_path / "fit.nc")) is bs.Fit
    assert type(bs.load_saved(tmp_path / "forecast.nc")) is bs.Forecast
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"temperature": ("x", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(DataError, match="foreign.nc: not a bayescale fit, forecast or extrapolation"):
        bs.load_saved(foreign)


@pytest.mark.parametrize("kind", ["fit", "forecast"])
def test_failed_write_leaves_the_old_file(fitted, tmp_path, monkeypatch, key, kind):
    result = fitted if kind == "fit" else bs.forecast(fitted, compute=1e22, key=key)
    path = tmp_path / f"{kind}.nc"
    result.save(path)
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
        result.save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == [f"{kind}.nc"]


def test_a_loaded_fit_keeps_its_numbers_when_the_file_changes(fitted, tmp_path):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    loaded = bs.load_fit(path)
    _edit_attrs(path, note="edited")  # the file is closed: it can be opened for writing
    path.write_bytes(b"overwritten")
    np.testing.assert_array_equal(loaded.posterior["alpha"], fitted.posterior["alpha"])


def test_loading_something_else_fails_clearly(tmp_path, fitted, key):
    with pytest.raises(DataError, match="no such file"):
        bs.load_fit(tmp_path / "absent.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(DataError, match="junk.nc: not a readable NetCDF file"):
        bs.load_fit(junk)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"temperature": ("x", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(DataError, match="foreign.nc: not a bayescale fit"):
        bs.load_fit(foreign)
    with pytest.raises(DataError, match="foreign.nc: not a bayescale forecast"):
        bs.load_forecast(foreign)
    fitted.save(tmp_path / "fit.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes((tmp_path / "fit.nc").read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated.nc: not a readable NetCDF file"):
        bs.load_fit(truncated)
    fitted.save(tmp_path / "incomplete.nc")
    with h5py.File(tmp_path / "incomplete.nc", "r+") as handle:
        del handle["sample_stats"]
    with pytest.raises(DataError, match="incomplete.nc: not a complete bayescale fit [(]no sample_stats group[)]"):
        bs.load_fit(tmp_path / "incomplete.nc")
    with pytest.raises(DataError, match="a saved bayescale fit, not a forecast; read it with bayescale.load_fit"):
        bs.load_forecast(tmp_path / "fit.nc")
    bs.forecast(fitted, compute=1e22, key=key).save(tmp_path / "forecast.nc")
    with pytest.raises(DataError, match="a saved bayescale forecast, not a fit; read it with bayescale.load_forecast"):
        bs.load_fit(tmp_path / "forecast.nc")


def test_newer_format_is_refused(fitted, tmp_path, key):
    fitted.save(tmp_path / "fit.nc")
    _edit_attrs(tmp_path / "fit.nc", bayescale_format=99, bayescale_version="9.0")
    expected = r"fit.nc: fit written in format 99 by bayescale 9.0; this bayescale .* reads format 1 and older"
    with pytest.raises(BayescaleError, match=expected):
        bs.load_fit(tmp_path / "fit.nc")
    bs.forecast(fitted, compute=1e22, key=key).save(tmp_path / "forecast.nc")
    _edit_attrs(tmp_path / "forecast.nc", bayescale_forecast_format=2)
    with pytest.raises(BayescaleError, match="forecast.nc: forecast written in format 2 .* reads format 1 and older"):
        bs.load_forecast(tmp_path / "forecast.nc")


def test_another_law_version_is_refused(fitted, tmp_path):
    path = tmp_path / "fit.nc"
    fitted.save(path)
    _edit_attrs(path, law_version="0")
    expected = r"fit.nc: fitted with law 'chinchilla' version 0, but the catalogue's law is 'chinchilla' version 1"
    with pytest.raises(BayescaleError, match=expected):
        bs.load_fit(path)
    # The law of the saved version, passed explicitly, is accepted.
    old = dataclasses.replace(fitted.law, version="0")
    np.testing.assert_array_equal(bs.load_fit(path, law=old).posterior["alpha"], fitted.posterior["alpha"])
    with pytest.raises(BayescaleError, match="but the law passed is 'chinchilla' version 1"):
        bs.load_fit(path, law=fitted.law)
