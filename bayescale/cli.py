"""The ``bayescale`` command: argparse only, calling the library's functions.

Every failure a user can cause prints one line on stderr and exits non-zero; nothing
prints a traceback (set ``BAYESCALE_DEBUG=1`` to see one for an internal error).
``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for annotations only, as the package modules are imported where they are used
    from bayescale.config import SamplerConfig

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2  # bad arguments or bad input
EXIT_INTERNAL = 3  # a bug: please report it


class _UsageError(Exception):
    """Bad command-line arguments, reported on one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage plus a message; we want one line
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _mapping(pairs: Sequence[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or ():
        name, separator, column = pair.partition("=")
        if not separator or not name.strip() or not column:
            raise _UsageError(f"--map {pair!r}: expected NAME=COLUMN, e.g. --map N='Model Size'")
        mapping[name.strip()] = column
    return mapping


def _positive(text: str, whole: bool) -> float:
    expected = "a positive whole number" if whole else "a positive number"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (math.isfinite(value) and value > 0 and (not whole or value == int(value))):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _positive(text, whole=False)


def _positive_int(text: str) -> int:
    return int(_positive(text, whole=True))


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (shown only on a terminal, and never with --json)"
    )


def _add_holdout_options(parser: argparse.ArgumentParser, holdout_help: str) -> None:
    parser.add_argument("--holdout-above", type=_positive_float, metavar="C", help=holdout_help)
    parser.add_argument("--holdout-column", help="column the holdout threshold applies to (default C)")


def _holdout(args) -> dict[str, Any]:
    """``holdout_above`` and ``holdout_column`` as given; a column without a threshold is a usage error."""
    if args.holdout_column is not None and args.holdout_above is None:
        raise _UsageError(f"--holdout-column {args.holdout_column}: give the threshold too, --holdout-above C")
    return {"holdout_above": args.holdout_above, "holdout_column": args.holdout_column or "C"}


def _add_need_option(parser, help_text: str) -> None:
    """--need LOSS: the loss a run must reach (a parser, or a group of one)."""
    parser.add_argument("--need", type=_positive_float, metavar="LOSS", help=help_text)


def _add_retry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retry",
        action="store_true",
        help="if the sampler checks fail, refit at target acceptance 0.95, then 0.99, with longer warmup",
    )


def _add_sampler_options(parser: argparse.ArgumentParser, defaults: SamplerConfig) -> None:
    """Sampler options; unset, each keeps its value in ``defaults``, the command's SamplerConfig."""
    group = parser.add_argument_group("sampler")
    group.add_argument("--num-warmup", type=int, help=f"warmup iterations per chain (default {defaults.num_warmup})")
    group.add_argument("--num-samples", type=int, help=f"draws per chain (default {defaults.num_samples})")
    group.add_argument("--num-chains", type=int, help=f"chains (default {defaults.num_chains})")
    group.add_argument(
        "--target-accept", type=float, help=f"target acceptance probability (default {defaults.target_accept:g})"
    )
    group.add_argument(
        "--fixed-steps",
        type=int,
        help="HMC with this many leapfrog steps per iteration instead of NUTS: faster for many curves at once",
    )
    group.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0): same seed, same draws")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    from bayescale.datasets import EXAMPLES
    from bayescale.law import LIKELIHOODS

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "data", nargs="?", help="table of runs (.csv .tsv .jsonl .parquet), W&B exports or TensorBoard logs"
    )
    runs = [name for name, example in EXAMPLES.items() if not example.learning_curves]
    source.add_argument("--example", help=f"a bundled dataset instead of DATA ({', '.join(runs)})")
    _add_log_options(parser)
    parser.add_argument(
        "--likelihood", default="student_t", choices=list(LIKELIHOODS), help="on log loss (default student_t)"
    )
    parser.add_argument(
        "--map", action="append", metavar="NAME=COLUMN", help="read canonical NAME from COLUMN (repeatable)"
    )
    parser.add_argument("--where", help="keep rows matching, e.g. 'loss < 4.9 and N >= 1e8'")
    _add_row_options(parser)


def _add_row_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop rows with invalid values or repeated or backward steps (listed) instead of failing",
    )
    parser.add_argument(
        "--no-unit-check",
        action="store_true",
        help="accept N, D and C in units that look inconsistent (D < N/100, C more than 10x from 6ND)",
    )


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    from bayescale.logs import FORMATS

    group = parser.add_argument_group("training logs")
    group.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="how to read DATA (default auto: a folder with tfevents files is TensorBoard; a table with a _step "
        "column, or a folder of tables, is W&B exports, one per run; else a table of runs)",
    )
    group.add_argument(
        "--metric", metavar="NAME", help="the logged metric to read as the loss (W&B column or TensorBoard tag)"
    )
    group.add_argument(
        "--runs-table",
        metavar="FILE",
        help="per-run values for logs, matched by its run (or name) column: N, D, tokens_per_step, ...",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bayescale`` command (also used to generate its docs)."""
    from bayescale.config import SamplerConfig
    from bayescale.datasets import EXAMPLES
    from bayescale.extrapolate import CURVE_CONFIG, POOLING, STACKING

    parser = _Parser(
        prog="bayescale", description="Bayesian scaling laws: fit, forecast, extrapolate, compare, report."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    fit = commands.add_parser("fit", help="fit a law to a table of runs", description="Fit a scaling law with NUTS.")
    _add_data_options(fit)
    fit.add_argument("--law", default="chinchilla", help="law name, see `bayescale laws` (default chinchilla)")
    fit.add_argument("--compute", type=_positive_float, help="also forecast at this compute budget (FLOPs)")
    fit.add_argument("--out", metavar="FIT.nc", help="save the fit (NetCDF) for `bayescale forecast`")
    fit.add_argument("--plot", metavar="FIG.png", help="save the loss-frontier figure")
    fit.add_argument("--plot-exponents", metavar="FIG.png", help="save the pair plot of the exponents")
    _add_output_options(fit)
    _add_retry_option(fit)
    _add_sampler_options(fit, SamplerConfig())

    compare = commands.add_parser(
        "compare",
        help="compare laws by cross-validation",
        description="Fit several laws to the same runs and compare them by PSIS-LOO and leave-future-out validation.",
    )
    _add_data_options(compare)
    compare.add_argument("--laws", required=True, metavar="A,B,...", help="comma-separated law names (two or more)")
    _add_holdout_options(
        compare, "also refit on the runs with compute <= C and score the runs above it (leave-future-out)"
    )
    compare.add_argument("--out-dir", metavar="DIR", help="save each fit as DIR/LAW.nc (for `bayescale forecast`)")
    _add_output_options(compare)
    _add_sampler_options(compare, SamplerConfig())

    forecast = commands.add_parser(
        "forecast",
        help="forecast from saved fits",
        description="Forecast the loss from a saved fit, or from several averaged by their stacking weights.",
    )
    forecast.add_argument(
        "fit", metavar="FIT.nc", nargs="+", help="fit(s) saved by `bayescale fit --out` or `compare --out-dir`"
    )
    forecast.add_argument("--compute", type=_positive_float, help="compute budget in FLOPs (compute-optimal split)")
    forecast.add_argument("--N", type=_positive_float, dest="N", help="parameters")
    forecast.add_argument("--D", type=_positive_float, dest="D", help="training tokens")
    _add_holdout_options(
        forecast,
        "weight several fits by leave-future-out stacking instead of PSIS-LOO: refit each on the runs with "
        "compute <= C and score the runs above it",
    )
    _add_need_option(forecast, "a loss the run must reach: give the probability that a new run measures it or lower")
    forecast.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    forecast.add_argument("--out", metavar="FORECAST.nc", help="save the forecast's draws (NetCDF)")
    forecast.add_argument(
        "--seed", type=int, default=0, help="PRNG seed of the observation noise and any refits (default 0)"
    )

    extrapolate = commands.add_parser(
        "extrapolate",
        help="predict where partly trained runs will land",
        description="Predict each run's final loss and the rest of its learning curve from its checkpoints.",
    )
    source = extrapolate.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "data",
        nargs="?",
        help="checkpoints: step, loss, optionally run, lr, N (.csv .tsv .jsonl .parquet); "
        "or W&B exports or TensorBoard logs",
    )
    curves = [name for name, example in EXAMPLES.items() if example.learning_curves]
    source.add_argument("--example", help=f"bundled learning curves instead of DATA ({', '.join(curves)})")
    extrapolate.add_argument("--map", action="append", metavar="NAME=COLUMN", help="read NAME from COLUMN (repeatable)")
    _add_log_options(extrapolate)
    _add_row_options(extrapolate)
    target = extrapolate.add_mutually_exclusive_group()
    target.add_argument("--to-step", type=_positive_int, metavar="S", help="the step to predict, for every run")
    target.add_argument("--to-step-col", metavar="COL", help="column holding each run's total steps")
    extrapolate.add_argument(
        "--observed-until",
        type=_positive_int,
        metavar="STEP",
        help="fit only the checkpoints up to STEP and set the forecast beside what the runs logged after it "
        "(their lr still gives the schedule); the target is then each run's last checkpoint unless given",
    )
    extrapolate.add_argument(
        "--law",
        action="append",
        metavar="NAME",
        help="law to use; repeat or comma-separate to stack several (default: lr_annealing when the schedule "
        "is known to the target, else a stacked ensemble of curve families)",
    )
    extrapolate.add_argument(
        "--schedule",
        metavar="FILE|SPEC",
        help="learning rates to the target: a table (step, lr, optionally run) or a spec such as "
        "cosine:peak=3e-4,final=3e-5,warmup=2160,total=24000 (constant, cosine, linear, wsd)",
    )
    extrapolate.add_argument(
        "--pooling",
        choices=list(POOLING),
        default="shape",
        help="what runs share: the law's shape (default), all of it, or nothing",
    )
    extrapolate.add_argument(
        "--drift",
        action="store_true",
        help="let each run drift from the law by a slow random walk whose scale the runs teach, "
        "so that forecasts widen with the horizon by as much as the law missed",
    )
    extrapolate.add_argument(
        "--no-backtest",
        dest="backtest",
        action="store_false",
        help="do not backtest (by default each finished run is cut where the runs in progress stand and "
        "forecast again, or, pooled with none finished, each run in progress short of its last checkpoint; "
        "the misses widen the forecasts)",
    )
    extrapolate.add_argument(
        "--stacking",
        choices=list(STACKING),
        default="loo",
        help="how stacked laws are weighted: by PSIS-LOO on each run's checkpoints, bagged over bootstrap "
        "replicates of them (loo, the default), or "
        "by their forecasts of the checkpoints after a cut (lfo; one more fit per law and run fitted alone)",
    )
    need = extrapolate.add_mutually_exclusive_group()
    _add_need_option(
        need,
        "the loss a run must reach at its target: give each run's probability of landing at or below it, "
        "and from which step it logs it",
    )
    need.add_argument("--need-col", metavar="COL", help="column holding the loss each run must reach (as --need)")
    extrapolate.add_argument("--plot", metavar="FIG.png", help="save the fan chart of the curves")
    extrapolate.add_argument(
        "--out", metavar="EXTRAPOLATION.nc", help="save the predictions (NetCDF) for `bayescale report`"
    )
    _add_output_options(extrapolate)
    _add_retry_option(extrapolate)
    _add_sampler_options(extrapolate, CURVE_CONFIG)

    report = commands.add_parser(
        "report",
        help="write an HTML report of saved fits and extrapolations",
        description="Write one self-contained HTML file: data, law and priors, posterior, diagnostics, "
        "forecasts, the loss frontier and, for several fits, their comparison; for extrapolations, the fan "
        "charts and each run's final loss.",
    )
    report.add_argument(
        "saved",
        metavar="FILE.nc",
        nargs="+",
        help="fits saved by `bayescale fit --out` or `compare --out-dir`, extrapolations by `extrapolate --out`",
    )
    report.add_argument("-o", "--out", metavar="REPORT.html", required=True, help="the HTML file to write")
    report.add_argument(
        "--compute",
        type=_positive_float,
        nargs="+",
        metavar="C",
        help="forecast budgets in FLOPs (default: 10 times the largest run's compute)",
    )
    _add_need_option(
        report,
        "a loss a run must reach: give each extrapolated run's probability of landing at or below it "
        "and from which step it logs it, and a new run's probability at each budget",
    )
    report.add_argument("--seed", type=int, default=0, help="PRNG seed for the forecasts' noise (default 0)")

    laws = commands.add_parser("laws", help="list the law catalogue", description="List the laws and their priors.")
    laws.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


# ---------------------------------------------------------------------------------------
# Output


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from bayescale._numbers import format_number

    cells = [[str(cell) if isinstance(cell, str) else format_number(cell) for cell in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).rjust(w) if i else str(h).ljust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    for row in cells:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def _forecast_text(summary: dict[str, Any]) -> str:
    from bayescale.forecast import QUANTITY_LABELS

    where = ", ".join(f"{name} = {summary[name]:.4g}" for name in ("C", "N", "D") if name in summary)
    rows = [
        (QUANTITY_LABELS.get(name, name), q["median"], q["q05"], q["q95"], "-" if q["mean"] is None else q["mean"])
        for name, q in summary.items()
        if isinstance(q, dict) and "median" in q  # a quantity, not the mixture's weights
    ]
    text = f"forecast at {where}\n" + _table(("quantity", "median", "5%", "95%", "mean"), rows)
    if "need" in summary:  # two decimals: the Monte-Carlo error is up to about 0.025
        need = summary["need"]
        text += f"\nP(a new run measures a loss <= {need['loss']:g}): {need['probability']:.2f}"
    if "weights" in summary:
        text += "\nweights: " + ", ".join(f"{law} {weight:.2f}" for law, weight in summary["weights"].items())
    text += "".join(f"\nnote: {note}" for note in summary["notes"])
    if not summary["healthy"]:
        text += "\nwarning: the fit behind this forecast did not pass its sampler checks; treat it with care:"
        text += "".join(f"\n  - {problem}" for problem in summary["problems"])
    return text


def _diagnostics_text(diagnostics) -> str:
    status = "OK" if diagnostics.ok else "PROBLEMS"
    line = (
        f"diagnostics: {diagnostics.divergences} divergences, max R-hat {diagnostics.max_r_hat:.4f}, "
        f"min ESS bulk {diagnostics.min_ess_bulk:.0f} / tail {diagnostics.min_ess_tail:.0f}, "
        f"mean tree depth {diagnostics.mean_tree_depth:.1f}: {status}"
    )
    lines = [line, *(f"  - {problem}" for problem in diagnostics.problems)]
    if diagnostics.weakly_identified:
        lines.append(f"note: {diagnostics.identification_note()}")
    return "\n".join(lines)


def _attempts_text(attempts) -> str:
    lines = [f"the sampler ran {len(attempts)} times:"]
    for number, attempt in enumerate(attempts, 1):
        config, diagnostics = attempt.config, attempt.diagnostics
        outcome = "passed" if diagnostics.ok else f"{len(diagnostics.problems)} check(s) failed"
        lines.append(f"  {number}. target_accept {config.target_accept:g}, num_warmup {config.num_warmup}: {outcome}")
    return "\n".join(lines)


def _fit_json(result, forecast_summary) -> dict[str, Any]:
    keys = ("mean", "sd", "median", "q05", "q95", "r_hat", "ess_bulk", "contraction")
    out = {
        "law": result.law.name,
        "likelihood": result.likelihood,
        "n_observations": len(result.data),
        "parameters": {name: {key: row[key] for key in keys if key in row} for name, row in result.summary.items()},
        "diagnostics": result.diagnostics.to_dict(),
        "attempts": [attempt.to_dict() for attempt in result.attempts],
        "notes": list(result.data.notes),
    }
    if forecast_summary is not None:
        out["forecast"] = forecast_summary
    return out


def _fit_text(result, forecast_summary) -> str:
    law = result.law
    lines = [
        f"law {law.name}: {law.formula}  [{law.reference}]",
        f"likelihood {result.likelihood} on log loss; {len(result.data)} rows from {result.data.source}",
        *(f"  note: {note}" for note in result.data.notes),
        "",
        _table(
            ("parameter", "median", "5%", "95%", "mean", "sd", "r_hat", "ess_bulk", "contraction"),
            [
                (
                    name,
                    *(row[key] for key in ("median", "q05", "q95", "mean", "sd", "r_hat", "ess_bulk")),
                    row.get("contraction", "-"),
                )
                for name, row in result.summary.items()
            ],
        ),
        "",
        _diagnostics_text(result.diagnostics),
    ]
    if len(result.attempts) > 1:
        lines.append(_attempts_text(result.attempts))
    if forecast_summary is not None:
        lines += ["", _forecast_text(forecast_summary)]
    return "\n".join(lines)


def _extrapolation_text(summary: dict[str, Any]) -> str:
    from bayescale._numbers import format_number
    from bayescale.extrapolate import describe_held_back, describe_need

    needed = {entry["need"]["loss"] for entry in summary["runs"].values() if "need" in entry}
    held_back = any("logged" in entry for entry in summary["runs"].values())  # --observed-until
    rows = []
    for run, entry in summary["runs"].items():
        final = entry["final_loss"]
        interval = f"[{format_number(final['q05'])}, {format_number(final['q95'])}]"
        healthy = "yes" if entry["healthy"] else "NO"
        steps = (str(entry["observed_until_step"]), str(entry["to_step"]))
        need = ()
        if "need" in entry:  # each run's loss needed too, unless every run needs the same
            # The loss needed is the user's own number: echoed as given, as in the header.
            need = (f"{entry['need']['loss']:g}",) if len(needed) > 1 else ()
            # Two decimals: the Monte-Carlo error of the probability is up to about 0.025.
            need += (f"{entry['need']['probability']:.2f}",)
        logged = ()
        if held_back:
            logged = (entry["logged"], f"{100 * entry['error']:+.2f}%") if "logged" in entry else ("-", "-")
        rows.append((run, entry["law"], *steps, final["median"], interval, *need, *logged, healthy))
    header = ("run", "law", "observed until", "target", "median", "90% interval")
    if needed:
        header += (f"P(<= {next(iter(needed)):g})",) if len(needed) == 1 else ("need", "P(<= need)")
    if held_back:
        header += ("logged", "error")
    header += ("healthy",)
    lines = [*(f"note: {note}" for note in summary["notes"]), "", _table(header, rows)]
    for run, entry in summary["runs"].items():
        if len(entry["weights"]) > 1:
            weights = ", ".join(f"{law} {weight:.2f}" for law, weight in entry["weights"].items())
            lines.append(f"  stacking weights of {run}: {weights}")
    lines += [
        f"  {run} logs {describe_need(entry['need'])}" for run, entry in summary["runs"].items() if "need" in entry
    ]
    lines += [
        f"  held back from {run}: {describe_held_back(entry['held_back'])}"
        for run, entry in summary["runs"].items()
        if "held_back" in entry
    ]
    if "backtest" in summary:
        lines.append("")
        for run, entry in summary["backtest"]["runs"].items():
            interval = f"[{format_number(entry['q05'])}, {format_number(entry['q95'])}]"
            lines.append(
                f"backtest of {run}: cut at step {entry['observed_until_step']}, forecast "
                f"{format_number(entry['median'])} {interval} at step {entry['to_step']}, "
                f"logged {format_number(entry['logged'])} ({100 * entry['error']:+.2f}%)"
            )
    unhealthy = [run for run, entry in summary["runs"].items() if not entry["healthy"]]
    if unhealthy:
        lines.append(
            f"warning: the fit behind {', '.join(unhealthy)} did not pass its sampler checks; "
            "see the diagnostics with --json and treat the prediction with care"
        )
    return "\n".join(lines)


def _comparison_text(summary: dict[str, Any]) -> str:
    columns = ("elpd_loo", "se", "p_loo", "pareto_k_high", "elpd_diff", "dse", "elpd_lfo", "se_lfo", "weight")
    rows = [
        (name, *(row[c] if row[c] is not None else "-" for c in columns), "yes" if row["healthy"] else "NO")
        for name, row in summary["laws"].items()
    ]
    header = ("law", "elpd_loo", "se", "p_loo", "k>0.7", "elpd_diff", "dse", "elpd_lfo", "se_lfo", "weight", "healthy")
    lines = [*(f"note: {note}" for note in summary["notes"]), _table(header, rows), ""]
    lines.append(f"best: {summary['best']} (by {summary['criterion']})")
    if summary["holdout"]:
        holdout = summary["holdout"]
        lines.append(
            f"leave-future-out: refitted on {holdout['column']} <= {holdout['above']:g}, "
            f"scored the {holdout['held_out']} rows above; stacking weights from those scores"
        )
    return "\n".join(lines)


def _save_figure(figure, path: str) -> None:
    try:
        figure.savefig(path, dpi=120)
    except (OSError, ValueError) as error:
        raise _UsageError(f"cannot save figure to {path}: {error}") from None


# ---------------------------------------------------------------------------------------
# Commands


def _sampler_overrides(args) -> dict[str, Any]:
    return {
        "num_warmup": args.num_warmup,
        "num_samples": args.num_samples,
        "num_chains": args.num_chains,
        "target_accept": args.target_accept,
        "fixed_steps": args.fixed_steps,
    }


def _config(args, default=None):
    from bayescale.config import SamplerConfig

    try:
        return (default or SamplerConfig()).replace(**_sampler_overrides(args))
    except ValueError as error:
        raise _UsageError(str(error)) from None


def _show_progress(args) -> bool | None:
    """Progress on stderr: never with --json or --quiet, else on a terminal only (the library's default)."""
    return False if args.json or args.quiet else None


def _load_data(args, laws):
    """Return the table of --example or DATA, with every column the laws read."""
    import bayescale as bs

    if args.example:
        data = _example(args, learning_curves=False)
        return data.where(args.where) if args.where else data
    extra = list(dict.fromkeys(name for law in laws for name in law.inputs if name not in bs.data.CANONICAL_COLUMNS))
    return _read_data(args, extra, where=args.where, drop_invalid=args.drop_invalid)


def _example(args, *, learning_curves: bool):
    """Return the bundled dataset --example names, checked to be of the kind the command reads."""
    import bayescale as bs
    from bayescale.datasets import EXAMPLES

    data_options = (args.map, args.drop_invalid, args.no_unit_check, args.metric, args.runs_table)
    if any(data_options) or args.format != "auto":
        raise _UsageError("--map, --drop-invalid, --no-unit-check and the log options apply to DATA, not to --example")
    example = EXAMPLES.get(args.example)
    if example is not None and example.learning_curves != learning_curves:
        command = "extrapolate" if example.learning_curves else "fit"
        kind = "learning curves" if example.learning_curves else "finished runs"
        raise _UsageError(f"example {args.example} holds {kind}: use `bayescale {command} --example {args.example}`")
    return bs.load_example(args.example)


def _read_data(args, columns: Sequence[str], **options):
    """Read DATA as --format says (a table, W&B exports or TensorBoard logs), with --metric and --runs-table."""
    from bayescale.logs import read

    return read(
        args.data,
        format=args.format,
        metric=args.metric,
        runs=args.runs_table,
        mapping=_mapping(args.map),
        columns=columns,
        check_units=not args.no_unit_check,
        **options,
    )


def _run_fit(args) -> dict[str, Any] | str:
    import jax

    import bayescale as bs

    law = bs.law.resolve_law(args.law)
    data = _load_data(args, [law])
    key = jax.random.key(args.seed)
    options = {"likelihood": args.likelihood, "config": _config(args), "retry": args.retry}
    result = bs.fit(law, data, key=key, progress=_show_progress(args), **options)
    forecast_summary = None
    if args.compute is not None:
        prediction = bs.forecast(result, compute=args.compute, key=jax.random.key(args.seed + 1))
        forecast_summary = prediction.summary()
    if args.out:
        result.save(args.out)
    if args.plot:
        _save_figure(bs.plot_frontier(result, target_compute=args.compute), args.plot)
    if args.plot_exponents:
        _save_figure(bs.plot_exponents(result), args.plot_exponents)
    return _fit_json(result, forecast_summary) if args.json else _fit_text(result, forecast_summary)


def _run_forecast(args) -> dict[str, Any] | str:
    import jax

    import bayescale as bs

    if args.compute is None and args.N is None and args.D is None:
        raise _UsageError("bayescale forecast: give --compute C, or --N and --D")
    fits = [bs.load_fit(path) for path in args.fit]
    key = jax.random.key(args.seed)
    weighted, holdout = fits, _holdout(args)
    if args.holdout_above is not None:
        if len(fits) < 2:
            raise _UsageError("bayescale forecast: --holdout-above weights several fits; give two or more")
        weighted = bs.compare(fits, key=jax.random.fold_in(key, 1), progress=False if args.json else None, **holdout)
    prediction = bs.forecast(weighted, compute=args.compute, N=args.N, D=args.D, key=key)
    if args.out:
        prediction.save(args.out)
    summary = prediction.summary(need=args.need)
    return summary if args.json else _forecast_text(summary)


def _run_compare(args) -> dict[str, Any] | str:
    import jax

    import bayescale as bs
    from bayescale import _progress as progress
    from bayescale.compare import check_laws

    names = list(dict.fromkeys(name.strip() for name in args.laws.split(",") if name.strip()))
    if len(names) < 2:
        raise _UsageError(f"--laws {args.laws!r}: name two or more laws to compare, comma-separated")
    holdout = _holdout(args)
    laws = [bs.law.resolve_law(name) for name in names]
    data = _load_data(args, laws)
    config = _config(args)
    specs = [bs.law.ModelSpec(law, args.likelihood) for law in laws]
    check_laws(specs, data, **holdout)
    keys = jax.random.split(jax.random.key(args.seed), len(laws) + 1)
    fits = {}
    with progress.task(f"compare {len(laws)} laws", total=len(laws), progress=_show_progress(args)) as status:
        for law, law_key in zip(laws, keys):
            options = {"likelihood": args.likelihood, "config": config, "progress": status.shown}
            fits[law.name] = bs.fit(law, data, key=law_key, **options)
            status.advance()
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            for name, fitted in fits.items():
                fitted.save(os.path.join(args.out_dir, f"{name}.nc"))
        comparison = bs.compare(
            fits,
            key=keys[-1],
            **holdout,
            config=config,
            progress=status.shown,
        )
    summary = {**comparison.summary(), "notes": list(data.notes)}
    return summary if args.json else _comparison_text(summary)


def _schedule(text: str | None):
    """Return a file's path as given, a schedule spec parsed; a path that is neither says so."""
    from bayescale.schedules import parse_schedule

    if text is None or os.path.exists(text):
        return text
    if ":" not in text:
        raise _UsageError(f"--schedule {text!r}: no such file, nor a spec such as cosine:peak=3e-4,total=24000")
    return parse_schedule(text)


def _run_extrapolate(args) -> dict[str, Any] | str:
    import jax

    import bayescale as bs
    from bayescale.extrapolate import CURVE_CONFIG, extrapolate

    if args.to_step is None and args.to_step_col is None and args.observed_until is None:
        raise _UsageError(
            "one of the arguments --to-step --to-step-col is required "
            "(or --observed-until, which forecasts each run's last checkpoint)"
        )
    laws = [name.strip() for item in args.law or () for name in item.split(",") if name.strip()] or None
    schedule = _schedule(args.schedule)
    columns = [column for column in (args.to_step_col, args.need_col) if column]
    if args.example:
        data = _example(args, learning_curves=True)
    else:
        data = _read_data(args, columns, drop_invalid=args.drop_invalid)
    need = _need(args, data)  # checked before any fit
    config = _config(args, CURVE_CONFIG)
    result = extrapolate(
        data,
        to_step=args.to_step_col or args.to_step,
        observed_until=args.observed_until,
        key=jax.random.key(args.seed),
        law=laws,
        schedule=schedule,
        pooling=args.pooling,
        drift=args.drift,
        backtest=args.backtest,
        stacking=args.stacking,
        config=config,
        retry=args.retry,
        drop_invalid=args.drop_invalid,
        progress=_show_progress(args),
    )
    if args.out:
        result.save(args.out)
    if args.plot:
        _save_figure(bs.plot_extrapolation(result, need=need), args.plot)
    summary = result.summary(need=need)
    # What reading did (the metric chosen, steps it was not logged at) comes first.
    summary["notes"] = [*data.notes, *summary["notes"]]
    return summary if args.json else _extrapolation_text(summary)


def _need(args, data) -> float | dict[str, float] | None:
    """Return the loss needed: --need for every run, or each run's from --need-col."""
    if args.need_col is None:
        return args.need
    from bayescale.diagnostics import check_loss_needed
    from bayescale.errors import DataError
    from bayescale.extrapolate import per_run_values

    needed = per_run_values(data, args.need_col, "losses needed")
    low = []
    for run, value in needed.items():
        try:
            check_loss_needed(value, f"run {run!r}")
        except ValueError:
            low.append(f"{run} ({value:g})")
    if low:
        raise DataError(f"{data.source}, column {args.need_col!r}: losses needed of {', '.join(low)}; expected > 0")
    return {run: float(value) for run, value in needed.items()}


def _run_report(args) -> str:
    import jax

    import bayescale as bs

    fits, extrapolations = [], []
    for path in args.saved:
        saved = bs.load_saved(path)
        if isinstance(saved, bs.Forecast):
            raise _UsageError(f"{path}: a saved forecast; the report takes fits and extrapolations")
        (fits if isinstance(saved, bs.Fit) else extrapolations).append(saved)
    key = jax.random.key(args.seed)
    try:
        bs.write_report(fits, args.out, key=key, compute=args.compute, extrapolations=extrapolations, need=args.need)
    except OSError as error:
        raise _UsageError(f"cannot write the report to {args.out}: {error}") from None
    return f"wrote {args.out}"


def _run_laws(args) -> dict[str, Any] | str:
    from bayescale.law import catalogue, law_summary

    listing = {name: law_summary(law) for name, law in catalogue().LAWS.items()}
    if args.json:
        return {"laws": listing}
    blocks = []
    for name, entry in listing.items():
        priors = ", ".join(f"{param} ~ {prior}" for param, prior in entry["parameters"].items())
        blocks.append(
            f"{name}: {entry['formula']}\n  inputs {', '.join(entry['inputs'])}; {priors}\n  {entry['reference']}"
        )
    return "\n".join(blocks)


_COMMANDS = {
    "fit": _run_fit,
    "forecast": _run_forecast,
    "extrapolate": _run_extrapolate,
    "compare": _run_compare,
    "report": _run_report,
    "laws": _run_laws,
}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"bayescale: warning: {message}", file=sys.stderr)


#: Line width of the generated reference, fixed so that it does not depend on the terminal.
_REFERENCE_WIDTH = 100


def cli_reference() -> str:
    """Return the command-line reference in Markdown: each command's help as argparse prints it.

    The README's "Command-line reference" section is this text; a test compares the two,
    so the documentation cannot drift from the parser. Regenerate it with
    ``python -c "from bayescale.cli import cli_reference; print(cli_reference())"``.

    Returns
    -------
    str
    """
    parser = build_parser()
    (commands,) = (action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    sections = []
    for name, command in commands.choices.items():
        command.formatter_class = functools.partial(argparse.HelpFormatter, width=_REFERENCE_WIDTH)
        sections.append(f"### bayescale {name}\n\n```\n{command.format_help().rstrip()}\n```\n")
    return "\n".join(sections)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayescale`` command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    from bayescale.config import enable_compilation_cache
    from bayescale.errors import BayescaleError

    enable_compilation_cache()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            output = _COMMANDS[args.command](args)
    except (_UsageError, BayescaleError) as error:
        print(f"bayescale: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # never a traceback for users; BAYESCALE_DEBUG shows it
        if os.environ.get("BAYESCALE_DEBUG"):
            raise
        print(
            f"bayescale: internal error ({type(error).__name__}: {_one_line(error)}); "
            "rerun with BAYESCALE_DEBUG=1 for the traceback and please report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    print(json.dumps(_json_ready(output)) if isinstance(output, dict) else output)
    return 0


def _one_line(error: BaseException) -> str:
    """Return the message on one line, whatever text (a cell, a file name) it quotes."""
    return " ".join(str(error).split("\n"))


def _json_ready(value):
    """Replace non-finite floats by None (JSON has no NaN) and NumPy scalars by Python ones."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
