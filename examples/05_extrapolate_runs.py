"""Is a run on track? Forecasts of three runs' final losses as they train, against what they logged.

Three runs of one 100M-parameter language model, trained for 24,000 steps under a
constant, a cosine and a warmup-stable-decay learning-rate schedule (the Multi-Power Law's
curves, Luo et al. 2025, bundled as ``mpl_100m``). The example forecasts each run's final
loss from its checkpoints up to 4,000, 6,000 and 12,000 steps (about a sixth, a quarter and
a half of the run), as one would while the runs train, and sets each forecast beside the
loss the run went on to log (``observed_until`` holds the later checkpoints back).

The schedules are known to the end, so ``extrapolate`` uses the schedule-aware
``lr_annealing`` (Tissue et al. 2024): the cosine and WSD runs' late drops come from their
schedules, which a schedule-blind law cannot see. The three runs share one model and one
dataset and differ only by their schedules, so every parameter is shared
(``pooling="all"``). For a loss the runs must reach, ``--need``, it prints each run's
probability of reaching it, the question a forecast is for, and from which step it would
log it, beside the step at which it first did.

Run: ``python examples/05_extrapolate_runs.py [--need 3.0] [--num-samples 1000] [--out-dir .]``
"""

import argparse
import os
import warnings

import jax
from matplotlib.figure import Figure

import bayescale as bs
from bayescale.extrapolate import CURVE_CONFIG

CUTS = (4000, 6000, 12000)


def forecast_from(data, cut, args):
    """Extrapolate from the checkpoints up to step ``cut``; return it with its sampler warnings, not shown."""
    config = CURVE_CONFIG.replace(num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.num_chains)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.ConvergenceWarning)
        result = bs.extrapolate(
            data,
            observed_until=cut,
            pooling="all",
            config=config,
            key=jax.random.fold_in(jax.random.key(args.seed), cut),
        )
    return result, [str(warning.message) for warning in caught if issubclass(warning.category, bs.ConvergenceWarning)]


def print_forecasts(results, need):
    """Print one row per cut and run: forecast, logged loss, chance of the loss needed, curve error.

    The curve error is the RMSLE of the predicted curve's median on every checkpoint after
    the cut.
    """
    header = f"{'observed to':>11}  {'run':16} {'median [90% interval]':>25} {'logged':>7} {'error':>7}"
    print(f"{header}  covered  P(<= {need:g})  RMSLE after the cut")
    for cut, (result, _) in results.items():
        summary = result.summary(need=need)["runs"]
        for run, entry in summary.items():
            final = entry["final_loss"]
            covered = "yes" if final["q05"] <= entry["logged"] <= final["q95"] else "NO"
            interval = f"{final['median']:.4f} [{final['q05']:.4f}, {final['q95']:.4f}]"
            print(
                f"{cut:>11}  {run:16} {interval:>25} {entry['logged']:7.4f} {100 * entry['error']:+6.2f}%"
                f"  {covered:>7}  {entry['need']['probability']:7.2f}  {entry['held_back']['rmsle']:.5f}"
            )


def print_reach(results, need):
    """Print, per cut and run, the steps from which it logs ``need`` or lower, and the first step it did."""
    print(f"\nreaching {need:g} ('after': not by the target)")
    print(f"{'observed to':>11}  {'run':16} {'median step [90% interval]':>26}  first step logged at or below")
    for cut, (result, _) in results.items():
        for run, entry in result.summary(need=need)["runs"].items():
            reached, logged_at = entry["need"]["reached_at"], entry["need"]["logged_at"]
            median, early, late = (
                "after" if step is None else str(step) for step in (reached["median"], reached["q05"], reached["q95"])
            )
            print(f"{cut:>11}  {run:16} {f'{median} [{early}, {late}]':>26}  {logged_at or 'never'}")


def plot_forecasts(results, need):
    """One panel per run: the forecast's median and 90% interval against the steps observed."""
    runs = next(iter(results.values()))[0].runs
    figure = Figure(figsize=(12, 3.6), layout="constrained")
    for ax, run in zip(figure.subplots(1, len(runs), sharey=True), runs, strict=True):
        for cut, (result, _) in results.items():
            final = result.summary()["runs"][run]["final_loss"]
            errors = [[final["median"] - final["q05"]], [final["q95"] - final["median"]]]
            ax.errorbar(cut, final["median"], yerr=errors, fmt="o", color="C0", capsize=4)
        logged = results[CUTS[-1]][0].summary()["runs"][run]["logged"]  # the same for every cut
        ax.axhline(logged, color="k", linewidth=1, label=f"logged at the end ({logged:.4f})")
        ax.axhline(need, color="0.4", linestyle="--", linewidth=1, label=f"loss needed ({need:g})")
        ax.set(title=run, xlabel="steps observed", xscale="log", xticks=list(results), xticklabels=list(results))
        ax.legend(fontsize="small")
    figure.axes[0].set_ylabel("forecast final loss: median, 90% interval")
    return figure


def main(args):
    """Forecast from each cut, print the forecasts beside the logged losses, and save the figures."""
    data = bs.load_example("mpl_100m")
    results = {cut: forecast_from(data, cut, args) for cut in CUTS}
    print_forecasts(results, args.need)
    print_reach(results, args.need)
    for cut, (_, problems) in results.items():
        for problem in problems:
            print(f"observed to {cut}: {problem.split(':')[0]}")  # the fit, and that it failed its checks
    os.makedirs(args.out_dir, exist_ok=True)
    funnel = os.path.join(args.out_dir, "05_forecasts_as_runs_train.png")
    plot_forecasts(results, args.need).savefig(funnel, dpi=120)
    fan = os.path.join(args.out_dir, "05_fan_chart_quarter.png")
    bs.plot_extrapolation(results[CUTS[1]][0], need=args.need).savefig(fan, dpi=120)
    print(f"wrote {funnel} and {fan}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--need", type=float, default=3.0, help="the loss the runs must reach at their end")
    parser.add_argument("--num-warmup", type=int, default=CURVE_CONFIG.num_warmup)
    parser.add_argument("--num-samples", type=int, default=CURVE_CONFIG.num_samples)
    parser.add_argument("--num-chains", type=int, default=CURVE_CONFIG.num_chains)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".")
    main(parser.parse_args())
