"""Where the forecast's mean is withheld: the tail check against what the draws' average is.

A forecast's draws are of the loss the run will log, under Student-t noise whose degrees of
freedom a curve can pull near or below 1; a handful of draws then reach astronomically far
and their average means nothing. ``Extrapolation.summary`` gives the mean only where the
Pareto k-hat of the draws' tails is below ``1 - 1/log10(S)`` (0.72 for 4,000 draws). This
measures the check on the curves where such draws were seen (46 BIG-bench and 10 NMT of the
61 forecasts in ``benchmarks/results`` whose CRPS exceeded the truth): the M4 benchmark's
BIG-bench (10) and NMT (5) curves, each fitted alone from its official training split by the
default (``extrapolate`` with the stacked ensemble, no backtest: a run alone has nothing to
backtest), key ``fold_in(key(seed), curve index)``. Per curve: the k-hat, the mean the
summary reports (or null), the draws' own average, their largest draw, and CRPS relative to
the truth (above 1 when a few draws swamp it).

Run: ``python benchmarks/predictive_tails.py --data-dir ../shared/data
--out benchmarks/results/predictive_tails.json``
"""

import time
import warnings
from pathlib import Path

import jax
import numpy as np
from extrapolation import ROOT, crps
from stacking import DOMAINS, arguments, checkpoints_of, curves, save

import bayescale as bs
from bayescale import _arviz
from bayescale.diagnostics import max_pareto_k
from bayescale.extrapolate import CURVE_CONFIG


def forecast_tails(curve, n_obs: int, key) -> dict:
    """One curve's forecast: its tail k-hat, the summary's mean, and how far its draws reach."""
    start = time.perf_counter()
    with warnings.catch_warnings():  # fits' health is recorded by the other benchmarks
        warnings.simplefilter("ignore")
        result = bs.extrapolate(
            checkpoints_of([(curve, n_obs)]), to_step={curve.name: int(curve.step[-1])}, key=key, backtest=False
        )
        draws = result.final_loss(curve.name)
        final = result.summary()["runs"][curve.name]["final_loss"]
        average = float(np.mean(draws))  # inf where draws sit at the largest float
    truth = float(curve.loss[-1])
    return {
        "curve": curve.name,
        "truth": truth,
        "median": final["median"],
        "mean_reported": final["mean"],
        "draws_average": average,
        "largest_draw": float(draws.max()),
        "pareto_k": float(_arviz.pareto_khat(draws[:, None])[0]),
        "crps_over_truth": crps(draws, truth) / truth,
        "seconds": time.perf_counter() - start,
    }


def table(rows: list[dict], limit: float) -> str:
    """Markdown: one line per curve, then the counts."""
    lines = [
        "| curve | Pareto k | mean reported | draws' average | largest draw | CRPS / truth |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        reported = "null" if r["mean_reported"] is None else f"{r['mean_reported']:.4f}"
        lines.append(
            f"| {r['curve']} | {r['pareto_k']:.2f} | {reported} | {r['draws_average']:.4g} | "
            f"{r['largest_draw']:.3g} | {r['crps_over_truth']:.3g} |"
        )
    withheld = [r for r in rows if r["mean_reported"] is None]
    swamped = [r for r in rows if r["crps_over_truth"] > 1]
    lines.append(
        f"\nlimit {limit:.2f}; mean withheld for {len(withheld)} of {len(rows)} curves; CRPS above the truth for "
        f"{len(swamped)}, of which withheld {sum(r['mean_reported'] is None for r in swamped)}"
    )
    return "\n".join(lines) + "\n"


def main(args):
    data_dir = Path(args.data_dir) if Path(args.data_dir).is_absolute() else ROOT / args.data_dir
    start = time.perf_counter()
    chosen, skipped = curves(data_dir)
    chosen = [(curve, n_obs) for curve, n_obs in chosen if curve.group in DOMAINS]
    key = jax.random.key(args.seed)
    rows = [forecast_tails(curve, n_obs, jax.random.fold_in(key, i)) for i, (curve, n_obs) in enumerate(chosen)]
    limit = max_pareto_k(CURVE_CONFIG.num_chains * CURVE_CONFIG.num_samples)
    save(args.out, "predictive_tails.py", args.seed, start, table(rows, limit), skipped=skipped, rows=rows)


if __name__ == "__main__":
    main(arguments("benchmarks/results/predictive_tails.json").parse_args())
