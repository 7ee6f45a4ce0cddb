"""Law comparison and trend questions on simulated ladders.

Two measurements, each over many simulated IsoFLOP-style ladders (60 runs, budgets over
four decades, 1-1000 tokens per parameter, 1.5% relative noise on the loss, the scatter of
Epoch's refit of Chinchilla):

- ``ranking``: data from each of ``chinchilla``, ``kaplan_nd`` and ``bnsl``; all three laws
  are fitted and ``bayescale.compare`` ranks them by PSIS-LOO. Reported: how often the
  generating law ranks first.
- ``trend``: data from a U-shaped broken power law (the loss falls, then rises past a break
  inside the range) and from a monotone one (the same break, steepening); ``bnsl`` is
  fitted and ``bayescale.trend`` gives the posterior probability that the expected loss is
  non-monotone over the observed range. Reported: how often it is above 0.95 on the
  U-shaped data and below 0.05 on the monotone data.

The generating parameters are fixed, realistic values (below); each simulation draws a
new ladder design and new noise. Every law in a simulation batch is fitted in one compiled
program per law, one problem at a time.

Run: ``python benchmarks/compare.py --simulations 20 --out benchmarks/results/compare.json``
"""

import argparse
import json
import math
import os
import platform
import time
import warnings

import jax
import numpy as np
from bayescale.models import get_law

import bayescale as bs
from bayescale import _progress
from bayescale.inference import fit_problems
from bayescale.law import ModelSpec
from bayescale.testing import ladder, simulate

NUM_RUNS = 60
NOISE = 0.015
LOG_C_REF = math.log(1.2e20)
CONFIG = bs.SamplerConfig(num_warmup=500, num_samples=500)
# Epoch's refit of Chinchilla (E 1.82, A 482, B 2085, alpha 0.35, beta 0.37) in the sampled
# parameterisation: L_ref = E + A N_ref^-alpha + B D_ref^-beta at N_ref = 1e9, D_ref = 2e10.
TRUTH = {
    "chinchilla": {
        "log_L_ref": math.log(2.483),
        "log_ratio_A": -1.675,
        "log_ratio_B": -1.732,
        "alpha": 0.35,
        "beta": 0.37,
    },
    # Kaplan et al.'s constants (a_N 0.076, a_D 0.103, N_c 6.4e13, D_c 1.8e13).
    "kaplan_nd": {"aN": 0.076, "aD": 0.103, "u_ref": 8.2, "v_ref": 6.8},
    # A power law in compute (exponent 0.15) that steepens by 0.2 past a break at 1e20 FLOPs.
    "bnsl": {"log_L_ref": math.log(2.5), "log_ratio": -1.0, "c0": 0.15, "c1": 0.2, "f1": 0.5, "log_d1": math.log(1e20)},
}
# The trend check: the same break, flattening into a rise (c0 + c1 = -0.15) or steepening.
U_SHAPED = {**TRUTH["bnsl"], "c1": -0.3}
MONOTONE = TRUTH["bnsl"]
RANKED = ("chinchilla", "kaplan_nd", "bnsl")


def _simulate(law_name, params, seed):
    law = get_law(law_name)
    columns = ladder(NUM_RUNS, rng=np.random.default_rng(seed))
    inputs = {name: columns[name] for name in law.inputs}
    data = simulate(law, {**params, "sigma": NOISE}, inputs, key=jax.random.key(seed))
    if "N" not in data:  # a law of C: keep the ladder's N and D beside it, as a real table has
        data = bs.as_data({"N": columns["N"], "D": columns["D"], "loss": data["loss"]})
    return data


def _fit_all(laws, datasets, seed):
    """Every law on every data set, one problem per call: a batch runs in lockstep, and a law
    that cannot identify its break (bnsl on data without one) would hold the batch at the
    tree-depth cap; with equal shapes each law still compiles once."""
    keys = jax.random.split(jax.random.key(10_000 + seed), len(laws) * len(datasets))
    by_law, position = {}, 0
    what = f"fit {', '.join(laws)} to {len(datasets)} ladders"
    with warnings.catch_warnings(), _progress.task(what, total=len(keys)) as status:  # shown on a terminal
        warnings.simplefilter("ignore", bs.ConvergenceWarning)  # counted below instead
        for name in laws:
            spec = ModelSpec(get_law(name), "normal")
            by_law[name] = []
            for data in datasets:
                fitted = fit_problems([spec], [data], keys=[keys[position]], config=CONFIG, progress=status.shown)
                by_law[name].append(fitted[0])
                position += 1
                status.advance()
    unhealthy = {name: sum(not f.diagnostics.ok for f in fits) for name, fits in by_law.items()}
    return by_law, unhealthy


def ranking(simulations, generators=RANKED):
    results = {}
    for generator in generators:
        datasets = [_simulate(generator, TRUTH[generator], seed) for seed in range(simulations)]
        start = time.perf_counter()
        by_law, unhealthy = _fit_all(RANKED, datasets, seed=RANKED.index(generator))
        firsts, margins = 0, []
        for position in range(simulations):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", bs.UnreliableLOOWarning)
                result = bs.compare({name: by_law[name][position] for name in RANKED})
            firsts += result.best == generator
            runner_up = list(result.table.values())[1]
            margins.append(runner_up["elpd_diff"] / max(runner_up["dse"], 1e-9))
        results[generator] = {
            "first": firsts,
            "simulations": simulations,
            "rate": firsts / simulations,
            "median_margin_in_dse": float(np.median(margins)),
            "unhealthy_fits": unhealthy,
            "seconds": time.perf_counter() - start,
        }
        print(generator, results[generator], flush=True)
    return results


def trend(simulations):
    results = {}
    cases = (("u_shaped", U_SHAPED, lambda p: p > 0.95), ("monotone", MONOTONE, lambda p: p < 0.05))
    for label, params, passes in cases:
        datasets = [_simulate("bnsl", params, 500 + seed) for seed in range(simulations)]
        start = time.perf_counter()
        by_law, unhealthy = _fit_all(("bnsl",), datasets, seed=7)
        probabilities = [bs.trend(f).p_non_monotone for f in by_law["bnsl"]]
        results[label] = {
            "passes": int(sum(passes(p) for p in probabilities)),
            "simulations": simulations,
            "p_non_monotone": probabilities,
            "unhealthy_fits": unhealthy,
            "seconds": time.perf_counter() - start,
        }
        print(label, {k: v for k, v in results[label].items() if k != "p_non_monotone"}, flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=20)
    parser.add_argument("--only", choices=("ranking", "trend"))
    parser.add_argument("--generators", default=",".join(RANKED), help="generating laws of the ranking")
    parser.add_argument("--out", default="benchmarks/results/compare.json")
    args = parser.parse_args()
    bs.enable_compilation_cache()
    report = {
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jax.default_backend()}",
        "versions": {"bayescale": bs.__version__, "jax": jax.__version__},
        "config": {"num_runs": NUM_RUNS, "noise": NOISE, "sampler": CONFIG.__dict__},
    }
    if args.only in (None, "ranking"):
        report["ranking"] = ranking(args.simulations, args.generators.split(","))
    if args.only in (None, "trend"):
        report["trend"] = trend(args.simulations)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
