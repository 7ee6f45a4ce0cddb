"""A catalogue of malformed inputs: each one fails before sampling, naming the place and the problem.

Every case is a small file, DataFrame or dict of arrays and the substrings its message
must hold: where (file, row or line, column) and what was found or expected. The library
raises :class:`~bayescale.errors.BayescaleError`; the command prints the same on one line
of stderr and exits with status 2. The sampler is replaced by one that fails the test, so
a check that comes too late shows up as a failure here, not as minutes of NUTS.
"""

import dataclasses
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import pytest

import bayescale as bs
import bayescale.inference
from bayescale.cli import main
from bayescale.errors import BayescaleError

pandas = pytest.importorskip("pandas")
pyarrow = pytest.importorskip("pyarrow")

# Six runs of a ladder: enough distinct (N, D) points for every law of N and D.
LADDER = [
    ("1e8", "2e9", "3.1"),
    ("4e8", "8e9", "2.8"),
    ("1.6e9", "3.2e10", "2.5"),
    ("6.4e9", "1.28e11", "2.3"),
    ("2.56e10", "5.12e11", "2.1"),
    ("1e10", "4e11", "2.2"),
]


def ladder(*edits: tuple[int, int, str], header: str = "N,D,loss", rows=LADDER) -> str:
    """CSV text of the ladder with cells replaced: ``(row, column, text)``, rows from 1."""
    table = [list(row) for row in rows]
    for row, column, text in edits:
        table[row - 1][column] = text
    return header + "\n" + "".join(",".join(row) + "\n" for row in table)


def curves(*rows: str, header: str = "run,step,loss") -> str:
    """CSV text of checkpoints, one ``"run,step,loss"`` string per row."""
    return header + "\n" + "".join(row + "\n" for row in rows)


# Two runs of five checkpoints: enough for pow3 pooled over both.
CHECKPOINTS = [
    f"{run},{step},{loss:.3f}" for run in "ab" for step, loss in zip((10, 20, 30, 40, 50), (3.0, 2.8, 2.7, 2.6, 2.55))
]


@dataclasses.dataclass(frozen=True)
class Case:
    """One malformed input.

    ``source`` is ``(file name, text, bytes or a dict of columns for Parquet)``, a
    DataFrame or a dict of arrays; ``options`` holds ``law``/``laws``, ``map``, ``where``,
    ``drop_invalid``, ``to_step``, ``to_step_col`` and ``holdout_above``.
    """

    id: str
    source: Any
    expected: tuple[str, ...]
    command: str = "fit"  # fit, compare or extrapolate
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        return isinstance(self.source, tuple)


def frame(columns, index=None):
    return pandas.DataFrame(columns, index=index)


N6 = [1e8, 4e8, 1.6e9, 6.4e9, 2.56e10, 1e10]
D6 = [2e9, 8e9, 3.2e10, 1.28e11, 5.12e11, 4e11]
LOSS6 = [3.1, 2.8, 2.5, 2.3, 2.1, 2.2]

CASES = [
    # --- CSV: the file itself
    Case("empty file", ("runs.csv", ""), ("runs.csv", "the file is empty")),
    Case("header only", ("runs.csv", "N,D,loss\n"), ("runs.csv", "no data rows", "'N', 'D', 'loss'")),
    Case("blank header", ("runs.csv", "\n" + ladder()), ("runs.csv, line 1", "header row is blank")),
    Case("unnamed column", ("runs.csv", ladder(header="N,D,loss,")), ("runs.csv, header", "column 4 has no name")),
    Case("duplicate column", ("runs.csv", ladder(header="N,N,loss")), ("runs.csv, header", "'N' appears twice")),
    Case(
        "short row",
        ("runs.csv", ladder().replace("1.6e9,3.2e10,2.5", "1.6e9,3.2e10")),
        ("runs.csv, row 3 (line 4)", "found 2 fields, expected 3"),
    ),
    Case(
        "unclosed quote",
        ("runs.csv", ladder((2, 2, '"2.8'))),
        ("runs.csv, line", "malformed CSV", "unexpected end of data"),
    ),
    Case(
        "not UTF-8",
        ("runs.csv", ladder().encode().replace(b"8e9", b"8e\xff9")),
        ("runs.csv, line 3", "byte 0xff", "expected UTF-8"),
    ),
    Case("unknown file type", ("runs.xlsx", ladder()), ("runs.xlsx", "unknown file type '.xlsx'")),
    Case(
        "tsv with text",
        ("runs.tsv", ladder((1, 0, "x")).replace(",", "\t")),
        ("runs.tsv, column 'N'", "row 1: 'x'", "positive finite number"),
    ),
    # --- columns
    Case(
        "misspelled loss",
        ("runs.csv", ladder(header="N,D,los")),
        ("runs.csv", "needs column(s) loss", "did you mean 'los' for loss?"),
    ),
    Case(
        "unmapped names",
        ("runs.csv", ladder(header="params,tokens,loss")),
        ("runs.csv", "needs column(s) N, D", "did you mean 'params' for N and 'tokens' for D?", "--map"),
    ),
    Case(
        "misspelled mapping",
        ("runs.csv", ladder(header="Model Size,tokens,loss")),
        ("runs.csv", "no column 'Model size' (mapped to N)", "did you mean 'Model Size'?"),
        options={"map": {"N": "Model size", "D": "tokens"}},
    ),
    Case(
        "law input missing",
        ("runs.csv", ladder(header="N,tokens,loss")),
        ("runs.csv", "law 'chinchilla' needs column(s) D"),
    ),
    # --- cells
    Case(
        "text loss",
        ("runs.csv", ladder((2, 2, "abc"))),
        ("runs.csv, column 'loss'", "row 2: 'abc'", "expected a positive finite number"),
    ),
    Case(
        "blank cell",
        ("runs.csv", ladder((4, 1, ""))),
        ("runs.csv, column 'D'", "row 4: blank", "positive finite number"),
    ),
    Case("nan loss", ("runs.csv", ladder((1, 2, "nan"))), ("runs.csv, column 'loss'", "row 1: 'nan'")),
    Case("inf N", ("runs.csv", ladder((5, 0, "inf"))), ("runs.csv, column 'N'", "row 5: 'inf'")),
    Case("minus inf D", ("runs.csv", ladder((6, 1, "-inf"))), ("runs.csv, column 'D'", "row 6: '-inf'")),
    Case("zero loss", ("runs.csv", ladder((3, 2, "0"))), ("runs.csv, column 'loss'", "row 3: '0'", "positive")),
    Case(
        "negative loss", ("runs.csv", ladder((3, 2, "-2.5"))), ("runs.csv, column 'loss'", "row 3: '-2.5'", "positive")
    ),
    Case("zero N", ("runs.csv", ladder((2, 0, "0"))), ("runs.csv, column 'N'", "row 2: '0'")),
    Case("negative D", ("runs.csv", ladder((2, 1, "-8e9"))), ("runs.csv, column 'D'", "row 2: '-8e9'")),
    Case(
        "zero compute",
        (
            "runs.csv",
            "N,D,C,loss\n"
            + "".join(
                f"{n},{d},{6 * float(n) * float(d) if i != 2 else 0},{loss}\n"
                for i, (n, d, loss) in enumerate(LADDER, 1)
            ),
        ),
        ("runs.csv, column 'C'", "row 2: '0'"),
    ),
    Case(
        "several problems",
        ("runs.csv", ladder((1, 2, "x"), (2, 0, "-1"))),
        ("column 'N'", "row 2: '-1'", "and 1 more problem"),
    ),
    # --- units
    Case(
        "tokens in billions",
        ("runs.csv", ladder(rows=[(n, str(float(d) / 1e9), loss) for n, d, loss in LADDER])),
        (
            "runs.csv, columns 'D' and 'N'",
            "row 1: D = 2, N = 1e+08",
            "expected at least 0.01 tokens per parameter",
            "--no-unit-check",
        ),
    ),
    Case(
        "compute in PF-days",
        (
            "runs.csv",
            "N,D,C,loss\n" + "".join(f"{n},{d},{6 * float(n) * float(d) / 8.64e19},{loss}\n" for n, d, loss in LADDER),
        ),
        (
            "runs.csv, columns 'C', 'N' and 'D'",
            "row 1: C = 0.0139, 6*N*D = 1.2e+18",
            "within a factor 10 of 6*N*D",
            "--no-unit-check",
        ),
    ),
    Case(
        "derived tokens too few",
        (
            "runs.csv",
            "params,flops,loss\n"
            + "".join(f"{n},{6 * float(n) * float(d) / 8.64e19},{loss}\n" for n, d, loss in LADDER),
        ),
        (
            "runs.csv, columns 'flops' (as C) and 'params' (as N)",
            "C/(6N)",
            "C in FLOPs, not PF-days",
            "--no-unit-check",
        ),
        options={"map": {"N": "params", "C": "flops"}},
    ),
    # --- rows: repeated and backward steps, too few points
    Case(
        "repeated run and step",
        ("runs.csv", curves("a,100,3.0", "a,200,2.9", "a,200,2.8", header="run,step,loss")),
        ("runs.csv, columns 'run' and 'step'", "rows 2 and 3 (run 'a', step 200)", "repeat the same step"),
        options={"law": "kaplan_n"},
    ),
    Case(
        "step goes back",
        ("runs.csv", "run,N,step,loss\na,1e8,100,3.0\na,1e8,200,2.9\na,1e8,150,2.95\nb,1e9,100,2.5\n"),
        ("runs.csv, columns 'run' and 'step'", "row 3 (run 'a', step 150 after step 200 at row 2)", "--drop-invalid"),
        options={"law": "kaplan_ns"},
    ),
    Case(
        "blank run label",
        ("runs.csv", "run,N,step,loss\na,1e8,100,3.0\n ,1e8,200,2.9\n"),
        ("runs.csv, column 'run'", "row 2: blank", "non-empty run label"),
        options={"law": "kaplan_ns"},
    ),
    Case(
        "negative step",
        ("runs.csv", "run,N,step,loss\na,1e8,100,3.0\na,1e8,-5,2.9\n"),
        ("runs.csv, column 'step'", "row 2: '-5'", "finite number >= 0"),
        options={"law": "kaplan_ns"},
    ),
    Case(
        "too few runs",
        ("runs.csv", ladder(rows=LADDER[:3])),
        (
            "runs.csv",
            "law 'chinchilla' has 5 parameters",
            "3 distinct (N, D) point(s) in 3 rows",
            "expected at least 5",
        ),
    ),
    Case(
        "too few distinct runs",
        ("runs.csv", ladder(rows=LADDER[:2] * 3)),
        ("runs.csv", "law 'chinchilla' has 5 parameters", "2 distinct (N, D) point(s) in 6 rows"),
    ),
    Case(
        "dropped down to too few",
        ("runs.csv", ladder((1, 2, "x"), (2, 2, "-1"), (3, 2, ""))),
        ("runs.csv", "law 'chinchilla' has 5 parameters", "3 distinct"),
        options={"drop_invalid": True},
    ),
    Case(
        "everything dropped",
        ("runs.csv", ladder(*[(row, 2, "x") for row in range(1, 7)])),
        ("runs.csv: no rows left to fit", "--drop-invalid", "column 'loss'"),
        options={"drop_invalid": True},
    ),
    Case(
        "where on a label",
        ("runs.csv", curves(*CHECKPOINTS[:5])),
        ("runs.csv", "--where names 'run'", "not a numeric column"),
        options={"where": "run < 3", "law": "kaplan_n"},
    ),
    # --- JSON lines
    Case(
        "JSON syntax",
        ("runs.jsonl", '{"N": 1e8, "D": 2e9, "loss": 3.1}\n{"N": 4e8, "D": 8e9, "loss": }\n'),
        ("runs.jsonl, line 2", "not valid JSON", "one object per line"),
    ),
    Case(
        "JSON list", ("runs.jsonl", "[1e8, 2e9, 3.1]\n"), ("runs.jsonl, line 1", "found list", "JSON object per line")
    ),
    Case(
        "JSON missing key",
        ("runs.jsonl", '{"N": 1e8, "D": 2e9, "loss": 3.1}\n\n{"N": 4e8, "D": 8e9}\n'),
        ("runs.jsonl, column 'loss'", "line 3: blank"),
    ),
    Case(
        "JSON number beyond float",
        ("runs.jsonl", '{"N": 1e8, "D": 2e9, "loss": 3.1}\n{"N": 1' + "0" * 400 + ', "D": 8e9, "loss": 2.8}\n'),
        ("runs.jsonl, column 'N'", "line 2: 1000", "positive finite number"),
    ),
    Case(
        "JSON text number",
        ("runs.jsonl", '{"N": 1e8, "D": 2e9, "loss": "two"}\n'),
        ("runs.jsonl, column 'loss'", "line 1: 'two'"),
    ),
    Case("JSON only blank lines", ("runs.jsonl", "\n\n  \n"), ("runs.jsonl", "no data rows")),
    # --- Parquet
    Case(
        "Parquet negative loss",
        ("runs.parquet", {"N": N6, "D": D6, "loss": [3.1, -2.8, 2.5, 2.3, 2.1, 2.2]}),
        ("runs.parquet, column 'loss'", "row 2: -2.8", "positive finite number"),
    ),
    Case("Parquet no rows", ("runs.parquet", {"N": [], "D": [], "loss": []}), ("runs.parquet", "no data rows")),
    Case("Parquet that is not", ("runs.parquet", "N,D,loss\n1,2,3\n"), ("runs.parquet", "cannot be read as Parquet")),
    # --- DataFrames: rows are index labels
    Case(
        "DataFrame NaN",
        frame({"N": N6, "D": D6, "loss": [3.1, 2.8, np.nan, 2.3, 2.1, 2.2]}, index=list("abcdef")),
        ("DataFrame, column 'loss'", "row c: nan"),
    ),
    Case(
        "DataFrame text",
        frame({"N": N6, "D": D6, "loss": [3.1, 2.8, "n/a", 2.3, 2.1, 2.2]}, index=range(11, 17)),
        ("DataFrame, column 'loss'", "row 13: 'n/a'"),
    ),
    Case("DataFrame empty", frame({"N": [], "D": [], "loss": []}), ("DataFrame", "no data rows")),
    Case(
        "DataFrame repeated step",
        frame({"run": ["a", "a", "a"], "N": [1e8] * 3, "step": [10, 20, 20], "loss": [3.0, 2.9, 2.8]}, index=[7, 8, 9]),
        ("DataFrame, columns 'run' and 'step'", "rows 8 and 9 (run 'a', step 20)", "repeat the same step"),
        options={"law": "kaplan_ns"},
    ),
    # --- dicts of arrays: rows are 0-based indices
    Case("arrays of unequal length", {"N": N6, "D": D6[:5], "loss": LOSS6}, ("arrays", "different lengths", "'D': 5")),
    Case(
        "arrays of two dimensions",
        {"N": np.ones((2, 3)), "D": D6, "loss": LOSS6},
        ("arrays, column 'N'", "shape (2, 3)", "1-D"),
    ),
    Case(
        "arrays negative",
        {"N": N6, "D": [2e9, -8e9, *D6[2:]], "loss": LOSS6},
        ("arrays, column 'D'", "index 1: -8000000000.0"),
    ),
    Case("arrays boolean", {"N": N6, "D": D6, "loss": [True, *LOSS6[1:]]}, ("arrays, column 'loss'", "index 0: True")),
    # Only float32 has finite numbers it cannot hold (the x64 CI job has none to test).
    *(
        []
        if jax.config.jax_enable_x64
        else [
            Case(
                "arrays beyond float32",
                {"N": [1e8, 4e8, 1e50, 6.4e9], "loss": [3.1, 2.8, 2.5, 2.3]},
                ("arrays, column 'N'", "found 1e+50 at index 2", "float32"),
                options={"law": "kaplan_n"},
            )
        ]
    ),
    # --- extrapolate: checkpoint tables
    Case(
        "curves without step",
        ("curves.csv", curves(*CHECKPOINTS, header="run,stp,loss")),
        ("curves.csv", "extrapolate needs column(s) step", "did you mean 'stp' for step?"),
        command="extrapolate",
    ),
    Case(
        "curve goes back",
        ("curves.csv", curves(*CHECKPOINTS[:3], "a,25,2.75", *CHECKPOINTS[3:])),
        ("curves.csv, columns 'run' and 'step'", "row 4 (run 'a', step 25 after step 30 at row 3)"),
        command="extrapolate",
    ),
    Case(
        "one curve repeats a step",
        ("curves.csv", curves("10,3.0", "20,2.9", "20,2.8", "30,2.7", header="step,loss")),
        ("curves.csv, column 'step'", "rows 2 and 3 (step 20)", "repeat the same step"),
        command="extrapolate",
    ),
    Case(
        "curve step zero",
        ("curves.csv", curves("a,0,3.5", *CHECKPOINTS)),
        ("curves.csv, column 'step'", "steps below 1 at row 1: 0"),
        command="extrapolate",
    ),
    Case(
        "blank target",
        (
            "curves.csv",
            curves(*[f"{row},500" for row in CHECKPOINTS[:2]], f"{CHECKPOINTS[2]},", header="run,step,loss,total"),
        ),
        ("curves.csv, column 'total'", "row 3: blank", "finite number"),
        command="extrapolate",
        options={"to_step_col": "total"},
    ),
    Case(
        "curve too short",
        ("curves.csv", curves("a,10,3.0", "a,20,2.9")),
        ("curves.csv (run 'a')", "law 'pow3' has 3 parameters", "2 distinct (x) point(s)"),
        command="extrapolate",
    ),
    Case(
        "curves in JSON lines",
        ("curves.jsonl", '{"run": "a", "step": 10, "loss": 3.0}\n{"run": "a", "step": 5, "loss": 3.2}\n'),
        ("curves.jsonl, columns 'run' and 'step'", "line 2 (run 'a', step 5 after step 10 at line 1)"),
        command="extrapolate",
    ),
    # --- compare: every law checked before the first fit
    Case(
        "compare with text",
        ("runs.csv", ladder((2, 2, "abc"))),
        ("runs.csv, column 'loss'", "row 2: 'abc'"),
        command="compare",
        options={"laws": "kaplan_nd,chinchilla"},
    ),
    Case(
        "compare a law too rich",
        ("runs.csv", ladder(rows=LADDER[:4])),
        ("runs.csv", "law 'chinchilla' has 5 parameters", "4 distinct"),
        command="compare",
        options={"laws": "kaplan_n,chinchilla"},
    ),
    Case(
        "compare holdout leaves too few",
        ("runs.csv", ladder()),
        ("leave-future-out, training on C <= 1e+21", "runs.csv", "law 'chinchilla' has 5 parameters", "3 distinct"),
        command="compare",
        options={"laws": "kaplan_n,chinchilla", "holdout_above": 1e21},
    ),
    Case(
        "compare holdout outside the runs",
        ("runs.csv", ladder()),
        ("runs.csv", "threshold C > 1e+30 must split the rows"),
        command="compare",
        options={"laws": "kaplan_n,chinchilla", "holdout_above": 1e30},
    ),
]

FILE_CASES = [case for case in CASES if case.is_file]


def _materialise(case: Case, folder) -> Any:
    """The case's source as the library takes it: a path written under ``folder``, or the object."""
    if not case.is_file:
        return case.source
    name, content = case.source
    path = folder / name
    if isinstance(content, dict):
        import pyarrow.parquet as pq

        pq.write_table(pyarrow.table({k: pyarrow.array(v, pyarrow.float64()) for k, v in content.items()}), path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _no_sampling(*args, **kwargs):
    raise AssertionError("sampling started: the input should have been rejected before")


@pytest.fixture(autouse=True)
def no_sampling(monkeypatch):
    monkeypatch.setattr(bayescale.inference, "sampler_program", _no_sampling)


def _call_library(case: Case, source, key) -> None:
    options = case.options
    mapping = options.get("map")
    if case.command == "extrapolate":
        to_step = options.get("to_step_col") or options.get("to_step", 1000)
        bs.extrapolate(source, to_step=to_step, law="pow3", mapping=mapping, key=key)
        return
    names = options.get("laws", options.get("law", "chinchilla")).split(",")
    reader = {name: options[name] for name in ("where", "drop_invalid") if name in options}
    if case.command == "fit" and not reader:
        bs.fit(names[0], source, mapping=mapping, key=key)  # the fit reads the table itself
        return
    laws = [bs.law.resolve_law(name) for name in names]
    extra = [name for law in laws for name in law.inputs if name not in bs.data.CANONICAL_COLUMNS]
    data = bs.read_table(source, mapping, columns=extra, **reader)
    specs = [bs.law.ModelSpec(law) for law in laws]
    if case.command == "compare":
        from bayescale.compare import check_laws

        check_laws(specs, data, holdout_above=options.get("holdout_above"))
    for spec in specs:
        bs.fit(spec.law, data, key=key)


def _argv(case: Case, path) -> list[str]:
    options = case.options
    argv = [case.command, str(path)]
    for name, column in (options.get("map") or {}).items():
        argv += ["--map", f"{name}={column}"]
    if options.get("drop_invalid"):
        argv.append("--drop-invalid")
    if "where" in options:
        argv += ["--where", options["where"]]
    if case.command == "extrapolate":
        argv += ["--law", "pow3"]
        target = ["--to-step-col", options["to_step_col"]] if "to_step_col" in options else []
        argv += target or ["--to-step", str(options.get("to_step", 1000))]
    elif case.command == "compare":
        argv += ["--laws", options["laws"]]
        if "holdout_above" in options:
            argv += ["--holdout-above", str(options["holdout_above"])]
    else:
        argv += ["--law", options.get("law", "chinchilla")]
    return argv


def test_the_catalogue_is_large_and_covers_every_entry_point():
    assert len(CASES) >= 30 and len({case.id for case in CASES}) == len(CASES)
    suffixes = {case.source[0].rsplit(".", 1)[1] for case in FILE_CASES}
    assert {"csv", "tsv", "jsonl", "parquet"} <= suffixes
    assert any(isinstance(case.source, pandas.DataFrame) for case in CASES)
    assert any(isinstance(case.source, dict) for case in CASES)
    assert {"fit", "compare", "extrapolate"} == {case.command for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_library_names_the_place_and_the_problem(case, tmp_path, key):
    source = _materialise(case, tmp_path)
    with pytest.raises(BayescaleError) as raised:
        _call_library(case, source, key)
    message = str(raised.value)
    assert "\n" not in message
    for expected in case.expected:
        assert expected in message, f"{expected!r} not in {message!r}"


@pytest.mark.parametrize("case", FILE_CASES, ids=[case.id for case in FILE_CASES])
def test_command_prints_one_line_and_exits_non_zero(case, tmp_path, capsys):
    path = _materialise(case, tmp_path)
    code = main(_argv(case, path))
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("bayescale: error: ")
    assert "Traceback" not in err
    for expected in case.expected:
        assert expected in err, f"{expected!r} not in {err!r}"


def test_installed_command_has_no_traceback(tmp_path):
    # One case in a fresh process (tests/test_cli.py runs another): each costs seconds of imports.
    case = next(case for case in CASES if case.id == "curve goes back")
    path = _materialise(case, tmp_path)
    # Outside the checkout, so that the installed package runs (as in tests/test_cli.py).
    process = subprocess.run(
        [sys.executable, "-m", "bayescale", *_argv(case, path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert process.stderr.count("\n") == 1
    assert all(expected in process.stderr for expected in case.expected)


# --drop-invalid: what was dropped is counted and listed, nothing else is.


def test_drop_invalid_lists_repeated_and_backward_steps():
    table = {
        "run": ["a"] * 5 + ["b"] * 2,
        "step": [10, 20, 20, 15, 30, 10, 20],
        "loss": [3.0, 2.9, 2.8, 2.95, 2.7, 2.5, -1.0],
    }
    data = bs.read_table(table, drop_invalid=True)
    np.testing.assert_array_equal(data.rows, [0, 1, 4, 5])
    (note,) = data.notes
    assert "kept 4 of 7 rows (dropped indices 2, 3, 6)" in note
    assert "indices 1 and 2 (run 'a', step 20)" in note and "index 3 (run 'a', step 15 after step 20" in note
    assert "index 6: -1.0" in note


def test_drop_invalid_drops_a_repeated_checkpoint_of_a_single_curve(tmp_path):
    from bayescale.extrapolate import _check_curves

    path = tmp_path / "curves.csv"
    path.write_text(curves("10,3.0", "20,2.9", "20,2.8", "30,2.7", header="step,loss"))
    data = _check_curves(bs.read_table(path), drop_invalid=True)
    np.testing.assert_array_equal(data["step"], [10, 20, 30])
    assert "kept 3 of 4 rows (dropped row 3)" in data.notes[0]


def test_unit_check_can_be_turned_off(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(ladder(rows=[(n, str(float(d) / 1e9), loss) for n, d, loss in LADDER]))
    with pytest.raises(BayescaleError, match="--no-unit-check"):
        bs.read_table(path)
    assert len(bs.read_table(path, check_units=False)) == len(LADDER)


def test_units_of_the_bundled_ladders_pass():
    from bayescale.datasets import EXAMPLES

    for name in EXAMPLES:
        assert len(bs.load_example(name, published_filter=False)) > 0
