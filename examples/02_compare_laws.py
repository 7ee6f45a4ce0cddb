"""Which law to trust for a forecast: PSIS-LOO against leave-future-out on the Chinchilla runs.

Fits three laws to Epoch's reconstruction of the Chinchilla runs (Besiroglu et al. 2024,
arXiv:2404.10102) with a Laplace likelihood, as in example 01: Hoffmann et al.'s (2022)
``chinchilla`` L(N, D) = E + A/N^alpha + B/D^beta, Kaplan et al.'s (2020, eq. 1.5)
``kaplan_nd``, and ``kaplan_c_e``, a power law in compute alone with a floor, E + (C_c/C)^a.
Then it scores each law two ways and averages the forecast at the Chinchilla budget
(5.76e23 FLOPs) over the laws with stacking weights (Yao et al. 2018) under each score.

* PSIS-LOO (Vehtari, Gelman and Gabry 2017) scores every run given all the others,
  larger runs included: it asks how well a law *interpolates* the ladder, and rewards a
  law that explains how the loss varies between N/D splits of the same budget.
* Leave-future-out (Bürkner, Gabry and Vehtari 2020) refits each law on the runs at or
  below a budget and scores the runs above it: it asks how well a law *predicts larger
  runs from smaller ones*, which is the question a forecast depends on.

When the two disagree, the law that interpolates best is not the one that extrapolates
best, and for a forecast the leave-future-out ranking is the relevant one. It is also the
noisier one: it rests on a few runs from one end of the compute range, so read its
differences against their standard errors and try another threshold (``--holdout-above``).
A law of C alone says nothing about the split of a budget, so the compute-optimal N and
tokens per parameter are averaged over the laws of N and D only, with weights from
stacking them alone. ``bnsl`` (``--laws ... bnsl``) is left out by default: it doubles
the run time, and in short runs its chains disagree about where its break lies.

Run: ``python examples/02_compare_laws.py [--num-samples 1000] [--out-dir .]``
"""

import argparse
import os

import jax
import numpy as np
from matplotlib.figure import Figure

import bayescale as bs

CHINCHILLA_BUDGET = 5.76e23
# The 14 runs above 2e21 FLOPs (up to 1e22) are held out. Their refits, on 226 of the 240
# rows, reuse the compiled samplers of the full fits; at 1e21 (23 held out) each law
# compiles twice, and ranks the same way.
HOLDOUT_ABOVE = 2e21


def interval(summary, name, fmt=".4g"):
    """``median [q05, q95]`` of a forecast quantity, or a dash when the law does not give it."""
    if name not in summary:
        return "-"
    q = summary[name]
    return f"{q['median']:{fmt}} [{q['q05']:{fmt}}, {q['q95']:{fmt}}]"


def print_scores(loo, lfo):
    """One row per law: PSIS-LOO, leave-future-out, and the stacking weights under each."""
    print(
        f"{'law':11} {'elpd_loo ± se':>15} {'p_loo':>6} {'k>0.7':>5} {'elpd_diff ± dse':>15} {'w_loo':>6}"
        f" {'elpd_lfo ± se':>15} {'w_lfo':>6}  checks"
    )
    for name, row in loo.table.items():
        future = lfo.table[name]
        print(
            f"{name:11} {row['elpd_loo']:8.1f} ± {row['se']:4.1f} {row['p_loo']:6.1f} {row['pareto_k_high']:5d}"
            f" {row['elpd_diff']:8.1f} ± {row['dse']:4.1f} {row['weight']:6.3f}"
            f" {future['elpd_lfo']:8.1f} ± {future['se_lfo']:4.1f} {future['weight']:6.3f}"
            f"  {'ok' if row['healthy'] else 'FAILED (see warnings)'}"
        )
    verdict = "agree" if loo.best == lfo.best else "disagree"
    print(
        f"LOO ranks {loo.best} first, LFO ranks {lfo.best} first: they {verdict}. LOO asks how well a law "
        "interpolates the ladder; LFO asks how well it predicts larger runs from smaller ones, the question a "
        f"forecast depends on. Trust LFO for extrapolation, but it rests on {lfo.holdout['held_out']} runs: "
        "differences within a few standard errors do not settle it."
    )


def plot(loo, lfo, forecasts, num_laws):
    """Three panels: LOO differences, LFO scores (with standard errors), and the forecasts."""
    figure = Figure(figsize=(13, 3.8), layout="constrained")
    loo_ax, lfo_ax, forecast_ax = figure.subplots(1, 3)
    names = list(loo.table)
    rows = np.arange(len(names))
    loo_ax.barh(rows, [loo.table[n]["elpd_diff"] for n in names], xerr=[loo.table[n]["dse"] for n in names])
    loo_ax.set(
        yticks=rows, yticklabels=names, xlabel="elpd_loo below the best (± se of the difference)", title="PSIS-LOO"
    )
    loo_ax.invert_yaxis()  # best first, as in the table
    lfo_ax.barh(
        rows, [lfo.table[n]["elpd_lfo"] for n in names], xerr=[lfo.table[n]["se_lfo"] for n in names], color="C1"
    )
    lfo_ax.set(
        yticks=rows,
        yticklabels=names,
        xlabel="elpd_lfo (± se)",
        title=f"leave-future-out: {lfo.holdout['held_out']} runs above {lfo.holdout['above']:.3g} FLOPs",
    )
    lfo_ax.invert_yaxis()
    for row, summary in enumerate(forecasts.values()):
        q = summary["loss"]
        forecast_ax.errorbar(
            q["median"],
            row,
            xerr=[[q["median"] - q["q05"]], [q["q95"] - q["median"]]],
            fmt="o",
            capsize=3,
            color="C0" if row < num_laws else "C2",
        )
    forecast_ax.set(
        yticks=np.arange(len(forecasts)),
        yticklabels=list(forecasts),
        xlabel="expected loss (median, 90% interval)",
        title=f"forecast at C = {CHINCHILLA_BUDGET:.3g}",
    )
    forecast_ax.invert_yaxis()
    return figure


def main(args):
    """Fit the laws, compare them by LOO and LFO, forecast, print and plot."""
    data = bs.load_example("chinchilla")
    keys = iter(jax.random.split(jax.random.key(args.seed), 2 * len(args.laws) + 6))
    settings = dict(num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.num_chains)
    fits = {law: bs.fit(law, data, key=next(keys), likelihood="laplace", **settings) for law in args.laws}
    split_fits = {law: fit for law, fit in fits.items() if fit.law.has_compute_frontier}
    holdout_key, split_key = next(keys), next(keys)
    comparisons = {  # per criterion: all the laws, and the laws of N and D alone
        "LOO": (bs.compare(fits), bs.compare(split_fits) if split_fits else None),
        "LFO": (
            bs.compare(fits, key=holdout_key, holdout_above=args.holdout_above),
            bs.compare(split_fits, key=split_key, holdout_above=args.holdout_above) if split_fits else None,
        ),
    }
    loo, lfo = comparisons["LOO"][0], comparisons["LFO"][0]
    print(
        f"{len(data)} runs; leave-future-out refits on C <= {args.holdout_above:.3g} FLOPs "
        f"and scores the {lfo.holdout['held_out']} runs above"
    )
    print_scores(loo, lfo)

    forecasts = {
        name: bs.forecast(fit, compute=CHINCHILLA_BUDGET, key=next(keys)).summary() for name, fit in fits.items()
    }
    for criterion, (everything, splitting) in comparisons.items():
        averaged = bs.forecast(everything, compute=CHINCHILLA_BUDGET, key=next(keys)).summary()
        if splitting is not None:
            split = bs.forecast(splitting, compute=CHINCHILLA_BUDGET, key=next(keys)).summary()
            averaged.update({name: split[name] for name in ("N_opt", "tokens_per_param")})
        forecasts[f"{criterion}-averaged"] = averaged
    print(f"\nforecast at C = {CHINCHILLA_BUDGET:.3g} FLOPs, median [90% interval]")
    print(f"{'':14} {'loss':>26} {'N_opt':>30} {'tokens/param':>22}")
    for name, summary in forecasts.items():
        print(
            f"{name:14} {interval(summary, 'loss'):>26} {interval(summary, 'N_opt', '.3g'):>30}"
            f" {interval(summary, 'tokens_per_param', '.3g'):>22}"
        )
    for criterion, (_, splitting) in comparisons.items():
        if splitting is not None:
            weights = ", ".join(f"{name} {weight:.3f}" for name, weight in splitting.weights.items())
            print(f"{criterion}-averaged N_opt and tokens/param stack the laws of N and D alone: {weights}")
    failed = [name for name, fit in fits.items() if not fit.diagnostics.ok]
    if failed:
        print(
            f"sampler checks failed for {', '.join(failed)} (warnings above): follow their advice before trusting "
            "these numbers"
        )

    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "compare_laws.png")
    plot(loo, lfo, forecasts, len(fits)).savefig(path, dpi=120)
    print(f"figure: {path}")
    return lfo


if __name__ == "__main__":
    bs.enable_compilation_cache()  # a rerun loads the compiled samplers instead of compiling them
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--laws", nargs="+", default=["chinchilla", "kaplan_nd", "kaplan_c_e"])
    parser.add_argument("--holdout-above", type=float, default=HOLDOUT_ABOVE)
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".")
    main(parser.parse_args())
