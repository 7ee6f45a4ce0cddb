"""Stacking weights, bagged or not: the same fits, mixed three ways.

On the curves of ``stacking.py``, outside issue 3's acceptance sets: the M4 benchmark's
NMT, BIG-bench and every sixth image-classification curve, each alone from its official
split; and, with ``--pooled``, the groups of model sizes fitted together (``POOLED_GROUPS``
but ``inet_10``, left out to keep the run under an hour on two cores). Each call is
``extrapolate``'s default (``stacking="loo"``), whose weights are bagged over
Bayesian-bootstrap replicates of the checkpoints; its predictions are then assembled
again from the same fits and backtests, with the same keys, once with plain stacking
weights (the optimum on the observed checkpoints, as before bagging) and once with equal
weights, for reference. The rows of a curve differ by the weights alone.

Run: ``python benchmarks/bagging.py --out benchmarks/results/bagging.json`` and
``python benchmarks/bagging.py --pooled --out benchmarks/results/bagging_pooled.json``
"""

import time
from pathlib import Path

import numpy as np
from extrapolation import ROOT, Bench, curve_predictions
from stacking import (
    POOLED_GROUPS,
    arguments,
    checkpoints_of,
    curves,
    extrapolate_module,
    pooled_groups,
    save,
    scored,
)

from bayescale.compare import stacking_weights
from bayescale.extrapolate import CURVE_CONFIG

PLAIN_GROUPS = tuple(group for group in POOLED_GROUPS if group != "IC/inet_10")
# How the laws' weights are found, as replacements of extrapolate's functions: the
# default's (none: the call's own result), and the two it is compared with, from the same
# pointwise out-of-sample log densities (observations, laws) and key.
WEIGHTINGS = {
    "bagged": {},
    "plain": {"bagged_stacking_weights": lambda elpd, *, key: stacking_weights(elpd)},
    "equal": {"bagged_stacking_weights": lambda elpd, *, key: np.full(np.shape(elpd)[1], 1.0 / np.shape(elpd)[1])},
}


class Reassembler:
    """Keeps the arguments of ``extrapolate``'s last assembly, to assemble its fits again."""

    def __init__(self):
        self.assemble, self.arguments = extrapolate_module._assemble, None

    def __enter__(self):
        def keep(*arguments):
            self.arguments = arguments
            return self.assemble(*arguments)

        extrapolate_module._assemble = keep
        return self

    def __exit__(self, *exc):
        extrapolate_module._assemble = self.assemble

    def assembled_with(self, replacements):
        """The last call's predictions with functions of ``extrapolate`` replaced (name -> function)."""
        originals = {name: getattr(extrapolate_module, name) for name in replacements}
        for name, replacement in replacements.items():
            setattr(extrapolate_module, name, replacement)
        try:
            return self.assemble(*self.arguments)
        finally:
            for name, original in originals.items():
                setattr(extrapolate_module, name, original)


def rows_of(records: dict[str, list[dict]], group_of) -> list[dict]:
    """Metrics per group and weighting (see ``stacking.scored``)."""
    rows = []
    groups = sorted({group_of(r["curve"]) for r in next(iter(records.values()))})
    for group in (*groups, "all"):
        for method, chosen in records.items():
            chosen = [r for r in chosen if group == "all" or group_of(r["curve"]) == group]
            rows.append({"group": group, "method": method, **scored(chosen)})
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = ["| curves | weights | n | MARE % | cov90 | width % | median CRPS % |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['group']} | {row['method']} | {row['curves']} | {row['mare_pct']:.2f} | {row['coverage90']:.2f} "
            f"| {row['rel_width_pct']:.1f} | {row['crps_rel_median_pct']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(args, weightings=WEIGHTINGS, script="bagging.py"):
    """Run the default calls, reassemble each with every weighting that replaces something, and save the table."""
    data_dir = Path(args.data_dir) if Path(args.data_dir).is_absolute() else ROOT / args.data_dir
    start = time.perf_counter()
    if args.pooled:
        groups, skipped = pooled_groups(data_dir, PLAIN_GROUPS)
        jobs = list(groups.items())
        bench = Bench(CURVE_CONFIG, args.seed)

        def group_of(curve):
            return "/".join(curve.split("/")[:2])
    else:
        chosen, skipped = curves(data_dir)
        jobs = [(curve.name, [(curve, n_obs)]) for curve, n_obs in chosen]
        bench = Bench(CURVE_CONFIG, args.seed, backtest=False)

        def group_of(curve):
            return curve.split("/")[0]

    records = {method: [] for method in weightings}
    weights = {}
    for label, members in jobs:
        targets = {curve.name: int(curve.step[-1]) for curve, _ in members}
        with Reassembler() as again:
            result = bench.run(label, "loo", checkpoints_of(members), targets, list(targets), pooling="shape")
        if result is None:
            continue
        for method, replacements in weightings.items():
            weighted = again.assembled_with(replacements) if replacements else result
            records[method] += [curve_predictions(weighted, curve, n_obs) for curve, n_obs in members]
            weights.setdefault(label, {})[method] = {run: weighted.weights[run] for run in targets}
    rows = rows_of(records, group_of)
    fields = {"skipped": skipped, "rows": rows, "records": records, "weights": weights, "calls": bench.calls}
    save(args.out, script, args.seed, start, table(rows), **fields)


if __name__ == "__main__":
    parser = arguments("benchmarks/results/bagging.json")
    main(parser.parse_args())
