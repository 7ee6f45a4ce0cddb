"""Learning-curve extrapolation: how well ``bayescale.extrapolate`` predicts a run's final loss.

Three development data sets (``shared/data``; see each ``SOURCE.md``):

- ``mpl``: Multi-Power-Law LM curves (Luo et al. 2025), 3 sizes x 9 schedules, lr logged.
- ``misfitting``: cosine runs of Li et al. (2025), a fixed subset of 20 (see ``misfitting_curves``),
  lr rebuilt from the documented schedule (warmup 50 steps, cosine to 0.1x peak).
- ``revisiting``: the 5 LM curves of the M4 benchmark (Alabdulmohsin et al. 2022), no lr.

Each run is cut at k = 10%, 25%, 50% of its logged step range (checkpoints with
``step <= first + k (last - first)``, at least 3) and the final logged loss is predicted.
Tracks: (A) the run alone, no schedule (default stacked ensemble); (B) the run alone with
its whole lr schedule (``lr_annealing``, or ``--schedule-law multi_power``); (C) other runs
of the family: for MPL the upstream training trio of the same size, fully observed,
pooled with the target's prefix (``pooling="shape"`` and ``"all"``); for revisiting the
five LM curves, each cut the same way, fitted together (``pooling="shape"``: shared
shape, a level per model size).
Baselines: the last observed loss, ``E + A t^-a`` fitted by least squares to the prefix,
and, where the schedule is known, ``E + A S1^-a`` in the forward lr area S1 (the baseline
of the MPL data's SOURCE.md), S1 as ``extrapolate`` computes it from a logged schedule.

Metrics per row: MARE (median |median/truth - 1|, %), RMSLE (final point; for ``revisiting``
the held-out points, from the posterior-median curve interpolated in log-log), 90% interval
coverage and mean relative width, CRPS relative to the truth (%), seconds per curve.
From which step each run reaches its final loss plus 0.5%, 1% and 2%
(``Extrapolation.steps_to_reach``), against the first step it logged at or below it: how
often the 90% interval holds that step, and the median error of the median step.

Run: ``python benchmarks/extrapolation.py --data-dir ../shared/data
--out benchmarks/results/extrapolation.json [--quick]``
"""

import argparse
import dataclasses
import fnmatch
import json
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from scipy.optimize import least_squares

import bayescale as bs
from bayescale.extrapolate import CURVE_CONFIG, STACKING, extrapolate
from bayescale.schedules import annealing_features, named_schedule, schedule_from_points

ROOT = Path(__file__).resolve().parents[1]
CUTS = (0.10, 0.25, 0.50)
# Fewest checkpoints a prefix keeps (a 3-parameter baseline needs 3).
MIN_OBSERVED = 3
# The baselines: point predictions, without intervals.
POINT_METHODS = ("last value", "power law (LSQ)", "power law in lr area (LSQ)")
MPL_SIZES = ("25", "100", "400")
# The losses a run is asked to reach: its final loss plus these fractions (every run
# reaches them by its end).
REACH_MARGINS = (0.005, 0.01, 0.02)
# Upstream MPL fitting split (src/config.py of thu-yao-01-luo/MultiPowerLaw).
MPL_TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
MISFITTING_RUNS = 20
# Unit of the revisiting LM x axis: the gcd of all its "Seen Examples", so steps are integers.
REVISITING_UNIT = 26_214_400
# The official M4 estimator run out of tree (its code is not in this repository), with
# err_0=None, on the training rows; SOURCE.md gives the same numbers to one digit.
M4_RMSLE = {
    "1.68e+07": 0.000303,
    "1.34e+08": 0.001462,
    "2.62e+08": 0.000920,
    "4.53e+08": 0.000741,
    "1.07e+09": 0.001277,
}
PUBLISHED = {
    "mpl": "MPL fitted on the 3 training curves, all curves: mean rel. error 0.11% / 0.14% / 0.17% "
    "(worst 0.41% / 0.58% / 1.0%) for 25M / 100M / 400M (upstream README; whole curves, not final points)",
    "revisiting": "M4 RMSLE on the official split (measured for bayescale with the official estimator): "
    + ", ".join(f"{model} {rmsle:.6f}" for model, rmsle in M4_RMSLE.items()),
    "misfitting": "schedule-blind power law: ~3-6% error floor (SOURCE.md, measured for bayescale)",
}


@dataclasses.dataclass(frozen=True)
class Curve:
    """One logged run: integer steps, losses, and the lr at every step to its end (or None)."""

    dataset: str
    group: str
    name: str
    step: np.ndarray
    loss: np.ndarray
    schedule: tuple[np.ndarray, np.ndarray] | None = None
    official_cut: float | None = None


# ---------------------------------------------------------------------------------------
# Data


def mpl_curves(root: Path, sizes) -> list[Curve]:
    """The MPL curves; the schedule is the logged (step, lr) of the whole run."""
    curves = []
    for size in sizes:
        for path in sorted((root / "multipower_law_lm_loss_curves" / f"csv_{size}").glob("*.csv")):
            frame = pd.read_csv(path).sort_values("step")
            step = frame["step"].to_numpy(np.int64)
            curves.append(
                Curve(
                    "mpl",
                    f"{size}M",
                    f"{size}M/{path.stem}",
                    step,
                    frame["loss"].to_numpy(),
                    (step, frame["lr"].to_numpy()),
                )
            )
    return curves


def misfitting_curves(root: Path, count: int = MISFITTING_RUNS) -> list[Curve]:
    """A deterministic subset of the cosine runs with >= 12 checkpoints reaching portion 1.0.

    Runs with repeated steps are left out; of the rest, sorted by (model, total_steps,
    peak_lr, sweep), ``count`` evenly spaced ones are kept. The schedule is rebuilt at
    every step: warmup 50 steps, then cosine to 0.1x peak at ``total_steps``.
    """
    frame = pd.read_csv(root / "misfitting" / "scaling_results.csv")
    frame = frame[frame["portion_steps_elapsed"] <= 1.0]
    keys = ["model", "total_steps", "peak_lr", "sweep"]
    eligible = []
    for key, run in frame.groupby(keys, sort=True):
        if len(run) >= 12 and run["portion_steps_elapsed"].max() >= 1.0 and not run["current_steps"].duplicated().any():
            eligible.append((key, run.sort_values("current_steps")))
    chosen = np.unique(np.linspace(0, len(eligible) - 1, count).round().astype(int))
    curves = []
    for (model, total, peak, sweep), run in (eligible[i] for i in chosen):
        rates = named_schedule("cosine", peak=peak, final=0.1 * peak, warmup=50, total=int(total)).rates
        steps = np.arange(1, len(rates))
        name = f"{model.removeprefix('misfitting_')}/T{total}/lr{peak:g}/{sweep[:10]}"
        curves.append(
            Curve(
                "misfitting",
                model,
                name,
                run["current_steps"].to_numpy(np.int64),
                run["loss"].to_numpy(),
                (steps, rates[1:]),
            )
        )
    return curves


def revisiting_curves(root: Path) -> list[Curve]:
    """The 5 LM curves of the M4 benchmark, deduplicated by x; step = x / REVISITING_UNIT."""
    frame = pd.read_csv(root / "revisiting_scaling_laws_benchmark" / "benchmark.lang.csv")
    curves = []
    for model, run in frame[frame["Domain"] == "LM"].groupby("Model", sort=False):
        run = run.drop_duplicates("Seen Examples").sort_values("Seen Examples")
        x = run["Seen Examples"].to_numpy(np.int64)
        if np.any(x % REVISITING_UNIT):
            raise ValueError(f"revisiting LM {model}: x not a multiple of {REVISITING_UNIT}")
        step = x // REVISITING_UNIT
        fitted = step[run["Training"].to_numpy() == 1]
        official = (fitted.max() - step[0]) / (step[-1] - step[0])
        curves.append(Curve("revisiting", "LM", f"LM {model}", step, run["Loss"].to_numpy(), None, float(official)))
    return curves


def observed(curve: Curve, cut: float) -> int:
    """Number of leading checkpoints seen at fraction ``cut`` of the logged step range."""
    limit = curve.step[0] + cut * (curve.step[-1] - curve.step[0])
    return max(int(np.sum(curve.step <= limit + 1e-9)), MIN_OBSERVED)


def table(curves, counts) -> bs.ScalingData:
    """Checkpoints of the given curves (the first ``counts[name]`` of each) as one table."""
    columns = {"run": [], "step": [], "loss": []}
    for curve in curves:
        n = counts[curve.name]
        columns["run"].append(np.full(n, curve.name, dtype=object))
        columns["step"].append(curve.step[:n])
        columns["loss"].append(curve.loss[:n])
    return bs.read_table({name: np.concatenate(values) for name, values in columns.items()})


def schedule_table(curves) -> bs.ScalingData:
    """The whole lr schedule of each curve, as a table with run, step and lr."""
    runs = [np.full(len(c.schedule[0]), c.name, dtype=object) for c in curves]
    return bs.read_table(
        {
            "run": np.concatenate(runs),
            "step": np.concatenate([c.schedule[0] for c in curves]),
            "lr": np.concatenate([c.schedule[1] for c in curves]),
        }
    )


# ---------------------------------------------------------------------------------------
# Scores


def crps(draws: np.ndarray, truth: float) -> float:
    """CRPS of a predictive sample: E|X - y| - E|X - X'| / 2, exact over all draws (sorted form).

    Summed in extended precision: heavy-tailed forecasts keep draws near the largest float,
    whose sums would overflow float64.
    """
    x = np.sort(np.asarray(draws, np.longdouble))
    n = len(x)
    spread = 2.0 * np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / n**2
    return float(np.mean(np.abs(x - truth)) - 0.5 * spread)


def power_law(x: np.ndarray, loss: np.ndarray):
    """Least-squares fit of E + A (x / x_last)^-a to log loss; returns the predictor x -> loss.

    ``x`` is the step, or the forward lr area.
    """
    u, log_y = x / x[-1], np.log(loss)

    def residual(p):
        return np.log(p[0] + p[1] * u ** -p[2]) - log_y

    best = None
    for floor in (0.0, 0.5, 0.9):
        for exponent in (0.1, 0.5, 1.0):
            start = [floor * loss.min(), max(loss[-1] - floor * loss.min(), 1e-6), exponent]
            try:
                result = least_squares(residual, start, bounds=([0.0, 1e-9, 1e-4], [loss.min(), np.inf, 10.0]))
            except ValueError:
                continue
            if best is None or result.cost < best.cost:
                best = result
    E, A, a = best.x
    return lambda at: E + A * (np.asarray(at, np.float64) / x[-1]) ** -a


def lr_area(curve: Curve) -> np.ndarray:
    """The forward lr area S1 at the curve's checkpoints, as ``extrapolate`` computes it from its schedule.

    Before the schedule's first logged step the rate rises linearly from 0: the warmup the
    MPL files leave out (SOURCE.md: to 3e-4 over 2160 steps, area 0.324; 0.326 this way).
    """
    steps, rates = curve.schedule
    schedule = schedule_from_points(steps, rates, curve.name, int(max(steps[-1], curve.step[-1])))
    return annealing_features(schedule, curve.step)["S1"]


def log_log_interp(x, xp, fp):
    """Interpolate fp(xp) at x linearly in log x and log f."""
    xp, order = np.unique(xp, return_index=True)
    return np.exp(np.interp(np.log(x), np.log(xp), np.log(np.asarray(fp)[order])))


def held_out_rmsle(curve: Curve, n_obs: int, predicted: np.ndarray) -> float:
    """RMSLE of predicted losses at the checkpoints after the first ``n_obs``."""
    return float(np.sqrt(np.mean((np.log(predicted) - np.log(curve.loss[n_obs:])) ** 2)))


def record(curve: Curve, n_obs: int, draws=None, point=None, held_out_pred=None) -> dict:
    """Scores of one prediction of one curve's final loss (draws, or a point prediction)."""
    truth = float(curve.loss[-1])
    if draws is not None:
        q05, median, q95 = np.quantile(draws, [0.05, 0.5, 0.95])
        score = crps(draws, truth)
    else:
        q05 = median = q95 = float(point)
        score = abs(point - truth)
    out = {
        "curve": curve.name,
        "observed": n_obs,
        "observed_until_step": int(curve.step[n_obs - 1]),
        "target_step": int(curve.step[-1]),
        "truth": truth,
        "median": float(median),
        "q05": float(q05),
        "q95": float(q95),
        "rel_error": float(median / truth - 1.0),
        "crps": score,
    }
    if held_out_pred is not None:
        out["held_out_rmsle"] = held_out_rmsle(curve, n_obs, held_out_pred)
    return out


def aggregate(records: list[dict]) -> dict:
    """Row metrics over curves."""
    rel = np.array([r["rel_error"] for r in records])
    truth = np.array([r["truth"] for r in records])
    q05, q95 = np.array([r["q05"] for r in records]), np.array([r["q95"] for r in records])
    out = {
        "curves": len(records),
        "mare_pct": float(100 * np.median(np.abs(rel))),
        "rmsle_final": float(np.sqrt(np.mean(np.log1p(rel) ** 2))),
        "coverage90": float(np.mean((q05 <= truth) & (truth <= q95))),
        "rel_width_pct": float(100 * np.mean((q95 - q05) / truth)),
        "crps_rel_pct": float(100 * np.mean([r["crps"] / r["truth"] for r in records])),
    }
    if all("held_out_rmsle" in r for r in records):
        out["rmsle_held_out_mean"] = float(np.mean([r["held_out_rmsle"] for r in records]))
    if all("reach" in r for r in records):
        out["reach"] = {margin: reach_scores([r["reach"][margin] for r in records]) for margin in records[0]["reach"]}
    return out


def reach_scores(answers: list[dict]) -> dict:
    """How the steps from which runs reach a loss compare with the first steps they logged it.

    An answer's interval runs from its 5% step to its 95% step, None ("not by the target")
    counting as unbounded; the median step's error is over the runs whose median reaches
    the loss by the target.
    """
    inside = [(a["q05"] or np.inf) <= a["first"] <= (a["q95"] or np.inf) for a in answers]
    errors = np.array([a["median"] / a["first"] - 1.0 for a in answers if a["median"] is not None])
    return {
        "covered": int(np.sum(inside)),
        "curves": len(answers),
        "median_not_by_target": int(sum(a["median"] is None for a in answers)),
        "median_abs_step_error_pct": float(100 * np.median(np.abs(errors))) if errors.size else None,
        "mean_step_error_pct": float(100 * np.mean(errors)) if errors.size else None,
    }


# ---------------------------------------------------------------------------------------
# Runs of extrapolate


def machine_description() -> str:
    """The processor, cores, Python, jax and backend that ran a benchmark."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, jax {jax.__version__}, {jax.default_backend()}"
    )


class Bench:
    """Calls ``extrapolate``, timing each call and collecting warnings and unhealthy fits."""

    def __init__(
        self,
        config: bs.SamplerConfig,
        seed: int,
        drift: bool = False,
        backtest: bool = True,
        retry: bool = False,
        stacking: str = "loo",
    ):
        self.config, self.seed = config, seed
        self.options = {"drift": drift, "backtest": backtest, "retry": retry, "stacking": stacking}
        self.calls, self.seen = [], set()

    def run(self, label: str, laws_key: str, data, targets: dict, predicted: list, **kwargs):
        """One call; returns the Extrapolation (or None on error) and logs its cost."""
        key = jax.random.fold_in(jax.random.key(self.seed), len(self.calls))
        start = time.perf_counter()
        error = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                options = {**self.options, **kwargs}  # a call's own options override the bench's
                result = extrapolate(data, to_step=targets, key=key, config=self.config, **options)
            except Exception as exc:  # a benchmark reports failures rather than stopping
                result, error = None, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        unhealthy = []
        if result is not None:
            runs = result.summary()["runs"]
            unhealthy = [run for run in predicted if not runs[run]["healthy"]]
        call = {
            "label": label,
            "laws": laws_key,
            "cold": laws_key not in self.seen,
            "seconds": seconds,
            "curves": len(predicted),
            "seconds_per_curve": seconds / max(len(predicted), 1),
            "unhealthy": unhealthy,
            "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:300]}" for w in caught}),
            "error": error,
        }
        self.seen.add(laws_key)
        self.calls.append(call)
        status = f"ERROR {error}" if error else f"{len(unhealthy)}/{len(predicted)} unhealthy, {len(caught)} warnings"
        print(f"  [{seconds:7.1f} s{' cold' if call['cold'] else ''}] {label}: {status}", flush=True)
        return result


def curve_predictions(result, curve: Curve, n_obs: int) -> dict:
    """Scores of one curve from an Extrapolation; held-out RMSLE from the median curve."""
    draws = result.final_loss(curve.name)
    held = None
    if curve.dataset == "revisiting":
        steps, curve_draws = result.curve(curve.name)
        held = log_log_interp(curve.step[n_obs:], steps, np.median(curve_draws, axis=0))
    out = record(curve, n_obs, draws=draws, held_out_pred=held)
    out["reach"] = {}
    for margin in REACH_MARGINS:
        need = float(curve.loss[-1]) * (1 + margin)
        first = int(curve.step[np.flatnonzero(curve.loss <= need)[0]])
        reached = result.steps_to_reach({curve.name: need})[curve.name]
        out["reach"][str(margin)] = {"need": need, "first": first, **reached}
    if result.backtest:
        out["backtest"] = result.backtest
    return out


def baselines(curves, counts) -> dict[str, list[dict]]:
    """The last observed value and the least-squares power laws (in steps; in lr area if known), per curve."""
    out = {method: [] for method in POINT_METHODS}
    for curve in curves:
        n = counts[curve.name]
        held_last = np.full(len(curve.step) - n, curve.loss[n - 1]) if curve.dataset == "revisiting" else None
        out["last value"].append(record(curve, n, point=curve.loss[n - 1], held_out_pred=held_last))
        predict = power_law(curve.step[:n].astype(np.float64), curve.loss[:n])
        held_pl = predict(curve.step[n:]) if curve.dataset == "revisiting" else None
        out["power law (LSQ)"].append(record(curve, n, point=float(predict(curve.step[-1])), held_out_pred=held_pl))
        if curve.schedule is not None:
            area = lr_area(curve)
            by_area = power_law(area[:n], curve.loss[:n])
            out["power law in lr area (LSQ)"].append(record(curve, n, point=float(by_area(area[-1]))))
    return out


def cut_counts(curves, cut) -> dict[str, int]:
    """Observed checkpoints per curve at a cut (a fraction, or "official" for the M4 split)."""
    return {c.name: observed(c, c.official_cut if cut == "official" else cut) for c in curves}


def _cut_name(cut) -> str:
    """A cut as ``--cuts`` names it: the percentage, or "official" (the M4 split)."""
    return cut if cut == "official" else str(round(100 * cut))


def evaluate(
    dataset: str,
    curves: list[Curve],
    cuts,
    bench: Bench,
    tracks,
    per_curve: bool,
    runs=("*",),
    poolings=("shape", "all"),
    schedule_law="lr_annealing",
    blind_laws=None,
) -> list[dict]:
    """All tracks and baselines of one data set; rows of aggregated metrics with their records.

    Tracks A and B fit each run alone (``pooling="none"``): all runs in one call, or with
    ``per_curve`` one call per run. Track C is one call per target run for MPL, one call
    for all five curves for revisiting (none for misfitting). Only runs whose
    name matches one of the shell patterns ``runs`` are predicted; Track C still pools
    the upstream trio of each. ``blind_laws`` replaces the default stack of the
    schedule-blind calls (track A, and track C for revisiting).
    """
    blind = {"law": list(blind_laws)} if blind_laws else {}
    blind_key = ",".join(blind_laws) if blind_laws else "ensemble"
    rows = []
    all_curves = curves
    curves = [c for c in curves if any(fnmatch.fnmatchcase(c.name, pattern) for pattern in runs)]
    if not curves:
        return rows
    for cut in cuts:
        cut_label = cut if cut == "official" else f"{_cut_name(cut)}%"
        counts = cut_counts(curves, cut)
        print(f"{dataset} cut {cut_label}", flush=True)
        entries = dict(baselines(curves, counts))

        def alone(track, method, laws_key, **kwargs):
            scores = []
            for batch in [[c] for c in curves] if per_curve else [curves]:
                label = f"{dataset} {cut_label} {track}" + (f" {batch[0].name}" if per_curve else "")
                targets = {c.name: int(c.step[-1]) for c in batch}
                result = bench.run(
                    label, laws_key, table(batch, counts), targets, list(targets), pooling="none", **kwargs
                )
                scores += _scores(result, batch, counts)
            entries[method] = scores

        if "A" in tracks:
            alone("A", "A: alone, no schedule", f"{blind_key}/none", **blind)
        if "B" in tracks and curves[0].schedule is not None:
            alone(
                "B",
                "B: alone, schedule known",
                f"{schedule_law}/none",
                law=schedule_law,
                schedule=schedule_table(curves),
            )
        if "C" in tracks and dataset == "mpl":
            for pooling in poolings:
                scores = []
                for curve in curves:
                    trio = [
                        c
                        for c in all_curves
                        if c.group == curve.group and c.name.split("/")[1] in MPL_TRAIN and c.name != curve.name
                    ]
                    members = [*trio, curve]
                    counts_c = {**{c.name: len(c.step) for c in trio}, curve.name: counts[curve.name]}
                    result = bench.run(
                        f"{dataset} {cut_label} C/{pooling} {curve.name}",
                        f"{schedule_law}/{pooling}",
                        table(members, counts_c),
                        {c.name: int(c.step[-1]) for c in members},
                        [curve.name],
                        law=schedule_law,
                        schedule=schedule_table(members),
                        pooling=pooling,
                    )
                    scores += _scores(result, [curve], counts)
                entries[f"C: + upstream trio, pooling={pooling}"] = scores
        if "C" in tracks and dataset == "revisiting" and "shape" in poolings:
            # The five model sizes, each cut the same way, in one fit sharing the curve
            # shape (pooling="all" would make them one curve).
            targets = {c.name: int(c.step[-1]) for c in curves}
            result = bench.run(
                f"{dataset} {cut_label} C/shape",
                f"{blind_key}/shape",
                table(curves, counts),
                targets,
                list(targets),
                pooling="shape",
                **blind,
            )
            entries["C: all LM curves, pooling=shape"] = _scores(result, curves, counts)
        for method, records in entries.items():
            if records:
                rows.append(
                    {"dataset": dataset, "cut": cut_label, "method": method, **aggregate(records), "records": records}
                )
    return rows


def _scores(result, curves, counts):
    if result is None:
        return []
    return [curve_predictions(result, c, counts[c.name]) for c in curves]


# ---------------------------------------------------------------------------------------
# Output


def calls_of(bench: Bench, dataset: str, cut: str, method: str) -> list[dict]:
    """The ``extrapolate`` calls behind a row (none for the baselines)."""
    if method[:2] not in ("A:", "B:", "C:"):
        return []
    track = method[0] + (f"/{method.split('pooling=')[1]}" if method[0] == "C" else "")
    key = f"{dataset} {cut} {track}"  # a batched call, or "KEY CURVE" for one call per curve
    return [c for c in bench.calls if c["label"] == key or c["label"].startswith(key + " ")]


def markdown(rows, bench: Bench, header: str) -> str:
    """The summary tables."""
    lines = [header, ""]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        lines += [f"### {dataset}", "", f"Published / reference: {PUBLISHED[dataset]}", ""]
        held = dataset == "revisiting"
        cols = [
            "cut",
            "method",
            "curves",
            "MARE %",
            "RMSLE " + ("held-out (mean over curves)" if held else "final"),
            "cov90",
            "width %",
            "CRPS %",
            "s/curve",
            "unhealthy",
        ]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in (r for r in rows if r["dataset"] == dataset):
            calls = calls_of(bench, dataset, r["cut"], r["method"])
            curves = sum(c["curves"] for c in calls)
            seconds = sum(c["seconds"] for c in calls) / curves if curves else None
            cold = any(c["cold"] for c in calls)
            unhealthy = sum(len(c["unhealthy"]) for c in calls) if calls else None
            rmsle = r["rmsle_held_out_mean"] if held else r["rmsle_final"]
            point = r["method"] in POINT_METHODS
            lines.append(
                f"| {r['cut']} | {r['method']} | {r['curves']} | {r['mare_pct']:.2f} | {rmsle:.4f} | "
                + ("- | - | " if point else f"{r['coverage90']:.2f} | {r['rel_width_pct']:.2f} | ")
                + f"{r['crps_rel_pct']:.3f} | "
                + (f"{seconds:.1f}{' (incl. compile)' if cold else ''}" if seconds is not None else "-")
                + f" | {unhealthy if unhealthy is not None else '-'} |"
            )
        lines.append("")
        reached = [r for r in rows if r["dataset"] == dataset and "reach" in r]
        if reached:
            lines += [
                "From which step each run logs its final loss plus a margin (steps_to_reach): the 90% interval's "
                "coverage of the first step logged at or below it, and the median step's error:",
                "",
                "| cut | method | margin | covered | median not by the target | median abs. step error % |",
                "|---|---|---|---|---|---|",
            ]
            for r in reached:
                for margin, score in r["reach"].items():
                    error = score["median_abs_step_error_pct"]
                    lines.append(
                        f"| {r['cut']} | {r['method']} | +{100 * float(margin):g}% | "
                        f"{score['covered']}/{score['curves']} | {score['median_not_by_target']} | "
                        f"{'-' if error is None else f'{error:.1f}'} |"
                    )
            lines.append("")
        if held:
            lines += ["Per-curve held-out RMSLE at the official split (M4: the official estimator, see M4_RMSLE):", ""]
            methods = [r for r in rows if r["dataset"] == dataset and r["cut"] == "official"]
            if methods:
                lines += [
                    "| curve | M4 | " + " | ".join(m["method"] for m in methods) + " |",
                    "|" + "---|" * (len(methods) + 2),
                ]
                for i, rec in enumerate(methods[0]["records"]):
                    model = rec["curve"].removeprefix("LM ")
                    values = " | ".join(f"{m['records'][i]['held_out_rmsle']:.6f}" for m in methods)
                    lines.append(f"| {rec['curve']} | {M4_RMSLE.get(model, float('nan')):.6f} | {values} |")
                lines.append("")
    lines += [
        "### extrapolate calls",
        "",
        "| call | laws/pooling | cold | s | curves | s/curve | unhealthy | warnings/error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in bench.calls:
        issue = c["error"] or "; ".join(w[:120] for w in c["warnings"][:2]) + (
            f" (+{len(c['warnings']) - 2})" if len(c["warnings"]) > 2 else ""
        )
        lines.append(
            f"| {c['label']} | {c['laws']} | {'yes' if c['cold'] else ''} | {c['seconds']:.1f} | {c['curves']} | "
            f"{c['seconds_per_curve']:.1f} | {', '.join(c['unhealthy']) or ''} | {issue.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def main(args):
    data_dir = Path(args.data_dir) if os.path.isabs(args.data_dir) else (ROOT / args.data_dir)
    # extrapolate's own settings (target_accept 0.95), with the draws asked for.
    config = CURVE_CONFIG.replace(num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.num_chains)
    bench = Bench(config, args.seed, args.drift, args.backtest, args.retry, args.stacking)
    tracks = set(args.tracks)
    plan = []
    if args.quick:
        plan.append(("mpl", mpl_curves(data_dir, ("25",)), (0.25,)))
    else:
        plan.append(("mpl", mpl_curves(data_dir, MPL_SIZES), CUTS))
        plan.append(("misfitting", misfitting_curves(data_dir), CUTS))
        plan.append(("revisiting", revisiting_curves(data_dir), (*CUTS, "official")))
    plan = [
        (name, curves, [cut for cut in cuts if _cut_name(cut) in args.cuts])
        for name, curves, cuts in plan
        if name in args.datasets
    ]
    start = time.perf_counter()
    rows = []
    for dataset, curves, cuts in plan:
        rows += evaluate(
            dataset,
            curves,
            cuts,
            bench,
            tracks,
            args.per_curve,
            args.runs,
            args.poolings,
            args.schedule_law,
            args.laws,
        )
    total = time.perf_counter() - start
    machine = machine_description()
    header = (
        f"## Learning-curve extrapolation ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d')}\n\n"
        f"Machine: {machine}. bayescale {bs.__version__}. Sampler: {args.num_chains} chains x "
        f"({args.num_warmup} warmup + {args.num_samples} draws), target_accept {config.target_accept}, seed "
        f"{args.seed}. Total {total:.0f} s. "
        f"Tracks A and B: {'one extrapolate call per run' if args.per_curve else 'all runs of a cut in one call'}"
        " (pooling='none'). "
        f"{'Every call with drift=True. ' if args.drift else ''}"
        f"{'Every call with backtest=False. ' if not args.backtest else ''}"
        f"{'Every call with retry=True. ' if args.retry else ''}"
        f"{'Every call with stacking=' + repr(args.stacking) + '. ' if args.stacking != 'loo' else ''}"
        f"Tracks B and C: law {args.schedule_law} (revisiting, track C: the stacked ensemble). "
        f"{'Track A and revisiting track C: laws ' + ', '.join(args.laws) + '. ' if args.laws else ''}"
        "No persistent compilation cache: the first call of each law in the process includes compilation.\n\n"
        "MARE: median |posterior median / truth - 1| of the final logged loss. RMSLE: root mean squared log error "
        "(final point; revisiting: over the held-out points of each curve, from the posterior-median curve "
        "interpolated in log-log between the 40 curve points, then averaged over curves). cov90 / width: "
        "the 5-95% interval at the final point. CRPS %: CRPS / truth, mean over curves (point baselines: |error|). "
        "s/curve: wall time of the calls behind the row / curves predicted."
    )
    text = markdown(rows, bench, header)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python benchmarks/extrapolation.py " + " ".join(args.argv),
        "machine": machine,
        "bayescale": bs.__version__,
        "config": dataclasses.asdict(config),
        "seed": args.seed,
        "per_curve": args.per_curve,
        "drift": args.drift,
        "backtest": args.backtest,
        "retry": args.retry,
        "stacking": args.stacking,
        "schedule_law": args.schedule_law,
        "laws": args.laws,
        "total_seconds": total,
        "published": PUBLISHED,
        "rows": rows,
        "calls": bench.calls,
    }
    out.write_text(json.dumps(payload, indent=1, default=float))
    out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", help="relative to the repository root unless absolute")
    parser.add_argument("--out", default="benchmarks/results/extrapolation.json")
    parser.add_argument("--quick", action="store_true", help="MPL 25M only, cut 25%%")
    parser.add_argument("--datasets", nargs="+", default=["mpl", "misfitting", "revisiting"])
    parser.add_argument("--tracks", nargs="+", default=["A", "B", "C"])
    parser.add_argument(
        "--cuts",
        nargs="+",
        default=["10", "25", "50", "official"],
        help="observed percentages, and official (revisiting)",
    )
    parser.add_argument(
        "--runs", nargs="+", default=["*"], help="shell patterns of the run names to predict, e.g. '*/constant_*'"
    )
    parser.add_argument("--poolings", nargs="+", default=["shape", "all"], help="track C's pooling(s)")
    parser.add_argument(
        "--schedule-law", default="lr_annealing", help="law of tracks B and C (lr_annealing or multi_power)"
    )
    parser.add_argument(
        "--laws",
        nargs="+",
        help="the laws of the schedule-blind calls (track A; track C on revisiting); default the stack",
    )
    parser.add_argument("--drift", action="store_true", help="every extrapolate call with drift=True")
    parser.add_argument(
        "--no-backtest", dest="backtest", action="store_false", help="every extrapolate call with backtest=False"
    )
    parser.add_argument("--retry", action="store_true", help="every extrapolate call with retry=True")
    parser.add_argument(
        "--stacking", choices=list(STACKING), default="loo", help="how every extrapolate call weights stacked laws"
    )
    parser.add_argument(
        "--per-curve", action="store_true", help="tracks A and B: one extrapolate call per run, not one for all"
    )
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    arguments.argv = sys.argv[1:]
    main(arguments)
