"""Traced programs stored beside the compilation cache: read back instead of traced, keyed
on what they were traced from, and the same draws as the program traced in process."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from bayescale.models import get_law

import bayescale as bs
from bayescale import _exported, _sampler
from bayescale.inference import bucket_inputs
from bayescale.law import ModelSpec
from bayescale.testing import prior_means, simulate

# Few draws: the draws are compared bit for bit, not judged.
CONFIG = bs.SamplerConfig(num_warmup=50, num_samples=50, num_chains=2)


def _sine_export(calls):
    def export():
        calls.append(1)
        return jax.export.export(jax.jit(jnp.sin))(jax.ShapeDtypeStruct((3,), jnp.float32))

    return export


def test_a_program_is_exported_once_then_read_back_and_a_damaged_one_replaced(tmp_path):
    calls = []
    x = jnp.arange(3.0)
    first = _exported.stored_program("sine", _sine_export(calls), tmp_path)
    again = _exported.stored_program("sine", _sine_export(calls), tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(again(x), jnp.sin(x))
    np.testing.assert_array_equal(first(x), again(x))
    (tmp_path / "sine.jaxexport").write_bytes(b"not a program")
    repaired = _exported.stored_program("sine", _sine_export(calls), tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(repaired(x), jnp.sin(x))
    # Written through a temporary file and a rename: nothing else is left in the folder.
    assert [path.name for path in tmp_path.iterdir()] == ["sine.jaxexport"]


def _call(spec, key, size=None):
    data = simulate(spec.law, {**prior_means(spec.law), "sigma": 0.02}, {"N": np.geomspace(1e7, 1e10, 10)}, key=key)
    return bucket_inputs((spec,), spec, [data], [key], [0], runs_size=1, pad_to=size or 0)[1]


def test_the_key_follows_the_models_settings_and_shapes(key):
    law = get_law("kaplan_n")
    spec = ModelSpec(law, "normal")
    call = _call(spec, key)
    base = _sampler.sampler_key((spec,), CONFIG, call)
    assert _sampler.sampler_key((ModelSpec(law, "normal"),), CONFIG, _call(spec, jax.random.fold_in(key, 1))) == base
    changed = {
        "a prior": _sampler.sampler_key((ModelSpec(law.with_priors(aN=dist.HalfNormal(0.4)), "normal"),), CONFIG, call),
        "the likelihood": _sampler.sampler_key((ModelSpec(law, "student_t"),), CONFIG, call),
        "a setting": _sampler.sampler_key((spec,), CONFIG.replace(num_warmup=51), call),
        "the padded size": _sampler.sampler_key((spec,), CONFIG, _call(spec, key, size=100)),
    }
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed


def test_a_stored_sampler_gives_the_draws_of_the_traced_one_without_tracing_again(key, tmp_path, monkeypatch):
    spec = ModelSpec(get_law("kaplan_n"), "normal")
    call = _call(spec, key)
    traced = _sampler.compiled_sampler((spec,), CONFIG)(*call)
    monkeypatch.setattr(_exported, "program_folder", lambda: tmp_path)
    stored = _sampler.sampler_program((spec,), CONFIG, *call)(*call)
    assert len(list(tmp_path.glob("*.jaxexport"))) == 1
    _sampler._stored_sampler.cache_clear()  # as in a new process

    def no_export(*args, **kwargs):
        raise AssertionError("the stored program was traced again")

    monkeypatch.setattr(jax.export, "export", no_export)
    read_back = _sampler.sampler_program((spec,), CONFIG, *call)(*call)
    for name, values in traced._asdict().items():
        np.testing.assert_array_equal(getattr(stored, name), values, err_msg=name)
        np.testing.assert_array_equal(getattr(read_back, name), values, err_msg=name)
