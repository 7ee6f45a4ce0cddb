"""Training logs in, tidy tables out: Weights & Biases exports and TensorBoard event files.

A training log holds one series per metric, each logged at its own steps; the engine wants
one row per checkpoint with ``run``, ``step`` and ``loss`` (and ``N``, ``D``, ... for laws
of model size and data). The readers here pick the metric that is the loss, leave out the
steps at which it was not logged (counted in the notes), label each row with its run, join
per-run values from a small runs table, and validate the result with
:func:`bayescale.data.read_table`, so that errors name the file, row and column as for any
table and the result is the same :class:`~bayescale.data.ScalingData`.

Formats
-------
W&B exports (:func:`read_wandb`)
    A run's history as a wide table, one row per logged step: ``_step``, one column per
    metric (``eval/c4_en-validation/CrossEntropyLoss``, ...), usually ``_runtime`` and
    ``_timestamp``, and blank cells where a metric was not logged at that step. CSV or TSV,
    JSON lines or Parquet; one file per run, or a folder of them. Any per-run table with a
    ``step`` column reads the same way (TensorBoard's "Wall time, Step, Value" downloads too).
TensorBoard event files (:func:`read_tensorboard`)
    A ``*tfevents*`` file, or a folder whose subfolders holding event files are the runs;
    read with TensorBoard's own event reader (``pip install 'bayescale[tensorboard]'``).

Runs and per-run values
-----------------------
A file of a folder is a run named by its file stem, unless it has a ``run`` or ``name``
column; a TensorBoard run is named by its folder's path below the one given. Values fixed
per run (``N``, ``D``, ``tokens_per_step``, a law's extra input) come from a runs table
with a ``run`` (or ``name``) column, or from a single row (a mapping of constants) for
every run. With ``tokens_per_step`` and no ``D``, the tokens seen by each logged step are
``D = step * tokens_per_step``; a ``D`` in the runs table is the same at every step of its run.

Downsampled logs
----------------
W&B's ``run.history()`` returns 500 sampled rows by default and TensorBoard's dashboard
keeps 1000 points per scalar, so an exported curve may be a sample of the log. A run whose
series has exactly 500 or 1000 points at uneven step intervals (the last interval aside:
a final step off the logging grid is common) raises
:class:`~bayescale.errors.DownsampledLogWarning`. A complete log is evenly spaced; event
files read here hold every point, so they are not checked.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayescale.data import _READERS, ScalingData, _derive_budget, _RawTable, _read_raw, _suggest, read_table
from bayescale.errors import DataError, DownsampledLogWarning

__all__ = ["FORMATS", "TOKENS_PER_STEP", "detect_format", "read", "read_tensorboard", "read_wandb"]

#: What :func:`read` accepts as ``format``; ``"auto"`` picks one from the path.
FORMATS = ("auto", "table", "wandb", "tensorboard")
#: Per-run column giving the tokens of one optimizer step, from which ``D = step * tokens_per_step``.
TOKENS_PER_STEP = "tokens_per_step"
# Points per series that exporters keep by default: W&B's run.history(samples=500) and
# TensorBoard's --samples_per_plugin scalars=1000.
_EXPORT_CAPS = (500, 1000)
# Columns naming the run of each row, in order of preference.
_RUN_COLUMNS = ("run", "name")
# Canonical columns a log file may carry per row besides its step and metric, read when present.
_PER_ROW = ("N", "D", "C", "lr")
# Columns looked up in a runs table when present.
_PER_RUN = ("N", "D", "C", "lr", TOKENS_PER_STEP)


@dataclasses.dataclass(frozen=True)
class _Log:
    """One file (or one TensorBoard run) as read, before its rows are joined with the others."""

    raw: _RawTable
    name: str  # the file or run below the folder given, for messages
    run: str  # run label of every row, unless the table has a run or name column
    nan_is_blank: bool = False  # DataFrames mark cells where nothing was logged with NaN
    run_column: str | None = None  # the column naming each row's run, when mapped


# ---------------------------------------------------------------------------------------
# Public readers


def read_wandb(
    source: Any,
    *,
    metric: str | None = None,
    runs: Any = None,
    mapping: Mapping[str, str] | None = None,
    columns: Sequence[str] = (),
    where: str | None = None,
    drop_invalid: bool = False,
    check_units: bool = True,
) -> ScalingData:
    """Read W&B run histories (one wide table per run) as one tidy table of checkpoints.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        A history exported from W&B (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``), a folder
        of them (one file per run), or a DataFrame such as ``run.history()``'s.
    metric : str, optional
        The column to read as ``loss``, e.g. ``"eval/c4_en-validation/CrossEntropyLoss"``.
        By default the only column named like a loss, with a note; when there is not
        exactly one, a :class:`DataError` lists the candidates.
    runs : str, os.PathLike, DataFrame or Mapping, optional
        Per-run values: a table with a ``run`` (or ``name``) column and e.g. ``N``, ``D``,
        ``tokens_per_step``, or one row of values for every run (``{"N": 1.2e8}``).
    mapping : Mapping[str, str], optional
        Canonical name to column of the logs or of the runs table, e.g. ``{"step":
        "trainer/global_step", "lr": "train/learning_rate"}``. The step is ``_step``
        (else ``step``) unless mapped.
    columns : sequence of str, optional
        Further numeric columns to load from the logs or the runs table, e.g. a law's
        extra input or a column of target steps.
    where : str, optional
        A row filter such as ``"step >= 1000"``; see :meth:`ScalingData.where`.
    drop_invalid : bool, default False
        Drop rows with invalid values instead of raising; the drops are listed in the notes.
    check_units : bool, default True
        Refuse N, D and C in plainly inconsistent units; see :func:`~bayescale.read_table`.

    Returns
    -------
    ScalingData
        One row per logged value of the metric: ``run``, ``step``, ``loss``, and whatever
        the mapping, the runs table and ``columns`` add. Rows where the metric is blank are
        steps at which it was not logged: they are left out and counted in the notes.

    Raises
    ------
    DataError
        When no file can be read, the metric or the step column is missing or ambiguous, a
        run has no row in the runs table, or a value is invalid; the message names the
        file, row and column.

    Warns
    -----
    DownsampledLogWarning
        When a run's series looks like a sample of its log (see the module docstring).

    Examples
    --------
    >>> data = bs.read_wandb("runs/", metric="eval/loss", runs="runs.csv")  # doctest: +SKIP
    """
    logs, name = _wandb_logs(source, skip=runs)
    mapping = _with_metric(mapping, metric)
    metric, step, run = mapping.pop("loss", None), mapping.pop("step", None), mapping.pop("run", None)
    every = [column for log in logs for column in log.raw.columns]
    # W&B's own columns (_step, _runtime, _timestamp), steps and run labels are not metrics.
    system = {step, run, *(c for c in every if c.startswith("_") or c.lower() in ("step", *_RUN_COLUMNS))}
    candidates = [column for column in every if column not in system]
    metric, notes = _choose_metric(metric, every, candidates, name, "--metric NAME or metric=NAME")
    present = [log for log in logs if metric in log.raw.columns]
    if len(present) < len(logs):
        left_out = ", ".join(log.name for log in logs if log not in present)
        notes.append(f"files without a column {metric!r} left out: {left_out}")
    step = step or _step_column(present[0])
    for log in present:
        for column, what in ((step, "step"), (run, "run")):
            if column is not None and column not in log.raw.columns:
                raise DataError(
                    f"{log.raw.source}: no {what} column {column!r}{_suggest(column, log.raw.columns)}; "
                    f"name it with --map {what}=COLUMN (mapping={{'{what}': ...}})"
                )
    if run is not None:  # the runs are named by that column in every file
        present = [dataclasses.replace(log, run_column=run) for log in present]
    checks = (drop_invalid, check_units)
    data = _tidy(present, name, metric, step, runs, mapping, columns, checks, notes, carry=_PER_ROW)
    _warn_if_downsampled(data, metric, stacklevel=3)
    return data.where(where) if where else data


def read_tensorboard(
    source: str | os.PathLike,
    *,
    tag: str | None = None,
    runs: Any = None,
    mapping: Mapping[str, str] | None = None,
    columns: Sequence[str] = (),
    where: str | None = None,
    drop_invalid: bool = False,
    check_units: bool = True,
) -> ScalingData:
    """Read the scalars of TensorBoard event files as one tidy table of checkpoints.

    Every event is read (TensorBoard's dashboard keeps a sample of 1000 per tag; this
    does not). Needs the ``tensorboard`` package: ``pip install 'bayescale[tensorboard]'``.

    Parameters
    ----------
    source : str or os.PathLike
        An event file (name containing ``tfevents``), or a folder: each folder at or below
        it holding event files is a run, named by its path below ``source``.
    tag : str, optional
        The scalar tag to read as ``loss``, e.g. ``"eval/loss"``. By default the only tag
        named like a loss, with a note; otherwise a :class:`DataError` lists the candidates.
    runs : str, os.PathLike, DataFrame or Mapping, optional
        Per-run values, as for :func:`read_wandb`.
    mapping : Mapping[str, str], optional
        Canonical name to a further tag (joined by step, e.g. ``{"lr": "train/lr"}``) or
        to a column of the runs table.
    columns : sequence of str, optional
        Further numeric tags or runs-table columns to load.
    where : str, optional
        A row filter such as ``"step >= 1000"``.
    drop_invalid : bool, default False
        Drop rows with invalid values (a NaN loss, say) instead of raising.
    check_units : bool, default True
        Refuse N, D and C in plainly inconsistent units; see :func:`~bayescale.read_table`.

    Returns
    -------
    ScalingData
        One row per logged value of the tag: ``run``, ``step``, ``loss`` and any further
        columns. TensorBoard stores scalars as 32-bit floats; they are read as stored.
        Where a restarted run logged a step twice, the value written last is kept (noted).

    Raises
    ------
    DataError
        When tensorboard is not installed, there are no event files, the tag is missing
        or ambiguous, or a value is invalid; the message names the run, step and tag.
    """
    path = os.fspath(source)
    series = _tensorboard_series(path)
    mapping = _with_metric(mapping, tag)
    tag = mapping.pop("loss", None)
    if {"step", "run"} & set(mapping):
        raise DataError(f"{path}: TensorBoard events carry their own steps and runs; --map step or run does not apply")
    names = list(dict.fromkeys(name for tags in series.values() for name in tags))
    tag, notes = _choose_metric(tag, names, names, path, "--metric TAG or tag=TAG")
    left_out = [run for run, tags in series.items() if tag not in tags]
    if left_out:
        notes.append(f"runs without the tag {tag!r} left out: {', '.join(left_out)}")
    joined = [name for name in (*mapping.values(), *columns) if name in names]
    logs = []
    for run, tags in series.items():
        if tag not in tags:
            continue
        steps, values, repeated = tags[tag]
        if repeated:
            notes.append(f"run {run}: {repeated} step(s) of {tag!r} logged more than once (restarted?); kept the last")
        table = {"step": steps.astype(np.float64), tag: values}
        for name in joined:
            # Another tag, aligned to the metric's steps; blank where it was not logged.
            lookup = dict(zip(tags[name][0].tolist(), tags[name][1].tolist())) if name in tags else {}
            table[name] = [lookup.get(step) for step in steps.tolist()]
        logs.append(_Log(_RawTable(run, table, steps, row_word="step"), run, run))
    data = _tidy(logs, path, tag, "step", runs, mapping, columns, (drop_invalid, check_units), notes, carry=())
    return data.where(where) if where else data


def detect_format(source: Any) -> str:
    """Say how to read ``source``: ``"tensorboard"``, ``"wandb"`` or ``"table"``.

    A folder with event files (``*tfevents*``) at any depth, or such a file, is TensorBoard;
    another folder is a set of per-run logs; a table (or DataFrame) with a ``_step``
    column is a W&B export; anything else is a tidy table for :func:`~bayescale.data.read_table`,
    which reports what it cannot read.
    """
    if not isinstance(source, (str, os.PathLike)):
        names = source.columns if hasattr(source, "columns") else source
        return "wandb" if "_step" in list(names) else "table"
    path = os.fspath(source)
    if os.path.isdir(path):
        has_events = any("tfevents" in name for _, _, files in os.walk(path) for name in files)
        return "tensorboard" if has_events else "wandb"
    if "tfevents" in os.path.basename(path):
        return "tensorboard"
    return "wandb" if "_step" in _header(path) else "table"


def read(
    source: Any,
    *,
    format: str = "auto",
    metric: str | None = None,
    runs: Any = None,
    mapping: Mapping[str, str] | None = None,
    columns: Sequence[str] = (),
    where: str | None = None,
    drop_invalid: bool = False,
    check_units: bool = True,
) -> ScalingData:
    """Read a table of runs or training logs, whichever ``source`` is (what the CLI calls).

    Parameters
    ----------
    source : str, os.PathLike, DataFrame or Mapping
        A tidy table, a W&B export or folder of them, or TensorBoard logs.
    format : {"auto", "table", "wandb", "tensorboard"}, default "auto"
        How to read it; ``"auto"`` asks :func:`detect_format`.
    metric : str, optional
        The logged metric (W&B column, TensorBoard tag) to read as ``loss``; for a table,
        the same as ``mapping={"loss": metric}``.
    runs : optional
        Per-run values for logs; see :func:`read_wandb`.
    mapping, columns, where, drop_invalid, check_units
        As for :func:`~bayescale.data.read_table`.

    Returns
    -------
    ScalingData
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    kind = detect_format(source) if format == "auto" else format
    options = {"mapping": mapping, "columns": columns, "where": where, "drop_invalid": drop_invalid}
    options["check_units"] = check_units
    if kind == "wandb":
        return read_wandb(source, metric=metric, runs=runs, **options)
    if kind == "tensorboard":
        return read_tensorboard(source, tag=metric, runs=runs, **options)
    if runs is not None:
        raise DataError(
            f"{source}: a runs table joins per-run values to W&B or TensorBoard logs; this is read as a table of "
            "runs, which holds them as columns (read per-run log files with --format wandb)"
        )
    options["mapping"] = _with_metric(mapping, metric)
    return read_table(source, **options)


# ---------------------------------------------------------------------------------------
# Reading the files


def _wandb_logs(source: Any, skip: Any) -> tuple[list[_Log], str]:
    """Read the logs of ``source`` (a file, a folder of files, a DataFrame); return them and its name."""
    if not isinstance(source, (str, os.PathLike)):
        raw = _read_raw(source)
        return [_Log(raw, raw.source, "run", nan_is_blank=True)], raw.source
    path = os.fspath(source)
    if not os.path.isdir(path):
        return [_Log(_read_raw(path), os.path.basename(path), _stem(path))], path
    files = []
    for name in sorted(os.listdir(path)):
        file = os.path.join(path, name)
        if name.startswith(".") or os.path.splitext(name)[1].lower() not in _READERS:
            continue
        # A runs table kept beside the logs is not a run.
        if os.path.isfile(file) and not (isinstance(skip, (str, os.PathLike)) and _same_file(file, skip)):
            files.append(name)
    if not files:
        raise DataError(f"{path}: no run logs in the folder; expected one file per run ({', '.join(_READERS)})")
    return [_Log(_read_raw(os.path.join(path, name)), name, _stem(name)) for name in files], path


def _tensorboard_series(path: str) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray, int]]]:
    """By run, then scalar tag: steps, values and how many repeated steps were dropped."""
    try:
        from tensorboard.backend.event_processing import io_wrapper
        from tensorboard.backend.event_processing import plugin_event_accumulator as accumulator
        from tensorboard.util import tensor_util
    except ImportError:
        raise DataError(
            f"{path}: reading TensorBoard event files needs tensorboard: pip install 'bayescale[tensorboard]'"
        ) from None
    if os.path.isfile(path):
        folders = {os.path.basename(os.path.dirname(os.path.abspath(path))): path}
    elif os.path.isdir(path):
        top = os.path.basename(os.path.abspath(path))
        folders = {}
        for folder in sorted(io_wrapper.GetLogdirSubdirectories(path)):
            below = os.path.relpath(folder, path)
            folders[top if below == os.curdir else below.replace(os.sep, "/")] = folder
    else:
        raise DataError(f"{path}: no such file or folder")
    if not folders:
        raise DataError(f"{path}: no TensorBoard event files (names containing 'tfevents') in the folder or below")
    series = {}
    for run, folder in folders.items():
        # Size 0 keeps every event; the default keeps a random sample of 500 per tag.
        events = accumulator.EventAccumulator(folder, size_guidance={accumulator.TENSORS: 0}).Reload()
        # TensorBoard files v1 scalars (simple_value) under the scalars plugin too, as 0-d tensors.
        tags = events.PluginTagToContent("scalars") if "scalars" in events.ActivePlugins() else {}
        series[run] = {}
        for tag in tags:
            logged = events.Tensors(tag)
            steps = np.array([event.step for event in logged], dtype=np.int64)
            times = np.array([event.wall_time for event in logged], dtype=np.float64)
            values = [tensor_util.make_ndarray(event.tensor_proto).item() for event in logged]
            values = np.array(values, dtype=np.float64)
            series[run][tag] = _last_per_step(steps, times, values)
    return series


def _last_per_step(steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Order the steps, keep the value written last at each, and count the earlier ones dropped.

    A run restarted from a checkpoint logs the steps since that checkpoint again; the later
    values are the ones the run went on from (TensorBoard itself purges the earlier ones
    when the writer marks the restart).
    """
    order = np.lexsort((times, steps))
    steps, values = steps[order], values[order]
    last = np.append(steps[1:] != steps[:-1], True)
    return steps[last], values[last], int((~last).sum())


def _header(path: str) -> list[str]:
    """Column names of a table file, or [] when they cannot be read (read_table says why)."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(path, newline="", encoding="utf-8-sig") as handle:
                return next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
        if suffix in (".jsonl", ".ndjson", ".json"):
            with open(path, encoding="utf-8") as handle:
                record = json.loads(next((line for line in handle if line.strip()), "{}"))
            return list(record) if isinstance(record, dict) else []
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
    except (OSError, ValueError, ImportError, csv.Error):
        return []
    return []


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _same_file(a: str, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _find(columns: Sequence[str], name: str) -> str | None:
    """Return the column called ``name``, or else the only one that is in another letter case."""
    if name in columns:
        return name
    folded = [column for column in columns if column.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _step_column(log: _Log) -> str:
    """W&B's ``_step``, else a ``step`` column in any letter case."""
    found = _find(log.raw.columns, "_step") or _find(log.raw.columns, "step")
    if found is None:
        raise DataError(
            f"{log.raw.source}: no step column; expected '_step' (W&B) or 'step'{_suggest('_step', log.raw.columns)}; "
            "name one with --map step=COLUMN (mapping={'step': ...})"
        )
    return found


# ---------------------------------------------------------------------------------------
# Choosing the metric


def _with_metric(mapping: Mapping[str, str] | None, metric: str | None) -> dict[str, str]:
    mapping = dict(mapping or {})
    if metric is not None:
        if mapping.get("loss", metric) != metric:
            raise DataError(f"the metric {metric!r} and the mapping loss={mapping['loss']!r} name different columns")
        mapping["loss"] = metric
    return mapping


def _choose_metric(
    metric: str | None, names: Sequence[str], candidates: Sequence[str], source: str, option: str
) -> tuple[str, list[str]]:
    """Choose the metric to read as the loss, with notes.

    The one named (one of ``names``), or else the only one of the ``candidates`` named like
    a loss; a :class:`DataError` lists the candidates when there is not exactly one.
    """
    names = list(dict.fromkeys(candidates))
    if metric is not None:
        if metric not in set(names).union(candidates):
            raise DataError(f"{source}: no metric {metric!r}{_suggest(metric, names)}")
        return metric, []
    losses = [name for name in names if "loss" in name.lower()]
    if len(losses) == 1:
        return losses[0], [f"metric {losses[0]!r} read as the loss, the only one named like one (choose with {option})"]
    if losses:
        found = f"{len(losses)} are named like a loss: {', '.join(repr(name) for name in losses)}"
    else:
        listing = ", ".join(repr(name) for name in names[:12]) + (" ..." if len(names) > 12 else "")
        found = f"none is named like a loss; metrics: {listing or 'none'}"
    raise DataError(f"{source}: which metric is the loss? {found}; name it with {option}")


# ---------------------------------------------------------------------------------------
# From logs to one validated table


def _is_blank(cell: Any, nan_is_blank: bool) -> bool:
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return True
    return nan_is_blank and isinstance(cell, float | np.floating) and math.isnan(cell)


def _tidy(
    logs: Sequence[_Log],
    source: str,
    metric: str,
    step: str,
    runs: Any,
    mapping: Mapping[str, str],
    columns: Sequence[str],
    checks: tuple[bool, bool],
    notes: list[str],
    carry: Sequence[str],
) -> ScalingData:
    """Join the logs' rows where ``metric`` was logged, add the per-run values, and validate.

    Each name in ``mapping`` (loss and step aside) and ``columns`` is read from the logs
    when they have its column, else from the runs table; the canonical names in ``carry``
    are read from the logs when present and logged with the metric.
    """
    in_logs = {column for log in logs for column in log.raw.columns}
    per_run = None if runs is None else _read_raw(runs)
    in_runs = {} if per_run is None else per_run.columns
    wanted = {**mapping, **{name: _find(in_logs, name) or _find(in_runs, name) or name for name in columns}}
    from_logs, from_runs = {}, {}
    for name, column in wanted.items():
        if column in in_logs:
            from_logs[name] = column
        elif column in in_runs:
            from_runs[name] = column
        else:
            places = "the logs" + (f" or {per_run.source}" if per_run else "")
            suggestion = _suggest(column, [*in_logs, *in_runs])
            raise DataError(f"{source}: no column {column!r} (for {name}) in {places}{suggestion}")
    for name, column in from_logs.items():
        for log in logs:
            if column not in log.raw.columns:
                suggestion = _suggest(column, log.raw.columns)
                raise DataError(f"{log.raw.source}: no column {column!r} (for {name}){suggestion}")

    rows = [
        [i for i, cell in enumerate(log.raw.columns[metric]) if not _is_blank(cell, log.nan_is_blank)] for log in logs
    ]
    total, kept = sum(len(log.raw) for log in logs), sum(len(keep) for keep in rows)
    if kept < total:
        notes.append(f"{metric!r} was not logged at {total - kept} of {total} rows (steps at which other metrics were)")
    table: dict[str, Any] = {"run": [label for log, keep in zip(logs, rows) for label in _run_labels(log, keep)]}
    for column in dict.fromkeys((step, metric, *from_logs.values())):
        table[column] = [log.raw.columns[column][i] for log, keep in zip(logs, rows) for i in keep]
    for name in carry:
        found = [_find(log.raw.columns, name) for log in logs]
        if name in wanted or not any(found):
            continue
        cells = [
            log.raw.columns[column][i] if column else None for log, keep, column in zip(logs, rows, found) for i in keep
        ]
        if any(_is_blank(cell, nan_is_blank=True) for cell in cells):
            notes.append(
                f"column {name!r} left out: blank at some steps where {metric!r} was logged "
                f"(--map {name}=COLUMN reads it anyway and names those rows)"
            )
            continue
        table[name] = cells
        from_logs[name] = name
    joined = {}
    if per_run is not None:
        joined, note = _join_runs(per_run, from_runs, table["run"], skip=from_logs)
        table |= joined
        notes.append(note)

    labels = []
    for log, keep in zip(logs, rows):
        kept_labels = np.asarray(log.raw.row_labels)[keep]
        # From several files (or runs), say which one a row is in.
        labels += [f"{label} in {log.name}" for label in kept_labels] if len(logs) > 1 else list(kept_labels)
    words = {log.raw.row_word for log in logs}
    raw = _RawTable(source, table, np.asarray(labels), row_word=words.pop() if len(words) == 1 else "row")
    names = {"loss": metric, "step": step, **from_logs, **{name: name for name in joined}}
    drop_invalid, check_units = checks
    data = read_table(raw, names, drop_invalid=drop_invalid, check_units=check_units)
    data = dataclasses.replace(data, notes=(*notes, *data.notes))
    if "D" in data or TOKENS_PER_STEP not in data:
        return data
    tokens = {**data.columns, "D": data["step"] * data[TOKENS_PER_STEP]}
    note = f"D was not given: computed as step * {TOKENS_PER_STEP}"
    return _derive_budget(dataclasses.replace(data, columns=tokens, notes=(*data.notes, note)))


def _run_labels(log: _Log, keep: Sequence[int]) -> list[str]:
    """Label each kept row with its run: from the log's run (or name) column, else the log's own label."""
    column = log.run_column or _find(log.raw.columns, "run") or _find(log.raw.columns, "name")
    if column is None:
        return [log.run] * len(keep)
    labels = []
    for i in keep:
        cell = log.raw.columns[column][i]
        if _is_blank(cell, nan_is_blank=True):
            where = f"{log.raw.row_word} {log.raw.row_labels[i]}"
            raise DataError(f"{log.raw.source}, column {column!r}: found {where}: blank; expected a run label")
        labels.append(str(cell).strip())
    return labels


def _join_runs(
    per_run: _RawTable, mapped: Mapping[str, str], labels: Sequence[str], skip: Mapping[str, str]
) -> tuple[dict[str, np.ndarray], str]:
    """Look up each row's values of the per-run columns by its run label; say what was joined.

    The columns are those in ``mapped`` and those of :data:`_PER_RUN` not in ``skip`` (read
    from the logs already).
    """
    run_column = _find(per_run.columns, "run") or _find(per_run.columns, "name")
    wanted = dict(mapped)
    for name in _PER_RUN:
        column = _find(per_run.columns, name)
        if column is not None and name not in wanted and name not in skip:
            wanted[name] = column
    if not wanted:
        raise DataError(
            f"{per_run.source}: no per-run values; expected columns such as {', '.join(_PER_RUN)}"
            f"{_suggest('N', per_run.columns)} (map one with --map NAME=COLUMN)"
        )
    picked = {**wanted, **({"run": run_column} if run_column else {})}
    # Only the picked columns are validated: the table may hold notes, tags, anything else.
    subset = {column: per_run.columns[column] for column in picked.values()}
    table = read_table(_RawTable(per_run.source, subset, per_run.row_labels, per_run.row_word), picked)
    if run_column is None:
        if len(table) != 1:
            raise DataError(
                f"{per_run.source}: no 'run' or 'name' column to match its {len(table)} rows to the runs; "
                "expected one, or a single row of values for every run"
            )
        index = np.zeros(len(labels), dtype=np.int64)
    else:
        position: dict[str, int] = {}
        for i, label in enumerate(table["run"]):
            if label in position:
                rows = f"{table.rows[position[label]]} and {table.rows[i]}"
                raise DataError(
                    f"{per_run.source}, column {run_column!r}: run {label!r} is in {per_run.row_word}s {rows}; "
                    "expected one row per run"
                )
            position[label] = i
        missing = [label for label in dict.fromkeys(labels) if label not in position]
        if missing:
            # Labels typed by hand in a runs table often differ from the logs' in letter case only.
            folded = {label.lower(): label for label in position}
            close = difflib.get_close_matches(missing[0].lower(), list(folded), n=1, cutoff=0.5)
            hint = f"; did you mean {folded[close[0]]!r} for {missing[0]!r}?" if close else ""
            listing = ", ".join(repr(label) for label in missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise DataError(f"{per_run.source}: no row for run(s) {listing} of the logs{hint}")
        index = np.array([position[label] for label in labels], dtype=np.int64)
    note = f"per-run values from {per_run.source}: {', '.join(wanted)}"
    return {name: table[name][index] for name in wanted}, note


def _warn_if_downsampled(data: ScalingData, metric: str, stacklevel: int) -> None:
    """Warn when a run's series looks like an exporter's sample of its log (see the module docstring)."""
    flagged = []
    for run in dict.fromkeys(data["run"]):
        steps = np.sort(data["step"][data["run"] == run])
        # A log written every k steps is evenly spaced but for, perhaps, its final step.
        if len(steps) in _EXPORT_CAPS and len(np.unique(np.diff(steps[:-1]))) > 1:
            flagged.append(f"{run} ({len(steps)} points)")
    if flagged:
        listing = ", ".join(flagged[:8]) + (f" and {len(flagged) - 8} more" if len(flagged) > 8 else "")
        warnings.warn(
            f"{data.source}: {metric!r} of run(s) {listing} looks downsampled: exactly the number of points an "
            "exporter keeps by default (W&B's run.history() samples 500 rows; TensorBoard's dashboard keeps 1000 "
            "per scalar), at uneven step intervals. Export every point: with wandb, run.scan_history(); with "
            "tensorboard, --samples_per_plugin scalars=0, or read the event files (--format tensorboard)",
            DownsampledLogWarning,
            stacklevel=stacklevel,
        )
