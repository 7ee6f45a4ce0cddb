"""Tables of training runs in, validated columns out.

Every reader (CSV, JSON lines, Parquet, a pandas DataFrame, a mapping of arrays) ends in
:class:`ScalingData`: columns under canonical names, each checked at this boundary so that
no jitted code ever sees a bad value. Errors name the source, the row(s) and the column,
what was found and what was expected. Nothing is dropped unless the caller asks for it
(``where=`` or ``drop_invalid=True``), and every drop is recorded in :attr:`ScalingData.notes`.

Checks, in order: the file can be read and has data rows; every named column exists;
every cell holds what its column expects (:data:`CANONICAL_COLUMNS`); within each run the
steps increase in the order of the file (no repeated or backward step); and ``N``, ``D``
and ``C`` are in consistent units (:func:`read_table`, ``check_units``).

Canonical columns
-----------------
``N`` parameters, ``D`` training tokens, ``C`` training FLOPs, ``loss`` (nats per token or
any positive loss), and for learning curves ``run`` (label), ``step`` and ``lr``.
When ``C`` is absent it is derived as ``6 N D``; when ``D`` is absent it is ``C / (6 N)``.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bayescale.errors import DataError

__all__ = ["CANONICAL_COLUMNS", "ScalingData", "as_data", "check_steps", "read_table"]

#: What each canonical column must hold, as (test, description of what is expected).
# The tests take a float or an array, so one definition serves cell-by-cell and whole columns.
_POSITIVE = (lambda v: v > 0, "a positive finite number")
_NON_NEGATIVE = (lambda v: v >= 0, "a finite number >= 0")
CANONICAL_COLUMNS: Mapping[str, tuple[Callable[[float], bool], str] | None] = {
    "N": _POSITIVE,
    "D": _POSITIVE,
    "C": _POSITIVE,
    "loss": _POSITIVE,
    "step": _NON_NEGATIVE,
    "lr": _NON_NEGATIVE,
    "run": None,  # a label, kept as text
}
_ANY_FINITE = (np.isfinite, "a finite number")
_MAX_LISTED = 8  # rows named in one message before "... and k more"
_MAX_SHOWN = 40  # characters of a cell shown in a message (a stray blob stays one short line)
# Unit checks: a language-model ladder trains on at least ~1 token per parameter (Epoch's
# Chinchilla rows go down to 0.04), so D < N/100 means D is in millions or billions of
# tokens; training FLOPs are ~6ND (Kaplan et al. 2020, Hoffmann et al. 2022; the bundled
# IsoFLOP budgets are 0.74-1.35 times it), so a factor 10 off means C is in other units
# (PF-days) or N counts something else.
_MIN_TOKENS_PER_PARAM = 1e-2
_COMPUTE_FACTOR = 10.0
_UNIT_OVERRIDE = "if the values are right, pass check_units=False (--no-unit-check)"
# Source column names that hint at a canonical one, for "did you mean" when no name is close.
_NAME_HINTS = {
    "N": ("param", "size"),
    "D": ("token",),
    "C": ("flop", "compute", "budget"),
    "loss": ("loss",),
    "step": ("step", "iter"),
    "run": ("run",),
}


# ---------------------------------------------------------------------------------------
# The validated table


@dataclasses.dataclass(frozen=True, eq=False)
class ScalingData:
    """A validated table of training runs under canonical column names.

    Build it with :func:`read_table` or :func:`as_data`; it is immutable (its arrays are
    read-only) and every transformation returns a new object with a note saying what
    changed.

    Parameters
    ----------
    columns : Mapping[str, numpy.ndarray]
        Canonical name to values: float64 for numbers, ``str`` objects for ``run``.
    source : str
        Where the rows came from (a file name, ``"DataFrame"``), used in messages.
    rows : numpy.ndarray
        The original row label of each row (1-based data rows for files), so that later
        messages can point back into the source.
    mapping : Mapping[str, str]
        Canonical name to the source column it was read from.
    notes : tuple of str
        Derivations and filters applied, in order, for the user to see.
    unused : tuple of str
        Source columns not read, offered when a needed column is missing.
    row_word : str
        What a row label counts: ``"row"`` (files, DataFrames), ``"line"`` (JSON lines)
        or ``"index"`` (arrays).
    """

    columns: Mapping[str, np.ndarray]
    source: str
    rows: np.ndarray
    mapping: Mapping[str, str] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    row_word: str = "row"

    def __post_init__(self):
        lengths = {name: len(values) for name, values in self.columns.items()}
        if len(set(lengths.values()) | {len(self.rows)}) > 1:
            raise ValueError(f"columns of unequal length: {lengths}, rows: {len(self.rows)}")
        for values in (*self.columns.values(), self.rows):
            values.setflags(write=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise DataError(self._missing_message(name)) from None

    def require(self, names: Iterable[str], purpose: str) -> None:
        """Raise :class:`DataError` unless every column in ``names`` is present.

        Parameters
        ----------
        names : iterable of str
            Canonical column names that must be present.
        purpose : str
            What needs them (for example ``"law 'chinchilla'"``), used in the message.
        """
        missing = [name for name in names if name not in self.columns]
        if missing:
            have = ", ".join(self.columns) or "none"
            guesses = [f"{column!r} for {name}" for name in missing if (column := _closest(name, self.unused))]
            hint = f"did you mean {' and '.join(guesses)}?" if guesses else ""
            unused = f" (unread columns: {', '.join(repr(c) for c in self.unused[:12])})" if self.unused else ""
            raise DataError(
                f"{self.source}: {purpose} needs column(s) {', '.join(missing)}; the table has {have}{unused}"
                f"{_derivation_hint(missing)}{'; ' + hint if hint else ''} "
                "(map a column with --map NAME=COLUMN or mapping={...})"
            )
        if len(self) == 0:
            raise DataError(f"{self.source}: no rows left to fit ({'; '.join(self.notes) or 'the table is empty'})")

    def select(self, keep: np.ndarray, reason: str, *, dropped_as: str = "dropped") -> ScalingData:
        """Return the rows where ``keep`` is true, recording how many were dropped and why.

        Parameters
        ----------
        keep : numpy.ndarray of bool
            One flag per row.
        reason : str
            Why rows are dropped; it goes into :attr:`notes` with the dropped row labels.
        dropped_as : str, optional
            What the note calls the rows left out ("held back" where they are kept elsewhere).

        Returns
        -------
        ScalingData
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != self.rows.shape:
            raise ValueError(f"keep has shape {keep.shape}, expected {self.rows.shape}")
        dropped = self.rows[~keep]
        note = f"{reason}: kept {int(keep.sum())} of {len(self)} rows"
        if len(dropped):
            note += f" ({dropped_as} {_list_rows(dropped, self.row_word)})"
        return dataclasses.replace(
            self,
            columns={name: values[keep] for name, values in self.columns.items()},
            rows=self.rows[keep],
            notes=(*self.notes, note),
        )

    def sorted_by(self, names: Sequence[str]) -> ScalingData:
        """Return the rows ordered by the given columns (first name first); a stable sort."""
        order = np.lexsort([self.columns[name] for name in reversed(names)])
        if np.array_equal(order, np.arange(len(self))):
            return self
        return dataclasses.replace(
            self, columns={name: values[order] for name, values in self.columns.items()}, rows=self.rows[order]
        )

    def where(self, expression: str) -> ScalingData:
        """Keep the rows that satisfy ``expression``, for example ``"loss < 4.9 and N >= 1e8"``.

        Clauses ``NAME OP NUMBER`` (``OP`` one of ``< <= > >= == !=``) joined by ``and``;
        names are canonical columns.
        """
        return self.select(_parse_where(expression, self.columns, self.source), f"where {expression!r}")

    @property
    def log_loss(self) -> np.ndarray:
        """Natural log of the ``loss`` column: the scale every likelihood works on."""
        return np.log(self["loss"])

    def fingerprint(self) -> str:
        """SHA-256 of the canonical columns, identifying the data a fit was made on."""
        digest = hashlib.sha256()
        for name in sorted(self.columns):
            values = self.columns[name]
            digest.update(name.encode())
            digest.update(values.astype(str).tobytes() if values.dtype == object else values.tobytes())
        return digest.hexdigest()

    def _missing_message(self, name: str) -> str:
        have = ", ".join(self.columns) or "none"
        guess = _closest(name, self.unused)
        hint = f"; did you mean {guess!r}?" if guess else ""
        return f"{self.source}: no column {name!r}; the table has {have}{_derivation_hint([name])}{hint}"


def _derivation_hint(missing: Sequence[str]) -> str:
    hints = {
        "C": " (C is derived as 6*N*D when N and D are given)",
        "D": " (D is derived as C/(6*N) when C and N are given)",
    }
    return "".join(hints.get(name, "") for name in missing)


# ---------------------------------------------------------------------------------------
# Raw tables: what each reader produces before validation


@dataclasses.dataclass(frozen=True)
class _RawTable:
    """Columns of unvalidated cells, with how to name a row in a message."""

    source: str
    columns: Mapping[str, list[Any] | np.ndarray]
    row_labels: np.ndarray  # label of each row as the user would find it
    row_word: str = "row"  # "row" for tables, "line" for JSON lines, "index" for arrays

    def __len__(self) -> int:
        return len(self.row_labels)


def _read_text(path: str) -> str:
    """Return the file decoded as UTF-8 (a byte-order mark dropped); a bad byte is reported with its line."""
    with open(path, "rb") as handle:
        content = handle.read()
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: found byte {content[error.start]:#04x}, which is not UTF-8; "
            "expected UTF-8 text (save the file as UTF-8)"
        ) from None


def _read_csv(path: str, delimiter: str) -> _RawTable:
    # strict: an unclosed or stray quote is an error, not a silently merged field.
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the file is empty; expected a header row and data rows")
        if not header:
            raise DataError(f"{path}, line 1: the header row is blank; expected column names")
        _check_header(path, header)
        cells: list[list[str]] = [[] for _ in header]
        for row_number, record in enumerate(reader, start=1):
            if not record:  # csv yields [] for a blank line; it holds no data to lose
                continue
            if len(record) != len(header):
                raise DataError(
                    f"{path}, row {row_number} (line {reader.line_num}): found {len(record)} fields, "
                    f"expected {len(header)} as in the header"
                )
            for column, cell in zip(cells, record, strict=True):
                column.append(cell)
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({error}); expected well-formed CSV") from None
    return _RawTable(path, dict(zip(header, cells, strict=True)), np.arange(1, len(cells[0]) + 1))


def _read_json_lines(path: str) -> _RawTable:
    records, lines = [], []
    # Split on newlines only: str.splitlines would also split inside strings at U+2028.
    for line_number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:  # ValueError: also integers too long to parse
            reason = getattr(error, "msg", None) or type(error).__name__
            raise DataError(
                f"{path}, line {line_number}: not valid JSON ({reason}); expected one object per line"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path}, line {line_number}: found {type(record).__name__}; expected a JSON object per line"
            )
        records.append(record)
        lines.append(line_number)
    header = list(dict.fromkeys(key for record in records for key in record))
    columns = {name: [record.get(name) for record in records] for name in header}
    return _RawTable(path, columns, np.asarray(lines, dtype=np.int64), row_word="line")


def _read_parquet(path: str) -> _RawTable:
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or convert the file to CSV"
        ) from None
    try:
        table = pq.read_table(path)
    except (pyarrow.ArrowException, OSError, ValueError) as error:
        raise DataError(f"{path}: cannot be read as Parquet ({error}); expected a Parquet file") from None
    _check_header(path, table.column_names)
    return _RawTable(path, table.to_pydict(), np.arange(1, table.num_rows + 1))


def _from_dataframe(frame: Any) -> _RawTable:
    header = [str(name) for name in frame.columns]
    _check_header("DataFrame", header)
    columns = {str(name): frame[name].to_numpy() for name in frame.columns}
    return _RawTable("DataFrame", columns, np.asarray(frame.index))


def _from_mapping(mapping: Mapping[str, Any]) -> _RawTable:
    _check_header("arrays", [str(name) for name in mapping])
    columns = {}
    for name, values in mapping.items():
        try:
            array = np.asarray(values)
            if array.dtype.kind in "iuf" and not isinstance(values, np.ndarray) and np.ndim(values):
                # NumPy reads [True, 2.5] as [1.0, 2.5]; keep the cells so that a flag is not a loss.
                if any(isinstance(value, bool | np.bool_) for value in values):
                    array = np.asarray(values, dtype=object)
        except (ValueError, TypeError) as error:  # ragged nested lists
            raise DataError(
                f"arrays, column {str(name)!r}: cannot make an array ({error}); expected one value per row"
            ) from None
        if array.ndim > 1:
            raise DataError(
                f"arrays, column {str(name)!r}: found shape {array.shape}; expected one value per row (1-D)"
            )
        columns[str(name)] = array.reshape(-1)
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"arrays: columns have different lengths {lengths}; expected equal lengths")
    n_rows = next(iter(lengths.values()), 0)
    # Arrays are indexed from 0, so their rows are named by that index.
    return _RawTable("arrays", columns, np.arange(n_rows), row_word="index")


def _check_header(source: str, header: Sequence[str]) -> None:
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not str(name).strip():
            raise DataError(f"{source}, header: column {position} has no name; expected a name for every column")
        if name in seen:
            raise DataError(f"{source}, header: column name {name!r} appears twice; expected unique names")
        seen.add(name)


_READERS: Mapping[str, Callable[[str], _RawTable]] = {
    ".csv": lambda path: _read_csv(path, ","),
    ".tsv": lambda path: _read_csv(path, "\t"),
    ".jsonl": _read_json_lines,
    ".ndjson": _read_json_lines,
    ".json": _read_json_lines,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
}


def _read_raw(source: Any) -> _RawTable:
    if isinstance(source, _RawTable):  # already read, e.g. assembled from training logs by bayescale.logs
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in _READERS:
            raise DataError(f"{path}: unknown file type {suffix or '(none)'!r}; expected one of {', '.join(_READERS)}")
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file")
        raw = _READERS[suffix](path)
    elif hasattr(source, "columns") and hasattr(source, "index"):
        raw = _from_dataframe(source)
    elif isinstance(source, Mapping):
        raw = _from_mapping(source)
    else:
        raise TypeError(
            f"cannot read a table from {type(source).__name__}; pass a path, a DataFrame or a mapping of arrays"
        )
    if len(raw) == 0:
        header = f" under the header {', '.join(map(repr, raw.columns))}" if raw.columns else ""
        raise DataError(f"{raw.source}: found no data rows{header}; expected one row per run (or per checkpoint)")
    return raw


# ---------------------------------------------------------------------------------------
# Validation: raw cells to typed, checked columns


def _resolve_mapping(raw: _RawTable, mapping: Mapping[str, str], extra: Sequence[str]) -> dict[str, str]:
    """Canonical (or extra) name to source column, checking that every named column exists."""
    resolved: dict[str, str] = {}
    for name, column in mapping.items():
        if column not in raw.columns:
            raise DataError(f"{raw.source}: no column {column!r} (mapped to {name}){_suggest(column, raw.columns)}")
        resolved[name] = column
    wanted = [*CANONICAL_COLUMNS, *extra]
    for name in wanted:
        if name in resolved:
            continue
        if name in raw.columns:
            resolved[name] = name
            continue
        # Letter case and stray spaces ("N, D, loss" has a header " D") do not hide a name.
        folded = [column for column in raw.columns if column.strip().lower() == name.lower()]
        if len(folded) == 1:
            resolved[name] = folded[0]
        elif name in extra:
            raise DataError(f"{raw.source}: no column {name!r}{_suggest(name, raw.columns)}")
    return resolved


def _closest(name: str, columns: Iterable[str]) -> str | None:
    """Return the column most likely meant by ``name``, or None when nothing is close.

    The closest spelling wins; failing that, the one column whose name hints at it
    ("params" for N, "tokens" for D).
    """
    columns = list(columns)
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
    if close:
        return close[0]
    hinted = [c for c in columns if any(hint in c.lower() for hint in _NAME_HINTS.get(name, ()))]
    return hinted[0] if len(hinted) == 1 else None


def _suggest(name: str, columns: Iterable[str]) -> str:
    columns = list(columns)
    close = _closest(name, columns)
    listing = ", ".join(repr(column) for column in columns[:12]) + (" ..." if len(columns) > 12 else "")
    return f"; did you mean {close!r}? (columns: {listing})" if close else f" (columns: {listing})"


def _parse_number(cell: Any) -> float | None:
    """Return a float, or None where the cell is not a number (text, blank, boolean)."""
    if isinstance(cell, bool | np.bool_) or cell is None:
        return None
    if isinstance(cell, int | float | np.integer | np.floating):
        try:
            return float(cell)
        except OverflowError:  # an integer beyond float range (JSON allows any length)
            return math.inf if cell > 0 else -math.inf
    if isinstance(cell, str):
        try:
            return float(cell.strip())
        except ValueError:
            return None
    return None


def _validate_numeric(raw: _RawTable, name: str, column: str, check) -> tuple[np.ndarray, dict[str, list]]:
    """Convert one column; return the values and the problems found, by kind."""
    test, expected = check
    cells = raw.columns[column]
    if isinstance(cells, np.ndarray) and cells.dtype.kind in "iuf":
        values = cells.astype(np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(values) & test(values))
        problems = {expected: [(int(i), values[i]) for i in np.flatnonzero(bad)]} if bad.any() else {}
        return values, problems
    values = np.empty(len(cells), dtype=np.float64)
    problems: dict[str, list] = {}
    for i, cell in enumerate(cells):
        number = _parse_number(cell)
        values[i] = np.nan if number is None else number
        if number is None or not math.isfinite(number) or not test(number):
            problems.setdefault(expected, []).append((i, cell))
    return values, problems


def _validate_labels(raw: _RawTable, column: str) -> tuple[np.ndarray, dict[str, list]]:
    cells = raw.columns[column]
    labels = np.empty(len(cells), dtype=object)
    problems: dict[str, list] = {}
    for i, cell in enumerate(cells):
        text = "" if cell is None or (isinstance(cell, float) and math.isnan(cell)) else str(cell).strip()
        labels[i] = text
        if not text:
            problems.setdefault("a non-empty run label", []).append((i, cell))
    return labels, problems


def _describe(cell: Any) -> str:
    """Return a cell as the user would recognise it, on one short line."""
    if isinstance(cell, np.generic):  # np.str_('x') and np.float64(1.0) read as 'x' and 1.0
        cell = cell.item()
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return "blank"
    text = repr(cell)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


_PLURALS = {"row": "rows", "line": "lines", "index": "indices"}


def _list_rows(labels: Sequence, word: str = "row") -> str:
    shown = ", ".join(str(label) for label in labels[:_MAX_LISTED])
    more = f" and {len(labels) - _MAX_LISTED} more" if len(labels) > _MAX_LISTED else ""
    return f"{_PLURALS.get(word, word) if len(labels) > 1 else word} {shown}{more}"


def _problem_message(raw: _RawTable, name: str, column: str, expected: str, found: list) -> str:
    where = f"{raw.source}, column {column!r}" + (f" (as {name})" if name != column else "")
    listed = ", ".join(f"{raw.row_word} {raw.row_labels[i]}: {_describe(cell)}" for i, cell in found[:_MAX_LISTED])
    more = f" and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
    return f"{where}: found {listed}{more}; expected {expected}"


def read_table(
    source: Any,
    mapping: Mapping[str, str] | None = None,
    *,
    columns: Sequence[str] = (),
    where: str | None = None,
    drop_invalid: bool = False,
    check_units: bool = True,
) -> ScalingData:
    """Read and validate a table of training runs.

    Parameters
    ----------
    source : str, os.PathLike, pandas.DataFrame or Mapping[str, array_like]
        A ``.csv``/``.tsv`` file, a JSON-lines file (``.jsonl``, ``.ndjson``, ``.json``), a
        Parquet file (needs pyarrow), a DataFrame, or a mapping of column name to values.
    mapping : Mapping[str, str], optional
        Canonical name to source column, e.g. ``{"N": "Model Size", "C": "Training FLOP"}``.
        Columns already named canonically (in any letter case) need no entry.
    columns : sequence of str, optional
        Further (non-canonical) columns to load as finite numbers, e.g. a law's extra input.
    where : str, optional
        A row filter such as ``"loss < 4.9"``, applied after validation; see
        :meth:`ScalingData.where`.
    drop_invalid : bool, default False
        Drop rows with invalid values, and rows that repeat or go back from an earlier step
        of their run, instead of raising; the drops are listed in :attr:`ScalingData.notes`.
    check_units : bool, default True
        Raise when ``N``, ``D`` and ``C`` are in plainly inconsistent units: fewer than
        1/100 tokens per parameter, or ``C`` more than a factor 10 from ``6 N D``. Pass
        False for data where that is right (a mixture of experts counting all its
        parameters, say).

    Returns
    -------
    ScalingData

    Raises
    ------
    DataError
        When the source cannot be read or has no rows, a mapped column is missing, a value
        is invalid, steps repeat or go back within a run, or the units are inconsistent;
        the message names the source, rows and column(s).
    """
    raw = _read_raw(source)
    resolved = _resolve_mapping(raw, dict(mapping or {}), columns)
    values: dict[str, np.ndarray] = {}
    invalid = np.zeros(len(raw), dtype=bool)
    messages: list[str] = []
    for name, column in resolved.items():
        check = CANONICAL_COLUMNS.get(name, _ANY_FINITE)
        if check is None:
            values[name], problems = _validate_labels(raw, column)
        else:
            values[name], problems = _validate_numeric(raw, name, column, check)
        for expected, found in problems.items():
            messages.append(_problem_message(raw, name, column, expected, found))
            invalid[[i for i, _ in found]] = True
    data = ScalingData(
        values,
        raw.source,
        np.asarray(raw.row_labels),
        {k: v for k, v in resolved.items() if k != v},
        unused=tuple(column for column in raw.columns if column not in resolved.values()),
        row_word=raw.row_word,
    )
    if "run" in data and "step" in data:  # runs without labels (a ladder) may share a step count
        out_of_order, order_messages = _step_order(data, ~invalid)
        invalid |= out_of_order
        messages += order_messages
    if messages and not drop_invalid:
        raise DataError(_first_of(messages))
    if invalid.any():
        data = data.select(~invalid, "--drop-invalid: " + "; ".join(messages))
    if check_units:
        _check_units(data)
    data = _derive_budget(data)
    return data.where(where) if where else data


def check_steps(data: ScalingData, *, drop_invalid: bool = False) -> ScalingData:
    """Check that within each run the steps increase in the order of the rows.

    A repeated step (a log concatenated twice) or a step lower than an earlier one (a run
    restarted from a checkpoint) makes the curve ambiguous. Without a ``run`` column the
    table is one run.

    Parameters
    ----------
    data : ScalingData
        Checkpoints with a ``step`` column, in the order they were read.
    drop_invalid : bool, default False
        Drop the offending rows (each one after the earlier rows it conflicts with)
        instead of raising; the drops are listed in :attr:`ScalingData.notes`.

    Returns
    -------
    ScalingData

    Raises
    ------
    DataError
        When a step repeats or goes back and ``drop_invalid`` is false.
    """
    out_of_order, messages = _step_order(data, np.ones(len(data), dtype=bool))
    if not messages:
        return data
    if not drop_invalid:
        raise DataError(_first_of(messages))
    return data.select(~out_of_order, "--drop-invalid: " + "; ".join(messages))


def _first_of(messages: Sequence[str]) -> str:
    return messages[0] + (f" (and {len(messages) - 1} more problem(s))" if len(messages) > 1 else "")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _columns_label(data: ScalingData, names: Sequence[str]) -> str:
    """How the source calls the columns behind canonical ``names``: "columns 'run' and 'iter' (as step)"."""
    labels = [repr(data.mapping.get(name, name)) + (f" (as {name})" if name in data.mapping else "") for name in names]
    return f"column {labels[0]}" if len(labels) == 1 else f"columns {', '.join(labels[:-1])} and {labels[-1]}"


def _step_order(data: ScalingData, usable: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Rows whose step repeats or falls below an earlier step of their run, and messages.

    Only ``usable`` rows (valid cells) take part; rows found out of order are not used as
    the reference for later ones, so one restart is reported at each of its rows.
    """
    steps = data["step"]
    runs = data["run"] if "run" in data else np.full(len(data), "", dtype=object)
    word = data.row_word
    first_at: dict[Any, dict[float, int]] = {}
    last: dict[Any, int] = {}
    repeated, backward = [], []
    for i in np.flatnonzero(usable):
        run, step = runs[i], steps[i]
        seen = first_at.setdefault(run, {})
        if step in seen:
            repeated.append((seen[step], i))
        elif run in last and step < steps[last[run]]:
            backward.append((last[run], i))
        else:
            seen[step] = i
            last[run] = i
    of_run = (lambda i: f"run {runs[i]!r}, ") if "run" in data else (lambda i: "")
    where = f"{data.source}, {_columns_label(data, [name for name in ('run', 'step') if name in data])}"
    messages = []
    if repeated:
        listed = ", ".join(
            f"{_PLURALS[word]} {data.rows[j]} and {data.rows[i]} ({of_run(i)}step {_number(steps[i])})"
            for j, i in repeated[:_MAX_LISTED]
        )
        more = f" and {len(repeated) - _MAX_LISTED} more" if len(repeated) > _MAX_LISTED else ""
        messages.append(
            f"{where}: found {listed}{more} that repeat the same step; expected one row per step of a run "
            "(--drop-invalid keeps the first)"
        )
    if backward:
        listed = ", ".join(
            f"{word} {data.rows[i]} ({of_run(i)}step {_number(steps[i])} after step {_number(steps[j])} "
            f"at {word} {data.rows[j]})"
            for j, i in backward[:_MAX_LISTED]
        )
        more = f" and {len(backward) - _MAX_LISTED} more" if len(backward) > _MAX_LISTED else ""
        messages.append(
            f"{where}: found {listed}{more}; expected steps that increase within each run in the order of the rows "
            "(sort by run and step, or remove the rows of a restarted run; --drop-invalid drops them)"
        )
    out_of_order = np.zeros(len(data), dtype=bool)
    out_of_order[[i for _, i in repeated + backward]] = True
    return out_of_order, messages


def _check_units(data: ScalingData) -> None:
    """Raise :class:`DataError` where N, D and C are in plainly inconsistent units."""
    columns = data.columns
    word = data.row_word

    def listing(rows: np.ndarray, describe: Callable[[int], str], shown: int = 3) -> str:
        # Units are usually off in every row: a few examples say it, the count says how far.
        text = ", ".join(f"{word} {data.rows[i]}: {describe(i)}" for i in rows[:shown])
        return text + (f" and {len(rows) - shown} more of {len(data)} rows" if len(rows) > shown else "")

    with np.errstate(all="ignore"):  # 6ND may overflow for absurd values; they fail the test
        if "N" in columns and ("D" in columns or "C" in columns):
            given = "D" in columns
            tokens = columns["D"] if given else columns["C"] / (6.0 * columns["N"])
            low = np.flatnonzero(tokens / columns["N"] < _MIN_TOKENS_PER_PARAM)
            if len(low):
                names = ["D", "N"] if given else ["C", "N"]
                value = "D" if given else "C/(6N)"
                ratio = tokens / columns["N"]
                found = listing(
                    low, lambda i: f"{value} = {tokens[i]:.3g}, N = {columns['N'][i]:.3g} (D/N = {ratio[i]:.2g})"
                )
                units = "tokens and parameters as plain counts, not millions or billions" + (
                    "" if given else ", and C in FLOPs, not PF-days"
                )
                raise DataError(
                    f"{data.source}, {_columns_label(data, names)}: found {found}; expected at least "
                    f"{_MIN_TOKENS_PER_PARAM:g} tokens per parameter ({units}); {_UNIT_OVERRIDE}"
                )
        if {"N", "D", "C"} <= columns.keys():
            factor = columns["C"] / (6.0 * columns["N"] * columns["D"])
            off = np.flatnonzero(~((factor >= 1 / _COMPUTE_FACTOR) & (factor <= _COMPUTE_FACTOR)))
            if len(off):
                found = listing(off, lambda i: f"C = {columns['C'][i]:.3g}, 6*N*D = {columns['C'][i] / factor[i]:.3g}")
                raise DataError(
                    f"{data.source}, {_columns_label(data, ['C', 'N', 'D'])}: found {found}; expected C within a "
                    f"factor {_COMPUTE_FACTOR:g} of 6*N*D (C in FLOPs, not PF-days; N and D plain counts); "
                    f"{_UNIT_OVERRIDE}"
                )


def _derive_budget(data: ScalingData) -> ScalingData:
    """Fill in C = 6ND or D = C/(6N), with a note, when one of the three is missing."""
    columns = dict(data.columns)
    with np.errstate(all="ignore"):  # checked below
        if "C" not in columns and {"N", "D"} <= columns.keys():
            name, formula, columns["C"] = "C", "6*N*D", 6.0 * columns["N"] * columns["D"]
        elif "D" not in columns and {"N", "C"} <= columns.keys():
            name, formula, columns["D"] = "D", "C/(6*N)", columns["C"] / (6.0 * columns["N"])
        else:
            return data
    bad = np.flatnonzero(~(np.isfinite(columns[name]) & (columns[name] > 0)))
    if len(bad):  # only for values beyond any real run (N*D above 1e307)
        raise DataError(
            f"{data.source}: {name} = {formula} overflows or underflows at "
            f"{_list_rows(data.rows[bad], data.row_word)}; expected values a float can hold"
        )
    note = f"{name} was not given: computed as {formula}"
    return dataclasses.replace(data, columns=columns, notes=(*data.notes, note))


def as_data(source: Any, mapping: Mapping[str, str] | None = None, **kwargs) -> ScalingData:
    """Return ``source`` as :class:`ScalingData`, reading it with :func:`read_table` if needed."""
    if isinstance(source, ScalingData):
        if mapping or kwargs:
            raise TypeError("mapping and reader options apply when reading a table, not to ScalingData")
        return source
    return read_table(source, mapping, **kwargs)


# ---------------------------------------------------------------------------------------
# Row filters


_CLAUSE = re.compile(
    r"""^\s*(?:(?P<name>[A-Za-z_][\w.]*)|["'`](?P<quoted>[^"'`]+)["'`])\s*
    (?P<op><=|>=|==|!=|<|>)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$""",
    re.VERBOSE,
)
_OPERATORS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _parse_where(expression: str, columns: Mapping[str, np.ndarray], source: str) -> np.ndarray:
    keep = np.ones(len(next(iter(columns.values()), ())), dtype=bool)
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if not match:
            raise DataError(
                f"--where {expression!r}: cannot read {clause!r}; expected NAME OP NUMBER, e.g. 'loss < 4.9'"
            )
        name = match["name"] or match["quoted"]
        if name not in columns or columns[name].dtype == object:
            numeric = [column for column, values in columns.items() if values.dtype != object]
            raise DataError(f"{source}: --where names {name!r}, which is not a numeric column{_suggest(name, numeric)}")
        keep &= _OPERATORS[match["op"]](columns[name], float(match["value"]))
    return keep
