"""One self-contained HTML report of one or more fits: data, law, posterior, health, forecasts.

:func:`write_report` writes a single file that opens anywhere, offline and years later:
figures are inlined as base64 PNG, styles are inline, and nothing is fetched (no external
CSS, scripts or fonts). Every piece of text is HTML-escaped, since data sources, notes and
law names come from users' files.

Each fit gets its data summary, its law and priors, the posterior table, the sampler
diagnostics with every attempt, a forecast at compute budgets and the loss frontier
(laws with a compute frontier, or of C alone); several fits get a comparison by PSIS-LOO.
A section that cannot be drawn from a fit alone says why instead of inventing inputs.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import jax
import numpy as np

from bayescale import _arviz
from bayescale._numbers import format_number
from bayescale.compare import compare, label_fits
from bayescale.diagnostics import check_loss_needed
from bayescale.errors import DataError
from bayescale.extrapolate import CURVE_INPUTS, Extrapolation, describe_held_back, describe_need
from bayescale.forecast import QUANTITY_LABELS, forecast
from bayescale.inference import Fit
from bayescale.law import Law
from bayescale.plots import plot_extrapolation, plot_frontier
from bayescale.store import atomic_write

__all__ = ["DEFAULT_COMPUTE_FACTOR", "SECTIONS", "write_report"]

#: Headings of each fit's sections, in order. The fan-chart section appears only for
#: learning-curve laws; the comparison only for several fits.
SECTIONS = (
    "Data",
    "Law and priors",
    "Posterior",
    "Diagnostics",
    "Forecast",
    "Loss frontier",
    "Learning-curve fan charts",
    "Comparison",
)
#: Default forecast budget as a multiple of the largest run's compute: one decade past the
#: data, far enough to be a forecast and near enough to be worth making.
DEFAULT_COMPUTE_FACTOR = 10.0
# Steps of a learning curve: a law reading any of these is a learning-curve law.
_CURVE_AXES = CURVE_INPUTS - {"N"}
_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
th { background: #f3f3f3; }
.note { color: #555; }
.problem { color: #a00; }
.ok { color: #070; }
img { max-width: 100%; height: auto; }
"""


def write_report(
    fits: Fit | Sequence[Fit] | Mapping[str, Fit],
    path: str,
    *,
    key: jax.Array,
    compute: Any = None,
    extrapolations: Sequence[Extrapolation] = (),
    need: float | None = None,
) -> None:
    """Write a self-contained HTML report of fits and learning-curve extrapolations.

    For each fit: the data (source, rows, runs, range of each column, notes), the law
    (formula, reference, prior of each parameter), the posterior table (mean, sd,
    quantiles, R-hat, ESS), the diagnostics and sampler attempts, and, for laws with a
    compute frontier or of C alone, the forecast at ``compute`` with 90% intervals and
    the loss frontier. Several fits are also compared by PSIS-LOO
    (:func:`~bayescale.compare`); warnings of the comparison are written into the report.
    For each extrapolation: the fan charts of its runs (checkpoints, then the predicted
    rest of each curve with 50% and 90% bands) and a table of each run's final loss with
    its 90% interval, the laws behind it and their health. A fit of a learning-curve law
    alone gets a note in place of a fan chart: that needs each run's target step, which a
    fit does not hold. Given ``need``, the loss a run must reach, the report adds each
    extrapolated run's probability of logging it or lower at its target (a column, and a
    dashed line on the fan charts), the step from which it logs it (a line per run, and a
    mark on the dashed line) and, at each budget, the probability that a new run measures
    it or lower.

    Parameters
    ----------
    fits : Fit, sequence of Fit, or mapping of name to Fit
        The fits to report, e.g. from :func:`bayescale.load_fit`; may be empty when
        ``extrapolations`` are given.
    path : str
        The HTML file to write; replaced atomically.
    key : jax.Array
        PRNG key for the observation noise of the forecasts.
    compute : float or array_like, optional
        Forecast budgets in FLOPs; by default ``DEFAULT_COMPUTE_FACTOR`` times the
        largest run's compute, per fit.
    extrapolations : sequence of Extrapolation, optional
        Learning-curve predictions to draw, from :func:`bayescale.extrapolate` or
        :func:`bayescale.load_extrapolation`.
    need : float, optional
        The loss a run must reach; a positive number.

    Raises
    ------
    DataError
        When ``compute`` holds anything but positive finite numbers.
    ValueError
        When there is neither a fit nor an extrapolation to report, or ``need`` is not a
        positive finite number.

    Examples
    --------
    >>> import jax, bayescale as bs
    >>> bs.write_report(bs.load_fit("fit.nc"), "report.html", key=jax.random.key(0))  # doctest: +SKIP
    """
    fits = [fits] if isinstance(fits, Fit) else fits
    if not fits and not extrapolations:
        raise ValueError("write_report needs at least one fit or extrapolation")
    named = label_fits(fits) if fits else {}
    budgets = None if compute is None else _budgets(compute)
    need = None if need is None else check_loss_needed(need, "the report")
    keys = jax.random.split(key, max(len(named), 1))
    body = [_header(named, extrapolations)]
    for index, ((name, fitted), fit_key) in enumerate(zip(named.items(), keys[: len(named)], strict=True)):
        body.append(_fit_sections(index, name, fitted, budgets, fit_key, need))
    if len(named) > 1:
        body.append(_comparison_section(named))
    for index, extrapolation in enumerate(extrapolations):
        body.append(_extrapolation_section(index, extrapolation, need))
    title = ", ".join([*named, *(f"extrapolation {i + 1}" for i in range(len(extrapolations)))])
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>bayescale report: {_text(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
    with atomic_write(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(document)


def _budgets(compute: Any) -> np.ndarray:
    """Return the forecast budgets as a 1-D float array, checked positive and finite."""
    try:
        budgets = np.atleast_1d(np.asarray(compute, dtype=np.float64))
    except (TypeError, ValueError):
        budgets = np.empty(0)
    if budgets.ndim != 1 or budgets.size == 0 or not np.all(np.isfinite(budgets) & (budgets > 0)):
        raise DataError(f"write_report: compute must be a positive finite number or a list of them, got {compute!r}")
    return budgets


# ---------------------------------------------------------------------------------------
# HTML pieces


def _text(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_text(cell)}</th>" for cell in header)
    lines = ["<table>", f"<tr>{head}</tr>"]
    for row in rows:
        cells = (
            f'<td class="text">{_text(cell)}</td>'
            if isinstance(cell, str)
            else f"<td>{_text(format_number(cell))}</td>"
            for cell in row
        )
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _paragraph(text: str, kind: str = "note") -> str:
    return f'<p class="{kind}">{_text(text)}</p>'


def _heading(index: int, title: str) -> str:
    slug = title.lower().replace(" ", "-")
    return f'<h3 id="fit{index + 1}-{slug}">{_text(title)}</h3>'


def _image(figure, alt: str) -> str:
    """Inline the figure as a base64 PNG ``<img>``; no pyplot, so nothing is shown or kept."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_text(alt)}" src="data:image/png;base64,{encoded}">'


def _header(named: Mapping[str, Fit], extrapolations: Sequence[Extrapolation]) -> str:
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    version = metadata.version("bayescale")
    items = "".join(f'<li><a href="#fit{i + 1}">{_text(name)}</a></li>' for i, name in enumerate(named))
    if len(named) > 1:
        items += '<li><a href="#comparison">Comparison</a></li>'
    items += "".join(
        f'<li><a href="#extrapolation{i + 1}">{_text(_extrapolation_title(i, result))}</a></li>'
        for i, result in enumerate(extrapolations)
    )
    written = _paragraph(f"written {created} by bayescale {version}")
    return f"<h1>bayescale report</h1>\n{written}\n<ul>{items}</ul>"


# ---------------------------------------------------------------------------------------
# Sections


def _fit_sections(
    index: int, name: str, fitted: Fit, budgets: np.ndarray | None, key: jax.Array, need: float | None
) -> str:
    law = fitted.law
    parts = [f'<section id="fit{index + 1}">', f"<h2>{_text(name)}</h2>"]
    parts += [_heading(index, "Data"), _data_section(fitted)]
    parts += [_heading(index, "Law and priors"), _law_section(fitted)]
    parts += [_heading(index, "Posterior"), _posterior_section(fitted)]
    parts += [_heading(index, "Diagnostics"), _diagnostics_section(fitted)]
    reason = _no_frontier_reason(law)
    if reason:
        parts += [_heading(index, "Forecast"), _paragraph(f"No forecast at a compute budget: {reason}")]
        parts += [_heading(index, "Loss frontier"), _paragraph(f"No loss frontier: {reason}")]
    else:
        chosen = "Budgets as given."
        if budgets is None:
            budgets = np.array([DEFAULT_COMPUTE_FACTOR * float(_compute(fitted).max())])
            chosen = f"Budget: {DEFAULT_COMPUTE_FACTOR:g} times the largest run's compute (default)."
        parts += [_heading(index, "Forecast"), _forecast_section(fitted, budgets, key, chosen, need)]
        figure = plot_frontier(fitted, target_compute=float(budgets.max()))
        parts += [_heading(index, "Loss frontier"), _image(figure, f"{name}: loss frontier")]
    if _is_curve_law(law):
        parts += [_heading(index, "Learning-curve fan charts"), _paragraph(_no_fan_reason(law))]
    parts.append("</section>")
    return "\n".join(parts)


def _is_curve_law(law: Law) -> bool:
    """Tell whether ``law`` is a learning curve: it reads a step-like input."""
    return bool(set(law.inputs) & _CURVE_AXES)


def _compute(fitted: Fit) -> np.ndarray:
    """Return each run's compute: the data's C, else 6ND."""
    data = fitted.data
    return data["C"] if "C" in data else 6.0 * data["N"] * data["D"]


def _data_section(fitted: Fit) -> str:
    data = fitted.data
    if "run" in data:
        runs = f"{len(np.unique(data['run']))} runs"
    elif _is_curve_law(fitted.law):
        runs = "one learning curve"
    else:
        runs = f"{len(data)} runs (one row per run)"
    lines = [
        f"<p>Source: {_text(data.source)}; {len(data)} rows, {runs}; "
        f"fitted with a {_text(fitted.likelihood)} likelihood on log loss.</p>"
    ]
    numeric = [name for name, values in data.columns.items() if values.dtype.kind == "f"]
    order = [name for name in ("N", "D", "C", "loss") if name in numeric]
    order += [name for name in numeric if name not in order]
    rows = [(name, data.mapping.get(name, name), float(data[name].min()), float(data[name].max())) for name in order]
    lines.append(_table(("column", "read from", "min", "max"), rows))
    if data.notes:
        lines.append("<ul>" + "".join(f"<li>{_text(note)}</li>" for note in data.notes) + "</ul>")
    else:
        lines.append(_paragraph("No notes: nothing was derived, filtered or dropped."))
    return "\n".join(lines)


def _priors(fitted: Fit) -> dict[str, str]:
    """Return the priors saved with the fit.

    They are the record of what was fitted, even where the law's priors were replaced
    (``Law.with_priors``) without a new version.
    """
    return json.loads(str(_arviz.get_attrs(fitted.idata)["priors"]))


def _law_section(fitted: Fit) -> str:
    law: Law = fitted.law
    lines = [
        f"<p><b>{_text(law.name)}</b> (version {_text(law.version)}): <code>{_text(law.formula)}</code></p>",
        f"<p>Reference: {_text(law.reference)}</p>",
        f"<p>Inputs: {_text(', '.join(law.inputs))}"
        + (f"; derived quantities: {_text(', '.join(law.derived))}" if law.derived else "")
        + "</p>",
    ]
    kinds = {**dict.fromkeys(law.priors, "law"), **dict.fromkeys(fitted.spec.noise, "noise")}
    rows = [(name, kinds.get(name, ""), prior) for name, prior in _priors(fitted).items()]
    lines.append(_table(("parameter", "kind", "prior"), rows))
    return "\n".join(lines)


def _posterior_section(fitted: Fit) -> str:
    law = fitted.law
    columns = ("mean", "sd", "median", "q05", "q95", "r_hat", "ess_bulk", "ess_tail")
    rows = []
    for name, row in fitted.summary.items():
        base = name.split("[")[0]
        kind = "derived" if base in law.derived else "noise" if base in fitted.spec.noise else "law"
        rows.append((name, kind, *(row[column] for column in columns), row.get("contraction", "-")))
    header = ("parameter", "kind", "mean", "sd", "median", "5%", "95%", "R-hat", "ESS bulk", "ESS tail", "contraction")
    draws = f"{fitted.num_draws} draws ({fitted.config.num_chains} chains of {fitted.config.num_samples})."
    return _table(header, rows) + "\n" + _paragraph(draws)


def _diagnostics_section(fitted: Fit) -> str:
    report = fitted.diagnostics
    if report.ok:
        lines = ['<p class="ok">Healthy: every sampler check passed.</p>']
    else:
        lines = ['<p class="problem">Problems: the sampler checks failed; treat the numbers with care.</p>']
        lines.append('<ul class="problem">' + "".join(f"<li>{_text(p)}</li>" for p in report.problems) + "</ul>")
    if report.weakly_identified:
        lines.append(_paragraph(report.identification_note().capitalize() + ".", "problem"))
    lines.append(
        _table(
            (
                "divergences",
                "max R-hat",
                "min ESS bulk",
                "min ESS tail",
                "tree-depth saturation",
                "min E-BFMI",
                "mean tree depth",
            ),
            [
                (
                    report.divergences,
                    report.max_r_hat,
                    report.min_ess_bulk,
                    report.min_ess_tail,
                    report.tree_depth_saturation,
                    report.min_bfmi,
                    report.mean_tree_depth,
                )
            ],
        )
    )
    rows = []
    for number, attempt in enumerate(fitted.attempts, 1):
        config, outcome = attempt.config, attempt.diagnostics
        result = "passed" if outcome.ok else f"{len(outcome.problems)} check(s) failed"
        rows.append(
            (str(number), config.target_accept, config.num_warmup, config.num_samples, config.num_chains, result)
        )
    lines.append(_paragraph(f"The sampler ran {len(fitted.attempts)} time(s); the draws are the last run's."))
    lines.append(_table(("attempt", "target_accept", "num_warmup", "num_samples", "num_chains", "outcome"), rows))
    return "\n".join(lines)


def _no_frontier_reason(law: Law) -> str | None:
    """Say why a fit of ``law`` has no forecast at a budget nor loss frontier; None when it has them."""
    if law.inputs == ("C",) or set(law.inputs) == {"N", "D"}:
        return None
    if law.has_compute_frontier:
        others = ", ".join(name for name in law.inputs if name not in ("N", "D"))
        return (
            f"law {law.name} reads {others} besides N and D, which a budget does "
            f"not fix; forecast with bayescale.forecast(fit, compute=..., inputs={{...}}) holding it at a value "
            "of your choosing."
        )
    return (
        f"law {law.name} reads {', '.join(law.inputs)}, not N and D nor C, so a compute budget does not fix its loss."
    )


def _no_fan_reason(law: Law) -> str:
    return (
        f"No fan chart: law {law.name} is a learning-curve law ({', '.join(law.inputs)}). A fan chart draws each "
        "run's predicted loss out to its target step, which a fit does not record (nor, for a schedule-aware law, "
        "the learning-rate schedule up to it); rather than invent a target, none is drawn. Save an extrapolation "
        "with `bayescale extrapolate DATA --to-step S --out EXTRAPOLATION.nc` and pass that file to "
        "`bayescale report` (or bayescale.write_report(..., extrapolations=[...]))."
    )


# Runs per fan chart: more colours on one axis stop being told apart.
_RUNS_PER_CHART = 6


def _extrapolation_title(index: int, result: Extrapolation) -> str:
    runs = len(result.runs)
    return f"Extrapolation {index + 1}: {runs} run{'s' if runs > 1 else ''} of {result.data.source}"


def _extrapolation_section(index: int, result: Extrapolation, need: float | None) -> str:
    """Fan charts of an extrapolation's runs, and each run's final loss with its health (and chance of ``need``)."""
    parts = [f'<section id="extrapolation{index + 1}">', f"<h2>{_text(_extrapolation_title(index, result))}</h2>"]
    parts.append(f'<h3 id="extrapolation{index + 1}-fan">Learning-curve fan charts</h3>')
    rows = []
    summary = result.summary(need=need)["runs"]
    held_back = any("logged" in entry for entry in summary.values())  # observed_until
    for run, entry in summary.items():
        final = entry["final_loss"]
        laws = ", ".join(f"{law} {weight:.2f}" for law, weight in entry["weights"].items())
        health = "ok" if entry["healthy"] else "failed checks"
        row = [run, entry["observed_until_step"], entry["to_step"], final["median"], final["q05"], final["q95"]]
        if need is not None:
            row.append(_probability(entry["need"]["probability"]))
        if held_back:
            row += [entry["logged"], f"{100 * entry['error']:+.2f}%"] if "logged" in entry else ["-", "-"]
        rows.append([*row, laws, health])
    header = ["run", "observed to step", "target step", "final loss (median)", "q05", "q95"]
    header += [] if need is None else [f"P(<= {need:g})"]
    header += ["logged (held back)", "error"] if held_back else []
    header += ["laws (weight)", "fits"]
    parts.append(_table(header, rows))
    # The fits a run's prediction rests on, as in its table row (laws of negligible weight aside).
    unhealthy = [run for run, entry in summary.items() if not entry["healthy"]]
    if unhealthy:
        parts.append(
            _paragraph(
                f"The fits behind {', '.join(unhealthy)} failed their sampler checks: treat their intervals with care.",
                "problem",
            )
        )
    if need is not None:
        reached = [f"{run} logs {describe_need(entry['need'])}" for run, entry in summary.items()]
        parts.append(_paragraph("When each run reaches the loss needed: " + "; ".join(reached) + "."))
    scored = [
        f"{run}: {describe_held_back(entry['held_back'])}" for run, entry in summary.items() if "held_back" in entry
    ]
    if scored:
        parts.append(
            _paragraph("The predicted curves on the checkpoints held back from the fits: " + "; ".join(scored) + ".")
        )
    if result.backtest:
        parts.append(_backtest_table(result.backtest))
    for start in range(0, len(result.runs), _RUNS_PER_CHART):
        runs = result.runs[start : start + _RUNS_PER_CHART]
        figure = plot_extrapolation(result, list(runs) if len(runs) > 1 else runs[0], need=need)
        parts.append(_image(figure, f"fan chart: {', '.join(runs)}"))
    if result.notes:
        parts.append(_paragraph("Notes: " + "; ".join(result.notes)))
    parts.append("</section>")
    return "\n".join(parts)


def _backtest_table(backtest: Mapping[str, Any]) -> str:
    """Table the backtests, with the discrepancy they taught."""
    rows = []
    for run, entry in backtest["runs"].items():
        forecast = [entry["median"], entry["q05"], entry["q95"], f"{100 * entry['error']:+.2f}%"]
        health = "ok" if entry["healthy"] else "failed checks"
        rows.append([run, entry["observed_until_step"], entry["to_step"], entry["logged"], *forecast, health])
    header = ["run", "cut at step", "last step", "logged loss", "forecast", "q05", "q95", "error", "fits"]
    scale = backtest["scale"]
    text = (
        "Backtests: runs cut short and forecast again to their last checkpoints. The forecasts of the "
        f"runs in progress are widened by the discrepancy these misses teach: {100 * scale['median']:.2f}% "
        f"(90%: {100 * scale['q05']:.2f}-{100 * scale['q95']:.2f}%) of log loss per square root of an e-fold of "
        "horizon."
    )
    return _paragraph(text) + _table(header, rows)


def _probability(value: float) -> str:
    """Format a probability to two decimals, as the command line prints it."""
    return f"{value:.2f}"


def _forecast_section(fitted: Fit, budgets: np.ndarray, key: jax.Array, chosen: str, need: float | None) -> str:
    result = forecast(fitted, compute=budgets, key=key)
    summary = result.summary()

    def cell(values: Mapping[str, Any], position: int) -> str:
        pick = (lambda v: v) if len(budgets) == 1 else (lambda v: v[position])
        median, low, high = (format_number(pick(values[name])) for name in ("median", "q05", "q95"))
        return f"{median} [{low}, {high}]"

    rows = [
        (QUANTITY_LABELS.get(name, name), *(cell(values, i) for i in range(len(budgets))))
        for name, values in summary.items()
        if isinstance(values, dict)
    ]
    if need is not None:
        probabilities = result.probability_at_or_below(need)
        rows.append((f"P(a new run measures a loss <= {need:g})", *map(_probability, probabilities)))
    header = ("quantity", *(f"C = {format_number(budget)} FLOPs" for budget in budgets))
    lines = [_paragraph(f"{chosen} Posterior median [90% interval]."), _table(header, rows)]
    if not summary["healthy"]:
        lines.append(
            _paragraph("The fit behind this forecast failed its sampler checks; treat it with care.", "problem")
        )
    return "\n".join(lines)


def _comparison_section(named: Mapping[str, Fit]) -> str:
    lines = ['<section id="comparison">', "<h2>Comparison</h2>"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            comparison = compare(named)
        except DataError as error:
            comparison = None
            lines.append(_paragraph(f"Not compared: {error}", "problem"))
    if comparison is not None:
        summary = comparison.summary()
        columns = ("elpd_loo", "se", "p_loo", "pareto_k_high", "elpd_diff", "dse", "weight")
        rows = [
            (name, *(row[column] for column in columns), "yes" if row["healthy"] else "NO")
            for name, row in summary["laws"].items()
        ]
        header = ("law", "elpd_loo", "se", "p_loo", "Pareto k > 0.7", "elpd_diff", "dse", "stacking weight", "healthy")
        lines.append(_table(header, rows))
        lines.append(_paragraph(f"Best: {summary['best']} (by {summary['criterion']}, PSIS-LOO)."))
    lines += [_paragraph(f"Warning: {warning.message}", "problem") for warning in caught]
    lines.append("</section>")
    return "\n".join(lines)
