"""Which laws the stack leans on for each M4 language-model curve, and how each law alone fares.

The call is ``extrapolation.py``'s Track C on the M4 benchmark's five LM curves at the
official split (the default ``extrapolate``: the curves fitted together, ``pooling="shape"``,
bagged PSIS-LOO weights per curve, the in-progress backtests), with the same key for the
same ``--seed``, so its stacked row reproduces that benchmark's. Beside each curve's
stacked held-out RMSLE: each law's weight for the curve and the held-out RMSLE of that
law's own posterior-median curve from the same pooled fit (without the backtests'
widening, which moves the median little). It reads each law's draws by wrapping
``extrapolate``'s private ``_mixture``, which the stack's mixing goes through, so that the
laws' parts are those of the very call measured. Beside them, the shape each law's pooled
fit shares across the curves (its parameters other than the per-run level and floor) and
the fit's divergent transitions.

Run: ``python benchmarks/stack_parts.py --seed 0 --out benchmarks/results/stack_parts_seed0.json``
"""

import argparse
import importlib
import json
import sys
from pathlib import Path

import jax
import numpy as np
from extrapolation import (
    CURVE_CONFIG,
    Bench,
    cut_counts,
    held_out_rmsle,
    log_log_interp,
    machine_description,
    revisiting_curves,
    table,
)

import bayescale as bs

ROOT = Path(__file__).resolve().parents[1]
# The module, not the function of the same name that bayescale's namespace exports.
_extrapolate_module = importlib.import_module("bayescale.extrapolate")


def median_curve_rmsle(curve, n_obs: int, steps: np.ndarray, median: np.ndarray) -> float:
    """Held-out RMSLE of a median curve, interpolated in log-log as the benchmark does."""
    return held_out_rmsle(curve, n_obs, log_log_interp(curve.step[n_obs:], steps, median))


def shared_shape(fit) -> dict[str, dict[str, float]]:
    """Median and 90% interval of each parameter the runs share (the law's shape), and the divergences."""
    draws = fit.draws()
    shared = [name for name in fit.law.priors if name not in fit.law.per_run]
    out = {
        name: dict(zip(("q05", "median", "q95"), np.quantile(draws[name], [0.05, 0.5, 0.95]).tolist()))
        for name in shared
    }
    return {**out, "divergences": int(fit.diagnostics.divergences)}


def main(args) -> None:
    curves = revisiting_curves(Path(args.data_dir) if Path(args.data_dir).is_absolute() else ROOT / args.data_dir)
    counts = cut_counts(curves, "official")
    law_medians = {}
    mixture = _extrapolate_module._mixture

    def recording_mixture(fits, run, design, grid, weights, key):
        # The same draws _mixture makes: law k's prediction takes fold_in(key, k). The
        # backtests' one-step forecasts come through here first; each run's own curve last.
        inputs = design.inputs(run, grid)
        for k, (name, fit) in enumerate(fits.items()):
            draws = _extrapolate_module._predict(fit, run, inputs, np.log(grid), jax.random.fold_in(key, k))
            law_medians[run, name] = (grid, np.exp(np.median(draws, axis=0)))
        return mixture(fits, run, design, grid, weights, key)

    _extrapolate_module._mixture = recording_mixture
    bench = Bench(CURVE_CONFIG, args.seed)
    result = bench.run(
        "revisiting official C/shape",
        "ensemble/shape",
        table(curves, counts),
        {curve.name: int(curve.step[-1]) for curve in curves},
        [curve.name for curve in curves],
    )
    records = []
    for curve in curves:
        n_obs = counts[curve.name]
        steps, draws = result.curve(curve.name)
        laws = {
            name: {"weight": weight, "held_out_rmsle": median_curve_rmsle(curve, n_obs, *law_medians[curve.name, name])}
            for name, weight in result.weights[curve.name].items()
        }
        stacked = median_curve_rmsle(curve, n_obs, steps, np.median(draws, axis=0))
        records.append({"curve": curve.name, "stacked_held_out_rmsle": stacked, "laws": laws})
    shapes = {name: shared_shape(next(iter(fits.values()))) for name, fits in result.fits.items()}
    names = list(records[0]["laws"])
    lines = [
        f"Machine: {machine_description()}. bayescale {bs.__version__}, seed {args.seed}, "
        f"{bench.calls[0]['seconds']:.0f} s. Held-out RMSLE; weight in brackets.",
        "",
        "| curve | stacked | " + " | ".join(f"`{name}`" for name in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for entry in records:
        parts = [f"{entry['laws'][name]['held_out_rmsle']:.6f} ({entry['laws'][name]['weight']:.3f})" for name in names]
        lines.append(f"| {entry['curve']} | {entry['stacked_held_out_rmsle']:.6f} | " + " | ".join(parts) + " |")
    lines += ["", "The shape each pooled fit shares across the curves: median [5%, 95%]; divergent transitions.", ""]
    for name, shape in shapes.items():
        parts = [
            f"{k} {v['median']:.3g} [{v['q05']:.3g}, {v['q95']:.3g}]" for k, v in shape.items() if k != "divergences"
        ]
        lines.append(f"- `{name}`: {', '.join(parts) or 'no shared shape'}; {shape['divergences']} divergences")
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python benchmarks/stack_parts.py " + " ".join(sys.argv[1:]),
        "machine": machine_description(),
        "bayescale": bs.__version__,
        "seed": args.seed,
        "records": records,
        "shapes": shapes,
        "calls": bench.calls,
    }
    out.write_text(json.dumps(payload, indent=1))
    out.with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    main(parser.parse_args())
