"""Readers and validation: tables load exactly, or fail naming the file, row and column."""

import json

import numpy as np
import pytest

import bayescale as bs
from bayescale.errors import DataError


@pytest.fixture
def runs_csv(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("Model Size,tokens,loss\n1e8,2e9,3.1\n4e8,8e9,2.8\n1.6e9,3.2e10,2.5\n")
    return path


def test_csv_with_mapping_derives_compute(runs_csv):
    data = bs.read_table(runs_csv, {"N": "Model Size", "D": "tokens"})
    assert len(data) == 3
    np.testing.assert_array_equal(data["N"], [1e8, 4e8, 1.6e9])
    np.testing.assert_allclose(data["C"], 6 * data["N"] * data["D"])
    assert any("6*N*D" in note for note in data.notes)
    assert data.mapping == {"N": "Model Size", "D": "tokens"}


def test_tokens_derived_from_compute(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,C,loss\n1e8,1.2e18,3.0\n")
    data = bs.read_table(path)
    np.testing.assert_allclose(data["D"], [1.2e18 / 6e8])
    assert any("C/(6*N)" in note for note in data.notes)


def test_json_lines_and_mapping_of_arrays_agree(tmp_path, runs_csv):
    path = tmp_path / "runs.jsonl"
    rows = [{"N": 1e8, "D": 2e9, "loss": 3.1}, {"N": 4e8, "D": 8e9, "loss": 2.8}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    from_lines = bs.read_table(path)
    from_arrays = bs.read_table({"N": [1e8, 4e8], "D": [2e9, 8e9], "loss": [3.1, 2.8]})
    for name in ("N", "D", "C", "loss"):
        np.testing.assert_array_equal(from_lines[name], from_arrays[name])


def test_dataframe_input_keeps_index_as_row_labels():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"N": [1e8, 4e8], "D": [2e9, 8e9], "loss": [3.1, -2.8]}, index=[10, 11])
    with pytest.raises(DataError, match=r"DataFrame, column 'loss': found row 11: -2\.8; expected a positive"):
        bs.read_table(frame)


def test_case_insensitive_canonical_names(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("n,d,Loss\n1e8,2e9,3.1\n")
    assert set(bs.read_table(path).columns) == {"N", "D", "C", "loss"}


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("N,D,loss\n1e8,2e9,abc\n", r"runs\.csv, column 'loss': found row 1: 'abc'; expected a positive finite number"),
        ("N,D,loss\n1e8,2e9,\n", r"row 1: blank"),
        ("N,D,loss\n1e8,2e9,0\n", r"row 1: '0'; expected a positive"),
        ("N,D,loss\n1e8,2e9,nan\n", r"row 1: 'nan'"),
        ("N,D,loss\n-1e8,2e9,3\n", r"column 'N': found row 1: '-1e8'"),
        ("N,D,loss\n1e8,2e9\n", r"row 1 \(line 2\): found 2 fields, expected 3"),
        ("", r"the file is empty"),
        ("N,N,loss\n1,2,3\n", r"'N' appears twice"),
    ],
)
def test_bad_files_name_the_place(tmp_path, content, pattern):
    path = tmp_path / "runs.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=pattern):
        bs.read_table(path)


def test_missing_mapped_column_suggests_the_closest(runs_csv):
    with pytest.raises(DataError, match=r"no column 'Model size' \(mapped to N\); did you mean 'Model Size'\?"):
        bs.read_table(runs_csv, {"N": "Model size"})


def test_law_inputs_missing(runs_csv):
    data = bs.read_table(runs_csv, {"N": "Model Size"})
    with pytest.raises(DataError, match=r"law 'chinchilla' needs column\(s\) D"):
        data.require(("N", "D", "loss"), "law 'chinchilla'")


def test_where_filter_reports_what_it_dropped(runs_csv):
    data = bs.read_table(runs_csv, {"N": "Model Size", "D": "tokens"}, where="loss < 3 and N >= 2e8")
    np.testing.assert_array_equal(data["loss"], [2.8, 2.5])
    assert "kept 2 of 3 rows (dropped row 1)" in data.notes[-1]


@pytest.mark.parametrize("expression", ["loss <", "loss ~ 3", "nope < 3"])
def test_bad_where_expressions(runs_csv, expression):
    with pytest.raises(DataError):
        bs.read_table(runs_csv, {"N": "Model Size"}, where=expression)


def test_drop_invalid_lists_the_dropped_rows(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n1e8,2e9,3.1\n1e8,2e9,oops\n4e8,8e9,2.8\n")
    data = bs.read_table(path, drop_invalid=True)
    assert len(data) == 2
    assert "kept 2 of 3 rows (dropped row 2)" in data.notes[0]
    np.testing.assert_array_equal(data.rows, [1, 3])


def test_data_is_immutable(runs_csv):
    data = bs.read_table(runs_csv, {"N": "Model Size"})
    with pytest.raises(ValueError, match="read-only"):
        data["loss"][0] = 1.0


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown file type '.xlsx'"):
        bs.read_table(tmp_path / "runs.xlsx")
    with pytest.raises(DataError, match="no such file"):
        bs.read_table(tmp_path / "absent.csv")


def test_bundled_example_applies_epochs_filter():
    data = bs.load_example("chinchilla")
    raw = bs.load_example("chinchilla", published_filter=False)
    assert (len(raw), len(data)) == (245, 240)
    assert np.sort(raw["loss"])[-5] not in data["loss"]
    assert data["loss"].max() < np.sort(raw["loss"])[-5]


def test_parquet_round_trip(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "runs.parquet"
    pq.write_table(pyarrow.table({"N": [1e8, 4e8], "D": [2e9, 8e9], "loss": [3.1, 2.8]}), path)
    data = bs.read_table(path)
    np.testing.assert_array_equal(data["loss"], [3.1, 2.8])
    np.testing.assert_array_equal(data.rows, [1, 2])
