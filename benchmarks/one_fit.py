"""One Chinchilla fit, fast: bayescale against plain NumPyro, PyMC, nutpie and Epoch's bootstrap.

Issue 5, benchmark (a). Every tool fits the same model to the same 240 runs (Epoch's
reconstruction of the Chinchilla runs, bundled as ``bs.load_example("chinchilla")``):
bayescale's ``chinchilla`` law in its own sampling parameterisation, with its priors,

    log_L_ref ~ Normal(0.5, 1.5)    log_ratio_A, log_ratio_B ~ Normal(0, 1.5)
    alpha, beta ~ Beta(2, 4)        sigma ~ HalfNormal(0.1)
    log L_i ~ Normal(mu_i, sigma),  mu_i = log(E + A N_i^-alpha + B D_i^-beta),

(see ``models/chinchilla.py`` for how E, A and B follow from the level and the shares),
and 4 chains x (1000 warmup + 1000 draws):

- ``bayescale``: ``bs.fit("chinchilla", data, likelihood="normal")`` (MAP search, Laplace
  whitening, dense-mass NUTS, vectorized chains, summary and diagnostics);
- ``numpyro``: the same model written as a plain NumPyro model, ``MCMC(NUTS(model))`` with
  NumPyro's defaults (diagonal mass matrix, uniform initialisation) and
  ``chain_method="vectorized"``;
- ``pymc``: the same model in PyMC 5, ``pm.sample`` with its default sampler and cores;
- ``nutpie``: the same PyMC model, ``nutpie.compile_pymc_model`` (numba backend) and
  ``nutpie.sample``;
- ``bootstrap``: Epoch's least-squares refit (Besiroglu et al. 2024), no priors, as their
  notebook does it: the Huber loss (delta 1e-3) of log loss against
  ``log(E + A N^-alpha + B D^-beta)``, minimised by L-BFGS-B (scipy) from each of their
  4,500 grid starts on the full data (the point estimate), then by BFGS on each of 4,000
  bootstrap resamples of the 240 runs, from Hoffmann et al.'s estimates (the intervals).
  Epoch let scipy difference the gradient of the grid fits; here every gradient is
  analytic, which makes this peer faster, not slower. It has no ESS; its 4,000 resamples
  count as its draws.

Each tool runs in fresh processes (PyMC and nutpie in the interpreter of ``--peer-python``,
a separate environment): a cold process with an empty compilation cache (JAX's persistent
cache, PyTensor's compile directory), then a second process with the cache the first
filled ("cached"). Each process fits twice: the first fit is cold (or cached), the second,
with a new seed, is warm (what a second fit in a session costs). Repeats interleave the
tools in a rotating order, so background load hits them alike. PyMC (minutes per fit) and
the bootstrap (minutes) run once by default, and PyMC's cached process fits only once.
bayescale and NumPyro sample in float32 (JAX's default), PyMC and nutpie in float64.

Reported per fit: the wall time of the fit call (for a fresh process also its start and
imports), the minimum bulk ESS (ArviZ, ``method="bulk"``) over E, A, B, alpha and beta,
derived from every tool's draws by one function here, and that ESS per second. Ratios of
bayescale's ESS per second to each peer's are taken within a repeat, then the median over
repeats. Two last processes time the steps of bayescale's fit, cold, cached and warm
(``--no-breakdown`` skips them).

Run: ``python benchmarks/one_fit.py --peer-python /work/venv-peers/bin/python --repeats 3``
(peers: ``pip install pymc nutpie`` into that environment).
"""

import time

STARTED = time.time()  # before the imports, so a worker can report their time

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402

NUM_WARMUP = 1000
NUM_SAMPLES = 1000
NUM_CHAINS = 4
# bayescale's chinchilla reference scale (models/chinchilla.py): 1B parameters at 20 tokens each.
LOG_N_REF = math.log(1e9)
LOG_D_REF = math.log(2e10)
SAMPLED = ("log_L_ref", "log_ratio_A", "log_ratio_B", "alpha", "beta", "sigma")
LAW_PARAMETERS = ("E", "A", "B", "alpha", "beta")
SAMPLERS = ("bayescale", "numpyro", "nutpie", "pymc")
TOOLS = (*SAMPLERS, "bootstrap")
PEERS = ("pymc", "nutpie")  # run by --peer-python
# Epoch's least-squares refit: Huber delta, starting grid and bootstrap size (their notebook).
HUBER_DELTA = 1e-3
BOOTSTRAPS = 4000
EPOCH_GRID = {
    "a": np.arange(0.0, 30.0, 5.0),
    "b": np.arange(0.0, 30.0, 5.0),
    "e": np.arange(-1.0, 1.5, 0.5),
    "alpha": np.arange(0.0, 2.5, 0.5),
    "beta": np.arange(0.0, 2.5, 0.5),
}
# Epoch's bootstrap fits start from Hoffmann et al.'s estimates (their ``true_params``: log A,
# log B, log E, alpha, beta).
HOFFMANN = np.array([6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083])
# Issue 5's acceptance for this benchmark.
TARGETS = {"warm_s": 1.0, "cached_s": 5.0, "min_ess_bulk": 400, "ratio_nutpie": 10.0, "ratio_numpyro": 3.0}


def derived(draws: dict) -> dict:
    """E, A, B, alpha and beta from the sampled parameterisation, in float64 (as the law derives them)."""
    p = {name: np.asarray(draws[name], np.float64) for name in SAMPLED[:5]}
    log_E = p["log_L_ref"] - np.logaddexp(np.logaddexp(0.0, p["log_ratio_A"]), p["log_ratio_B"])
    return {
        "E": np.exp(log_E),
        "A": np.exp(log_E + p["log_ratio_A"] + p["alpha"] * LOG_N_REF),
        "B": np.exp(log_E + p["log_ratio_B"] + p["beta"] * LOG_D_REF),
        "alpha": p["alpha"],
        "beta": p["beta"],
    }


# ----------------------------------------------------------------------------- workers
# Each runs in a fresh process: imports (timed), then fit(seed) twice, the second warm.
# A worker returns its fit function; the function returns (draws by name, a dict of facts to record).


def bayescale_worker(args):
    import jax

    import bayescale as bs

    bs.enable_compilation_cache(args.cache)
    data = bs.load_example("chinchilla")

    def fit(seed):
        result = bs.fit("chinchilla", data, key=jax.random.key(seed), likelihood="normal", progress=False)
        draws = {name: np.asarray(result.posterior[name]) for name in SAMPLED}
        return draws, {"divergences": result.diagnostics.divergences}

    return fit


def numpyro_worker(args):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.scipy.special import logsumexp
    from numpyro.infer import MCMC, NUTS

    # What bayescale's compilation cache does, so the "cached" process can reuse programs too.
    jax.config.update("jax_compilation_cache_dir", args.cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    values = np.load(args.data)
    log_N, log_D = jnp.log(values["N"]), jnp.log(values["D"])
    log_loss = jnp.log(values["loss"])

    def model(log_N, log_D, log_loss=None):
        log_L_ref = numpyro.sample("log_L_ref", dist.Normal(0.5, 1.5))
        log_ratio_A = numpyro.sample("log_ratio_A", dist.Normal(0.0, 1.5))
        log_ratio_B = numpyro.sample("log_ratio_B", dist.Normal(0.0, 1.5))
        alpha = numpyro.sample("alpha", dist.Beta(2.0, 4.0))
        beta = numpyro.sample("beta", dist.Beta(2.0, 4.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(0.1))
        log_E = log_L_ref - logsumexp(jnp.stack([jnp.zeros(()), log_ratio_A, log_ratio_B]))
        terms = [
            jnp.broadcast_to(log_E, log_N.shape),
            log_E + log_ratio_A - alpha * (log_N - LOG_N_REF),
            log_E + log_ratio_B - beta * (log_D - LOG_D_REF),
        ]
        with numpyro.plate("obs", log_N.shape[0]):
            numpyro.sample("log_loss", dist.Normal(logsumexp(jnp.stack(terms), axis=0), sigma), obs=log_loss)

    mcmc = MCMC(
        NUTS(model),
        num_warmup=NUM_WARMUP,
        num_samples=NUM_SAMPLES,
        num_chains=NUM_CHAINS,
        chain_method="vectorized",
        progress_bar=False,
    )

    def fit(seed):
        # A second fit reuses the MCMC object, as a session would: its compiled chain is cached.
        mcmc.run(jax.random.key(seed), log_N, log_D, log_loss, extra_fields=("diverging",))
        draws = mcmc.get_samples(group_by_chain=True)
        divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
        return {name: np.asarray(draws[name]) for name in SAMPLED}, {"divergences": divergences}

    return fit


def _pymc_model(values):
    """The model in PyMC (float64, PyMC's default)."""
    import pymc as pm
    import pytensor.tensor as pt

    log_N, log_D = np.log(values["N"]), np.log(values["D"])
    with pm.Model() as model:
        log_L_ref = pm.Normal("log_L_ref", 0.5, 1.5)
        log_ratio_A = pm.Normal("log_ratio_A", 0.0, 1.5)
        log_ratio_B = pm.Normal("log_ratio_B", 0.0, 1.5)
        alpha = pm.Beta("alpha", 2.0, 4.0)
        beta = pm.Beta("beta", 2.0, 4.0)
        sigma = pm.HalfNormal("sigma", 0.1)
        log_E = log_L_ref - pm.math.logsumexp(pt.stack([pt.constant(0.0), log_ratio_A, log_ratio_B]))
        terms = [
            log_E + pt.zeros(log_N.shape),
            log_E + log_ratio_A - alpha * (log_N - LOG_N_REF),
            log_E + log_ratio_B - beta * (log_D - LOG_D_REF),
        ]
        mu = pm.math.logsumexp(pt.stack(terms), axis=0)
        pm.Normal("log_loss", mu, sigma, observed=np.log(values["loss"]))
    return model


def _trace_draws(trace):
    posterior = trace.posterior
    divergences = int(np.asarray(trace.sample_stats["diverging"]).sum())
    return {name: np.asarray(posterior[name]) for name in SAMPLED}, {"divergences": divergences}


def pymc_worker(args):
    import pymc as pm

    model = _pymc_model(np.load(args.data))

    def fit(seed):
        with model:
            trace = pm.sample(
                draws=NUM_SAMPLES, tune=NUM_WARMUP, chains=NUM_CHAINS, random_seed=seed, progressbar=False
            )
        return _trace_draws(trace)

    return fit


def nutpie_worker(args):
    import nutpie

    model = _pymc_model(np.load(args.data))
    compiled = []

    def fit(seed):
        # Compiled once per process (timed with the first fit); a warm fit reuses it.
        if not compiled:
            compiled.append(nutpie.compile_pymc_model(model))
        trace = nutpie.sample(
            compiled[0], draws=NUM_SAMPLES, tune=NUM_WARMUP, chains=NUM_CHAINS, seed=seed, progress_bar=False
        )
        return _trace_draws(trace)

    return fit


def _huber_objective(theta, log_N, log_D, log_loss):
    """Epoch's objective and its gradient: sum of Huber(log prediction - log loss), theta = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_N, b - beta * log_D, np.full_like(log_N, e)])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    residual = top + np.log(total) - log_loss
    small = np.abs(residual) <= HUBER_DELTA
    value = np.sum(np.where(small, 0.5 * residual**2, HUBER_DELTA * (np.abs(residual) - 0.5 * HUBER_DELTA)))
    slope = np.clip(residual, -HUBER_DELTA, HUBER_DELTA) * weights / total  # d value / d term, per row
    gradient = np.array(
        [slope[0].sum(), slope[1].sum(), slope[2].sum(), -(slope[0] * log_N).sum(), -(slope[1] * log_D).sum()]
    )
    return value, gradient


def bootstrap_worker(args):
    from scipy.optimize import minimize

    values = np.load(args.data)
    log_N, log_D, log_loss = np.log(values["N"]), np.log(values["D"]), np.log(values["loss"])

    def fit(seed):
        every = np.arange(len(log_N))
        grid = np.stack(np.meshgrid(*EPOCH_GRID.values(), indexing="ij"), -1).reshape(-1, 5)
        best, start = None, time.perf_counter()
        for a, b, e, alpha, beta in grid:
            result = minimize(_huber_objective, [a, b, e, alpha, beta], (log_N, log_D, log_loss), "L-BFGS-B", jac=True)
            if result.success and (best is None or result.fun < best.fun):
                best = result
        grid_s, start = time.perf_counter() - start, time.perf_counter()
        rng = np.random.default_rng(seed)
        fits = []
        for _ in range(BOOTSTRAPS):
            rows = rng.choice(every, every.size)
            data = (log_N[rows], log_D[rows], log_loss[rows])
            fits.append(minimize(_huber_objective, HOFFMANN, data, "BFGS", jac=True).x)
        facts = {"grid_s": grid_s, "bootstrap_s": time.perf_counter() - start, "point_estimate": best.x.tolist()}
        a, b, e, alpha, beta = np.asarray(fits).T
        return {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": alpha, "beta": beta}, facts

    return fit


WORKERS = {
    "bayescale": bayescale_worker,
    "numpyro": numpyro_worker,
    "pymc": pymc_worker,
    "nutpie": nutpie_worker,
    "bootstrap": bootstrap_worker,
}


def run_worker(args):
    """A fresh process: import and build (timed), then fit ``args.fits`` times; draws to ``args.out``.npz."""
    fit = WORKERS[args.worker](args)
    result = {"started": STARTED, "imported": time.time(), "fits": []}
    draws = {}
    for number in range(args.fits):
        start = time.perf_counter()
        values, facts = fit(args.seed + number)
        result["fits"].append({"seconds": time.perf_counter() - start, **facts})
        draws.update({f"{number}/{name}": value for name, value in values.items()})
    np.savez(args.out + ".npz", **draws)
    with open(args.out, "w") as f:
        json.dump(result, f)


# ----------------------------------------------------------------------------- where bayescale's time goes


def _fit_steps(spec, config, data, seed):
    """One fit as ``inference._fit_group`` runs it, each step timed; and the leapfrog steps per draw."""
    import jax

    from bayescale._sampler import lowered_sampler
    from bayescale.inference import _assemble, _prepare, bucket_inputs, problem_idata

    key = jax.random.key(seed)
    times = {}
    start = time.perf_counter()
    _, prepared = _prepare("chinchilla", data, None, False)
    args, call = bucket_inputs((spec,), spec, [prepared], [key], [0], runs_size=1)
    times["inputs"] = time.perf_counter() - start
    # sampler_program is lowered_sampler(...).compile(), split here.
    start = time.perf_counter()
    lowered = lowered_sampler((spec,), config, call)
    times["trace sampler (or read it back)"] = time.perf_counter() - start
    start = time.perf_counter()
    program = lowered.compile()
    times["compile sampler (or load it)"] = time.perf_counter() - start
    start = time.perf_counter()
    raw = jax.block_until_ready(program(*call))
    times["run sampler"] = time.perf_counter() - start
    start = time.perf_counter()
    idata = problem_idata(spec, prepared, args[0], raw, 0, config, key)
    times["draws to ArviZ data"] = time.perf_counter() - start
    start = time.perf_counter()
    _assemble(spec, prepared, idata, config)
    times["summary and diagnostics"] = time.perf_counter() - start
    steps = np.asarray(raw.n_steps[0])
    # Chains run in lockstep: an iteration costs the longest of the four trajectories.
    leapfrog = {"mean": float(steps.mean()), "mean_lockstep": float(steps.max(axis=0).mean())}
    return times, leapfrog


def breakdown(args):
    """Time the steps of bayescale's first fit in this process, then of warm fits and their sampler.

    The first fit is cold or cached, as the cache given finds it. With ``args.fits`` > 0,
    warm fits follow: the whole ``bs.fit`` and its steps alternately, and the sampler's
    parts. The sampler is one compiled program (MAP search, warmup, sampling); its parts are
    timed by compiling it again with fewer iterations: 0 warmup + 1 draw (MAP search and
    initialisation), 1000 warmup + 1 draw, and the full 1000 + 1000, called in turn.
    """
    import jax

    import bayescale as bs
    from bayescale._sampler import sampler_program
    from bayescale.inference import _prepare, bucket_inputs
    from bayescale.law import ModelSpec

    bs.enable_compilation_cache(args.cache)
    data = bs.load_example("chinchilla")
    config = bs.SamplerConfig()
    spec = ModelSpec(_prepare("chinchilla", data, None, False)[0], "normal", False)
    start = time.perf_counter()
    first_steps, _ = _fit_steps(spec, config, data, 0)
    result = {"first_fit_s": time.perf_counter() - start, "first_fit_steps_s": first_steps}
    if args.fits > 0:
        variants = {
            "MAP search + init (0 + 1)": config.replace(num_warmup=0, num_samples=1),
            "+ warmup (1000 + 1)": config.replace(num_samples=1),
            "full (1000 + 1000)": config,
        }
        _, call = bucket_inputs((spec,), spec, [data], [jax.random.key(0)], [0], runs_size=1)
        programs = {name: sampler_program((spec,), variant, *call) for name, variant in variants.items()}
        fits, steps, parts = [], [], {name: [] for name in variants}
        for repeat in range(args.fits):
            seed = 100 + repeat
            start = time.perf_counter()
            bs.fit("chinchilla", data, key=jax.random.key(seed), likelihood="normal", progress=False)
            fits.append(time.perf_counter() - start)
            times, leapfrog = _fit_steps(spec, config, data, seed)
            steps.append(times)
            _, call = bucket_inputs((spec,), spec, [data], [jax.random.key(seed)], [0], runs_size=1)
            for name, program in programs.items():
                start = time.perf_counter()
                jax.block_until_ready(program(*call))
                parts[name].append(time.perf_counter() - start)
        median = statistics.median
        variant_s = {name: median(values) for name, values in parts.items()}
        names = list(variants)
        result.update(
            {
                "warm_fit_s": median(fits),
                "warm_steps_s": {name: median(t[name] for t in steps) for name in steps[0]},
                "sampler_variants_s": variant_s,
                "sampler_parts_s": {
                    "MAP search + init": variant_s[names[0]],
                    "warmup (1000 iterations)": variant_s[names[1]] - variant_s[names[0]],
                    "sampling (1000 iterations)": variant_s[names[2]] - variant_s[names[1]],
                },
                "leapfrog_per_iteration": leapfrog,
                "repeats": args.fits,
                "raw": {"fit_s": fits, "steps_s": steps, "sampler_variants_s": parts},
            }
        )
    with open(args.out, "w") as f:
        json.dump(result, f)


# ----------------------------------------------------------------------------- orchestration


def _launch(tool, python, data, cache, seed, fits, scratch, extra_env=None):
    """Run one worker process; return its record with the process's own times."""
    out = os.path.join(scratch, f"{tool}-{seed}-{time.time_ns()}.json")
    command = [python, os.path.abspath(__file__), "--worker", tool, "--data", data, "--cache", cache]
    command += ["--seed", str(seed), "--fits", str(fits), "--out", out]
    env = {**os.environ, **(extra_env or {})}
    launched = time.time()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    process_s = time.time() - launched
    if completed.returncode != 0:
        raise RuntimeError(f"{tool} worker failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    with open(out) as f:
        record = json.load(f)
    record["process_s"] = process_s
    record["startup_s"] = record.pop("started") - launched
    record["import_s"] = record.pop("imported") - launched - record["startup_s"]
    record["draws"] = dict(np.load(out + ".npz"))
    return record


def _ess(draws: dict) -> tuple[dict, float]:
    """Bulk ESS (ArviZ) of each law parameter, and the largest rank R-hat."""
    from bayescale import _arviz

    values = derived(draws)
    data = _arviz.from_groups({"posterior": values}, {}, {})
    ess = {name: float(value) for name, value in _arviz.ess(data, LAW_PARAMETERS, "bulk").items()}
    r_hat = max(float(value) for value in _arviz.rhat(data, LAW_PARAMETERS).values())
    return ess, r_hat


def _fit_records(tool, kind, repeat, record):
    rows = []
    for number, fit in enumerate(record["fits"]):
        draws = {key.split("/", 1)[1]: value for key, value in record["draws"].items() if key.startswith(f"{number}/")}
        row = {"tool": tool, "repeat": repeat, "process": kind, "fit": kind if number == 0 else "warm", **fit}
        if tool == "bootstrap":
            row["draws"] = BOOTSTRAPS
            row["median"] = {name: float(np.median(draws[name])) for name in LAW_PARAMETERS}
            row["interval_95"] = {name: np.quantile(draws[name], [0.025, 0.975]).tolist() for name in LAW_PARAMETERS}
        else:
            row["draws"] = int(np.asarray(draws["alpha"]).size)
            row["ess_bulk"], row["max_r_hat"] = _ess(draws)
            row["min_ess_bulk"] = min(row["ess_bulk"].values())
            row["ess_per_s"] = row["min_ess_bulk"] / fit["seconds"]
            row["median"] = {name: float(np.median(value)) for name, value in derived(draws).items()}
        if number == 0:
            row.update({key: record[key] for key in ("process_s", "startup_s", "import_s")})
        rows.append(row)
    return rows


def _machine(peer_python) -> dict:
    import jax
    import numpyro
    import scipy

    import bayescale

    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    with open("/proc/meminfo") as f:
        memory_gib = int(f.readline().split()[1]) / 2**20
    probe = "import pymc, nutpie, pytensor; print(pymc.__version__, nutpie.__version__, pytensor.__version__)"
    peers = subprocess.run([peer_python, "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "bayescale": bayescale.__version__,
        "scipy": scipy.__version__,
        "pymc": peers[0],
        "nutpie": peers[1],
        "pytensor": peers[2],
        "backend": jax.default_backend(),
    }


def _ess_per_s(rows: list, tool: str, repeat: int, kind: str) -> list:
    return [row["ess_per_s"] for row in rows if (row["tool"], row["repeat"], row["fit"]) == (tool, repeat, kind)]


def _summarize(rows: list) -> dict:
    """Medians per tool and fit kind, and bayescale's ESS-per-second ratios taken within each repeat."""
    median = statistics.median
    summary = {}
    for tool in TOOLS:
        mine = [row for row in rows if row["tool"] == tool]
        if not mine:
            continue
        entry = {}
        for kind in ("cold", "cached", "warm"):
            fits = [row for row in mine if row["fit"] == kind]
            if not fits:
                continue
            entry[f"{kind}_s"] = median(row["seconds"] for row in fits)
            entry[f"{kind}_runs_s"] = [round(row["seconds"], 2) for row in fits]
            if tool != "bootstrap":
                entry[f"{kind}_ess_per_s"] = median(row["ess_per_s"] for row in fits)
            processes = [row for row in fits if "process_s" in row]
            if processes:
                entry[f"{kind}_process_s"] = median(row["process_s"] for row in processes)
                entry[f"{kind}_start_import_s"] = median(row["startup_s"] + row["import_s"] for row in processes)
        if tool == "bootstrap":
            entry["grid_s"] = median(row["grid_s"] for row in mine)
            entry["bootstrap_s"] = median(row["bootstrap_s"] for row in mine)
        else:
            entry["min_ess_bulk"] = median(row["min_ess_bulk"] for row in mine)
            entry["min_ess_bulk_lowest"] = min(row["min_ess_bulk"] for row in mine)
            entry["max_r_hat"] = max(row["max_r_hat"] for row in mine)
            entry["divergences_max"] = max(row["divergences"] for row in mine)
        summary[tool] = entry
    ratios = {}
    for peer in SAMPLERS[1:]:
        for kind in ("warm", "cached", "cold"):
            within = []
            for repeat in sorted({row["repeat"] for row in rows}):
                ours, theirs = (_ess_per_s(rows, name, repeat, kind) for name in ("bayescale", peer))
                if ours and theirs:
                    within.append(median(ours) / median(theirs))
            if within:
                ratios[f"{peer}_{kind}"] = {"median": median(within), "per_repeat": [round(x, 2) for x in within]}
    return {"tools": summary, "ess_per_s_ratio_bayescale_over": ratios}


def _verdict(summary: dict) -> dict:
    tools, ratios = summary["tools"], summary["ess_per_s_ratio_bayescale_over"]
    ours = tools["bayescale"]
    verdict = {
        "warm fit under 1 s": ours["warm_s"] < TARGETS["warm_s"],
        "cached fit call under 5 s": ours["cached_s"] < TARGETS["cached_s"],
        "cached process (start, imports, fit) under 5 s": ours["cached_process_s"] < TARGETS["cached_s"],
        "min bulk ESS >= 400 in every fit": ours["min_ess_bulk_lowest"] >= TARGETS["min_ess_bulk"],
    }
    if "nutpie_warm" in ratios:
        verdict["10x nutpie's ESS/s (warm)"] = ratios["nutpie_warm"]["median"] >= TARGETS["ratio_nutpie"]
    if "numpyro_warm" in ratios:
        verdict["3x plain NumPyro's ESS/s (warm)"] = ratios["numpyro_warm"]["median"] >= TARGETS["ratio_numpyro"]
    return verdict


def main(args):
    import bayescale as bs

    peer_python = args.peer_python
    tools = [tool for tool in TOOLS if tool not in args.skip]
    machine = _machine(peer_python)
    print(json.dumps(machine), file=sys.stderr)
    scratch = tempfile.mkdtemp(prefix="one-fit-")
    data = bs.load_example("chinchilla")
    data_path = os.path.join(scratch, "chinchilla.npz")
    np.savez(data_path, N=np.asarray(data["N"]), D=np.asarray(data["D"]), loss=np.asarray(data["loss"]))
    rows = []
    started = time.time()
    for repeat in range(args.repeats):
        shift = repeat % max(len(tools), 1)
        order = tools[shift:] + tools[:shift]  # rotate: no tool always first
        for tool in order:
            if repeat >= {"pymc": args.pymc_repeats, "bootstrap": args.bootstrap_repeats}.get(tool, args.repeats):
                continue
            python = peer_python if tool in PEERS else sys.executable
            cache = tempfile.mkdtemp(prefix=f"cache-{tool}-", dir=scratch)
            env = {"PYTENSOR_FLAGS": f"base_compiledir={cache}"} if tool in PEERS else {}
            kinds = ("cold",) if tool == "bootstrap" else ("cold", "cached")
            for kind in kinds:
                seed = 1000 * repeat + 10 * kinds.index(kind)
                # A PyMC fit takes minutes: its cached process fits once, the cold one gives the warm fit.
                fits = 1 if tool == "bootstrap" or (tool == "pymc" and kind == "cached") else 2
                record = _launch(tool, python, data_path, cache, seed, fits, scratch, env)
                new = _fit_records(tool, kind, repeat, record)
                rows += new
                report = ", ".join(f"{row['fit']} {row['seconds']:.2f} s" for row in new)
                ess = ", ".join(f"{row['min_ess_bulk']:.0f}" for row in new if "min_ess_bulk" in row)
                start_import = record["startup_s"] + record["import_s"]
                print(
                    f"[{time.time() - started:6.0f} s] repeat {repeat} {tool} {kind} process: {report}; process "
                    f"{record['process_s']:.1f} s (start+import {start_import:.1f} s); min ESS {ess}",
                    file=sys.stderr,
                )
            shutil.rmtree(cache, ignore_errors=True)
    summary = _summarize(rows)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "load_average_at_end": os.getloadavg(),
        "settings": {
            "data": "bs.load_example('chinchilla'): Epoch's 240 runs",
            "likelihood": "normal on log loss",
            "num_warmup": NUM_WARMUP,
            "num_samples": NUM_SAMPLES,
            "num_chains": NUM_CHAINS,
            "repeats": args.repeats,
            "pymc_repeats": min(args.pymc_repeats, args.repeats),
            "bootstrap": {
                "huber_delta": HUBER_DELTA,
                "grid_starts": int(np.prod([len(v) for v in EPOCH_GRID.values()])),
                "resamples": BOOTSTRAPS,
                "repeats": min(args.bootstrap_repeats, args.repeats),
            },
        },
        "targets": TARGETS,
        **summary,
        "verdict": _verdict(summary) if "bayescale" in summary["tools"] else {},
        "fits": rows,
    }
    if not args.no_breakdown:
        # Twice in one cache: the first process finds it empty (cold), the second filled (cached).
        cache = tempfile.mkdtemp(prefix="cache-breakdown-", dir=scratch)
        result["bayescale_breakdown"] = {}
        for kind, fits in (("cold", 0), ("cached", args.breakdown_repeats)):
            out = os.path.join(scratch, f"breakdown-{kind}.json")
            command = [sys.executable, os.path.abspath(__file__), "--worker", "breakdown", "--data", data_path]
            command += ["--cache", cache, "--fits", str(fits), "--out", out]
            subprocess.run(command, check=True)
            with open(out) as f:
                result["bayescale_breakdown"][kind] = json.load(f)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, default=float)
    shown = {key: result.get(key) for key in ("tools", "ess_per_s_ratio_bayescale_over", "verdict")}
    print(json.dumps(shown, indent=1, default=float))
    shutil.rmtree(scratch, ignore_errors=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=sys.executable, help="interpreter with pymc and nutpie installed")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every tool")
    parser.add_argument("--pymc-repeats", type=int, default=1, help="repeats of PyMC (minutes per fit)")
    parser.add_argument("--bootstrap-repeats", type=int, default=1, help="repeats of the bootstrap (minutes)")
    parser.add_argument("--skip", nargs="*", default=[], choices=TOOLS, help="tools to leave out")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the timing of bayescale's warm fit's parts")
    parser.add_argument("--breakdown-repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "one_fit.json"))
    # A worker process (launched by the orchestrator above).
    parser.add_argument("--worker", choices=[*TOOLS, "breakdown"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--fits", type=int, default=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker == "breakdown":
        breakdown(arguments)
    elif arguments.worker:
        run_worker(arguments)
    else:
        main(arguments)
