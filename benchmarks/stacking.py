"""How the learning-curve ensemble is weighted: PSIS-LOO against leave-future-out stacking.

On curves outside issue 3's acceptance sets: the M4 benchmark's (Alabdulmohsin et al. 2022,
``revisiting_scaling_laws_benchmark`` in ``shared/data``) NMT curves (5), BIG-bench curves
(10) and every sixth image-classification curve (12 of 72, in the order of domain, task
and model), each fitted alone from its official training split, its final logged value
predicted. Per curve, ``extrapolate`` with the default ensemble and ``stacking="loo"``,
then ``stacking="lfo"`` (each call its own key, so the fits differ by their Monte-Carlo
error too); and, for reference, the fits of the second call mixed with equal weights.
The x axis (examples or tokens seen) becomes integer steps in units of a tenth of the
first checkpoint.

Metrics as in ``extrapolation.py``: MARE (median |median / truth - 1|, %), 90% coverage
and mean relative width, CRPS relative to the truth (%), seconds per curve.

Run: ``python benchmarks/stacking.py --data-dir ../shared/data --out benchmarks/results/stacking.json``
"""

import argparse
import dataclasses
import importlib
import json
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from extrapolation import ROOT, Bench, Curve, aggregate, curve_predictions, machine_description, record

import bayescale as bs
from bayescale.extrapolate import CURVE_CONFIG

# The module, which bayescale's namespace shadows with its function extrapolate.
extrapolate_module = importlib.import_module("bayescale.extrapolate")

DOMAINS = ("NMT", "BB")
# Every this many image-classification curves, to keep the run under an hour on two cores.
IC_EVERY = 6


def curves(root: Path) -> tuple[list[tuple[Curve, int]], list[str]]:
    """The curves with the number of checkpoints of their training split, and those skipped (why)."""
    folder = root / "revisiting_scaling_laws_benchmark"
    frame = pd.concat([pd.read_csv(folder / name) for name in ("benchmark.lang.csv", "benchmark.vision.csv")])
    chosen, skipped = [], []
    for domains, every in ((DOMAINS, 1), (("IC",), IC_EVERY)):
        groups = list(frame[frame["Domain"].isin(domains)].groupby(["Domain", "Task", "Model"], sort=True))
        for (domain, task, model), rows in groups[::every]:
            rows = rows.drop_duplicates("Seen Examples").sort_values("Seen Examples")
            name = f"{domain}/{task}/{model}"
            seen = rows["Seen Examples"].to_numpy(np.float64)
            step = np.round(seen / (seen[0] / 10)).astype(np.int64)
            loss = rows["Loss"].to_numpy(np.float64)
            if len(np.unique(step)) < len(step) or np.any(loss <= 0):
                skipped.append(f"{name}: steps that round together or a loss <= 0")
                continue
            chosen.append((Curve("revisiting-other", domain, name, step, loss), int(rows["Training"].sum())))
    return chosen, skipped


def equal_weights(result, curve: Curve, key) -> np.ndarray:
    """Draws of the final loss with the call's laws mixed equally."""
    per_run = {name: by_run[curve.name] for name, by_run in result.fits.items()}
    design = extrapolate_module._design(result.data, [curve.name], None, [fit.law for fit in per_run.values()])
    weights = dict.fromkeys(per_run, 1 / len(per_run))
    grid = np.asarray([curve.step[-1]])
    log_draws = extrapolate_module._mixture(per_run, curve.name, design, grid, weights, key)[:, 0]
    return np.exp(np.minimum(log_draws, np.log(np.finfo(np.float64).max)))  # as extrapolate keeps them


def summary_rows(records: dict[str, list[dict]], calls: list[dict]) -> list[dict]:
    """Metrics per group of curves and weighting, with the warm seconds and unhealthy calls of each."""
    rows = []
    labels = {"loo": "PSIS-LOO", "lfo": "leave-future-out", "equal": "equal weights"}
    for group in (*DOMAINS, "IC", "all"):
        for method, label in labels.items():
            chosen = [r for r in records[method] if group == "all" or r["curve"].startswith(f"{group}/")]
            if not chosen:
                continue
            # Heavy-tailed forecasts keep draws near the largest float, so the mean CRPS can
            # be astronomical; the median says how a typical curve was scored.
            median_crps = float(100 * np.median([r["crps"] / r["truth"] for r in chosen]))
            row = {"group": group, "method": label, **aggregate(chosen), "crps_rel_median_pct": median_crps}
            timed = [c for c in calls if c["laws"] == method and (group == "all" or c["label"].startswith(f"{group}/"))]
            warm = [c["seconds"] for c in timed if not c["cold"]]
            row["seconds_per_curve_warm"] = float(np.mean(warm)) if warm else None
            row["unhealthy"] = sum(bool(c["unhealthy"]) for c in timed) if method != "equal" else None
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| curves | weights | n | MARE % | cov90 | width % | median CRPS % | s/curve (warm) | unhealthy calls |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seconds = "-" if row["seconds_per_curve_warm"] is None else f"{row['seconds_per_curve_warm']:.1f}"
        unhealthy = "-" if row["unhealthy"] is None else str(row["unhealthy"])
        lines.append(
            f"| {row['group']} | {row['method']} | {row['curves']} | {row['mare_pct']:.2f} | {row['coverage90']:.2f} "
            f"| {row['rel_width_pct']:.1f} | {row['crps_rel_median_pct']:.2f} | {seconds} | {unhealthy} |"
        )
    return "\n".join(lines) + "\n"


def main(args):
    data_dir = Path(args.data_dir) if Path(args.data_dir).is_absolute() else ROOT / args.data_dir
    chosen, skipped = curves(data_dir)
    bench = Bench(CURVE_CONFIG, args.seed, backtest=False)
    records = {"loo": [], "lfo": [], "equal": []}
    weights = {}
    start = time.perf_counter()
    for index, (curve, n_obs) in enumerate(chosen):
        checkpoints = bs.read_table(
            {"run": np.full(n_obs, curve.name, dtype=object), "step": curve.step[:n_obs], "loss": curve.loss[:n_obs]}
        )
        targets = {curve.name: int(curve.step[-1])}
        for stacking in ("loo", "lfo"):
            label = f"{curve.name} {stacking}"
            result = bench.run(label, stacking, checkpoints, targets, [curve.name], stacking=stacking)
            if result is None:
                continue
            records[stacking].append(curve_predictions(result, curve, n_obs))
            weights.setdefault(curve.name, {})[stacking] = result.weights[curve.name]
            if stacking == "lfo":
                draws = equal_weights(result, curve, jax.random.key(args.seed + index))
                records["equal"].append(record(curve, n_obs, draws=draws))
    rows = summary_rows(records, bench.calls)
    out = {
        "command": f"python benchmarks/stacking.py --data-dir {args.data_dir} --seed {args.seed} --out {args.out}",
        "machine": machine_description(),
        "bayescale": bs.__version__,
        "config": dataclasses.asdict(CURVE_CONFIG),
        "seed": args.seed,
        "skipped": skipped,
        "total_seconds": time.perf_counter() - start,
        "rows": rows,
        "records": records,
        "weights": weights,
        "calls": bench.calls,
    }
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    text = table(rows)
    Path(args.out).with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data", help="relative to the repository root unless absolute")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/stacking.json")
    main(parser.parse_args())
