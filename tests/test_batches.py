"""Batched fits: each problem saved as its bucket finishes, and resumed from disk."""

import os

import jax
import numpy as np
import pytest

import bayescale as bs
from bayescale import inference
from bayescale.errors import DataError
from bayescale.inference import fit_problems
from bayescale.law import ModelSpec
from bayescale.models import get_law
from bayescale.testing import prior_means, simulate


# Tiny settings: these tests check what is saved and reloaded, not the posterior.
RESUME_CONFIG = bs.SamplerConfig(num_warmup=100, num_samples=100, num_chains=2)


@pytest.fixture(scope="module")
def problems(session_key):
    """Four problems of one model and data shape (one compiled program serves all), labelled
    with characters a file name cannot hold."""
    law = get_law("kaplan_n")
    inputs = {"N": np.geomspace(1e7, 1e10, 10)}
    params = {**prior_means(law), "sigma": 0.02}
    datasets = [simulate(law, params, inputs, key=jax.random.fold_in(session_key, i)) for i in range(4)]
    keys = [jax.random.fold_in(session_key, 10 + i) for i in range(4)]
    return [ModelSpec(law, "normal")] * 4, datasets, keys, [f"run {i}/seed" for i in range(4)]


def _fit_problems(problems, **kwargs):
    specs, datasets, keys, labels = problems
    options = {"specs": specs, "datasets": datasets, "keys": keys, "labels": labels}
    return fit_problems(**{**options, "config": RESUME_CONFIG, "warn": False, "bucket_size": 2, **kwargs})


@pytest.fixture(scope="module")
def uninterrupted(problems):
    return _fit_problems(problems)


def _count_sampler_calls(monkeypatch, interrupt_at=None):
    """Count the problems of each call of the compiled sampler; raise KeyboardInterrupt at
    call ``interrupt_at``, as Ctrl-C during that bucket would."""
    calls = []
    compiled = inference.compiled_sampler

    def counted(*options):
        program = compiled(*options)

        def run(keys, batch, which):
            calls.append(len(keys))
            if len(calls) == interrupt_at:
                raise KeyboardInterrupt
            return program(keys, batch, which)

        return run

    monkeypatch.setattr(inference, "compiled_sampler", counted)
    return calls


def _assert_same_draws(fits, expected):
    for fitted, reference in zip(fits, expected, strict=True):
        for name in reference.parameter_names:
            np.testing.assert_array_equal(fitted.posterior[name], reference.posterior[name])
        assert fitted.attempts == reference.attempts


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
    with pytest.raises(DataError, match=r"\(data_sha256 .*; num_samples 100 saved, 50 here\)"):
        _fit_problems(problems, save_to=tmp_path, config=RESUME_CONFIG.replace(num_samples=50), datasets=datasets[::-1])
    with pytest.raises(DataError, match="law 'kaplan_n' saved, 'kaplan_n_e' here"):
        _fit_problems(problems, save_to=tmp_path, specs=[ModelSpec(get_law("kaplan_n_e"), "normal")] * 4)
    assert path.read_bytes() == saved


def test_labels_that_make_one_file_name_are_refused(problems, tmp_path):
    with pytest.raises(ValueError, match=r"problems 1 and 2 would both be saved to a_b\.nc"):
        _fit_problems(problems, save_to=tmp_path, labels=["a/b", "A b", "c", "d"])
    assert os.listdir(tmp_path) == []
