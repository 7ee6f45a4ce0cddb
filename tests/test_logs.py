"""Training logs: W&B exports and TensorBoard event files load into the tidy table, exactly."""

import json
import sys
import time
import warnings

import numpy as np
import pytest

import bayescale as bs
from bayescale.errors import DataError, DownsampledLogWarning
from bayescale.logs import detect_format, read

METRIC = "eval/c4_en-validation/CrossEntropyLoss"
# A W&B history as exported: its own columns, two metrics, and the eval loss blank at the
# steps where only the train loss was logged.
HISTORY = f"""_step,_runtime,_timestamp,train/loss,{METRIC}
0,1.5,1700000000.1,4.51,
1,3.0,1700000001.6,4.02,
2,4.5,1700000003.1,3.77,3.8123456789
3,6.0,1700000004.6,3.61,
4,7.5,1700000006.1,3.52,3.4417
"""
STEPS, LOSSES, ROWS = [2.0, 4.0], [3.8123456789, 3.4417], [3, 5]


@pytest.fixture
def history(tmp_path):
    path = tmp_path / "run-1.csv"
    path.write_text(HISTORY)
    return path


@pytest.fixture
def folder(tmp_path):
    """Two runs, one file each, and a runs table beside them."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "small.csv").write_text(HISTORY)
    (runs / "large.csv").write_text(f"_step,{METRIC}\n0,\n10,3.1\n20,2.9\n")
    (runs / "runs.csv").write_text("run,N,tokens_per_step,notes\nsmall,1e8,1024,first try\nlarge,4e8,2048,\n")
    return runs


def test_wide_csv_keeps_the_metric_where_it_was_logged(history):
    data = bs.read_wandb(history, metric=METRIC)
    np.testing.assert_array_equal(data["loss"], LOSSES)
    np.testing.assert_array_equal(data["step"], STEPS)
    assert list(data["run"]) == ["run-1", "run-1"]
    assert list(data.rows) == ROWS  # data rows of the file, as every message counts them
    assert data.mapping == {"loss": METRIC, "step": "_step"}
    assert f"{METRIC!r} was not logged at 3 of 5 rows" in data.notes[0]
    assert data.source == str(history)


def test_wide_parquet_json_lines_and_dataframe_read_the_same(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    import pyarrow.parquet as pq

    logged = {
        "_step": [0, 1, 2, 3, 4],
        "train/loss": [4.51, 4.02, 3.77, 3.61, 3.52],
        METRIC: [None, None, 3.8123456789, None, 3.4417],
    }
    pq.write_table(pyarrow.table(logged), tmp_path / "run-1.parquet")
    with open(tmp_path / "run-1.jsonl", "w") as handle:
        for i, step in enumerate(logged["_step"]):
            # scan_history() rows: a metric not logged at a step is absent, or null.
            record = {"_step": step, "train/loss": logged["train/loss"][i]}
            if logged[METRIC][i] is not None or i == 1:
                record[METRIC] = logged[METRIC][i]
            handle.write(json.dumps(record) + "\n")
    frame = pd.DataFrame(logged).astype({METRIC: float})  # as run.history() gives it: NaN where not logged
    for source in (tmp_path / "run-1.parquet", tmp_path / "run-1.jsonl", frame):
        data = bs.read_wandb(source, metric=METRIC)
        np.testing.assert_array_equal(data["loss"], LOSSES)
        np.testing.assert_array_equal(data["step"], STEPS)
        assert "was not logged at 3 of 5 rows" in data.notes[0]
    assert detect_format(tmp_path / "run-1.parquet") == detect_format(tmp_path / "run-1.jsonl") == "wandb"


def test_folder_of_runs_joins_the_runs_table(folder):
    data = bs.read_wandb(folder, metric=METRIC, runs=folder / "runs.csv")
    assert list(data["run"]) == ["large", "large", "small", "small"]  # files in name order; runs.csv is not a run
    np.testing.assert_array_equal(data["loss"], [3.1, 2.9, *LOSSES])
    np.testing.assert_array_equal(data["N"], [4e8, 4e8, 1e8, 1e8])
    np.testing.assert_array_equal(data["D"], data["step"] * [2048, 2048, 1024, 1024])
    np.testing.assert_array_equal(data["C"], 6 * data["N"] * data["D"])
    assert list(data.rows) == ["2 in large.csv", "3 in large.csv", "3 in small.csv", "5 in small.csv"]
    assert data.notes[1:] == (
        f"per-run values from {folder / 'runs.csv'}: N, tokens_per_step",
        "D was not given: computed as step * tokens_per_step",
        "C was not given: computed as 6*N*D",
    )


def test_run_labels_from_a_name_column_and_constants_for_every_run(tmp_path):
    path = tmp_path / "sweep.csv"
    path.write_text("name,step,loss\nwide,1,3.0\nwide,2,2.5\ndeep,1,3.2\n")
    data = bs.read_wandb(path, runs={"N": 1e8, "D": 2e9})
    assert list(data["run"]) == ["wide", "wide", "deep"]
    np.testing.assert_array_equal(data["N"], [1e8] * 3)
    assert "metric 'loss' read as the loss" in data.notes[0]  # the only candidate, said so


def test_step_run_and_further_columns_by_mapping(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text(
        "_step,trainer/global_step,train/lr,eval/loss,experiment\n0,100,,,x1\n1,200,1e-3,2.5,x1\n2,300,8e-4,2.4,x2\n"
    )
    mapping = {"step": "trainer/global_step", "lr": "train/lr", "run": "experiment"}
    data = bs.read_wandb(path, mapping=mapping, runs={"run": ["x1", "x2"], "N": [1e8, 2e8]})
    np.testing.assert_array_equal(data["step"], [200, 300])
    np.testing.assert_array_equal(data["lr"], [1e-3, 8e-4])
    np.testing.assert_array_equal(data["N"], [1e8, 2e8])
    assert list(data["run"]) == ["x1", "x2"]
    assert data.mapping == {"loss": "eval/loss", "step": "trainer/global_step", "lr": "train/lr"}


def test_an_lr_column_is_read_only_where_logged_with_the_metric(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("_step,lr,eval/loss\n0,1e-3,\n1,,2.5\n2,8e-4,2.4\n")
    data = bs.read_wandb(path)
    assert "lr" not in data
    assert any(note.startswith("column 'lr' left out: blank at some steps") for note in data.notes)
    path.write_text("_step,lr,eval/loss\n0,1e-3,\n1,9e-4,2.5\n2,8e-4,2.4\n")
    np.testing.assert_array_equal(bs.read_wandb(path)["lr"], [9e-4, 8e-4])


@pytest.mark.parametrize(
    ("content", "options", "pattern"),
    [
        (HISTORY, {}, f"which metric is the loss? 2 are named like a loss: 'train/loss', '{METRIC}'"),
        (HISTORY, {"metric": "eval/c4_en-validation/CrossEntropyLos"}, f"did you mean '{METRIC}'?"),
        ("_step,accuracy\n0,0.5\n", {}, "none is named like a loss; metrics: 'accuracy'"),
        ("_step,eval/loss\n0,2.5\n1,x\n", {}, "run.csv, column 'eval/loss' (as loss): found row 2: 'x'"),
        ("_step,eval/loss\n0,2.5\n1,-1\n", {}, "expected a positive finite number"),
        ("iteration,eval/loss\n0,2.5\n", {}, "no step column; expected '_step' (W&B) or 'step'"),
        ("_step,eval/loss\n0,2.5\n", {"mapping": {"lr": "train/lr"}}, "no column 'train/lr' (for lr) in the logs"),
    ],
)
def test_errors_name_the_file_row_and_column(tmp_path, content, options, pattern):
    path = tmp_path / "run.csv"
    path.write_text(content)
    with pytest.raises(DataError) as caught:
        bs.read_wandb(path, **options)
    assert pattern in str(caught.value)


def test_errors_in_a_folder_name_the_file(folder):
    (folder / "large.csv").write_text(f"_step,{METRIC}\n0,\n10,3.1\n20,nan\n")
    with pytest.raises(DataError, match=r"found row 3 in large.csv: 'nan'"):
        bs.read_wandb(folder, metric=METRIC, runs=folder / "runs.csv")


@pytest.mark.parametrize(
    ("table", "pattern"),
    [
        ("run,N\nsmall,1e8\n", r"runs.csv: no row for run\(s\) 'large' of the logs"),
        ("run,N\nsmall,1e8\nlarge,4e8\nlarge,5e8\n", "run 'large' is in rows 2 and 3; expected one row per run"),
        ("N\n1e8\n4e8\n", "no 'run' or 'name' column to match its 2 rows"),
        ("run,N\nsmall,1e8\nlarge,big\n", "runs.csv, column 'N': found row 2: 'big'"),
        ("run,notes\nsmall,a\nlarge,b\n", "no per-run values; expected columns such as N, D"),
    ],
)
def test_runs_table_errors(folder, tmp_path, table, pattern):
    (tmp_path / "runs.csv").write_text(table)
    with pytest.raises(DataError, match=pattern):
        bs.read_wandb(folder, metric=METRIC, runs=tmp_path / "runs.csv")


def test_a_file_without_the_metric_is_left_out_with_a_note(folder):
    (folder / "system.csv").write_text("_step,gpu/util\n0,0.9\n")
    data = bs.read_wandb(folder, metric=METRIC)
    assert set(data["run"]) == {"small", "large"}
    assert f"files without a column {METRIC!r} left out: runs.csv, system.csv" in data.notes


def _log_with_steps(path, steps):
    lines = ["_step,eval/loss"] + [f"{step},{3.0 + 1 / (1 + step):.6f}" for step in steps]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("points", "sampled", "warns"),
    [
        (500, True, True),  # W&B's run.history() default: 500 rows, uneven gaps
        (1000, True, True),  # TensorBoard's dashboard default: 1000 points
        (500, False, False),  # a complete log that happens to have 500 points, evenly spaced
        (499, True, False),  # uneven but not at an exporter's cap: a log written so
    ],
)
def test_downsampled_logs_warn(tmp_path, points, sampled, warns):
    rng = np.random.default_rng(0)
    grid = np.arange(0, 10 * 5000, 10)  # logged every 10 steps
    steps = np.sort(rng.choice(grid, points, replace=False)) if sampled else grid[:points]
    path = tmp_path / "run.csv"
    _log_with_steps(path, steps)
    if warns:
        with pytest.warns(DownsampledLogWarning, match=r"run\.scan_history\(\).*--samples_per_plugin scalars=0"):
            bs.read_wandb(path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(bs.read_wandb(path)) == points


def test_an_off_grid_final_step_is_not_downsampling(tmp_path):
    path = tmp_path / "run.csv"
    _log_with_steps(path, [*range(0, 4990, 10), 4995])  # 500 points, the last at the end of training
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bs.read_wandb(path)


def test_detect_format_and_read_dispatch(tmp_path, history, folder):
    tidy = tmp_path / "tidy.csv"
    tidy.write_text("step,train_loss\n1,3.0\n2,2.5\n")
    events = tmp_path / "tb" / "run-a"
    events.mkdir(parents=True)
    (events / "events.out.tfevents.1.host").write_bytes(b"")
    assert detect_format(history) == detect_format(folder) == "wandb"
    assert detect_format(tidy) == "table"
    assert detect_format(tmp_path / "tb") == detect_format(events / "events.out.tfevents.1.host") == "tensorboard"
    assert detect_format(tmp_path / "absent.csv") == "table"  # read_table says it is missing
    # For a table, the metric is the column read as the loss.
    np.testing.assert_array_equal(read(tidy, metric="train_loss")["loss"], [3.0, 2.5])
    with pytest.raises(DataError, match="a runs table joins per-run values to W&B or TensorBoard logs"):
        read(tidy, metric="train_loss", runs=folder / "runs.csv")
    with pytest.raises(DataError, match="name different columns"):
        read(history, metric=METRIC, mapping={"loss": "train/loss"})


# ---------------------------------------------------------------------------------------
# TensorBoard


def _write_events(folder, events):
    """Write (tag, step, value) scalars as TensorBoard's v1 simple_value events, as PyTorch's writer does."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for tag, step, value in events:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        writer.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary))
    writer.close()


@pytest.fixture
def tensorboard_logs(tmp_path):
    """Two runs: one written by TensorBoard's framework-free writer (v2 tensor scalars), one as v1 events."""
    pytest.importorskip("tensorboard")
    from tensorboard.summary import Writer

    writer = Writer(str(tmp_path / "logs" / "run-a"))
    for step in range(100, 600, 100):
        writer.add_scalar("eval/loss", 3.0 + 100 / step, step)
        writer.add_scalar("train/lr", 1e-3 * 100 / step, step)
    writer.close()
    _write_events(tmp_path / "logs" / "run-b" / "eval", [("eval/loss", 100, 2.7), ("eval/loss", 200, 2.6)])
    return tmp_path / "logs"


def test_tensorboard_runs_load_every_event_exactly(tensorboard_logs):
    data = bs.read_tensorboard(tensorboard_logs)
    assert detect_format(tensorboard_logs) == "tensorboard"
    assert list(data["run"]) == ["run-a"] * 5 + ["run-b/eval"] * 2
    np.testing.assert_array_equal(data["step"], [100, 200, 300, 400, 500, 100, 200])
    # Event files hold 32-bit floats; the values are read as stored.
    expected = [np.float32(3.0 + 100 / step) for step in range(100, 600, 100)] + [np.float32(2.7), np.float32(2.6)]
    np.testing.assert_array_equal(data["loss"], np.array(expected, dtype=np.float64))
    assert list(data.rows[:2]) == ["100 in run-a", "200 in run-a"]
    assert "metric 'eval/loss' read as the loss" in data.notes[0]
    # run-b logged no learning rate at its steps: a blank, named by step and run.
    with pytest.raises(DataError, match=r"column 'train/lr' \(as lr\): found step 100 in run-b/eval: blank"):
        bs.read_tensorboard(tensorboard_logs, tag="eval/loss", mapping={"lr": "train/lr"})
    data = bs.read_tensorboard(tensorboard_logs / "run-a", tag="eval/loss", mapping={"lr": "train/lr"})
    np.testing.assert_array_equal(data["lr"], np.array([np.float32(1e-3 * 100 / s) for s in range(100, 600, 100)]))
    assert set(data["run"]) == {"run-a"}


def test_tensorboard_restart_keeps_the_value_written_last(tensorboard_logs):
    run = tensorboard_logs / "run-b" / "eval"
    _write_events(run, [("eval/loss", 200, 2.55), ("eval/loss", 300, 2.5)])  # resumed from step 100
    data = bs.read_tensorboard(run, tag="eval/loss")
    np.testing.assert_array_equal(data["step"], [100, 200, 300])
    np.testing.assert_array_equal(data["loss"], np.float32([2.7, 2.55, 2.5]).astype(np.float64))
    assert "run eval: 1 step(s) of 'eval/loss' logged more than once (restarted?); kept the last" in data.notes


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"tag": "eval/los"}, "no metric 'eval/los'; did you mean 'eval/loss'?"),
        ({"mapping": {"step": "train/step"}}, "TensorBoard events carry their own steps"),
    ],
)
def test_tensorboard_errors(tensorboard_logs, options, pattern):
    with pytest.raises(DataError, match=pattern):
        bs.read_tensorboard(tensorboard_logs, **options)


def test_tensorboard_nan_names_the_run_and_step(tensorboard_logs):
    _write_events(tensorboard_logs / "run-c", [("eval/loss", 100, 2.9), ("eval/loss", 200, float("nan"))])
    with pytest.raises(DataError, match=r"column 'eval/loss' \(as loss\): found step 200 in run-c: nan"):
        bs.read_tensorboard(tensorboard_logs)
    data = bs.read_tensorboard(tensorboard_logs, drop_invalid=True)
    assert list(data["step"][data["run"] == "run-c"]) == [100]


def test_tensorboard_folder_without_events(tmp_path):
    pytest.importorskip("tensorboard")
    with pytest.raises(DataError, match="no TensorBoard event files"):
        bs.read_tensorboard(tmp_path)


def test_without_tensorboard_the_error_gives_the_pip_command(tmp_path, monkeypatch):
    for name in [name for name in sys.modules if name == "tensorboard" or name.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(DataError, match=r"needs tensorboard: pip install 'bayescale\[tensorboard\]'"):
        bs.read_tensorboard(tmp_path)
