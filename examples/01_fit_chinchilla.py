"""Epoch's Chinchilla refit, as a posterior.

Besiroglu et al. (2024), "Chinchilla Scaling: A replication attempt" (arXiv:2404.10102),
refit Hoffmann et al.'s (2022) law L = E + A/N^alpha + B/D^beta to 240 runs read off the
paper's Figure 4, with a Huber loss on log loss, and found constants, and intervals, that
differ from the published ones. This script fits the same law to the same rows with a
Laplace likelihood (the Bayesian counterpart of that Huber refit), prints the posterior
beside Epoch's and Hoffmann's numbers, forecasts the compute-optimal split at the
Chinchilla budget (5.76e23 FLOPs) and saves the loss-frontier figure.

Run: ``python examples/01_fit_chinchilla.py [--num-samples 1000] [--out-dir .]``
"""

import argparse
import os

import jax

import bayescale as bs

# Epoch's Huber fit with 95% bootstrap intervals, and Hoffmann et al.'s published values.
EPOCH = {
    "E": (1.817, 1.769, 1.871),
    "A": (482.0, 285, 744),
    "B": (2085.4, 1042, 5810),
    "alpha": (0.348, 0.317, 0.373),
    "beta": (0.366, 0.331, 0.415),
}
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
CHINCHILLA_BUDGET = 5.76e23


def main(args):
    """Fit Chinchilla's law to Epoch's data, print it beside Epoch and Hoffmann, forecast, plot."""
    data = bs.load_example("chinchilla")  # Epoch's filter: the 5 highest losses dropped
    fit = bs.fit(
        "chinchilla",
        data,
        key=jax.random.key(args.seed),
        likelihood="laplace",
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
    )
    print(f"{len(data)} runs; {'; '.join(data.notes)}")
    print(f"{'':6} {'posterior median [90%]':>30} {'Epoch fit [95%]':>26} {'Hoffmann':>9}")
    for name, (point, low, high) in EPOCH.items():
        row = fit.summary[name]
        print(
            f"{name:6} {row['median']:12.4g} [{row['q05']:7.4g}, {row['q95']:7.4g}]"
            f" {point:9.4g} [{low:6.4g}, {high:6.4g}] {HOFFMANN[name]:9.4g}"
        )
    print(f"diagnostics: {'OK' if fit.diagnostics.ok else '; '.join(fit.diagnostics.problems)}")

    forecast = bs.forecast(fit, compute=CHINCHILLA_BUDGET, key=jax.random.key(args.seed + 1)).summary()
    for name in ("loss", "N_opt", "D_opt", "tokens_per_param"):
        q = forecast[name]
        print(f"at C = {CHINCHILLA_BUDGET:.3g}: {name:16} {q['median']:.4g} [{q['q05']:.4g}, {q['q95']:.4g}]")

    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "chinchilla_frontier.png")
    bs.plot_frontier(fit, target_compute=CHINCHILLA_BUDGET).savefig(path, dpi=120)
    print(f"figure: {path}")
    return fit


if __name__ == "__main__":
    bs.enable_compilation_cache()  # a rerun loads the compiled samplers instead of compiling them
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".")
    main(parser.parse_args())
