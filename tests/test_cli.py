"""The command line: one JSON object with --json, one line and a non-zero exit on errors."""

import contextlib
import io
import json
import re
import subprocess
import sys
import warnings

import h5py
import jax
import numpy as np
import pytest
import xarray as xr
from bayescale.models import LAWS, get_law
from conftest import CallStopped, held_back_table, record_call

import bayescale as bs
from bayescale._numbers import format_number
from bayescale.cli import main
from bayescale.errors import ConvergenceWarning, IdentifiabilityWarning
from bayescale.testing import fake_fit, prior_means, simulate


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory):
    # The settings of the Epoch acceptance fit, so the compiled program is shared.
    path = tmp_path_factory.mktemp("cli") / "fit.nc"
    assert main(["fit", "--example", "chinchilla", "--likelihood", "laplace", "--out", str(path), "--json"]) == 0
    return path


def test_fit_json_with_forecast_and_files(capsys, tmp_path, saved_fit):
    plot = tmp_path / "frontier.png"
    code, out, err = run(
        capsys,
        "fit",
        "--example",
        "chinchilla",
        "--likelihood",
        "laplace",
        "--compute",
        "5.76e23",
        "--json",
        "--plot",
        str(plot),
    )
    assert code == 0, err
    result = json.loads(out)
    assert {"law", "likelihood", "n_observations", "parameters", "diagnostics", "forecast"} <= set(result)
    assert result["n_observations"] == 240
    columns = {"mean", "sd", "median", "q05", "q95", "r_hat", "ess_bulk"}
    assert set(result["parameters"]["alpha"]) == columns | {"contraction"}
    assert set(result["parameters"]["E"]) == columns  # derived: no prior of its own
    assert {"divergences", "max_r_hat", "min_ess_bulk", "weakly_identified"} <= set(result["diagnostics"])
    forecast = result["forecast"]
    assert {"C", "loss", "N_opt", "D_opt", "tokens_per_param"} <= set(forecast)
    assert set(forecast["loss"]) == {"median", "q05", "q95", "mean"}
    assert plot.stat().st_size > 0


def test_fit_human_output_has_the_table(capsys, saved_fit):
    code, out, _ = run(capsys, "fit", "--example", "chinchilla", "--likelihood", "laplace")
    assert code == 0
    assert "parameter" in out and "alpha" in out and "diagnostics:" in out
    assert "Epoch's filter" in out and "D was not given" in out


def test_forecast_from_saved_fit(capsys, saved_fit):
    code, out, _ = run(capsys, "forecast", str(saved_fit), "--compute", "1e24", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["C"] == 1e24 and summary["healthy"] is True
    assert {"loss", "N_opt", "D_opt", "tokens_per_param"} <= set(summary)
    code, out, _ = run(capsys, "forecast", str(saved_fit), "--N", "1e9", "--D", "2e10", "--json")
    assert code == 0
    assert {"N", "D", "loss"} <= set(json.loads(out))
    # The chance that a new run measures the loss needed, in the JSON and as a line of the table.
    args = ("forecast", str(saved_fit), "--compute", "1e24", "--need", "2.0")
    need = json.loads(run(capsys, *args, "--json")[1])["need"]
    assert need["loss"] == 2.0 and 0.0 <= need["probability"] <= 1.0
    code, out, _ = run(capsys, *args)
    assert code == 0 and f"P(a new run measures a loss <= 2): {need['probability']:.2f}" in out.splitlines()


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """`bayescale compare --json` of two laws on the bundled ladder, with a holdout, fits saved.

    At the default settings, so the chinchilla fit reuses the program `fit` compiled above."""
    folder = tmp_path_factory.mktemp("compare")
    argv = [
        "compare",
        "--example",
        "chinchilla",
        "--laws",
        "chinchilla,kaplan_c_e",
        "--likelihood",
        "laplace",
        "--holdout-above",
        "1e21",
        "--out-dir",
        str(folder),
        "--json",
    ]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert main(argv) == 0
    return json.loads(output.getvalue()), folder


def test_compare_json_has_the_documented_shape(compared):
    summary, _ = compared
    assert set(summary["laws"]) == {"chinchilla", "kaplan_c_e"}
    assert summary["best"] in summary["laws"]
    for row in summary["laws"].values():
        assert {"elpd_loo", "se", "p_loo", "pareto_k_high", "elpd_lfo", "weight"} <= set(row)
        assert row["elpd_lfo"] is not None
    assert sum(row["weight"] for row in summary["laws"].values()) == pytest.approx(1.0)
    assert summary["holdout"]["column"] == "C" and summary["holdout"]["held_out"] > 0


def test_forecast_averages_several_saved_fits(capsys, compared):
    _, folder = compared
    paths = [str(folder / f"{name}.nc") for name in ("chinchilla", "kaplan_c_e")]
    code, out, err = run(capsys, "forecast", *paths, "--compute", "1e24", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary["weights"]) == {"chinchilla", "kaplan_c_e"}
    # kaplan_c_e has no N and D, so the average has the loss but no compute-optimal split.
    assert "loss" in summary and "N_opt" not in summary
    code, out, err = run(capsys, "forecast", *paths, "--compute", "1e24")
    assert code == 0, err
    assert "expected loss" in out and "weights: chinchilla " in out


def test_forecast_weights_saved_fits_by_leave_future_out_when_asked(capsys, compared):
    _, folder = compared
    paths = [str(folder / f"{name}.nc") for name in ("chinchilla", "kaplan_c_e")]
    code, out, err = run(capsys, "forecast", *paths, "--compute", "1e24", "--holdout-above", "1e21", "--json")
    assert code == 0, err
    # The weights of compare's leave-future-out refits, with the key the command derives from its seed.
    with warnings.catch_warnings():  # the refits' health is not what is checked here
        warnings.simplefilter("ignore", ConvergenceWarning)
        fits = [bs.load_fit(path) for path in paths]
        comparison = bs.compare(fits, key=jax.random.fold_in(jax.random.key(0), 1), holdout_above=1e21)
    weights = {name: row["weight"] for name, row in comparison.summary()["laws"].items()}
    assert json.loads(out)["weights"] == pytest.approx(weights, abs=1e-12)
    code, _, err = run(capsys, "forecast", paths[0], "--compute", "1e24", "--holdout-above", "1e21")
    assert code == 2 and "--holdout-above weights several fits; give two or more" in err


@pytest.mark.parametrize("command", ["compare", "forecast"])
def test_a_holdout_column_without_a_threshold_is_refused(capsys, compared, command):
    _, folder = compared
    arguments = {
        "compare": ["--example", "chinchilla", "--laws", "chinchilla,kaplan_c_e"],
        "forecast": [str(folder / "chinchilla.nc"), str(folder / "kaplan_c_e.nc"), "--compute", "1e24"],
    }[command]
    code, out, err = run(capsys, command, *arguments, "--holdout-column", "N")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "bayescale: error: --holdout-column N: give the threshold too, --holdout-above C"
    ]


def test_laws_lists_the_registry(capsys):
    code, out, _ = run(capsys, "laws", "--json")
    assert code == 0
    assert set(json.loads(out)["laws"]) == set(LAWS)
    code, out, _ = run(capsys, "laws")
    assert "chinchilla: L(N, D) = E + A / N^alpha + B / D^beta" in out


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,2e9,3.1\n4e8,8e9,2.8\n1.6e9,3.2e10,x\n")
    return path


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["fit", "absent.csv"], "absent.csv: no such file"),
        (["fit", "{table}", "--map", "N=params"], "column 'loss': found row 3: 'x'"),
        (["fit", "{table}", "--map", "N=param", "--map", "D=tokens"], "did you mean 'params'"),
        (["fit", "{table}", "--map", "Nparams"], "expected NAME=COLUMN"),
        (["fit", "{table}", "--law", "chinchila"], "unknown law 'chinchila'"),
        (["fit", "--example", "chinchilla", "--where", "loss <"], "cannot read"),
        (["fit", "--example", "chinchilla", "--compute", "-1"], "expected a positive number"),
        (["fit", "--example", "chinchilla", "--num-samples", "0"], "num_samples must be an integer >= 1"),
        (["fit", "--example", "chinchilla", "--fixed-steps", "0"], "fixed_steps must be an integer >= 1"),
        (["forecast", "absent.nc", "--compute", "1e22"], "absent.nc: no such file"),
        (["forecast", "absent.nc"], "give --compute C"),
        (["frobnicate"], "invalid choice"),
        (["fit", "--example", "nope"], "unknown example 'nope'"),
        (["compare", "--example", "chinchilla", "--laws", "chinchilla"], "name two or more laws"),
        (["compare", "--example", "chinchilla", "--laws", "chinchilla,chinchila"], "unknown law 'chinchila'"),
        (["compare", "--example", "chinchilla", "--laws", "chinchilla,kaplan_c", "--holdout-above", "0"], "positive"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(capsys, table, argv, pattern):
    code, out, err = run(capsys, *(arg.format(table=table) for arg in argv))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert pattern in err


@pytest.fixture(scope="module")
def unhealthy_saved(tmp_path_factory):
    """A fake chinchilla fit of 40 draws (too few for the ESS check), saved; no NUTS."""
    law = get_law("chinchilla")
    key = jax.random.key(0)
    inputs = {"N": np.geomspace(1e8, 1e10, 8), "D": np.geomspace(2e9, 2e11, 8)}
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=key)
    fitted = fake_fit(law, data, key=key, num_samples=20)
    assert not fitted.diagnostics.ok
    path = tmp_path_factory.mktemp("unhealthy") / "fit.nc"
    fitted.save(path)
    return fitted, path


def test_a_forecast_from_an_unhealthy_fit_says_so(capsys, unhealthy_saved, tmp_path):
    fitted, path = unhealthy_saved
    saved = tmp_path / "forecast.nc"
    code, out, err = run(capsys, "forecast", str(path), "--compute", "1e22", "--json", "--out", str(saved))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["healthy"] is False
    assert summary["problems"] == list(fitted.diagnostics.problems)
    assert bs.load_forecast(saved).summary() == summary
    code, out, _ = run(capsys, "forecast", str(path), "--compute", "1e22")
    assert code == 0
    assert "warning: the fit behind this forecast did not pass its sampler checks" in out
    assert f"  - {fitted.diagnostics.problems[0]}" in out


def test_fit_retry_reaches_the_fit_and_its_attempts_are_printed(capsys, unhealthy_saved, monkeypatch):
    fitted, _ = unhealthy_saved
    calls = []

    def fake(*args, **kwargs):
        calls.append(kwargs)
        return fitted

    monkeypatch.setattr(bs, "fit", fake)
    code, out, err = run(capsys, "fit", "--example", "chinchilla", "--retry", "--json")
    assert code == 0, err
    assert calls[0]["retry"] is True
    assert json.loads(out)["attempts"] == [attempt.to_dict() for attempt in fitted.attempts]


def _corrupt(kind, source, folder):
    """A file `bayescale forecast` must refuse: broken, foreign, or of another kind or version."""
    path = folder / f"{kind}.nc"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("loss,N\n2.0,1e9\n")
    elif kind == "truncated":
        path.write_bytes(source.read_bytes()[:5000])
    elif kind == "foreign":
        xr.Dataset({"temperature": ("x", np.arange(3.0))}).to_netcdf(path, engine="h5netcdf")
    else:
        path.write_bytes(source.read_bytes())
        with h5py.File(path, "r+") as handle:
            if kind == "incomplete":
                del handle["posterior"]
            else:
                handle.attrs.update({"newer": {"bayescale_format": 7}, "law_version": {"law_version": "0"}}[kind])
    return path


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("empty", "empty.nc: not a readable NetCDF file"),
        ("text", "text.nc: not a readable NetCDF file"),
        ("truncated", "truncated.nc: not a readable NetCDF file"),
        ("foreign", "foreign.nc: not a bayescale fit (no bayescale_format attribute)"),
        ("incomplete", "incomplete.nc: not a complete bayescale fit (no posterior group)"),
        ("newer", "newer.nc: fit written in format 7"),
        ("law_version", "law_version.nc: fitted with law 'chinchilla' version 0, but the catalogue's law is"),
    ],
)
def test_forecast_refuses_a_corrupt_or_foreign_file_in_one_line(capsys, unhealthy_saved, tmp_path, kind, pattern):
    path = _corrupt(kind, unhealthy_saved[1], tmp_path)
    code, out, err = run(capsys, "forecast", str(path), "--compute", "1e22", "--json")
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert pattern in err


def test_forecast_refuses_a_saved_forecast_in_one_line(capsys, unhealthy_saved, tmp_path):
    saved = tmp_path / "forecast.nc"
    code, _, err = run(capsys, "forecast", str(unhealthy_saved[1]), "--compute", "1e22", "--out", str(saved))
    assert code == 0, err
    code, out, err = run(capsys, "forecast", str(saved), "--compute", "1e22")
    assert (code, out) == (2, "")
    expected = f"bayescale: error: {saved}: a saved bayescale forecast, not a fit; read it with bayescale.load_forecast"
    assert err.strip() == expected


def test_report_from_saved_fits_writes_one_html_file(capsys, unhealthy_saved, tmp_path):
    fitted, path = unhealthy_saved
    other = tmp_path / "kaplan_nd.nc"
    fake_fit(get_law("kaplan_nd"), fitted.data, key=jax.random.key(1), num_samples=20).save(other)
    out_path = tmp_path / "report.html"
    argv = ["report", str(path), str(other), "-o", str(out_path), "--compute", "1e22", "3e22"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the comparison's warnings go into the report, not out
        code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert out.strip() == f"wrote {out_path}"
    text = out_path.read_text()
    assert text.count("<h2>") == 3 and "<h2>Comparison</h2>" in text
    assert "C = 1.000e+22 FLOPs" in text and "C = 3.000e+22 FLOPs" in text


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["report", "absent.nc", "-o", "{out}"], "absent.nc: no such file"),
        (["report", "{bad}", "-o", "{out}"], "not a readable NetCDF file"),
        (["report", "{fit}", "-o", "{out}", "--compute", "-1"], "expected a positive number"),
        (["report", "{fit}"], "required: -o/--out"),
        (["report", "{fit}", "-o", "{missing_dir}"], "cannot write the report"),
    ],
)
def test_report_errors_are_one_line_and_exit_non_zero(capsys, unhealthy_saved, tmp_path, argv, pattern):
    bad = tmp_path / "bad.nc"
    bad.write_text("not NetCDF")
    names = {"fit": unhealthy_saved[1], "bad": bad, "out": tmp_path / "report.html"}
    names["missing_dir"] = tmp_path / "absent" / "report.html"
    code, out, err = run(capsys, *(arg.format(**names) for arg in argv))
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert pattern in err
    assert not names["out"].exists()


def test_no_traceback_from_the_installed_command(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,loss\n1e8,2e9,-3\n")
    # Run outside the checkout: there `python -m` would import the source tree, not the install.
    command = [sys.executable, "-m", "bayescale", "fit", str(bad)]
    process = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert process.stderr.count("\n") == 1


# One law, one small sampler and two runs of 20 checkpoints in every extrapolation test
# (and in conftest's small_extrapolation), so they share one compiled program.
EXTRAPOLATE = ["--law", "pow3", "--num-warmup", "100", "--num-samples", "100", "--num-chains", "2"]


@contextlib.contextmanager
def _fit_warnings_shown():
    """Show a fit's warnings as the CLI's warning lines, not as the suite's errors: so few
    draws may fail the convergence checks, and a backtest's short cut may leave a run's
    level loosely pinned."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", IdentifiabilityWarning)
        yield


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two runs of 20 checkpoints, with their total steps (400 and 800) in a column."""
    rng = np.random.default_rng(0)
    lines = ["run,step,train_loss,total"]
    for run, scale, total in (("a", 3.0, 400), ("b", 2.0, 800)):
        for step in range(10, 201, 10):
            loss = (2.0 + scale * step**-0.5) * np.exp(rng.normal(0, 0.01))
            lines.append(f"{run},{step},{loss:.5f},{total}")
    path = tmp_path_factory.mktemp("curves") / "curves.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def extrapolated(checkpoints):
    """The output of one `extrapolate --json --plot --out` run: exit code, stdout, stderr, figure, saved file."""
    plot, saved = checkpoints.parent / "fan.png", checkpoints.parent / "extrapolation.nc"
    argv = ["extrapolate", str(checkpoints), "--map", "loss=train_loss", "--to-step-col", "total", *EXTRAPOLATE]
    out, err = io.StringIO(), io.StringIO()
    with _fit_warnings_shown(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--json", "--plot", str(plot), "--out", str(saved)])
    return code, out.getvalue(), err.getvalue(), plot, saved


def test_extrapolate_json_has_a_prediction_per_run(extrapolated):
    code, out, err, *_ = extrapolated
    assert code == 0, err
    assert all(line.startswith("bayescale: warning: ") for line in err.splitlines())
    result = json.loads(out)
    assert set(result) == {"runs", "notes", "backtest"} and result["notes"]
    assert set(result["runs"]) == {"a", "b"}
    assert set(result["backtest"]["runs"]) == {"a", "b"}  # pooled, nothing finished: each backtests the other
    for run, to_step in (("a", 400), ("b", 800)):
        entry = result["runs"][run]
        keys = {"law", "weights", "observed_until_step", "to_step", "final_loss", "healthy", "diagnostics"}
        assert keys <= set(entry)
        assert entry["law"] == "pow3" and entry["weights"] == {"pow3": 1.0}
        assert entry["observed_until_step"] == 200 and entry["to_step"] == to_step
        final = entry["final_loss"]
        assert set(final) == {"median", "q05", "q95", "mean"}
        assert 0 < final["q05"] <= final["median"] <= final["q95"]
        assert {"divergences", "max_r_hat", "min_ess_bulk"} <= set(entry["diagnostics"]["pow3"])


def test_extrapolate_writes_the_fan_chart(extrapolated):
    *_, plot, _ = extrapolated
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_report_of_a_saved_extrapolation_and_a_fit_draws_the_fan_charts(capsys, extrapolated, unhealthy_saved):
    _, out, *_, saved = extrapolated
    out_path = saved.parent / "report.html"
    code, printed, err = run(capsys, "report", str(saved), str(unhealthy_saved[1]), "-o", str(out_path))
    assert code == 0, err
    text = out_path.read_text()
    assert "Learning-curve fan charts</h3>" in text and 'alt="fan chart: a, b"' in text
    # The report's final losses are the ones the extrapolate command printed.
    for run_label, entry in json.loads(out)["runs"].items():
        assert f'<td class="text">{run_label}</td>' in text
        assert format_number(entry["final_loss"]["median"]) in text


def test_report_need_gives_each_saved_runs_probability(capsys, extrapolated):
    *_, saved = extrapolated
    result = bs.load_extrapolation(str(saved))
    need = f"{result.summary()['runs']['a']['final_loss']['median']:.3f}"  # a probability near a half
    out_path = saved.parent / "report-need.html"
    code, printed, err = run(capsys, "report", str(saved), "-o", str(out_path), "--need", need)
    assert code == 0, err
    text = out_path.read_text()
    assert f"<th>P(&lt;= {float(need):g})</th>" in text
    for run_label, probability in result.probability_at_or_below(float(need)).items():
        row = re.search(rf'<tr><td class="text">{run_label}</td>(.*?)</tr>', text).group(1)
        assert re.findall(r"<td[^>]*>([^<]*)</td>", row)[5] == f"{probability:.2f}", run_label
    code, _, err = run(capsys, "report", str(saved), "-o", str(out_path), "--need", "0")
    assert code == 2 and err.count("\n") == 1 and "--need" in err


def test_report_refuses_a_saved_forecast_in_one_line(capsys, unhealthy_saved, tmp_path):
    forecast = tmp_path / "forecast.nc"
    assert run(capsys, "forecast", str(unhealthy_saved[1]), "--compute", "1e22", "--out", str(forecast))[0] == 0
    code, out, err = run(capsys, "report", str(forecast), "-o", str(tmp_path / "report.html"))
    assert (code, out) == (2, "")
    assert err.strip() == f"bayescale: error: {forecast}: a saved forecast; the report takes fits and extrapolations"


def _with_column(path, name, values, tmp_path):
    """A copy of the checkpoints table with a column whose value is values[run] on each row."""
    header, *lines = path.read_text().splitlines()
    copy = tmp_path / f"with_{name}.csv"
    copy.write_text("\n".join([f"{header},{name}", *(f"{line},{values[line.split(',')[0]]}" for line in lines)]))
    return copy


def test_extrapolate_table_with_one_target_for_every_run(capsys, checkpoints, tmp_path):
    table = _with_column(checkpoints, "needed", {"a": 2.1, "b": 2.05}, tmp_path)
    with _fit_warnings_shown():
        argv = ["extrapolate", str(table), "--map", "loss=train_loss", "--to-step", "1e3", *EXTRAPOLATE]
        code, out, err = run(capsys, *argv, "--need-col", "needed")
    assert code == 0, err
    header, *rows = out.split("\n\n")[1].splitlines()
    columns = ["run", "law", "observed", "until", "target", "median", "90%", "interval", "need", "P(<=", "need)"]
    assert header.split() == [*columns, "healthy"]
    assert [row.split()[:4] for row in rows[:2]] == [["a", "pow3", "200", "1000"], ["b", "pow3", "200", "1000"]]
    # Each run's loss needed and its chance of reaching it, to two decimals, before its health.
    assert [row.split()[-3] for row in rows[:2]] == ["2.1", "2.05"]
    chances = [row.split()[-2] for row in rows[:2]]
    assert all(len(chance) == 4 and 0.0 <= float(chance) <= 1.0 for chance in chances), chances


def test_one_loss_needed_by_every_run_heads_its_column(small_extrapolation):
    from bayescale.cli import _extrapolation_text
    from bayescale.extrapolate import describe_need

    chances = small_extrapolation.probability_at_or_below(2.1)
    summary = small_extrapolation.summary(need=2.1)
    header, *rows = _extrapolation_text(summary).split("\n\n")[1].splitlines()
    assert header.split()[-3:] == ["P(<=", "2.1)", "healthy"]
    assert [row.split()[-2] for row in rows[:2]] == [f"{chances['a']:.2f}", f"{chances['b']:.2f}"]
    # Under the table, from which step each run logs it.
    for run, entry in summary["runs"].items():
        assert f"  {run} logs {describe_need(entry['need'])}" in rows[2:]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--need", "0"], "argument --need: expected a positive number, got '0'"),
        (["--need", "2", "--need-col", "needed"], "argument --need-col: not allowed with argument --need"),
        (["--need-col", "absent"], "no column 'absent' (columns: 'run', 'step', 'train_loss', 'total', 'needed')"),
        (["--need-col", "needed"], "column 'needed': losses needed of b (0); expected > 0"),
        (["--need-col", "step"], "column 'step': run 'a' has 20 losses needed; expected one"),
    ],
)
def test_extrapolate_refuses_a_loss_needed_it_cannot_use_before_fitting(capsys, checkpoints, tmp_path, argv, message):
    table = _with_column(checkpoints, "needed", {"a": 2.1, "b": 0}, tmp_path)
    code, out, err = run(capsys, "extrapolate", str(table), "--map", "loss=train_loss", "--to-step", "1e3", *argv)
    assert (code, out) == (2, "") and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ([], {"drift": False, "backtest": True, "stacking": "loo", "retry": False}),
        (["--drift"], {"drift": True}),
        (["--no-backtest"], {"backtest": False}),
        (["--stacking", "lfo"], {"stacking": "lfo"}),
        (["--retry"], {"retry": True}),
    ],
)
def test_extrapolate_passes_the_drift_backtest_stacking_and_retry_on(capsys, checkpoints, monkeypatch, flag, expected):
    seen = record_call(monkeypatch, sys.modules["bayescale.extrapolate"], "extrapolate")
    monkeypatch.setenv("BAYESCALE_DEBUG", "1")  # let CallStopped through main's catch-all
    with pytest.raises(CallStopped):
        main(["extrapolate", str(checkpoints), "--map", "loss=train_loss", "--to-step", "1e3", *EXTRAPOLATE, *flag])
    assert {name: seen[name] for name in expected} == expected


def test_extrapolate_the_bundled_curves_from_a_cut(capsys, monkeypatch):
    """--example reads the bundled curves; --observed-until alone sets each run's last checkpoint as its target."""
    seen = record_call(monkeypatch, sys.modules["bayescale.extrapolate"], "extrapolate")
    monkeypatch.setenv("BAYESCALE_DEBUG", "1")  # let CallStopped through main's catch-all
    with pytest.raises(CallStopped):
        main(["extrapolate", "--example", "mpl_100m", "--observed-until", "6000"])
    (data,) = seen["positional"]
    assert data.source == "example mpl_100m (mpl_100m_curves.csv)" and len(data) == 513
    assert seen["observed_until"] == 6000 and seen["to_step"] is None


def test_held_back_checkpoints_are_tabled_beside_the_forecast(held_back_extrapolation):
    from bayescale.cli import _extrapolation_text

    summary = held_back_extrapolation.summary()
    lines = _extrapolation_text(summary).splitlines()
    (header,) = [line for line in lines if line.startswith("run ")]
    assert header.split()[-3:] == ["logged", "error", "healthy"]
    for run, entry in summary["runs"].items():
        (row,) = [line for line in lines if line.startswith(f"{run} ")]
        assert row.split()[-3:-1] == [format_number(entry["logged"]), f"{100 * entry['error']:+.2f}%"]
        scores = entry["held_back"]
        assert (
            f"  held back from {run}: {scores['checkpoints']} checkpoints, RMSLE of the median "
            f"{scores['rmsle']:.5f}, {100 * scores['inside_90']:.0f}% inside the 90% band"
        ) in lines
    # With a loss needed, the line of when each run reaches it says when it logged it.
    needed = float(np.median(held_back_table()["loss"]))
    summary = held_back_extrapolation.summary(need=needed)
    lines = _extrapolation_text(summary).splitlines()
    for run, entry in summary["runs"].items():
        (line,) = [line for line in lines if line.startswith(f"  {run} logs <= {needed:g}")]
        assert line.endswith(f"; first logged at step {entry['need']['logged_at']}"), line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["extrapolate", "{data}", "--map", "loss=train_loss"],
            "one of the arguments --to-step --to-step-col is required (or --observed-until, which forecasts each "
            "run's last checkpoint)",
        ),
        (
            ["extrapolate", "--example", "chinchilla", "--to-step", "100"],
            "example chinchilla holds finished runs: use `bayescale fit --example chinchilla`",
        ),
        (
            ["fit", "--example", "mpl_100m"],
            "example mpl_100m holds learning curves: use `bayescale extrapolate --example mpl_100m`",
        ),
        (
            ["extrapolate", "--example", "mpl_100m", "--observed-until", "2000"],
            "extrapolate: no checkpoint up to step 2000 (observed_until) for run(s) constant_24000 (first at step "
            "2176), cosine_24000 (first at step 2160), wsd_20000_24000 (first at step 2176)",
        ),
    ],
)
def test_extrapolate_source_and_target_errors_are_one_line(capsys, checkpoints, argv, message):
    code, out, err = run(capsys, *(item.format(data=checkpoints) for item in argv))
    assert code == 2 and out == ""
    assert err == f"bayescale: error: {message}\n"


def test_extrapolate_samples_with_the_curve_settings_its_help_states(capsys, checkpoints, monkeypatch):
    """Without sampler options the command passes on extrapolate's own settings, and its
    help gives those, not the scaling-law fits' (target acceptance 0.95, not 0.8)."""
    from bayescale.extrapolate import CURVE_CONFIG

    seen = record_call(monkeypatch, sys.modules["bayescale.extrapolate"], "extrapolate")
    monkeypatch.setenv("BAYESCALE_DEBUG", "1")  # let CallStopped through main's catch-all
    with pytest.raises(CallStopped):
        main(["extrapolate", str(checkpoints), "--map", "loss=train_loss", "--to-step", "1e3"])
    assert seen["config"] == CURVE_CONFIG
    with pytest.raises(SystemExit):
        main(["extrapolate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"target acceptance probability (default {CURVE_CONFIG.target_accept:g})" in help_text
    assert f"warmup iterations per chain (default {CURVE_CONFIG.num_warmup})" in help_text


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["absent.csv", "--to-step", "400"], "absent.csv: no such file"),
        (["{data}", "--to-step", "400"], "needs column(s) loss"),
        (["{data}", "--map", "loss=train_loss", "--to-step-col", "steps"], "no column 'steps'"),
        (["{data}", "--map", "loss=train_loss", "--to-step", "150"], "target step before the last checkpoint"),
        (["{data}", "--map", "loss=train_loss", "--to-step", "0"], "expected a positive whole number"),
        (["{data}", "--to-step", "400", "--to-step-col", "total"], "not allowed with argument"),
        (["{data}"], "one of the arguments --to-step --to-step-col is required"),
        (["{data}", "--to-step", "400", "--schedule", "cosine:peak=fast"], "'peak=fast' is not key=number"),
        (["{data}", "--to-step", "400", "--schedule", "cosine:peak=3e-4"], "schedule 'cosine' needs total="),
        (["{data}", "--to-step", "400", "--schedule", "lr.csv"], "no such file, nor a spec"),
        (["{data}", "--map", "loss=train_loss", "--to-step", "400", "--law", "pow3,pow9"], "unknown law 'pow9'"),
    ],
)
def test_extrapolate_errors_are_one_line_and_exit_non_zero(capsys, checkpoints, argv, pattern):
    code, out, err = run(capsys, "extrapolate", *(arg.format(data=checkpoints) for arg in argv))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert pattern in err


# ---------------------------------------------------------------------------------------
# Training logs: W&B exports and TensorBoard event files, read with no hand conversion


@pytest.fixture(scope="module")
def wandb_runs(checkpoints):
    """The checkpoints of `checkpoints` as W&B history exports, one file per run, with the eval loss
    blank at the steps where only the train loss was logged; and a runs table with the targets."""
    folder = checkpoints.parent / "wandb"
    folder.mkdir()
    rows = [line.split(",") for line in checkpoints.read_text().splitlines()[1:]]
    for run in ("a", "b"):
        lines = ["_step,_runtime,train/loss,eval/loss"]
        for _, step, loss, _ in (row for row in rows if row[0] == run):
            lines += [f"{int(step) - 5},1.0,3.9,", f"{step},2.0,3.8,{loss}"]
        (folder / f"{run}.csv").write_text("\n".join(lines) + "\n")
    runs = checkpoints.parent / "runs.csv"
    runs.write_text("run,N,tokens_per_step,total\na,1e8,1024,400\nb,4e8,2048,800\n")
    return folder, runs


def test_fit_reads_a_folder_of_wandb_exports(wandb_runs):
    from bayescale import cli
    from bayescale.law import resolve_law

    folder, runs = wandb_runs
    args = cli.build_parser().parse_args(["fit", str(folder), "--metric", "eval/loss", "--runs-table", str(runs)])
    data = cli._load_data(args, [resolve_law("chinchilla")])
    assert len(data) == 40 and set(data["run"]) == {"a", "b"}
    np.testing.assert_array_equal(data["D"], data["step"] * np.where(data["run"] == "a", 1024, 2048))
    assert "'eval/loss' was not logged at 40 of 80 rows" in data.notes[0]


def test_extrapolate_from_wandb_exports_matches_the_tidy_table(extrapolated, wandb_runs):
    # The same checkpoints as the tidy table of `extrapolated`, so the same compiled program and draws.
    folder, runs = wandb_runs
    argv = ["extrapolate", str(folder), "--metric", "eval/loss", "--runs-table", str(runs), "--to-step-col", "total"]
    out = io.StringIO()
    with _fit_warnings_shown(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main([*argv, *EXTRAPOLATE, "--json"]) == 0
    result, tidy = json.loads(out.getvalue()), json.loads(extrapolated[1])
    assert result["runs"] == tidy["runs"]
    assert "'eval/loss' was not logged at 40 of 80 rows (steps at which other metrics were)" in result["notes"]


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["fit", "{folder}", "--metric", "eval/los"], "no metric 'eval/los'; did you mean 'eval/loss'?"),
        (["extrapolate", "{folder}", "--to-step", "900"], "which metric is the loss? 2 are named like a loss"),
        (["fit", "{folder}", "--metric", "eval/loss", "--runs-table", "{others}"], "did you mean 'A' for 'a'?"),
        (["fit", "{table}", "--runs-table", "{table}"], "a runs table joins per-run values to W&B or TensorBoard"),
        (["fit", "{folder}", "--format", "csv"], "invalid choice: 'csv'"),
        (["fit", "--example", "chinchilla", "--metric", "eval/loss"], "apply to DATA, not to --example"),
    ],
)
def test_log_errors_are_one_line_and_exit_non_zero(capsys, tmp_path, wandb_runs, table, argv, pattern):
    folder, _ = wandb_runs
    others = tmp_path / "others.csv"
    others.write_text("run,N\nA,1e8\nb,4e8\n")
    code, out, err = run(capsys, *(arg.format(folder=folder, table=table, others=others) for arg in argv))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert pattern in err
