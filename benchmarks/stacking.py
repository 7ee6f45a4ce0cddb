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

With ``--pooled``, runs fitted together instead (``pooling="shape"``, with the default
backtests, which the leave-future-out weights are computed from): each group of the
benchmark that holds several model sizes outside the acceptance sets, fixed before
measuring (``POOLED_GROUPS``): NMT's five models, and the four image-classification tasks
at 10 shots, six models each. A group's x axis is in units of a tenth of its first
checkpoint. ``--groups`` runs some of them (to split the work over processes), and
``--combine`` tabulates the records of several result files.

Metrics as in ``extrapolation.py``: MARE (median |median / truth - 1|, %), 90% coverage
and mean relative width, CRPS relative to the truth (%), seconds per curve.

Run: ``python benchmarks/stacking.py --data-dir ../shared/data --out benchmarks/results/stacking.json``
and ``python benchmarks/stacking.py --pooled --out benchmarks/results/stacking_pooled.json``
"""

import argparse
import dataclasses
import importlib
import json
import sys
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

# The two weightings compared, and what is recorded (runs alone: equal weights too).
WEIGHTINGS = ("loo", "lfo")
RECORDED = (*WEIGHTINGS, "equal")
DOMAINS = ("NMT", "BB")
# Every this many image-classification curves, to keep the run under an hour on two cores.
IC_EVERY = 6
# Groups of model sizes fitted together with --pooled (domain/task); one shot count of the
# image-classification tasks, to keep the run near an hour on two cores.
POOLED_GROUPS = ("NMT/log_perplexity", "IC/bird_10", "IC/c_10", "IC/cal_10", "IC/inet_10")


def benchmark_frame(root: Path) -> pd.DataFrame:
    """The M4 benchmark's language and vision tables, as one."""
    folder = root / "revisiting_scaling_laws_benchmark"
    return pd.concat([pd.read_csv(folder / name) for name in ("benchmark.lang.csv", "benchmark.vision.csv")])


def as_curve(name: str, domain: str, rows: pd.DataFrame, unit: float) -> tuple[Curve, int] | str:
    """One model's curve in steps of ``unit`` seen examples, with its training checkpoints; or why not."""
    rows = rows.drop_duplicates("Seen Examples").sort_values("Seen Examples")
    step = np.round(rows["Seen Examples"].to_numpy(np.float64) / unit).astype(np.int64)
    loss = rows["Loss"].to_numpy(np.float64)
    if len(np.unique(step)) < len(step) or np.any(loss <= 0):
        return f"{name}: steps that round together or a loss <= 0"
    return Curve("revisiting-other", domain, name, step, loss), int(rows["Training"].sum())


def curves(root: Path) -> tuple[list[tuple[Curve, int]], list[str]]:
    """The curves with the number of checkpoints of their training split, and those skipped (why)."""
    frame = benchmark_frame(root)
    chosen, skipped = [], []
    for domains, every in ((DOMAINS, 1), (("IC",), IC_EVERY)):
        groups = list(frame[frame["Domain"].isin(domains)].groupby(["Domain", "Task", "Model"], sort=True))
        for (domain, task, model), rows in groups[::every]:
            curve = as_curve(f"{domain}/{task}/{model}", domain, rows, rows["Seen Examples"].min() / 10)
            (skipped if isinstance(curve, str) else chosen).append(curve)
    return chosen, skipped


def pooled_groups(root: Path, names) -> tuple[dict[str, list[tuple[Curve, int]]], list[str]]:
    """The curves of each named group (domain/task) on the group's own step unit, and those skipped."""
    frame = benchmark_frame(root)
    groups, skipped = {}, []
    for name in names:
        domain, task = name.split("/", 1)
        rows = frame[(frame["Domain"] == domain) & (frame["Task"] == task)]
        unit = rows["Seen Examples"].min() / 10
        members = [as_curve(f"{name}/{model}", domain, runs, unit) for model, runs in rows.groupby("Model", sort=True)]
        skipped += [m for m in members if isinstance(m, str)]
        groups[name] = [m for m in members if not isinstance(m, str)]
    return groups, skipped


def checkpoints_of(members: list[tuple[Curve, int]]) -> bs.ScalingData:
    """The training checkpoints of the given curves as one table."""
    return bs.read_table(
        {
            "run": np.concatenate([np.full(n_obs, curve.name, dtype=object) for curve, n_obs in members]),
            "step": np.concatenate([curve.step[:n_obs] for curve, n_obs in members]),
            "loss": np.concatenate([curve.loss[:n_obs] for curve, n_obs in members]),
        }
    )


def equal_weights(result, curve: Curve, key) -> np.ndarray:
    """Draws of the final loss with the call's laws mixed equally."""
    per_run = {name: by_run[curve.name] for name, by_run in result.fits.items()}
    design = extrapolate_module._design(result.data, [curve.name], None, [fit.law for fit in per_run.values()])
    weights = dict.fromkeys(per_run, 1 / len(per_run))
    grid = np.asarray([curve.step[-1]])
    log_draws = extrapolate_module._mixture(per_run, curve.name, design, grid, weights, key)[:, 0]
    return np.exp(np.minimum(log_draws, np.log(np.finfo(np.float64).max)))  # as extrapolate keeps them


def scored(records: list[dict]) -> dict:
    """The metrics of ``aggregate``, and the median CRPS relative to the truth (%)."""
    # Heavy-tailed forecasts keep draws near the largest float, so the mean CRPS can be
    # astronomical; the median says how a typical curve was scored.
    median_crps = float(100 * np.median([r["crps"] / r["truth"] for r in records]))
    return {**aggregate(records), "crps_rel_median_pct": median_crps}


def summary_rows(records: dict[str, list[dict]], calls: list[dict], groups) -> list[dict]:
    """Metrics per group of curves and weighting, with the warm seconds and unhealthy runs of each."""
    rows = []
    labels = {"loo": "PSIS-LOO", "lfo": "leave-future-out", "equal": "equal weights"}
    for group in (*groups, "all"):
        for method, label in labels.items():
            chosen = [r for r in records[method] if group == "all" or r["curve"].startswith(f"{group}/")]
            if not chosen:
                continue
            row = {"group": group, "method": label, **scored(chosen)}
            timed = [c for c in calls if c["laws"] == method and (group == "all" or c["label"].startswith(group))]
            warm = [c["seconds_per_curve"] for c in timed if not c["cold"]]
            row["seconds_per_curve_warm"] = float(np.mean(warm)) if warm else None
            row["unhealthy"] = sum(len(c["unhealthy"]) for c in timed) if method != "equal" else None
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| curves | weights | n | MARE % | cov90 | width % | median CRPS % | s/curve (warm) | unhealthy runs |",
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


def alone(chosen: list[tuple[Curve, int]], bench: Bench, seed: int) -> tuple[dict, dict]:
    """Each curve fitted alone, weighted both ways and equally; records and weights per method."""
    records = {method: [] for method in RECORDED}
    weights = {}
    for index, (curve, n_obs) in enumerate(chosen):
        targets = {curve.name: int(curve.step[-1])}
        for stacking in WEIGHTINGS:
            label = f"{curve.name} {stacking}"
            result = bench.run(
                label, stacking, checkpoints_of([(curve, n_obs)]), targets, [curve.name], stacking=stacking
            )
            if result is None:
                continue
            records[stacking].append(curve_predictions(result, curve, n_obs))
            weights.setdefault(curve.name, {})[stacking] = result.weights[curve.name]
            if stacking == "lfo":
                draws = equal_weights(result, curve, jax.random.key(seed + index))
                records["equal"].append(record(curve, n_obs, draws=draws))
    return records, weights


def pooled(groups: dict[str, list[tuple[Curve, int]]], bench: Bench) -> tuple[dict, dict]:
    """Each group fitted together (``pooling="shape"``), weighted both ways; records and weights."""
    records = {method: [] for method in RECORDED}
    weights = {}
    for name, members in groups.items():
        targets = {curve.name: int(curve.step[-1]) for curve, _ in members}
        for stacking in WEIGHTINGS:
            result = bench.run(
                f"{name} {stacking}",
                stacking,
                checkpoints_of(members),
                targets,
                list(targets),
                pooling="shape",
                stacking=stacking,
            )
            if result is None:
                continue
            records[stacking] += [curve_predictions(result, curve, n_obs) for curve, n_obs in members]
            # Per run: PSIS-LOO weights each run on its own checkpoints, LFO all alike.
            weights.setdefault(name, {})[stacking] = {run: result.weights[run] for run in targets}
    return records, weights


def main(args):
    if args.combine:
        parts = [json.loads(Path(path).read_text()) for path in args.combine]
        records = {method: [r for part in parts for r in part["records"][method]] for method in RECORDED}
        groups = [group for part in parts for group in part["groups"]]
        text = table(summary_rows(records, [c for part in parts for c in part["calls"]], groups))
        Path(args.out).with_suffix(".md").write_text(text)
        print(text)
        return
    data_dir = Path(args.data_dir) if Path(args.data_dir).is_absolute() else ROOT / args.data_dir
    start = time.perf_counter()
    if args.pooled:
        groups, skipped = pooled_groups(data_dir, args.groups or POOLED_GROUPS)
        bench = Bench(CURVE_CONFIG, args.seed)
        records, weights = pooled(groups, bench)
        group_names = list(groups)
    else:
        chosen, skipped = curves(data_dir)
        bench = Bench(CURVE_CONFIG, args.seed, backtest=False)
        records, weights = alone(chosen, bench, args.seed)
        group_names = [*DOMAINS, "IC"]
    rows = summary_rows(records, bench.calls, group_names)
    fields = {"groups": group_names, "skipped": skipped, "rows": rows, "records": records, "weights": weights}
    save(args.out, "stacking.py", args.seed, start, table(rows), **fields, calls=bench.calls)


def save(path: str, script: str, seed: int, start: float, text: str, **fields) -> None:
    """Write a run's results (JSON) with how it ran, and its table (markdown, beside it); print the table."""
    out = {
        "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
        "machine": machine_description(),
        "bayescale": bs.__version__,
        "config": dataclasses.asdict(CURVE_CONFIG),
        "seed": seed,
        "total_seconds": time.perf_counter() - start,
        **fields,
    }
    Path(path).write_text(json.dumps(out, indent=1, default=str))
    Path(path).with_suffix(".md").write_text(text)
    print(text)


def arguments(default_out: str) -> argparse.ArgumentParser:
    """The options of the stacking benchmarks: data, seed, runs alone or pooled, and the output."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data", help="relative to the repository root unless absolute")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pooled", action="store_true", help="fit the model sizes of each group together")
    parser.add_argument("--out", default=default_out)
    return parser


if __name__ == "__main__":
    parser = arguments("benchmarks/results/stacking.json")
    parser.add_argument("--groups", nargs="+", help=f"with --pooled, these groups only (default {POOLED_GROUPS})")
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="tabulate these result files together")
    main(parser.parse_args())
