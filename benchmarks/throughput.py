"""Throughput of the compiled sampler: many learning curves at once, and one fit against data size.

Two measurements (issue 5, benchmarks b and c), both on data simulated in NumPy from fixed
seeds, so every machine and precision fits the same numbers:

- ``curves``: N independent learning curves of 100 checkpoints each (``pow3``,
  ``L = E + A x^-alpha``, parameters spread around a typical LM curve, 0.5% noise on the
  loss), each its own problem, all in one call of the program behind ``fit_problems``
  (the sampler settings of the command line: by default 4 chains x (1000 warmup + 1000
  draws) of NUTS; ``--large-batch`` for ``bs.LARGE_BATCH``, fixed-length HMC). Reported per N: the compile
  time, the sampler's time warm (a second call with new keys), curves per second of the
  sampler, the whole ``fit_problems`` call warm (sampler, then one ``Fit`` per curve with
  its ArviZ data, summary and diagnostics) and its curves per second, and the R-hat and
  bulk ESS of every curve.
- ``observations``: one ``chinchilla`` fit on an IsoFLOP-style ladder of n rows (1.5%
  noise), n from 1e3 up: the sampler's compile and warm time (up to ``--sampler-limit``),
  the peak device memory (GPU) or the process's peak RSS (CPU), and the whole ``bs.fit``
  (up to ``--whole-fit-limit``; past ``POINTWISE_BUDGET`` draws x rows it keeps no
  pointwise mean and log-likelihood per draw).

Each run also writes every fit's posterior mean, sd and MCSE for the ``observations`` sizes,
so a float32 GPU run and a float64 CPU run can be compared within Monte-Carlo error
(``--compare A.json B.json``).

Run: ``python benchmarks/throughput.py curves --sizes 100 1000 --out benchmarks/results/throughput_cpu.json``
and ``python benchmarks/throughput.py observations --sizes 1000 10000 --out ...`` (set
``JAX_ENABLE_X64=1`` for float64).
"""

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bayescale.models import get_law

import bayescale as bs
from bayescale._chain_stats import chain_statistics
from bayescale._sampler import compiled_postprocess, model_dim, sampler_program
from bayescale.data import ScalingData
from bayescale.inference import bucket_inputs, fit_problems
from bayescale.law import ModelSpec
from bayescale.testing import ladder

CHECKPOINTS = 100
CURVE_NOISE = 0.005
LADDER_NOISE = 0.015
# Epoch's refit of Chinchilla in the sampled parameterisation (benchmarks/compare.py).
CHINCHILLA = {"log_L_ref": math.log(2.483), "log_ratio_A": -1.675, "log_ratio_B": -1.732, "alpha": 0.35, "beta": 0.37}


def _log_mean(law, params, inputs):
    """The law's log mean in float64, evaluated once for every row (and curve) at once."""
    with jax.enable_x64(True):
        values = law.log_mean(
            {name: jnp.asarray(value, jnp.float64) for name, value in params.items()},
            {name: jnp.asarray(value, jnp.float64) for name, value in inputs.items()},
        )
        return np.asarray(values)


def simulate_curves(num_curves: int, seed: int) -> list[ScalingData]:
    """``num_curves`` pow3 curves at x = 0.01, 0.02, ..., 1 (x is progress; 1 is the last checkpoint)."""
    rng = np.random.default_rng(seed)
    params = {
        "log_L_ref": rng.normal(0.8, 0.2, (num_curves, 1)),
        "log_ratio": rng.normal(0.0, 0.5, (num_curves, 1)),
        "alpha": rng.uniform(0.3, 0.8, (num_curves, 1)),
    }
    x = np.arange(1, CHECKPOINTS + 1) / CHECKPOINTS
    log_loss = _log_mean(get_law("pow3"), params, {"x": x[None, :]})
    log_loss = log_loss + rng.normal(0.0, CURVE_NOISE, log_loss.shape)
    rows = np.arange(1, CHECKPOINTS + 1)
    return [
        ScalingData({"x": x, "loss": np.exp(curve)}, f"simulated curve {i}", rows, notes=("simulated",))
        for i, curve in enumerate(log_loss)
    ]


def simulate_ladder(num_rows: int, seed: int) -> ScalingData:
    """A chinchilla ladder of ``num_rows`` runs (the Epoch refit's constants)."""
    rng = np.random.default_rng(seed)
    columns = ladder(num_rows, rng=rng)
    log_loss = _log_mean(get_law("chinchilla"), CHINCHILLA, {"N": columns["N"], "D": columns["D"]})
    loss = np.exp(log_loss + rng.normal(0.0, LADDER_NOISE, num_rows))
    columns = {"N": columns["N"], "D": columns["D"], "C": 6.0 * columns["N"] * columns["D"], "loss": loss}
    return ScalingData(columns, f"simulated ladder of {num_rows}", np.arange(1, num_rows + 1), notes=("simulated",))


def _timed(fn, *args):
    start = time.perf_counter()
    result = jax.block_until_ready(fn(*args))
    return result, time.perf_counter() - start


def _memory() -> dict:
    """Peak memory so far: the device's where it reports it (GPU), else the process's RSS."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return {"peak_device_gib": stats["peak_bytes_in_use"] / 2**30}
    return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _sampler_run(spec, datasets, config, seed):
    """Compile, then run warm with new keys; return the warm draws, the arguments and times."""
    members = list(range(len(datasets)))
    keys = list(jax.random.split(jax.random.key(seed), len(datasets)))
    args, call = bucket_inputs((spec,), spec, datasets, keys, members, runs_size=1)
    start = time.perf_counter()
    program = sampler_program((spec,), config, *call)
    compile_s = time.perf_counter() - start
    _, first_s = _timed(program, *call)
    keys = list(jax.random.split(jax.random.key(seed + 1), len(datasets)))
    raw, warm_s = _timed(program, jnp.stack(keys), *call[1:])
    return raw, args, keys, {"compile_s": compile_s, "first_call_s": first_s, "warm_s": warm_s}


def _posterior_checks(spec, raw, args) -> dict:
    """R-hat and bulk ESS of every problem's parameters, from all problems' draws at once."""
    dim = model_dim(spec, args[0])
    post = jax.jit(jax.vmap(compiled_postprocess(spec)))
    num_problems, num_chains, num_draws = raw.z.shape[:3]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *args)
    sites, _ = post(stacked, raw.z[..., :dim].reshape(num_problems, -1, dim))
    names = [*spec.law.priors, *spec.noise]
    shape = (num_problems, num_chains, num_draws)
    stats = [chain_statistics(np.moveaxis(np.asarray(sites[name]).reshape(shape), 0, -1)) for name in names]
    r_hat = np.max([values["r_hat"] for values in stats], axis=0)
    ess = np.min([values["ess_bulk"] for values in stats], axis=0)
    steps = np.asarray(raw.n_steps)
    return {
        "max_r_hat": float(r_hat.max()),
        "curves_r_hat_below_1.01": int(np.sum(r_hat < 1.01)),
        "median_r_hat": float(np.median(r_hat)),
        "min_ess_bulk": float(ess.min()),
        "median_ess_bulk": float(np.median(ess)),
        "divergent_curves": int(np.sum(np.asarray(raw.diverging).any(axis=(1, 2)))),
        "mean_leapfrog_steps": float(steps.mean()),
        # Problems and chains run in lockstep: each iteration costs the longest trajectory.
        "mean_lockstep_steps": float(steps.reshape(-1, steps.shape[-1]).max(axis=0).mean()),
    }


def _whole_fit(spec, datasets, config, seed, pointwise) -> dict:
    """Time the whole ``fit_problems`` call (its sampler compiled already) and check every fit."""
    keys = list(jax.random.split(jax.random.key(seed + 2), len(datasets)))
    start = time.perf_counter()
    fits = fit_problems([spec] * len(datasets), datasets, keys=keys, config=config, warn=False, pointwise=pointwise)
    seconds = time.perf_counter() - start
    return {
        "whole_fit_s": seconds,
        "whole_fit_curves_per_s": len(datasets) / seconds,
        "whole_fit_max_r_hat": max(fitted.diagnostics.max_r_hat for fitted in fits),
        "whole_fit_curves_ok": sum(fitted.diagnostics.ok for fitted in fits),
        "whole_fit_kept_pointwise": all(fitted.has_pointwise for fitted in fits),
    }


def bench_curves(sizes, config, seed, pointwise) -> list[dict]:
    spec = ModelSpec(get_law("pow3"), "normal")
    rows = []
    for size in sizes:
        datasets = simulate_curves(size, seed)
        raw, args, _, times = _sampler_run(spec, datasets, config, seed)
        row = {
            "curves": size,
            **times,
            "sampler_curves_per_s": size / times["warm_s"],
            **_posterior_checks(spec, raw, args),
        }
        del raw
        row.update({**_whole_fit(spec, datasets, config, seed, pointwise), **_memory()})
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def bench_observations(sizes, config, seed, whole_fit_limit, sampler_limit) -> list[dict]:
    spec = ModelSpec(get_law("chinchilla"), "normal")
    rows = []
    for size in sizes:
        data = simulate_ladder(size, seed)
        row = {"observations": size}
        if size <= sampler_limit:  # the sampler alone, compiled then called twice
            raw, args, _, times = _sampler_run(spec, [data], config, seed)
            row.update({**times, **_memory(), **_posterior_checks(spec, raw, args)})
        if size <= whole_fit_limit:
            # The first fit compiles what the sampler's run did not (or everything, past
            # sampler_limit); past POINTWISE_BUDGET the fit keeps no pointwise values.
            for attempt in ("first", "warm") if size <= sampler_limit else ("first",):
                start = time.perf_counter()
                fitted = bs.fit(
                    "chinchilla", data, key=jax.random.key(seed + 2), config=config, likelihood=spec.likelihood
                )
                row[f"whole_fit_{attempt}_s"] = time.perf_counter() - start
            row["whole_fit_kept_pointwise"] = fitted.has_pointwise
            row.update({f"whole_fit_{name}": value for name, value in _memory().items()})
            row["posterior"] = {
                name: {column: fitted.summary[name][column] for column in ("mean", "sd", "mcse_mean")}
                for name in (*spec.law.priors, *spec.noise)
            }
            row["ok"] = fitted.diagnostics.ok
            row["whole_fit_max_r_hat"] = fitted.diagnostics.max_r_hat
            row["whole_fit_min_ess_bulk"] = fitted.diagnostics.min_ess_bulk
        print(json.dumps({k: v for k, v in row.items() if k != "posterior"}), flush=True)
        rows.append(row)
    return rows


def compare(path_a: str, path_b: str) -> None:
    """Print, per data size and parameter, the difference of two runs' posterior means in MCSE."""
    runs = [json.loads(Path(path).read_text()) for path in (path_a, path_b)]
    by_size = [{row["observations"]: row for row in run["observations"] if "posterior" in row} for run in runs]
    for size in sorted(set(by_size[0]) & set(by_size[1])):
        for name, a in by_size[0][size]["posterior"].items():
            b = by_size[1][size]["posterior"][name]
            z = (a["mean"] - b["mean"]) / math.hypot(a["mcse_mean"], b["mcse_mean"])
            print(
                f"{size:>8} {name:>12} {a['mean']:.5g} {b['mean']:.5g}  "
                f"diff/MCSE {z:+.2f}  sd {a['sd']:.3g} {b['sd']:.3g}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("curves", "observations", "compare"))
    parser.add_argument("--sizes", type=float, nargs="+", default=[100, 1000])
    parser.add_argument("--large-batch", action="store_true", help="start from bs.LARGE_BATCH, not the defaults")
    parser.add_argument(
        "--lean", action="store_true", help="curves: fits keep no pointwise values (else 3.2 MB per curve)"
    )
    parser.add_argument("--num-warmup", type=int)
    parser.add_argument("--num-samples", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed-steps", type=int, help="fixed-length HMC with this many leapfrog steps")
    parser.add_argument("--map-starts", type=int, help="starting points of the MAP search")
    parser.add_argument("--whole-fit-limit", type=float, default=1e6, help="largest n for a whole bs.fit")
    parser.add_argument(
        "--sampler-limit", type=float, default=1e5, help="largest n for timing the sampler alone (two calls)"
    )
    parser.add_argument("--files", nargs=2, help="two results files, for compare")
    parser.add_argument("--out")
    options = parser.parse_args()
    if options.what == "compare":
        compare(*options.files)
        return
    bs.enable_compilation_cache()
    config = (bs.LARGE_BATCH if options.large_batch else bs.SamplerConfig()).replace(
        num_warmup=options.num_warmup,
        num_samples=options.num_samples,
        fixed_steps=options.fixed_steps,
        map_starts=options.map_starts,
    )
    sizes = [int(size) for size in options.sizes]
    if options.what == "curves":
        rows = bench_curves(sizes, config, options.seed, pointwise=False if options.lean else None)
    else:
        rows = bench_observations(sizes, config, options.seed, options.whole_fit_limit, options.sampler_limit)
    device = jax.devices()[0]
    result = {
        "machine": {
            "backend": jax.default_backend(),
            "device": getattr(device, "device_kind", str(device)),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "x64": bool(jax.config.jax_enable_x64),
        },
        "config": dataclasses.asdict(config),
        options.what: rows,
    }
    if options.out:
        with open(options.out, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
