"""Tokens per parameter from three IsoFLOP ladders: two laws per source, compared by PSIS-LOO.

Hoffmann et al.'s (2022) "about 20 tokens per parameter" comes from one ladder of runs;
the compute-optimal split also depends on the data, the architecture and what is called
the loss. This script takes three ladders as harmonised by Open-Athena's
scaling-law-analysis (Czech et al. 2026, arXiv:2603.22339), bundled with bayescale: the
Chinchilla runs as published in apple/ml-scalefit, the digitised IsoFLOP figure of the
Llama 3 report (Llama Team 2024, arXiv:2407.21783; loss as plotted, on the figure's own
scale) and Marin's scaling ladder on DCLM (Paloma loss). For each it fits Hoffmann et
al.'s ``chinchilla`` law E + A/N^alpha + B/D^beta and Kaplan et al.'s (2020) ``kaplan_nd``
(no irreducible loss) with a Laplace likelihood, compares them by PSIS-LOO (Vehtari,
Gelman and Gabry 2017), and forecasts the compute-optimal tokens per parameter at 1e24
FLOPs, averaged over the two laws with stacking weights (Yao et al. 2018).

LOO scores how well each law describes its ladder; 1e24 FLOPs lies 2.5 to 3.5 decades
beyond the largest run of each, so the forecast is an extrapolation and its interval is
the honest part (example 02 scores laws by leave-future-out instead). The sources'
origin, licence situation and the rows kept are in
``bayescale/datasets/open_athena_isoflops.SOURCE.md``.

Run: ``python examples/03_isoflop_sources.py [--num-samples 1000] [--out-dir .]``
"""

import argparse
import os

import jax
import numpy as np
from matplotlib.figure import Figure

import bayescale as bs
from bayescale.inference import fit_problems
from bayescale.law import ModelSpec, resolve_law

SOURCES = ("ml_scalefit", "llama_3", "marin_dclm")
LAWS = ("chinchilla", "kaplan_nd")
TARGET_COMPUTE = 1e24


def interval(q, fmt=".3g"):
    """``median [q05, q95]`` of a forecast quantity's summary."""
    return f"{q['median']:{fmt}} [{q['q05']:{fmt}}, {q['q95']:{fmt}}]"


def main(args):
    """Fit both laws to every source, compare, forecast, print and plot."""
    data = {source: bs.load_example(f"isoflops_{source}") for source in SOURCES}
    config = bs.SamplerConfig(num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.num_chains)
    key, *keys = jax.random.split(jax.random.key(args.seed), len(SOURCES) * len(LAWS) + 1)
    # One compiled program serves all six fits: for tables this small, compiling, not
    # sampling, is what a fit costs, and bs.fit would compile once per law and table size.
    fitted = iter(
        fit_problems(
            [ModelSpec(resolve_law(law), "laplace") for _ in SOURCES for law in LAWS],
            [data[source] for source in SOURCES for _ in LAWS],
            keys=keys,
            config=config,
        )
    )
    fits = {source: {law: next(fitted) for law in LAWS} for source in SOURCES}

    print(f"compute-optimal tokens per parameter (D/N) at C = {TARGET_COMPUTE:.0e} FLOPs: median [90% interval]")
    print(
        f"{'source':12} {'runs':>4} {'C range (FLOPs)':>15} {'best (LOO)':>11} {'elpd_diff ± dse':>15} {'weight':>6}"
        f" {'D/N averaged':>20} {'chinchilla':>10} {'kaplan_nd':>9}  checks"
    )
    ratios = {}
    for source, laws in fits.items():
        comparison = bs.compare(laws)
        key, *subkeys = jax.random.split(key, len(LAWS) + 2)
        forecasts = {"averaged": bs.forecast(comparison, compute=TARGET_COMPUTE, key=subkeys[0])}
        forecasts.update(
            {
                law: bs.forecast(fit, compute=TARGET_COMPUTE, key=subkey)
                for (law, fit), subkey in zip(laws.items(), subkeys[1:], strict=True)
            }
        )
        ratios[source] = {name: forecast.summary()["tokens_per_param"] for name, forecast in forecasts.items()}
        other = comparison.table[next(name for name in comparison.table if name != comparison.best)]
        failed = [law for law, fit in laws.items() if not fit.diagnostics.ok]
        span = f"{data[source]['C'].min():.0e}–{data[source]['C'].max():.0e}"
        print(
            f"{source:12} {len(data[source]):4d} {span:>15} {comparison.best:>11}"
            f" {other['elpd_diff']:8.1f} ± {other['dse']:4.1f} {comparison.weights[comparison.best]:6.3f}"
            f" {interval(ratios[source]['averaged']):>20} {ratios[source]['chinchilla']['median']:10.3g}"
            f" {ratios[source]['kaplan_nd']['median']:9.3g}  {'FAILED: ' + ', '.join(failed) if failed else 'ok'}"
        )
    print(
        "elpd_diff: how far the other law falls below the best by PSIS-LOO (with the standard error of the "
        "difference); weight: the best law's stacking weight in the averaged forecast."
    )
    if any(not fit.diagnostics.ok for laws in fits.values() for fit in laws.values()):
        print("some sampler checks failed (warnings above): follow their advice before trusting those rows")

    figure = Figure(figsize=(7, 3.6), layout="constrained")
    ax = figure.add_subplot()
    names = ("averaged", *LAWS)
    for row, by_name in enumerate(ratios.values()):
        for offset, (colour, name) in zip((-0.2, 0.0, 0.2), enumerate(names), strict=True):
            q = by_name[name]
            ax.errorbar(
                q["median"],
                row + offset,
                xerr=[[q["median"] - q["q05"]], [q["q95"] - q["median"]]],
                fmt="o",
                capsize=3,
                color=f"C{colour}",
                label=name if row == 0 else None,
            )
    ax.axvline(20, color="grey", linestyle=":", linewidth=1, label="20 (Hoffmann et al.)")
    ax.set(
        xscale="log",
        yticks=np.arange(len(ratios)),
        yticklabels=list(ratios),
        xlabel=f"compute-optimal tokens per parameter at C = {TARGET_COMPUTE:.0e} (median, 90% interval)",
        title="three IsoFLOP ladders, chinchilla and kaplan_nd averaged by LOO stacking",
    )
    ax.invert_yaxis()
    ax.legend(fontsize="small")
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "isoflop_sources.png")
    figure.savefig(path, dpi=120)
    print(f"figure: {path}")
    return ratios


if __name__ == "__main__":
    bs.enable_compilation_cache()  # a rerun loads the compiled samplers instead of compiling them
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".")
    main(parser.parse_args())
