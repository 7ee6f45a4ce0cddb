"""Predict where a partly trained run will land: the posterior of its final loss and curve.

:func:`extrapolate` fits learning-curve laws to the checkpoints seen so far (every run in
the table at once, sharing their exponents, so finished runs inform the ones in progress), with
residuals correlated along each run, and returns for each run the predictive distribution
of its loss at its target step and along the way.

Which law: the one named; otherwise the schedule-aware law when the learning-rate schedule
is known to the target step, and otherwise a stacked combination of the single-run
families, weighted per run by how well each predicts the run's own checkpoints (PSIS-LOO
stacking), or, with ``stacking="lfo"``, by how well each, fitted to the run cut short,
forecasts the checkpoints the run logged after the cut (leave-future-out stacking).

With ``drift=True`` each run may also wander from its law by a slow random walk whose
scale the runs teach (finished runs, above all), and the forecast goes on walking past the
last checkpoint: intervals then cover the law's own misses, not only the noise.

When the table holds finished runs beside runs in progress, each finished run is also
backtested: cut where the runs in progress stand and forecast again, as it would have been
forecast then. How far those forecasts missed the losses the runs went on to log teaches a
discrepancy scale, which widens the forecasts of the runs in progress by as much as the
law, fitted this way to these runs, has been seen to miss. Runs pooled with none of them
finished backtest each other the same way, each cut short of its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayescale import _arviz, _progress
from bayescale.compare import (
    bagged_stacking_weights,
    mixture_indices,
    pointwise_log_likelihood,
    pointwise_loo,
    stacking_weights,
)
from bayescale.config import SamplerConfig
from bayescale.data import ScalingData, as_data, check_steps, read_table
from bayescale.diagnostics import QUANTILES, Diagnostics, probability_at_or_below, tail_checked_means
from bayescale.errors import DataError
from bayescale.inference import Fit, check_problem, data_columns, data_dims, fit_problems, versions
from bayescale.law import LIKELIHOODS, NOISE_PRIORS, Law, ModelSpec, catalogue, noise_distribution, resolve_law
from bayescale.schedules import DROP_INPUTS, Schedule, annealing_features, drop_features, schedule_from_points

__all__ = [
    "EXTRAPOLATION_FORMAT_VERSION",
    "Extrapolation",
    "describe_held_back",
    "describe_need",
    "describe_reach",
    "extrapolate",
    "score_held_back",
]

#: Version of the layout of a saved extrapolation; bumped when a saved file could be misread.
EXTRAPOLATION_FORMAT_VERSION = 1

#: Inputs computed from the learning-rate schedule; a law reading any needs it to the target.
SCHEDULE_INPUTS = frozenset({"S1", "S2", *DROP_INPUTS})
#: Inputs a learning-curve law may read, all computed here from the table and schedule.
CURVE_INPUTS = frozenset({"x", "x_first", "step", "N", *SCHEDULE_INPUTS})
# Points of the predicted curve between the last checkpoint and the target.
_CURVE_POINTS = 40
_LOG_FLOAT_MAX = float(np.log(np.finfo(np.float64).max))
#: Sampler settings for learning curves: correlated residuals make the posterior curve
#: sharply where the correlation length trades off against the noise scale, and smaller
#: steps (target_accept 0.95) follow it without divergences.
CURVE_CONFIG = SamplerConfig(target_accept=0.95)
# The label of the one run of a table without a run column.
_ONE_RUN = "run"
# What is kept of the checkpoints held back by ``observed_until``.
_HELD_BACK_COLUMNS = ("run", "step", "loss")
#: How runs fitted together share a law's parameters (see :func:`extrapolate`).
POOLING = ("shape", "all", "none")
#: How stacked laws are weighted (see :func:`extrapolate`).
STACKING = ("loo", "lfo")
# Laws with less stacking weight than this are not reported as contributing.
_NEGLIGIBLE_WEIGHT = 0.01
#: At most this many runs are backtested (the longest), so that a table of many runs costs
#: a bounded number of extra fits.
MAX_BACKTESTS = 8
#: Prior of the backtests' discrepancy scale: the standard deviation, in log loss, that a
#: forecast misses by beyond its own interval, per square root of an e-fold of horizon.
#: It is the drift's quantity (a random walk past the last checkpoint) learned out of
#: sample, so it has the drift's prior: median 0.7%, 95% below 2% per e-fold.
DISCREPANCY_PRIOR = NOISE_PRIORS["drift"]
# The 5% and 95% quantiles of a standard normal: a predictive's 90% interval spans 2 x 1.645 sd.
_Z95 = 1.6448536269514722


@dataclasses.dataclass(frozen=True, eq=False)
class Extrapolation:
    """Predictive distributions of the rest of each run's curve.

    Attributes
    ----------
    runs : tuple of str
        Run labels, in the order of the ``run`` dimension.
    idata : arviz.InferenceData or xarray.DataTree
        ``predictions``: ``final_loss`` (draw, run) and ``curve`` (draw, run, point), draws
        of the loss a run will log (noise included); ``constant_data``: ``curve_step``
        (run, point), ``to_step`` and ``observed_until_step`` (run), and with
        ``observed_until`` the checkpoints held back, ``held_back_run``,
        ``held_back_step`` and ``held_back_loss`` (dim ``held_back``).
        ``observed_data``: the checkpoints' columns (dim ``checkpoint``).
    fits : Mapping[str, Mapping[str, Fit]]
        By law name, then run: the fit that predicted the run (one pooled fit shared by
        every run, or one fit per run). Empty for an extrapolation loaded from a file,
        which keeps the predictions and the fits' diagnostics, not their draws.
    weights : Mapping[str, Mapping[str, float]]
        Per run, the weight of each law in its prediction.
    data : ScalingData
        The checkpoints, sorted by run and step.
    diagnostics : Mapping[str, Mapping[str, Diagnostics]]
        Per run, the sampler checks of the fit of each law behind its prediction.
    notes : tuple of str
        What was inferred or assumed (reference step, schedules, the law chosen).
    backtest : Mapping
        Empty, or ``runs``: per run backtested, the step it was cut at
        (``cut_step``), its last checkpoint then (``observed_until_step``), the step and
        loss it went on to log (``to_step``, ``logged``), the forecast made from the cut
        (``median``, ``q05``, ``q95``), its relative ``error`` and whether its fits were
        ``healthy``; and ``scale``: the posterior (``median``, ``q05``, ``q95``) of the
        discrepancy per square root of an e-fold of horizon that widened the forecasts.
    """

    runs: tuple[str, ...]
    idata: Any
    fits: Mapping[str, Mapping[str, Fit]]
    weights: Mapping[str, Mapping[str, float]]
    data: ScalingData
    diagnostics: Mapping[str, Mapping[str, Diagnostics]]
    notes: tuple[str, ...] = ()
    backtest: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def _predictions(self, name: str) -> np.ndarray:
        values = np.asarray(_arviz.group(self.idata, "predictions")[name])
        return values.reshape(-1, *values.shape[2:])

    def final_loss(self, run: str) -> np.ndarray:
        """Draws of the loss ``run`` will log at its target step."""
        return self._predictions("final_loss")[:, self.runs.index(run)]

    def curve(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the steps and draws (draws, points) of the loss ``run`` will log from its last checkpoint on."""
        position = self.runs.index(run)
        grid = np.asarray(_arviz.group(self.idata, "constant_data")["curve_step"])[position]
        # Short horizons repeat the target step to fill the shared grid; report it once.
        steps, first = np.unique(grid, return_index=True)
        return steps, self._predictions("curve")[:, position, first]

    def probability_at_or_below(self, loss: float | Mapping[str, float]) -> dict[str, float]:
        """Posterior probability that each run logs a loss at or below ``loss`` at its target step.

        The question a run in progress is extrapolated for, "will it land where we need
        it?", as a number: the share of the draws of :meth:`final_loss` (the loss the run
        will log, noise included) at or below the loss needed. With 4,000 draws from fits
        that pass their checks (an effective sample size of at least 400 each), its
        Monte-Carlo error is at most about 0.025.

        Parameters
        ----------
        loss : float or Mapping[str, float]
            The loss needed: one for every run, or one per run (only those runs are answered).

        Returns
        -------
        dict
            Run -> probability.

        Raises
        ------
        ValueError
            When a loss is not a positive number, or names a run not in the extrapolation.
        """
        return {
            run: float(probability_at_or_below(self.final_loss(run), value, f"run {run!r}"))
            for run, value in _needed_losses(loss, self.runs).items()
        }

    def steps_to_reach(self, loss: float | Mapping[str, float]) -> dict[str, dict[str, int | None]]:
        """When each run will log a loss at or below ``loss``, between its last checkpoint and its target.

        The question after "will it land where we need it?": "from which step on?". At
        each step of the predicted curve (:meth:`curve`), the chance of logging a loss at
        or below ``loss`` is the share of the draws there; the answer is the first step
        at which that chance reaches 5%, 50% and 95%, interpolated in log(step) between
        the curve's points. When the noise between checkpoints is small against the
        loss's fall these are the 5%, 50% and 95% quantiles of the step at which the run
        gets there; a noisier run may log a first loss at or below ``loss`` earlier, on a
        dip. A chance already reached at the last checkpoint gives that step; one not
        reached by the target gives None.

        Parameters
        ----------
        loss : float or Mapping[str, float]
            The loss needed, as for :meth:`probability_at_or_below`.

        Returns
        -------
        dict
            Run -> ``{"q05", "median", "q95"}``, steps (int) or None.

        Raises
        ------
        ValueError
            As :meth:`probability_at_or_below` does.
        """
        reached = {}
        for run, value in _needed_losses(loss, self.runs).items():
            steps, draws = self.curve(run)
            chances = probability_at_or_below(draws, value, f"run {run!r}")
            reached[run] = dict(
                zip(("q05", "median", "q95"), (_first_step_reaching(steps, chances, q) for q in QUANTILES), strict=True)
            )
        return reached

    def held_back(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the steps and losses ``run`` logged after ``observed_until`` (empty without one)."""
        constant = _arviz.group(self.idata, "constant_data")
        if "held_back_step" not in constant:
            return np.empty(0, np.int64), np.empty(0)
        rows = np.asarray(constant["held_back_run"]).astype(str) == run
        return np.asarray(constant["held_back_step"])[rows], np.asarray(constant["held_back_loss"])[rows]

    def _first_logged_at(self, run: str, loss: float) -> int | None:
        """First step up to the target at which ``run`` logged ``loss`` or lower, fitted or held back; None if none."""
        fitted = self.data["run"].astype(str) == run
        held_steps, held_losses = self.held_back(run)
        steps = np.concatenate([self.data["step"][fitted], held_steps])
        losses = np.concatenate([self.data["loss"][fitted], held_losses])
        reached = steps[(losses <= loss) & (steps <= self._constant("to_step", run))]
        return int(reached.min()) if reached.size else None

    def _constant(self, name: str, run: str) -> int:
        return int(np.asarray(_arviz.group(self.idata, "constant_data")[name])[self.runs.index(run)])

    def summary(self, *, need: float | Mapping[str, float] | None = None) -> dict[str, Any]:
        """Return the predictions, health and notes as JSON-ready values.

        ``{"runs": {RUN: {"law", "weights", "observed_until_step", "to_step",
        "final_loss": {"median", "q05", "q95", "mean"}, "healthy", "diagnostics"}}, "notes": [...]}``,
        with ``"backtest"`` (see the attribute) when runs were backtested. A run that
        logged a held-back checkpoint at its target (``observed_until``) also gets
        ``"logged"``, that loss, and ``"error"``, the median's relative error against it;
        a run with held-back checkpoints up to its target gets ``"held_back"``, how the
        predicted curve did on them (:func:`score_held_back`).

        ``healthy`` is False when a fit the run's prediction rests on failed its checks;
        each backtest has its own ``healthy``. The mean is None when the draws' tail is too
        heavy for one, with a note.

        Parameters
        ----------
        need : float or Mapping[str, float], optional
            A loss needed at the target step (for every run, or per run): each run so asked
            gets ``"need": {"loss", "probability", "reached_at"}``: the probability of
            landing at or below it (:meth:`probability_at_or_below`) and the steps from
            which the run logs it with a chance of 5%, 50% and 95%
            (:meth:`steps_to_reach`); with held-back checkpoints also ``"logged_at"``, the
            first step up to the target at which the run logged it (None if it did not).
        """
        needed = {} if need is None else _needed_losses(need, self.runs)
        probabilities = self.probability_at_or_below(needed)
        reached = self.steps_to_reach(needed)
        runs, notes = {}, list(self.notes)
        for run in self.runs:
            draws = self.final_loss(run)
            q05, median, q95 = np.quantile(draws, QUANTILES)
            (mean,), note = tail_checked_means(draws[:, None], f"run {run!r}, final loss")
            notes += [note] if note else []
            weights = {law: weight for law, weight in self.weights[run].items() if weight >= _NEGLIGIBLE_WEIGHT}
            diagnostics = {law: self.diagnostics[run][law] for law in weights}
            runs[run] = {
                "law": next(iter(weights)) if len(weights) == 1 else "stacked",
                "weights": {law: round(weight, 4) for law, weight in weights.items()},
                "observed_until_step": self._constant("observed_until_step", run),
                "to_step": self._constant("to_step", run),
                "final_loss": {
                    "median": float(median),
                    "q05": float(q05),
                    "q95": float(q95),
                    "mean": mean,
                },
                "healthy": all(report.ok for report in diagnostics.values()),
                "diagnostics": {law: report.to_dict() for law, report in diagnostics.items()},
            }
            steps, losses = self.held_back(run)
            if run in probabilities:
                runs[run]["need"] = {
                    "loss": float(needed[run]),
                    "probability": probabilities[run],
                    "reached_at": reached[run],
                }
                if steps.size:  # held back: when the run did log it
                    runs[run]["need"]["logged_at"] = self._first_logged_at(run, needed[run])
            at_target = steps == runs[run]["to_step"]
            if at_target.any():
                logged = float(losses[at_target][0])
                runs[run].update(logged=logged, error=float(median) / logged - 1.0)
            scores = score_held_back(*self.curve(run), steps, losses)
            if scores is not None:
                runs[run]["held_back"] = scores
        out = {"runs": runs, "notes": notes}
        if self.backtest:
            out["backtest"] = self.backtest
        return out

    def save(self, path: str) -> None:
        """Save to NetCDF (atomically); reload with :func:`bayescale.load_extrapolation`.

        The file holds the predictions, the checkpoints, the weights and every fit's
        diagnostics, so that a report can draw the fan charts later; not the fits' draws
        (save those with :meth:`Fit.save`).
        """
        from bayescale.store import save_extrapolation

        save_extrapolation(self, path)


def score_held_back(
    grid: np.ndarray, draws: np.ndarray, steps: np.ndarray, losses: np.ndarray
) -> dict[str, float | int] | None:
    """Score a predicted curve on the checkpoints a run logged after the cut.

    The median and 90% band of the draws are interpolated in log(step) and log(loss)
    between the grid's steps, as the fan chart draws them. Checkpoints past the grid's
    last step (the target) are not scored.

    Parameters
    ----------
    grid : numpy.ndarray
        (points,) increasing steps of the predicted curve, from the last fitted checkpoint
        to the target (:meth:`Extrapolation.curve`).
    draws : numpy.ndarray
        (draws, points) draws of the loss at those steps.
    steps, losses : numpy.ndarray
        The held-back checkpoints (:meth:`Extrapolation.held_back`).

    Returns
    -------
    dict or None
        ``checkpoints`` (how many were scored), ``rmsle`` (root mean squared error of the
        median's log loss: the metric of Alabdulmohsin et al. 2022) and ``inside_90`` (the
        share inside the 90% band; neighbouring checkpoints share noise, so read it as a
        description, not a calibration test); None when no checkpoint is in the grid's range.
    """
    scored = (steps >= grid[0]) & (steps <= grid[-1])
    if not scored.any():
        return None
    log_steps, log_losses = np.log(steps[scored]), np.log(losses[scored])
    low, median, high = (
        np.interp(log_steps, np.log(grid), np.log(values)) for values in np.quantile(draws, QUANTILES, axis=0)
    )
    return {
        "checkpoints": int(scored.sum()),
        "rmsle": float(np.sqrt(np.mean((log_losses - median) ** 2))),
        "inside_90": float(np.mean((log_losses >= low) & (log_losses <= high))),
    }


def describe_held_back(scores: Mapping[str, float]) -> str:
    """Say in one line how a predicted curve did on held-back checkpoints (:func:`score_held_back`'s)."""
    return (
        f"{scores['checkpoints']} checkpoints, RMSLE of the median {scores['rmsle']:.5f}, "
        f"{100 * scores['inside_90']:.0f}% inside the 90% band"
    )


def _first_step_reaching(steps: np.ndarray, chances: np.ndarray, level: float) -> int | None:
    """First step at which ``chances`` (one per step) reaches ``level``, interpolated in log(step); None if never."""
    above = np.flatnonzero(chances >= level)
    if not above.size:
        return None
    at = above[0]
    if at == 0:
        return int(steps[0])
    fraction = (level - chances[at - 1]) / (chances[at] - chances[at - 1])
    return int(np.rint(np.exp(np.log(steps[at - 1]) + fraction * np.log(steps[at] / steps[at - 1]))))


def describe_reach(loss: float, reached_at: Mapping[str, int | None]) -> str:
    """Say in one line from which step a run logs ``loss`` or lower (:meth:`Extrapolation.steps_to_reach`'s)."""
    early, median, late = reached_at["q05"], reached_at["median"], reached_at["q95"]
    if early is None:
        return f"<= {loss:g}: not by the target (a chance under 5% there)"
    if median is None:
        return f"<= {loss:g}: not by the target on the median (a 5% chance from step {early})"
    late_text = "after the target" if late is None else f"step {late}"
    return f"<= {loss:g} from step {median} (90%: step {early} to {late_text})"


def describe_need(need: Mapping[str, Any]) -> str:
    """Say in one line from which step a run logs the loss needed (a summary's ``"need"``), and when it did."""
    text = describe_reach(need["loss"], need["reached_at"])
    if "logged_at" in need:
        logged_at = need["logged_at"]
        text += "; not logged by the target" if logged_at is None else f"; first logged at step {logged_at}"
    return text


def _needed_losses(loss: float | Mapping[str, float], runs: Sequence[str]) -> dict[str, float]:
    """Return the loss needed per run, from one for every run or a mapping run -> loss."""
    needed = dict(loss) if isinstance(loss, Mapping) else dict.fromkeys(runs, loss)
    unknown = [run for run in needed if run not in runs]
    if unknown:
        raise ValueError(f"no run {unknown[0]!r} in this extrapolation; runs: {', '.join(runs)}")
    return needed


# ---------------------------------------------------------------------------------------
# Inputs: checkpoints, targets, schedules


def _check_curves(data: ScalingData, drop_invalid: bool) -> ScalingData:
    """Validate a table of checkpoints: steps >= 1, increasing within each run as read."""
    data.require(("step", "loss"), "extrapolate")
    data = check_steps(data, drop_invalid=drop_invalid)  # a table without runs is one run
    if "run" not in data:
        data = dataclasses.replace(
            data,
            columns={**data.columns, "run": np.full(len(data), _ONE_RUN, dtype=object)},
            notes=(*data.notes, "one run"),
        )
    low = data["step"] < 1
    if low.any():
        where = f"{data.source}, column {data.mapping.get('step', 'step')!r}"
        found = ", ".join(
            f"{data.row_word} {label}: {step:g}" for label, step in zip(data.rows[low][:8], data["step"][low])
        )
        raise DataError(f"{where}: found steps below 1 at {found}; expected steps >= 1 (x = 0 has no loss)")
    return data.sorted_by(("run", "step"))


def _repeat_notes(data: ScalingData, runs: Sequence[str]) -> list[str]:
    """Return notes on runs whose loss repeats that of the checkpoint before it exactly.

    A repeat is a residual innovation of exactly zero, which a continuous noise model can
    only explain by a scale near zero: a metric of a small evaluation set, or a value
    carried forward between evaluations, can collapse the noise scale and leave the
    forecast heavy-tailed.
    """
    notes = []
    for run in runs:
        loss = data["loss"][data["run"] == run]
        repeats = int(np.sum(loss[1:] == loss[:-1]))
        if repeats:
            notes.append(
                f"run {run!r}: {repeats} of {len(loss)} checkpoints repeat the loss before them exactly (a metric "
                "of a small evaluation set, or values carried forward?); the noise model reads each as no noise, "
                "which can shrink its scale toward zero and make the forecast heavy-tailed"
            )
    return notes


def per_run_values(data: ScalingData, column: str, what: str) -> dict[str, Any]:
    """Return each run's value of ``column``, which must hold one value per run.

    Parameters
    ----------
    data : ScalingData
        Checkpoints; without a ``run`` column they are one run, labelled as
        :func:`extrapolate` labels it.
    column : str
        The column, e.g. each run's total steps.
    what : str
        What the values are, plural, for the error message (e.g. "target steps").

    Returns
    -------
    dict
        Run -> value, runs in order of appearance.

    Raises
    ------
    DataError
        When the column is missing or a run has more than one value in it.
    """
    if column not in data:
        raise DataError(f"{data.source}: no column {column!r} for the {what}")
    labels = data["run"] if "run" in data else np.full(len(data), _ONE_RUN, dtype=object)
    values = {}
    for run in dict.fromkeys(labels):
        found = np.unique(data[column][labels == run])
        if len(found) != 1:
            raise DataError(f"{data.source}, column {column!r}: run {run!r} has {len(found)} {what}; expected one")
        values[str(run)] = found[0]
    return values


def _targets(data: ScalingData, to_step, runs: Sequence[str]) -> dict[str, int]:
    last = {run: int(data["step"][data["run"] == run].max()) for run in runs}
    if isinstance(to_step, str):
        targets = per_run_values(data, to_step, "target steps")
    elif isinstance(to_step, Mapping):
        missing = [run for run in runs if run not in to_step]
        if missing:
            raise DataError(f"extrapolate: no target step for run(s) {', '.join(missing)}")
        targets = {run: to_step[run] for run in runs}
    else:
        targets = dict.fromkeys(runs, to_step)
    fractional = [f"{run} ({targets[run]})" for run in runs if float(targets[run]) != int(float(targets[run]))]
    if fractional:
        raise DataError(f"extrapolate: target steps must be whole numbers; got {', '.join(fractional)}")
    targets = {run: int(float(targets[run])) for run in runs}
    early = [f"{run} (target {targets[run]}, observed to {last[run]})" for run in runs if targets[run] < last[run]]
    if early:
        raise DataError(f"extrapolate: target step before the last checkpoint for {', '.join(early)}")
    return targets


def _hold_back(data: ScalingData, observed_until: int, runs: Sequence[str]) -> tuple[ScalingData, ScalingData]:
    """Split the checkpoints at ``observed_until``: those fitted, and those held back to compare with."""
    fitted = data["step"] <= observed_until
    unseen = [run for run in runs if not np.any(fitted & (data["run"] == run))]
    if unseen:
        firsts = ", ".join(f"{run} (first at step {data['step'][data['run'] == run].min():g})" for run in unseen)
        raise DataError(f"extrapolate: no checkpoint up to step {observed_until} (observed_until) for run(s) {firsts}")
    reason = f"checkpoints after step {observed_until} held back (observed_until), to compare with the forecast"
    held_back = data.select(~fitted, f"checkpoints held back (after step {observed_until})")
    return data.select(fitted, reason, dropped_as="held back"), held_back


def _schedules(data: ScalingData, schedule, runs, targets) -> tuple[dict[str, Schedule] | None, list[str]]:
    """Return a schedule per run reaching its target, or None with the reason when there is none."""
    if isinstance(schedule, Schedule):
        short = [run for run in runs if schedule.total_steps < targets[run]]
        if short:
            raise DataError(
                f"extrapolate: schedule {schedule.description} ends at step {schedule.total_steps}, "
                f"before the target of run(s) {', '.join(short)}"
            )
        return {run: schedule for run in runs}, [f"schedule: {schedule.description} for every run"]
    table = None if schedule is None else (schedule if isinstance(schedule, ScalingData) else read_table(schedule))
    if table is None and "lr" not in data:
        return None, []
    out, notes = {}, []
    for run in runs:
        steps, rates = [], []
        for source in (data, table):
            if source is None or "lr" not in source:
                continue
            rows = np.ones(len(source), bool) if "run" not in source else source["run"] == run
            steps.append(source["step"][rows])
            rates.append(source["lr"][rows])
        steps, rates = np.concatenate(steps), np.concatenate(rates)
        if len(steps) == 0 or steps.max() < targets[run]:
            reach = int(steps.max()) if len(steps) else 0
            return None, [
                f"the learning-rate schedule of run {run!r} is known to step {reach}, not to its target {targets[run]}"
            ]
        out[run] = schedule_from_points(steps, rates, f"lr of run {run!r}", targets[run])
    notes.append("schedule: the lr values given, linear between steps, rising linearly from 0 before the first")
    return out, notes


# ---------------------------------------------------------------------------------------
# Law inputs


@dataclasses.dataclass(frozen=True)
class _Design:
    """How to compute the inputs of the laws being fitted at any step of any run."""

    step_ref: float
    first_steps: Mapping[str, float]
    schedules: Mapping[str, Schedule] | None
    s1_ref: float
    sizes: Mapping[str, float]
    names: frozenset[str]

    def inputs(self, run: str, steps: np.ndarray) -> dict[str, np.ndarray]:
        steps = np.asarray(steps, dtype=np.float64)
        columns = {"x": steps / self.step_ref, "step": steps}
        if "x_first" in self.names:  # the run's first checkpoint, wherever the law is evaluated
            columns["x_first"] = np.full(len(steps), self.first_steps[run] / self.step_ref)
        if "N" in self.names:
            columns["N"] = np.full(len(steps), self.sizes[run])
        if self.names & {"S1", "S2"}:
            features = annealing_features(self.schedules[run], steps)
            columns.update(S1=features["S1"] / self.s1_ref, S2=features["S2"])
        if self.names & set(DROP_INPUTS):
            # Areas in the units of S1, so that the law's response rate is per observed run.
            columns.update(drop_features(self.schedules[run], steps, area_unit=self.s1_ref))
        return columns


def _design(data: ScalingData, runs, schedules, laws) -> _Design:
    step_ref = float(data["step"].max())
    first_steps = {run: float(data["step"][data["run"] == run].min()) for run in runs}
    names = frozenset(name for law in laws for name in law.inputs)
    sizes = {}
    if "N" in data:
        for run in runs:
            values = np.unique(data["N"][data["run"] == run])
            if len(values) != 1:
                raise DataError(f"{data.source}, column 'N': run {run!r} has {len(values)} model sizes; expected one")
            sizes[run] = float(values[0])
    s1_ref = 1.0
    if schedules is not None:
        s1_ref = max(
            float(annealing_features(schedules[run], [data["step"][data["run"] == run].max()])["S1"][0]) for run in runs
        )
    return _Design(step_ref, first_steps, schedules, s1_ref, sizes, names)


def _with_inputs(data: ScalingData, design: _Design, runs) -> ScalingData:
    """Return the checkpoints with the inputs of the laws (x always, for plots and reports)."""
    columns = {}
    for run in runs:
        rows = data["run"] == run
        for name, values in design.inputs(run, data["step"][rows]).items():
            if name == "step":  # the table's own
                continue
            if name not in columns:
                columns[name] = np.empty((len(data), *values.shape[1:]))
            columns[name][rows] = values
    return dataclasses.replace(data, columns={**data.columns, **columns})


# ---------------------------------------------------------------------------------------
# Prediction


@functools.lru_cache(maxsize=64)
def _log_mean_draws(law: Law):
    """Jitted log expected loss per draw (rows) at a run's future inputs (columns)."""
    return jax.jit(jax.vmap(law.log_mean, in_axes=(0, None)))


@functools.lru_cache(maxsize=8)
def _sample_noise(likelihood: str):
    return jax.jit(lambda key, loc, noise: noise_distribution(likelihood, loc, noise).sample(key))


@functools.lru_cache(maxsize=8)
def _noise_log_density(likelihood: str):
    return jax.jit(lambda value, loc, noise: noise_distribution(likelihood, loc, noise).log_prob(value))


def _predictive(fit: Fit, run: str, inputs: Mapping[str, np.ndarray], log_steps: np.ndarray, key):
    """Return the marginal predictive of the log loss the run will log at future checkpoints.

    Returns its location (draws, points) and noise parameters (broadcasting to it), for
    the fit's noise family. With correlated residuals the run's last residual carries
    forward, decaying as ``exp(-(log step - log last step) / corr_length)``; each point has
    its marginal predictive, which is what the bands, the final loss and the scores of
    forecasts need. With the drift, the run's walk goes on from its last knot:
    ``drift * sqrt(log step - log last step)`` times one standard normal per draw (exact
    marginals, one coherent fan per draw).
    """
    law, draws = fit.law, fit.draws()
    position = fit.runs.index(run) if fit.runs else None
    params = {name: draws[name][:, position] if draws[name].ndim == 2 else draws[name] for name in law.priors}
    # The run's last checkpoint first: its residual carries forward (computed from the
    # parameters, since a large fit keeps no pointwise mu).
    last = np.flatnonzero(fit.data["run"] == run)[-1]
    with jax.enable_x64(True):
        values = {
            name: jnp.asarray(np.concatenate([fit.data[name][last : last + 1], inputs[name]])) for name in law.inputs
        }
        mu = np.asarray(_log_mean_draws(law)(jax.tree.map(jnp.asarray, params), values))
    mu_last, mu = mu[:, 0], mu[:, 1:]
    gap = log_steps[None, :] - np.log(fit.data["step"][last])
    if fit.spec.drift:  # a drift fit always has a run axis
        end = np.asarray(fit.posterior["drift_end"]).reshape(len(mu), -1)[:, position]
        walk = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (len(mu), 1)))
        mu_last = mu_last + end
        mu = mu + end[:, None] + draws["drift"][:, None] * np.sqrt(gap) * walk
    residual = fit.data.log_loss[last] - mu_last
    if fit.spec.correlated:
        rho = np.exp(-gap / draws["corr_length"][:, None])
    else:
        rho = np.zeros((1, len(log_steps)))
    noise = {name: draws[name][:, None] for name in LIKELIHOODS[fit.likelihood].noise}
    noise["sigma"] = noise["sigma"] * np.sqrt(1.0 - rho**2)
    return mu + rho * residual[:, None], noise


def _predict(fit: Fit, run: str, inputs: Mapping[str, np.ndarray], log_steps: np.ndarray, key) -> np.ndarray:
    """Draws (draws, points) of the log loss the run will log at future checkpoints (see :func:`_predictive`)."""
    loc, noise = _predictive(fit, run, inputs, log_steps, key)
    return np.asarray(_sample_noise(fit.likelihood)(key, loc, noise), dtype=np.float64)


def _log_predictive_density(fit: Fit, run: str, inputs, steps: np.ndarray, log_loss: np.ndarray, key) -> np.ndarray:
    """Log predictive density of log losses the run logged at ``steps`` after the fit's last checkpoint.

    Pointwise and marginal, as :func:`_predict` draws them: ``log mean_s p(y_i | draw s)``.
    """
    loc, noise = _predictive(fit, run, inputs, np.log(steps), key)
    with jax.enable_x64(True):
        log_density = np.asarray(_noise_log_density(fit.likelihood)(jnp.asarray(log_loss), loc, noise))
    return np.logaddexp.reduce(log_density, axis=0) - np.log(len(log_density))


def _run_weights(fits: Mapping[str, Fit], run: str, key) -> dict[str, float]:
    """Stacking weights of the laws for one run, from PSIS-LOO on the run's checkpoints, bagged."""
    if len(fits) == 1:
        return {next(iter(fits)): 1.0}
    columns = []
    for fit in fits.values():
        log_lik = pointwise_log_likelihood(fit)
        columns.append(pointwise_loo(log_lik[..., fit.data["run"] == run])[0])
    weights = bagged_stacking_weights(np.column_stack(columns), key=key)
    return dict(zip(fits, (float(w) for w in weights), strict=True))


# ---------------------------------------------------------------------------------------
# The entry point


def _default_laws(schedules) -> tuple[list[str], str]:
    models = catalogue()
    if schedules is not None:
        return [models.SCHEDULE_LAW], f"law: {models.SCHEDULE_LAW} (the learning-rate schedule is known)"
    ensemble = list(models.CURVE_ENSEMBLE)
    return ensemble, f"law: stacked {', '.join(ensemble)} (no schedule known)"


def extrapolate(
    data: Any,
    *,
    to_step: int | Mapping[str, int] | str | None = None,
    key: jax.Array,
    observed_until: int | None = None,
    law: Law | str | Sequence[Law | str] | None = None,
    schedule: Schedule | ScalingData | str | None = None,
    likelihood: str = "student_t",
    pooling: str = "shape",
    drift: bool = False,
    backtest: bool = True,
    stacking: str = "loo",
    config: SamplerConfig | None = None,
    retry: bool = False,
    mapping: Mapping[str, str] | None = None,
    drop_invalid: bool = False,
    progress: bool | None = None,
) -> Extrapolation:
    """Predict the rest of each run's learning curve and its final loss.

    Parameters
    ----------
    data : ScalingData, path, DataFrame or mapping
        Checkpoints: ``step`` and ``loss``, and optionally ``run`` (several runs),
        ``lr`` (the learning rate at each step) and ``N`` (model size, for ``kaplan_ns``).
    to_step : int, mapping or str, optional
        The step to predict: one for every run, a mapping run -> step, or the name of a
        column holding each run's total steps. Required unless ``observed_until`` is
        given, which makes each run's last checkpoint its target by default.
    key : jax.Array
        PRNG key.
    observed_until : int, optional
        Fit only the checkpoints up to this step and hold the later ones back, to see how
        the forecast would have done on runs that went on: the held-back losses are kept
        with the result (:meth:`Extrapolation.held_back`), the summary gives the loss a run
        logged at its target beside the forecast and scores the predicted curve on them
        (:func:`score_held_back`), and the fan chart draws them. The learning rates logged
        after the step still give the schedule.
    law : Law, str or sequence, optional
        The law(s) to use; several are stacked. By default the schedule-aware law when the
        schedule is known to the target, else the stacked single-run families.
    schedule : Schedule, ScalingData or path, optional
        Learning rates of the steps not yet run: a :class:`~bayescale.schedules.Schedule`
        for every run (e.g. from :func:`~bayescale.schedules.named_schedule`), or a table
        with ``step``, ``lr`` and optionally ``run``.
    likelihood : str, default "student_t"
        Noise model of log loss; residuals are always correlated along each run.
    pooling : {"shape", "all", "none"}, default "shape"
        How runs inform each other. ``"shape"``: fitted together, each run with its own
        level and all sharing the law's shape (exponents), for runs of different models;
        ``"all"``: one law for every run, the runs differing only by their schedules, for
        one model and dataset trained under several schedules; ``"none"``: each run alone.
    drift : bool, default False
        Let each run depart from the law by a slow random walk in log(step) whose scale is
        learned from the runs (shared by the runs of a pooled fit; see
        :func:`bayescale.law.build_model`). The forecast then widens with its horizon by
        as much as the law missed along the observed stretches: for laws that miss where a
        schedule changes, and finished runs that show it.
    backtest : bool, default True
        When the table holds finished runs (whose target is their last checkpoint) beside
        runs in progress: cut each finished run (at most :data:`MAX_BACKTESTS`) at the
        median horizon of the runs in progress, log(target / last checkpoint), forecast its
        last loss as the runs in progress are forecast (alone, or pooled with the other
        finished runs), and widen the forecasts of the runs in progress by the discrepancy
        those forecasts showed: a walk past the last checkpoint of scale tau per square
        root of an e-fold, tau learned from the misses (see ``Extrapolation.backtest``).
        The intervals then cover how far the law, fitted this way to these runs, has been
        seen to miss, not only its noise. Pooled runs with none finished backtest each
        other: each run in progress is cut (at the median horizon, or half its own
        log-step range if shorter) and forecast to its last checkpoint from its cut and the
        other runs as they stand, for a shape shared by runs that have not shown it to
        their ends. Costs one more fit per law and backtested run.
    stacking : {"loo", "lfo"}, default "loo"
        How several laws are weighted (Yao et al. 2018). ``"loo"``: by PSIS-LOO on each
        run's checkpoints, the stacking weights averaged over Bayesian-bootstrap replicates
        of the checkpoints (:func:`~bayescale.compare.bagged_stacking_weights`), so that laws
        the checkpoints cannot tell apart share the weight rather than one taking it on
        small pointwise differences; measured against unbagged stacking on curves of other
        domains, it predicted closer and covered as much (BENCHMARKS.md). ``"lfo"``
        (leave-future-out; Buerkner, Gabry and Vehtari 2020): each law's forecast from a
        cut is scored by the log predictive density of the checkpoints logged after it
        (not bagged). A run fitted alone is cut for this at its own horizon
        (or half its log-step range if shorter), costing one more fit per law and run; a
        run that backtests is weighted by its backtest's cut; runs pooled in one fit are
        weighted alike by all the call's backtests. A run with no cut (finished, too short
        to cut, or pooled with nothing to backtest) falls back to PSIS-LOO, with a note.
        Measured (BENCHMARKS.md), for runs alone ``"lfo"`` predicted the final loss closer
        on curves of other domains (image classification above all), with narrower
        intervals that covered no more, and worse on short language-model curves,
        covering less: a few held-out checkpoints put most of the weight on one law. For
        pooled runs it was closer on two groups of other domains and further on three, and
        its weights moved with the key on the M4 language-model curves. Its weights are not
        bagged: bagging them was closer for runs alone and further for pooled runs.
    config : SamplerConfig, optional
        Sampler settings; by default :data:`CURVE_CONFIG`.
    retry : bool, default False
        Refit each fit that fails its sampler checks with a longer warmup and a higher
        target acceptance (see :data:`bayescale.config.RETRY_SCHEDULE`), as
        :func:`bayescale.fit` does; only the failing fits are rerun.
    mapping : Mapping[str, str], optional
        Column mapping when ``data`` is read here.
    drop_invalid : bool, default False
        Drop checkpoints with invalid values, or whose step repeats or goes back within
        their run, instead of raising; the drops are listed in the notes.
    progress : bool, optional
        Show on stderr the fits (one bucket per law, with its step and the problems done)
        and the prediction, with the time spent; by default only when stderr is a terminal.

    Returns
    -------
    Extrapolation

    Raises
    ------
    DataError
        For invalid checkpoints (steps that repeat or go back within a run among them),
        targets before the last checkpoint, a law that needs a schedule or model sizes the
        data do not give, too few checkpoints for the law's parameters, or a run with no
        checkpoint up to ``observed_until``.
    ValueError
        When neither ``to_step`` nor ``observed_until`` is given, or ``observed_until`` is
        not a positive whole number.
    """
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {', '.join(POOLING)}; got {pooling!r}")
    if stacking not in STACKING:
        raise ValueError(f"stacking must be one of {', '.join(STACKING)}; got {stacking!r}")
    if to_step is None and observed_until is None:
        raise ValueError("extrapolate needs to_step, or observed_until (each run's last checkpoint is then its target)")
    whole = isinstance(observed_until, int | np.integer) and not isinstance(observed_until, bool)
    if observed_until is not None and not (whole and observed_until >= 1):
        raise ValueError(f"observed_until must be a positive whole step; got {observed_until!r}")
    if not isinstance(data, ScalingData):
        columns = (to_step,) if isinstance(to_step, str) else ()
        data = as_data(data, mapping, columns=columns, drop_invalid=drop_invalid)
    logged = _check_curves(data, drop_invalid)
    runs = list(dict.fromkeys(str(label) for label in logged["run"]))
    data, held_back = (logged, None) if observed_until is None else _hold_back(logged, observed_until, runs)
    if to_step is None:
        to_step = {run: int(logged["step"][logged["run"] == run].max()) for run in runs}
    targets = _targets(data, to_step, runs)
    schedules, notes = _schedules(logged, schedule, runs, targets)  # held-back rows' lr included
    notes += _repeat_notes(data, runs)
    if law is None:
        names, note = _default_laws(schedules)
        laws = [resolve_law(name) for name in names]
        notes.append(note)
        if schedules is None and "lr" in data:
            warnings.warn(
                "the lr column is present but the schedule of the remaining steps is not known, so the "
                "schedule-blind ensemble is used; give schedule= (--schedule) for the schedule-aware law",
                UserWarning,
                stacklevel=2,
            )
    else:
        laws = [resolve_law(item) for item in ([law] if isinstance(law, Law | str) else law)]
    for candidate in laws:
        unknown = set(candidate.inputs) - CURVE_INPUTS
        if unknown:
            raise DataError(
                f"extrapolate: law {candidate.name!r} reads {', '.join(sorted(unknown))}, not a learning-curve input"
            )
        if SCHEDULE_INPUTS & set(candidate.inputs) and schedules is None:
            raise DataError(
                f"extrapolate: law {candidate.name!r} needs the learning-rate schedule up to the target step"
            )
        if "N" in candidate.inputs and "N" not in data:
            raise DataError(f"extrapolate: law {candidate.name!r} needs the model size N of each run")
    design = _design(data, runs, schedules, laws)
    notes[:0] = [*data.notes, f"x = step / {design.step_ref:g} (the last checkpoint of the longest run)"]
    fitted = _with_inputs(data, design, runs)
    config = config or CURVE_CONFIG

    def specs_of(law):
        return _spec(law, pooling, likelihood, drift)

    plans, weighting_plans = [], []
    if backtest:
        plans, backtest_notes = _plan_backtests(fitted, runs, targets, schedules, laws, specs_of, pooling)
        notes += backtest_notes
    alone = pooling == "none" or len(runs) == 1  # each run has a fit of its own
    if stacking == "lfo" and len(laws) > 1 and alone:
        cut_already = {plan.run for plan in plans}
        weighting_plans, weighting_notes = _plan_weighting_cuts(
            fitted, runs, targets, schedules, laws, specs_of, cut_already
        )
        notes += weighting_notes
    parts = {None: fitted}
    if pooling == "none":
        parts = {run: fitted.select(fitted["run"] == run, f"run {run!r} alone") for run in runs}
    labels = ["all runs" if run is None else f"run {run!r}" for run in parts]
    labels += [f"run {plan.run!r} cut at step {plan.cut_step:.0f} (backtest)" for plan in plans]
    labels += [f"run {plan.run!r} cut at step {plan.cut_step:.0f} (weighting cut)" for plan in weighting_plans]
    what = f"extrapolate {len(runs)} run{'s' if len(runs) > 1 else ''} with {', '.join(law.name for law in laws)}"
    with _progress.task(what, progress=progress) as status:
        datasets = [*parts.values(), *(plan.data for plan in [*plans, *weighting_plans])]
        fitted_parts = _fit_laws(laws, datasets, labels, specs_of, config, retry, key, status)
        fits: dict[str, dict[str, Fit]] = {}
        for run, part_fits in zip(parts, fitted_parts, strict=False):
            for name, fit in part_fits.items():
                fits.setdefault(name, {}).update({run: fit} if run is not None else dict.fromkeys(runs, fit))
        cut_fits = fitted_parts[len(parts) :]
        backtests = list(zip(plans, cut_fits[: len(plans)], strict=True))
        weighting = list(zip(weighting_plans, cut_fits[len(plans) :], strict=True)) if stacking == "lfo" else None
        with status.phase("predicting the curves"):
            return _assemble(
                fits,
                fitted,
                runs,
                targets,
                design,
                notes,
                backtests,
                weighting,
                alone,
                held_back,
                jax.random.fold_in(key, 1),
            )


@functools.lru_cache(maxsize=64)
def _fully_shared(law: Law) -> Law:
    """Return ``law`` with every parameter shared across runs.

    One object per law, so that its compiled sampler is reused (laws compare by identity).
    """
    return dataclasses.replace(law, per_run=())


def _spec(law: Law, pooling: str, likelihood: str, drift: bool) -> ModelSpec:
    return ModelSpec(_fully_shared(law) if pooling == "all" else law, likelihood, correlated=True, drift=drift)


def _fit_laws(laws, datasets, labels, specs_of, config, retry, key, status) -> list[dict[str, Fit]]:
    """Every law fitted to each data set, in one call of the sampler: ``[{law name: fit}]``.

    ``specs_of(law)`` is the model a law is fitted with; ``labels`` name the data sets in
    the problems' labels. The fits show as a part of the progress task ``status``.
    """
    specs, problems, keys, owners = [], [], [], []
    for index, law in enumerate(laws):
        for part_index, part in enumerate(datasets):
            specs.append(specs_of(law))
            problems.append(part)
            keys.append(jax.random.fold_in(jax.random.fold_in(key, index), part_index))
            owners.append((law.name, part_index))
    names = [f"fit of law {name!r} to {labels[part_index]}" for name, part_index in owners]
    fits: list[dict[str, Fit]] = [{} for _ in datasets]
    results = fit_problems(specs, problems, keys=keys, config=config, retry=retry, labels=names, progress=status.shown)
    for (name, part_index), result in zip(owners, results, strict=True):
        fits[part_index][name] = result
    return fits


def _mixture(fits: Mapping[str, Fit], run: str, design: _Design, grid: np.ndarray, weights, key) -> np.ndarray:
    """Draws (draws, points) of the log loss ``run`` will log at the steps of ``grid``.

    The laws' predictions are mixed by ``weights`` (law name -> weight).
    """
    inputs = design.inputs(run, grid)
    draw_sets = [
        _predict(fit, run, inputs, np.log(grid), jax.random.fold_in(key, k)) for k, fit in enumerate(fits.values())
    ]
    ordered = [weights[name] for name in fits]
    picks = mixture_indices([len(d) for d in draw_sets], ordered, jax.random.fold_in(key, len(fits)))
    return np.concatenate([draws[chosen] for draws, chosen in zip(draw_sets, picks, strict=True)])


# ---------------------------------------------------------------------------------------
# Backtests


@dataclasses.dataclass(frozen=True)
class _Cut:
    """A run cut short of its last checkpoint: what is fitted, and what the forecast from the cut is scored on."""

    run: str
    cut_step: float
    data: ScalingData
    design: _Design
    held_out_steps: np.ndarray  # the run's checkpoints after the cut
    held_out_log_loss: np.ndarray

    @property
    def to_step(self) -> int:
        """The run's last checkpoint, which a backtest forecasts."""
        return int(self.held_out_steps[-1])

    @property
    def log_loss(self) -> float:
        """What the run logged at :attr:`to_step`."""
        return float(self.held_out_log_loss[-1])


def _cut(data, run, cut, part_runs, schedules, laws, specs_of, purpose) -> _Cut | str:
    """Return ``run`` cut at step ``cut``, fitted with ``part_runs`` as they stand, or a note on why not.

    ``purpose`` names the cut in its notes and in the label of its data.
    """
    rows = data["run"] == run
    keep = rows & (data["step"] <= cut)
    if not keep.any() or keep.sum() == rows.sum():  # nothing to fit, or nothing to forecast
        where = "before its first checkpoint" if not keep.any() else "at its last checkpoint"
        return f"{purpose} of run {run!r} skipped: the cut at step {cut:.0f} falls {where}"
    keep |= np.isin(data["run"], [other for other in part_runs if other != run])
    part = data.select(keep, f"{purpose} of run {run!r}, cut at step {cut:.0f}")
    design = _design(part, part_runs, schedules, laws)
    part = _with_inputs(part, design, part_runs)
    try:
        for law in laws:
            check_problem(specs_of(law), part)
    except DataError as error:
        return f"{purpose} of run {run!r} skipped: cut at step {cut:.0f}, {error}"
    after = rows & ~keep
    return _Cut(run, cut, part, design, data["step"][after].astype(np.float64), data.log_loss[after])


def _short_of(steps: np.ndarray, horizon: float) -> float:
    """Return the step ``horizon`` e-folds before a run's last checkpoint, or half its log-step range if nearer.

    Half the range keeps checkpoints on both sides of the cut: to fit, and to forecast.
    """
    back = min(horizon, 0.5 * np.log(steps.max() / steps.min()))
    return float(steps.max() * np.exp(-back))


def _plan_backtests(data, runs, targets, schedules, laws, specs_of, pooling) -> tuple[list[_Cut], list[str]]:
    """Return the backtests a table allows, and notes on what was backtested or why not.

    A run is finished when its target is its last checkpoint. Each finished run (at most
    :data:`MAX_BACKTESTS`, the longest) is cut at the median horizon of the runs in
    progress, log(target / last checkpoint), and fitted as those runs are: alone, or
    pooled with the other finished runs (runs in progress, which have no end to check
    against, are left out).

    Runs pooled with none of them finished share a shape that no run has shown to its
    end; then each run in progress (at most :data:`MAX_BACKTESTS`, the longest) is cut,
    fitted with the others as they stand, and forecast to its last checkpoint, at the
    median horizon or half the run's own log-step range, whichever is shorter, so that the
    cut keeps checkpoints to fit. A run fitted alone with nothing finished is not
    backtested: its intervals rest on the law and its noise model, which are calibrated
    when the law holds. A cut that leaves none of a run's checkpoints, all of them, or too
    few for a law is skipped with a note.
    """
    steps = {run: data["step"][data["run"] == run] for run in runs}
    last = {run: int(steps[run].max()) for run in runs}
    running = [run for run in runs if targets[run] > last[run]]
    finished = [run for run in runs if targets[run] == last[run]]
    if not running:
        return [], []
    horizon = float(np.median([np.log(targets[run] / last[run]) for run in running]))
    notes = []
    if finished:
        subjects = finished
        cuts = {run: last[run] * np.exp(-horizon) for run in finished}
    elif pooling != "none" and len(running) >= 2:
        subjects = running
        cuts = {run: _short_of(steps[run], horizon) for run in running}
        notes.append("backtest: no run is finished, so each run in progress is cut and forecast to its last checkpoint")
    else:
        reason = "no run is finished (its target its last checkpoint), so the intervals rest on the law and its noise"
        return [], [f"no backtest: {reason} model alone"]
    chosen = sorted(subjects, key=lambda run: -last[run])[:MAX_BACKTESTS]
    if len(chosen) < len(subjects):
        notes.append(f"backtest: the {len(chosen)} longest of {len(subjects)} runs")
    plans = []
    for run in chosen:
        fitted_with = subjects if pooling != "none" else [run]
        plan = _cut(data, run, cuts[run], fitted_with, schedules, laws, specs_of, "backtest")
        (plans if isinstance(plan, _Cut) else notes).append(plan)
    return plans, notes


def _plan_weighting_cuts(data, runs, targets, schedules, laws, specs_of, cut_already) -> tuple[list[_Cut], list[str]]:
    """Cuts that weight the stacked laws of runs fitted alone, and notes on the runs left to PSIS-LOO.

    Each run in progress that is not already cut (by a backtest) is cut at its own
    horizon, log(target / last checkpoint), or half its log-step range if that is
    shorter, and fitted alone. A finished run, or a run too short to cut, is weighted by
    PSIS-LOO on its checkpoints instead, with a note.
    """
    plans, notes = [], []
    for run in runs:
        steps = data["step"][data["run"] == run]
        horizon = np.log(targets[run] / steps.max())
        if run in cut_already or horizon == 0:
            continue
        plan = _cut(data, run, _short_of(steps, horizon), [run], schedules, laws, specs_of, "weighting cut")
        (plans if isinstance(plan, _Cut) else notes).append(plan)
    return plans, [f"{note}; its laws are weighted by PSIS-LOO on its checkpoints" for note in notes]


def _future_weights(cuts: Sequence[tuple[_Cut, Mapping[str, Fit]]], key) -> dict[str, float]:
    """Stacking weights of the laws from how well each forecast the checkpoints after the cuts.

    Leave-future-out stacking (Buerkner, Gabry and Vehtari 2020; Yao et al. 2018): each
    held-out checkpoint is scored by its marginal predictive density from the cut, as the
    forecast is read, and the weights maximise the log score of the mixture over them.
    """
    names = list(cuts[0][1])
    columns = {name: [] for name in names}
    for index, (cut, fits) in enumerate(cuts):
        inputs = cut.design.inputs(cut.run, cut.held_out_steps)
        density_key = jax.random.fold_in(key, index)  # the same walk draws for every law
        for name in names:
            columns[name].append(
                _log_predictive_density(
                    fits[name], cut.run, inputs, cut.held_out_steps, cut.held_out_log_loss, density_key
                )
            )
    weights = stacking_weights(np.column_stack([np.concatenate(columns[name]) for name in names]))
    return dict(zip(names, (float(weight) for weight in weights), strict=True))


def _law_weights(fits, runs, alone, cuts, key) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Per run, the weight of each law, and a note on how they were found.

    ``cuts`` pairs each cut (backtests and weighting cuts) with its fits, or is None for
    PSIS-LOO stacking. A run fitted alone is weighted by its own cut; pooled runs, which
    share one fit, by every cut of the call; without a cut, by PSIS-LOO.
    """
    if len(fits) == 1:
        return {run: {next(iter(fits)): 1.0} for run in runs}, []

    loo_key, key = jax.random.split(key)

    def loo(run):
        run_key = jax.random.fold_in(loo_key, runs.index(run))
        return _run_weights({name: by_run[run] for name, by_run in fits.items()}, run, run_key)

    if cuts is None:
        return {run: loo(run) for run in runs}, ["law weights per run by bagged PSIS-LOO stacking on its checkpoints"]
    if not alone:
        if not cuts:
            note = "law weights per run by bagged PSIS-LOO stacking on its checkpoints (no run was cut to weight them)"
            return {run: loo(run) for run in runs}, [note]
        shared = _future_weights(cuts, key)
        held_out = sum(len(cut.held_out_steps) for cut, _ in cuts)
        note = f"law weights by leave-future-out stacking on the {held_out} checkpoints after the {len(cuts)} cuts"
        return {run: dict(shared) for run in runs}, [note]
    own = {cut.run: (cut, cut_fits) for cut, cut_fits in cuts}
    weights = {
        run: _future_weights([own[run]], jax.random.fold_in(key, position)) if run in own else loo(run)
        for position, run in enumerate(runs)
    }
    described = [
        f"{run} cut at step {own[run][0].cut_step:.0f} ({len(own[run][0].held_out_steps)} after it)"
        for run in runs
        if run in own
    ]
    notes = []
    if described:
        each = "each run on its checkpoints after its cut"
        notes.append(f"law weights by leave-future-out stacking, {each}: {', '.join(described)}")
    if len(described) < len(runs):
        uncut = ", ".join(repr(run) for run in runs if run not in own)
        notes.append(f"law weights by bagged PSIS-LOO stacking for {uncut}")
    return weights, notes


def _backtest_forecast(plan: _Cut, fits: Mapping[str, Fit], key) -> tuple[dict[str, Any], tuple[float, ...]]:
    """Return the forecast of a backtested run's last loss from its cut.

    Returns its summary, and the log error of its median, the variance of the forecast
    (from its 90% interval, robust to heavy tails) and its horizon in e-folds. The laws
    are weighted by PSIS-LOO on the cut's checkpoints: weights learned from the miss
    itself would make the misses, and the discrepancy they teach, too small.
    """
    weight_key, key = jax.random.split(key)
    weights = _run_weights(fits, plan.run, weight_key)
    draws = _mixture(fits, plan.run, plan.design, np.asarray([plan.to_step]), weights, key)
    q05, median, q95 = np.quantile(draws[:, 0], QUANTILES)
    observed_until = int(plan.data["step"][plan.data["run"] == plan.run].max())
    logged = float(np.exp(plan.log_loss))
    summary = {
        "cut_step": round(plan.cut_step),
        "observed_until_step": observed_until,
        "to_step": plan.to_step,
        "logged": logged,
        "median": float(np.exp(median)),
        "q05": float(np.exp(q05)),
        "q95": float(np.exp(q95)),
        "error": float(np.exp(median) / logged - 1.0),
        "healthy": all(fit.diagnostics.ok for fit in fits.values()),
    }
    return summary, (plan.log_loss - median, ((q95 - q05) / (2 * _Z95)) ** 2, np.log(plan.to_step / observed_until))


@dataclasses.dataclass(frozen=True)
class _Discrepancy:
    """The posterior of the discrepancy scale tau given the backtests' misses, on a grid.

    Each backtest's log error e, with forecast variance v at a horizon of h e-folds, is
    taken as N(0, v + tau^2 h): the forecast's own spread plus a walk of scale tau past its
    last checkpoint, the spread its forecast did not carry. The prior is
    :data:`DISCREPANCY_PRIOR`; the grid is fine enough that its quantiles are exact to
    1/4000 of the prior's range.
    """

    grid: np.ndarray
    cdf: np.ndarray

    @classmethod
    def from_misses(cls, misses: Sequence[tuple[float, float, float]]) -> _Discrepancy:
        grid = np.linspace(0.0, float(DISCREPANCY_PRIOR.icdf(0.9999)), 4001)[1:]  # tau > 0: the prior's support
        log_post = np.asarray(DISCREPANCY_PRIOR.log_prob(grid), dtype=np.float64)
        for error, variance, horizon in misses:
            total = variance + grid**2 * horizon
            log_post = log_post - 0.5 * (np.log(2 * np.pi * total) + error**2 / total)
        density = np.exp(log_post - log_post.max())
        return cls(grid, np.cumsum(density) / density.sum())

    def quantiles(self, levels) -> np.ndarray:
        """Values of tau at the given levels of its posterior."""
        return self.grid[np.searchsorted(self.cdf, levels)]

    def sample(self, num_draws: int, key) -> np.ndarray:
        """Draws of tau, by inverting its posterior distribution."""
        return self.quantiles(np.asarray(jax.random.uniform(key, (num_draws,))))


# ---------------------------------------------------------------------------------------
# The entry point, continued: from the fits to the predictions


def _assemble(fits, data, runs, targets, design, notes, backtests, weighting, alone, held_back, key) -> Extrapolation:
    """Return the predictions of every run, widened by the backtests' discrepancy when there are any.

    ``backtests`` pairs each backtest with its fits (law name -> fit); ``weighting``
    pairs each weighting cut with its fits, or is None for PSIS-LOO stacking; ``alone``
    says whether each run has a fit of its own; ``held_back`` holds the checkpoints
    logged after ``observed_until``, or is None.
    """
    cuts = None if weighting is None else [*backtests, *weighting]
    # Run keys are 0 .. len(runs) - 1 and the backtests' come from len(runs).
    weights, weight_notes = _law_weights(fits, runs, alone, cuts, jax.random.fold_in(key, len(runs) + 1))
    notes = [*notes, *weight_notes]
    reports, misses = {}, []
    for index, (plan, plan_fits) in enumerate(backtests):
        plan_key = jax.random.fold_in(jax.random.fold_in(key, len(runs)), index)  # run keys use 0 .. len(runs) - 1
        reports[plan.run], miss = _backtest_forecast(plan, plan_fits, plan_key)
        misses.append(miss)
    discrepancy, backtest = None, {}
    if misses:
        discrepancy = _Discrepancy.from_misses(misses)
        scale = dict(zip(("q05", "median", "q95"), map(float, discrepancy.quantiles(QUANTILES)), strict=True))
        backtest = {"runs": reports, "scale": scale}
    finals, curves, steps_grid = [], [], []
    for position, run in enumerate(runs):
        per_run = {name: by_run[run] for name, by_run in fits.items()}
        last = int(data["step"][data["run"] == run].max())
        grid = np.unique(np.geomspace(last, targets[run], _CURVE_POINTS).round().astype(np.int64))
        grid = np.concatenate([grid, np.full(_CURVE_POINTS - len(grid), grid[-1])])
        run_key = jax.random.fold_in(key, position)
        mixed = _mixture(per_run, run, design, grid, weights[run], run_key)
        if discrepancy is not None and targets[run] > last:
            # One walk per draw, so that each draw's curve stays one coherent path.
            # _mixture took the keys 0 .. len(per_run) of run_key.
            tau = discrepancy.sample(len(mixed), jax.random.fold_in(run_key, len(per_run) + 1))
            walk = np.asarray(jax.random.normal(jax.random.fold_in(run_key, len(per_run) + 2), (len(mixed), 1)))
            mixed = mixed + tau[:, None] * np.sqrt(np.log(grid / last))[None, :] * walk
        # A heavy-tailed innovation (Student-t of small nu) can carry a draw past the float
        # range; it says only that the loss may be astronomically large, so it is kept at
        # the largest float (quantiles and mean stay finite) and noted.
        overflowing = int(np.count_nonzero(np.any(mixed > _LOG_FLOAT_MAX, axis=1)))
        if overflowing:
            notes = [
                *notes,
                f"run {run!r}: {overflowing} of {len(mixed)} predictive draws pass the float range (heavy-tailed "
                "noise) and are kept at the largest float",
            ]
        loss = np.exp(np.minimum(mixed, _LOG_FLOAT_MAX))
        curves.append(loss)
        finals.append(loss[:, -1])
        steps_grid.append(grid)
    if backtest:
        misses_text = ", ".join(f"{run} {100 * report['error']:+.2f}%" for run, report in reports.items())
        scale = backtest["scale"]
        notes = [
            *notes,
            f"backtest: runs cut and forecast again to their last checkpoints missed their logged losses by "
            f"{misses_text}; the forecasts are widened by a discrepancy of {100 * scale['median']:.2f}% "
            f"[{100 * scale['q05']:.2f}, {100 * scale['q95']:.2f}] per sqrt(e-fold) of horizon",
        ]
    predictions = {
        "final_loss": np.stack(finals, axis=1)[None],
        "curve": np.stack(curves, axis=1)[None],
    }
    constant = {
        "curve_step": np.stack(steps_grid),
        "to_step": np.asarray([targets[run] for run in runs]),
        "observed_until_step": np.asarray([int(data["step"][data["run"] == run].max()) for run in runs]),
    }
    checkpoints = data_columns(data)
    dims = {"final_loss": ["run"], "curve": ["run", "point"], "curve_step": ["run", "point"], "to_step": ["run"]}
    dims.update({"observed_until_step": ["run"], **data_dims(checkpoints, "checkpoint")})
    if held_back is not None and len(held_back):
        columns = data_columns(held_back)
        constant.update({f"held_back_{name}": columns[name] for name in _HELD_BACK_COLUMNS})
        dims.update({f"held_back_{name}": ["held_back"] for name in _HELD_BACK_COLUMNS})
    diagnostics = {run: {name: by_run[run].diagnostics for name, by_run in fits.items()} for run in runs}
    attrs = {
        "bayescale_extrapolation_format": EXTRAPOLATION_FORMAT_VERSION,
        "runs": json.dumps(runs),
        "weights": json.dumps(weights),
        "diagnostics": json.dumps(
            {run: {name: report.to_dict() for name, report in by_law.items()} for run, by_law in diagnostics.items()}
        ),
        "notes": json.dumps(list(notes)),
        "backtest": json.dumps(backtest),
        "data_source": data.source,
        "column_mapping": json.dumps(dict(data.mapping)),
        "data_notes": json.dumps(list(data.notes)),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **versions(),
    }
    groups = {"predictions": predictions, "constant_data": constant, "observed_data": checkpoints}
    idata = _arviz.from_groups(groups, dims, attrs, coords={"run": runs})
    return Extrapolation(tuple(runs), idata, fits, weights, data, diagnostics, tuple(notes), backtest)
