"""Batched fits: alone or in a batch, on one device or four, in one process or in shards;
each problem saved as its bucket finishes, and resumed from disk.

Where two runs compile the same program the draws must be identical; where the programs
differ, the posteriors must agree within Monte-Carlo error.
"""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from bayescale.models import get_law

import bayescale as bs
from bayescale import _arviz, inference
from bayescale.checks import residuals
from bayescale.compare import pointwise_log_likelihood
from bayescale.errors import BayescaleError, DataError
from bayescale.inference import fit_problems
from bayescale.law import ModelSpec
from bayescale.testing import prior_means, simulate

# Small settings for a small model, and one compiled program for every test here; the
# draws are cheap, and with these many every fit passes its sampler checks (R-hat, ESS,
# divergences; seeds 0-3), so that its Monte-Carlo standard errors can set tolerances.
BATCH_CONFIG = bs.SamplerConfig(num_warmup=300, num_samples=2000, num_chains=2)
# Posterior means of two fits of one problem differ by less than this many Monte-Carlo
# standard errors of their difference (as for the exact posterior in test_inference.py).
MCSE_TOLERANCE = 5.0
# The device count of the sharded fit, forced on the CPU by XLA_FLAGS in a subprocess.
FORCED_DEVICES = 4


def _make_problems(key):
    """Four problems of one model and data shape (one compiled program serves all), labelled
    with characters a file name cannot hold."""
    law = get_law("kaplan_n")
    inputs = {"N": np.geomspace(1e7, 1e10, 10)}
    params = {**prior_means(law), "sigma": 0.02}
    datasets = [simulate(law, params, inputs, key=jax.random.fold_in(key, i)) for i in range(4)]
    keys = [jax.random.fold_in(key, 10 + i) for i in range(4)]
    return [ModelSpec(law, "normal")] * 4, datasets, keys, [f"run {i}/seed" for i in range(4)]


@pytest.fixture(scope="module")
def problems(session_key):
    return _make_problems(session_key)


def _fit_problems(problems, **kwargs):
    specs, datasets, keys, labels = problems
    options = {"specs": specs, "datasets": datasets, "keys": keys, "labels": labels}
    return fit_problems(**{**options, "config": BATCH_CONFIG, "warn": False, "bucket_size": 2, **kwargs})


@pytest.fixture(scope="module")
def uninterrupted(problems):
    return _fit_problems(problems)


def _count_sampler_calls(monkeypatch, interrupt_at=None):
    """Count the problems of each call of the compiled sampler; raise KeyboardInterrupt at
    call ``interrupt_at``, as Ctrl-C during that bucket would."""
    calls = []
    compiled = inference.sampler_program

    def counted(*options, **devices):
        program = compiled(*options, **devices)

        def run(keys, batch, which):
            calls.append(len(keys))
            if len(calls) == interrupt_at:
                raise KeyboardInterrupt
            return program(keys, batch, which)

        return run

    monkeypatch.setattr(inference, "sampler_program", counted)
    return calls


def _assert_same_draws(fits, expected):
    for fitted, reference in zip(fits, expected, strict=True):
        for name in reference.parameter_names:
            np.testing.assert_array_equal(fitted.posterior[name], reference.posterior[name])
        assert fitted.attempts == reference.attempts


def _assert_same_posterior(fits, expected):
    """Assert that each fit's posterior means agree with the expected fit's within Monte-Carlo error.

    Both fits must pass their sampler checks first: only then is the MCSE trustworthy.
    """
    for fitted, reference in zip(fits, expected, strict=True):
        for result in (fitted, reference):
            assert result.diagnostics.ok, result.diagnostics.problems
        for name in reference.parameter_names:
            ours, theirs = fitted.summary[name], reference.summary[name]
            tolerance = MCSE_TOLERANCE * np.hypot(ours["mcse_mean"], theirs["mcse_mean"])
            assert abs(ours["mean"] - theirs["mean"]) < tolerance, f"{name}: {ours['mean']} vs {theirs['mean']}"


def test_problems_fitted_alone_and_in_a_batch_agree_within_monte_carlo_error(problems, uninterrupted):
    # Within Monte-Carlo error, not draw for draw: a batch of one skips the vmap over
    # problems, and whether two batch sizes round alike depends on how XLA vectorises each
    # (on CPU, one and two do; eight and two differ in the last bit of the MAP point,
    # which NUTS's adaptation amplifies into other draws of the same posterior).
    _assert_same_posterior(_fit_problems(problems, bucket_size=1), uninterrupted)


def test_fixed_length_hmc_in_a_batch_agrees_with_nuts_within_monte_carlo_error(problems, uninterrupted):
    fixed = _fit_problems(problems, config=BATCH_CONFIG.replace(fixed_steps=2))
    for fitted in fixed:
        assert np.all(np.asarray(_arviz.group(fitted.idata, "sample_stats")["n_steps"]) == 2)
        assert fitted.diagnostics.tree_depth_saturation == 0.0
    _assert_same_posterior(fixed, uninterrupted)


def test_float64_and_float32_fits_agree_within_monte_carlo_error(problems, uninterrupted):
    # The numerical half of "float32 on an accelerator gives the posterior of float64 on a
    # CPU": the same problems sampled in double precision (here on the CPU too).
    with jax.enable_x64(True):
        double = _fit_problems(problems)
    assert all(fitted.posterior[name].dtype == np.float64 for fitted in double for name in fitted.parameter_names)
    assert all(
        fitted.posterior[name].dtype == np.float32 for fitted in uninterrupted for name in fitted.parameter_names
    )
    _assert_same_posterior(double, uninterrupted)


def test_a_fit_without_pointwise_values_keeps_its_draws_and_says_what_needs_them(problems, uninterrupted, tmp_path):
    lean = _fit_problems(problems, pointwise=False)
    _assert_same_draws(lean, uninterrupted)
    for fitted, reference in zip(lean, uninterrupted, strict=True):
        assert not fitted.has_pointwise and reference.has_pointwise
        assert not _arviz.has_group(fitted.idata, "log_likelihood")
        assert fitted.summary == reference.summary and fitted.diagnostics == reference.diagnostics
    with pytest.raises(BayescaleError, match=r"PSIS-LOO needs .* pointwise=True"):
        pointwise_log_likelihood(lean[0])
    with pytest.raises(BayescaleError, match=r"posterior predictive check needs .* pointwise=True"):
        residuals(lean[0])
    lean[0].save(tmp_path / "lean.nc")
    loaded = bs.load_fit(tmp_path / "lean.nc")
    assert not loaded.has_pointwise
    np.testing.assert_array_equal(loaded.posterior["aN"], lean[0].posterior["aN"])


def test_pointwise_values_are_kept_up_to_the_budget(problems, uninterrupted, monkeypatch):
    specs, datasets, _, _ = problems
    size = BATCH_CONFIG.num_chains * BATCH_CONFIG.num_samples * len(datasets[0])
    monkeypatch.setattr(inference, "POINTWISE_BUDGET", size)
    assert all(fitted.has_pointwise for fitted in uninterrupted)
    assert all(fitted.has_pointwise for fitted in _fit_problems(problems))
    monkeypatch.setattr(inference, "POINTWISE_BUDGET", size - 1)
    assert not any(fitted.has_pointwise for fitted in _fit_problems(problems))


def _fit_on_forced_devices(key_data, directory):
    """Fit the problems of ``key_data`` over every device, all four and the first three,
    saving each call's fits to its own folder of ``directory``. Run by the test below in
    a process with four forced CPU devices."""
    assert len(jax.local_devices()) == FORCED_DEVICES
    problems = _make_problems(jax.random.wrap_key_data(np.asarray(key_data, np.uint32)))
    meshes = []
    compiled = inference.sampler_program

    def recorded(*options, devices=()):
        meshes.append(len(devices))
        return compiled(*options, devices=devices)

    inference.sampler_program = recorded
    _fit_problems(problems, bucket_size=None, save_to=os.path.join(directory, "four"))
    _fit_problems([part[:3] for part in problems], bucket_size=None, save_to=os.path.join(directory, "three"))
    assert meshes == [FORCED_DEVICES, FORCED_DEVICES], meshes  # both buckets split over every device


def test_a_batch_sharded_over_four_devices_agrees_with_one_device(problems, uninterrupted, session_key, tmp_path):
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={FORCED_DEVICES}"
    key_data = np.asarray(jax.random.key_data(session_key)).tolist()
    code = f"import test_batches; test_batches._fit_on_forced_devices({key_data}, {str(tmp_path)!r})"
    tests = os.path.dirname(__file__)
    path = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    # Outside the checkout: there `python -c` would import the source tree, not the install.
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    four = [bs.load_fit(tmp_path / "four" / f"run_{i}_seed.nc") for i in range(4)]
    three = [bs.load_fit(tmp_path / "three" / f"run_{i}_seed.nc") for i in range(3)]
    # One program, each device on its own problem: the fourth device's copy of the third
    # problem (padding) leaves the others' draws exactly as they were.
    _assert_same_draws(three, four[:3])
    # Against one device (this process's, unless XLA_FLAGS forced more), the same posterior
    # but not the same draws: XLA compiles a device's share inside shard_map with roundings
    # that differ in the last bit from the one-device program's (even for equal shares),
    # and NUTS's adaptation amplifies them into other draws.
    _assert_same_posterior(four, uninterrupted)


def test_shards_fitted_apart_load_as_one_batch_with_the_draws_of_one_process(
    problems, uninterrupted, monkeypatch, tmp_path
):
    # Two hosts stand in here as two calls, each with every problem and its own shard;
    # without labels, files are named by the problem's place in the whole batch.
    calls = _count_sampler_calls(monkeypatch)
    second = _fit_problems(problems, labels=None, save_to=tmp_path, shard=(1, 2))
    assert calls == [2] and sorted(os.listdir(tmp_path)) == ["problem-0003.nc", "problem-0004.nc"]
    assert second[:2] == [None, None]
    first = _fit_problems(problems, labels=None, save_to=tmp_path, shard=(0, 2))
    assert calls == [2, 2] and first[2:] == [None, None]
    assert len(os.listdir(tmp_path)) == 4

    calls.clear()
    merged = _fit_problems(problems, labels=None, save_to=tmp_path)
    assert calls == []  # every problem loads
    # Each shard ran whole buckets of the batch, hence the one process's program and inputs.
    _assert_same_draws(merged, uninterrupted)


def test_a_shard_needs_a_valid_index_and_a_bucket_size(problems, tmp_path):
    for shard, bucket_size in [((2, 2), 2), ((-1, 2), 2), ((0, 2), None)]:
        with pytest.raises(ValueError, match="with 0 <= index < count, and a bucket_size"):
            _fit_problems(problems, save_to=tmp_path, shard=shard, bucket_size=bucket_size)
    assert os.listdir(tmp_path) == []


def test_an_interrupted_batch_resumes_from_its_saved_buckets_with_identical_draws(
    problems, uninterrupted, monkeypatch, tmp_path
):
    calls = _count_sampler_calls(monkeypatch, interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        _fit_problems(problems, save_to=tmp_path)
    # The first bucket was saved whole, the second not at all, and no temporary file is left.
    assert sorted(os.listdir(tmp_path)) == ["run_0_seed.nc", "run_1_seed.nc"]
    _assert_same_draws([bs.load_fit(tmp_path / f"run_{i}_seed.nc") for i in range(2)], uninterrupted[:2])

    calls.clear()
    resumed = _fit_problems(problems, save_to=tmp_path)
    assert calls == [2]  # only the lost bucket is sampled again
    _assert_same_draws(resumed, uninterrupted)
    assert len(os.listdir(tmp_path)) == 4

    calls.clear()
    _assert_same_draws(_fit_problems(problems, save_to=tmp_path), uninterrupted)
    assert calls == []  # a finished batch only loads


def test_a_saved_file_of_another_problem_is_refused_and_kept(problems, uninterrupted, tmp_path):
    specs, datasets, keys, labels = problems
    path = tmp_path / "run_0_seed.nc"
    uninterrupted[0].save(path)
    saved = path.read_bytes()
    with pytest.raises(DataError, match=r"run_0_seed\.nc: holds the fit of another problem \(key .* saved, .* here\)"):
        _fit_problems(problems, save_to=tmp_path, keys=[keys[1], *keys[1:]])
    with pytest.raises(DataError, match=r"\(data_sha256 .*; num_samples 2000 saved, 50 here\)"):
        _fit_problems(problems, save_to=tmp_path, config=BATCH_CONFIG.replace(num_samples=50), datasets=datasets[::-1])
    with pytest.raises(DataError, match="law 'kaplan_n' saved, 'kaplan_n_e' here"):
        _fit_problems(problems, save_to=tmp_path, specs=[ModelSpec(get_law("kaplan_n_e"), "normal")] * 4)
    assert path.read_bytes() == saved


def test_labels_that_make_one_file_name_are_refused(problems, tmp_path):
    with pytest.raises(ValueError, match=r"problems 1 and 2 would both be saved to a_b\.nc"):
        _fit_problems(problems, save_to=tmp_path, labels=["a/b", "A b", "c", "d"])
    assert os.listdir(tmp_path) == []
