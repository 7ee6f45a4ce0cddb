"""The command line: one JSON object with --json, one line and a non-zero exit on errors."""

import json
import subprocess
import sys

import pytest

from bayescale.cli import main
from bayescale.models import LAWS


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
        capsys, "fit", "--example", "chinchilla", "--likelihood", "laplace", "--compute", "5.76e23", "--json", "--plot", str(plot)
    )
    assert code == 0, err
    result = json.loads(out)
    assert {"law", "likelihood", "n_observations", "parameters", "diagnostics", "forecast"} <= set(result)
    assert result["n_observations"] == 240
    assert set(result["parameters"]["alpha"]) == {"mean", "sd", "median", "q05", "q95", "r_hat", "ess_bulk"}
    assert {"divergences", "max_r_hat", "min_ess_bulk"} <= set(result["diagnostics"])
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
        (["forecast", "absent.nc", "--compute", "1e22"], "absent.nc: no such file"),
        (["forecast", "absent.nc"], "give --compute C"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(capsys, table, argv, pattern):
    code, out, err = run(capsys, *(arg.format(table=table) for arg in argv))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert pattern in err


def test_no_traceback_from_the_installed_command(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,loss\n1e8,2e9,-3\n")
    # Run outside the checkout: there `python -m` would import the source tree, not the install.
    command = [sys.executable, "-m", "bayescale", "fit", str(bad)]
    process = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert process.stderr.count("\n") == 1
