"""Property tests of the readers: any table loads exactly or fails with bayescale's own error.

Tables are generated cell by cell (numbers, blanks, text, nan, inf, negatives, quoting,
extra columns, unicode names) and written as CSV/TSV, JSON lines, a DataFrame or a dict of
arrays. An oracle written from the documented rules says whether each table is valid; a
valid one must load with its row count and every value preserved (floats bit for bit), an
invalid one must raise :class:`~bayescale.errors.DataError`, and nothing may raise anything
else. Derandomized, so the suite is deterministic.
"""

import csv
import json
import math
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import bayescale as bs
from bayescale.errors import BayescaleError, DataError

pandas = pytest.importorskip("pandas")

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

NUMERIC = {"N": 0.0, "D": 0.0, "C": 0.0, "loss": 0.0, "step": None}  # name: exclusive lower bound (None: >= 0)
CANONICAL = [*NUMERIC, "run"]

# Names of extra columns: any text that is not a canonical name in disguise (" Loss" reads as
# loss) and has no byte-order mark (a file's first one is dropped).
extra_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff"), min_size=1, max_size=8
).filter(lambda name: name.strip() and name.strip().lower() not in {c.lower() for c in CANONICAL})
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
positive_floats = st.floats(min_value=1e-300, max_value=1e300)
awkward_text = st.sampled_from(
    ["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-0", "0", " 1.5 ", "1_000", "0x10", "true", "n/a", "١٢"]
)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


def cell_text(clean: bool):
    """Cells as text: clean positive numbers, or anything a spreadsheet export might hold."""
    if clean:
        return positive_floats.map(repr)
    return st.one_of(
        st.floats().map(repr),
        st.integers(-(10**30), 10**30).map(str),
        positive_floats.map(repr),
        awkward_text,
        any_text,
    )


@st.composite
def tables(draw):
    """A header and rows of text cells: some canonical columns, some extra, 0-6 rows."""
    canonical = draw(st.lists(st.sampled_from(CANONICAL), unique=True, max_size=5))
    extra = draw(st.lists(extra_names, unique=True, max_size=3))
    header = draw(st.permutations(canonical + extra))
    num_rows = draw(st.integers(0, 6))
    columns = {}
    for name in header:
        clean = draw(st.booleans())
        if name == "run":
            labels = st.sampled_from(["a", "b", " a ", "run 1"]) if clean else st.one_of(awkward_text, any_text)
            columns[name] = draw(st.lists(labels, min_size=num_rows, max_size=num_rows))
        elif name == "step" and clean:
            columns[name] = [str(v) for v in draw(st.lists(st.integers(0, 50), min_size=num_rows, max_size=num_rows))]
        else:
            columns[name] = draw(st.lists(cell_text(clean and name in NUMERIC), min_size=num_rows, max_size=num_rows))
    return header, columns, num_rows


def parse(cell):
    """The number a cell holds under the documented rules, or None (booleans are not numbers)."""
    if cell is None or isinstance(cell, bool | np.bool_):
        return None
    if isinstance(cell, int | float | np.integer | np.floating):
        try:
            return float(cell)
        except OverflowError:
            return math.inf
    if isinstance(cell, str):
        try:
            return float(cell.strip())
        except ValueError:
            return None
    return None


def oracle(columns, num_rows):
    """The canonical columns a valid table loads as (derived C or D included), or None."""
    if num_rows == 0:
        return None
    expected = {}
    for name, cells in columns.items():
        if name == "run":
            labels = [
                "" if cell is None or (isinstance(cell, float) and math.isnan(cell)) else str(cell).strip()
                for cell in cells
            ]
            if not all(labels):
                return None
            expected[name] = labels
        elif name in NUMERIC:
            values = [parse(cell) for cell in cells]
            bound = NUMERIC[name]
            if any(v is None or not math.isfinite(v) or (v <= bound if bound is not None else v < 0) for v in values):
                return None
            expected[name] = values
    if "run" in expected and "step" in expected:  # steps increase within each run, in file order
        last = {}
        for run, step in zip(expected["run"], expected["step"], strict=True):
            if run in last and step <= last[run]:
                return None
            last[run] = step
    with np.errstate(all="ignore"):
        if "C" not in expected and {"N", "D"} <= expected.keys():
            expected["C"] = list(6.0 * np.asarray(expected["N"]) * np.asarray(expected["D"]))
            derived = "C"
        elif "D" not in expected and {"N", "C"} <= expected.keys():
            expected["D"] = list(np.asarray(expected["C"]) / (6.0 * np.asarray(expected["N"])))
            derived = "D"
        else:
            derived = None
    if derived and not all(math.isfinite(v) and v > 0 for v in expected[derived]):
        return None
    return expected


def check(source, columns, num_rows):
    """Read ``source``: exactly the oracle's table, or a DataError when the oracle says invalid."""
    expected = oracle(columns, num_rows)
    event("valid" if expected is not None else "invalid")  # --hypothesis-show-statistics: both occur
    if expected is None:
        with pytest.raises(DataError):
            bs.read_table(source, check_units=False)
        return
    data = bs.read_table(source, check_units=False)
    assert len(data) == num_rows
    assert set(data.columns) == set(expected)
    for name, values in expected.items():
        if name == "run":
            assert list(data[name]) == values
        else:
            np.testing.assert_array_equal(data[name], np.asarray(values, dtype=np.float64))


def write_csv(header, columns, num_rows, *, delimiter, quoting, lineterminator):
    handle = tempfile.NamedTemporaryFile(
        "w", suffix=".csv" if delimiter == "," else ".tsv", delete=False, newline="", encoding="utf-8"
    )
    fields = [*header, *(cell for cells in columns.values() for cell in cells)]
    if lineterminator == "\n" and any("\r" in field for field in fields):
        # Python's writer quotes only the characters of its own line terminator, and a bare
        # CR ends a line for every CSV reader: quote everything to write the table we mean.
        quoting = csv.QUOTE_ALL
    with handle:
        writer = csv.writer(handle, delimiter=delimiter, quoting=quoting, lineterminator=lineterminator)
        writer.writerow(header)
        for i in range(num_rows):
            writer.writerow([columns[name][i] for name in header])
    return handle.name


@SETTINGS
@given(
    table=tables(),
    delimiter=st.sampled_from([",", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    lineterminator=st.sampled_from(["\n", "\r\n"]),
)
def test_csv_loads_exactly_or_raises_data_error(table, delimiter, quoting, lineterminator):
    header, columns, num_rows = table
    path = write_csv(header, columns, num_rows, delimiter=delimiter, quoting=quoting, lineterminator=lineterminator)
    try:
        check(path, columns, num_rows) if header else check_no_header(path)
    finally:
        os.remove(path)


def check_no_header(path):
    with pytest.raises(DataError):
        bs.read_table(path)


@SETTINGS
@given(table=tables(), text=st.text(max_size=40))
def test_unit_checks_raise_only_data_errors(table, text):
    # With the unit checks on, a table loads or raises DataError; a random text file too.
    header, columns, num_rows = table
    if not header:
        return
    path = write_csv(header, columns, num_rows, delimiter=",", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    with open(path.replace(".csv", ".txt.csv"), "w", encoding="utf-8") as handle:
        handle.write(text)
    try:
        for candidate in (path, handle.name):
            try:
                bs.read_table(candidate)
            except BayescaleError:
                pass
    finally:
        os.remove(path)
        os.remove(handle.name)


# Cells as Python objects, for DataFrames, dicts of lists and JSON lines.
objects = st.one_of(
    st.floats(),
    st.integers(-(10**40), 10**40),
    positive_floats,
    st.none(),
    st.booleans(),
    awkward_text,
    any_text,
)


@st.composite
def object_tables(draw, cells=objects):
    """Columns of Python objects: two in three canonical columns clean, the rest anything."""
    canonical = draw(st.lists(st.sampled_from(CANONICAL), unique=True, min_size=1, max_size=5))
    extra = draw(st.lists(extra_names, unique=True, max_size=2))
    num_rows = draw(st.integers(0, 6))
    columns = {}
    for name in canonical + extra:
        clean = draw(st.integers(0, 2)) > 0
        if clean and name in NUMERIC:
            strategy = st.integers(0, 50) if name == "step" else positive_floats
        elif clean and name == "run":
            strategy = st.sampled_from(["a", "b"])
        else:
            strategy = cells
        columns[name] = draw(st.lists(strategy, min_size=num_rows, max_size=num_rows))
    return columns, num_rows


def dict_view(columns):
    """What a dict of lists holds once NumPy has read it: [1.5, "x"] is read as text."""
    out = {}
    for name, cells in columns.items():
        array = np.asarray(cells)
        out[name] = cells if array.dtype == object or any(isinstance(c, bool) for c in cells) else list(array.tolist())
    return out


@SETTINGS
@given(table=object_tables())
def test_dict_of_lists_loads_exactly_or_raises_data_error(table):
    columns, num_rows = table
    check(columns, dict_view(columns), num_rows)


@SETTINGS
@given(table=object_tables())
def test_dataframe_loads_exactly_or_raises_data_error(table):
    columns, num_rows = table
    frame = pandas.DataFrame(columns) if num_rows else pandas.DataFrame({name: [] for name in columns})
    cells = {name: list(frame[name].to_numpy()) for name in frame.columns}
    check(frame, cells, num_rows)


json_values = st.one_of(
    objects, st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)
)


@SETTINGS
@given(table=object_tables(json_values), data=st.data(), ascii_only=st.booleans())
def test_json_lines_load_exactly_or_raise_data_error(table, data, ascii_only):
    columns, num_rows = table
    # A key left out of a record is a blank cell: one in ten.
    records = [
        {name: cells[i] for name, cells in columns.items() if data.draw(st.integers(0, 9))} for i in range(num_rows)
    ]
    handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
    with handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=ascii_only) + "\n")
    names = list(dict.fromkeys(name for record in records for name in record))
    columns = {name: [record.get(name) for record in records] for name in names}
    try:
        check(handle.name, columns, num_rows)
    finally:
        os.remove(handle.name)
