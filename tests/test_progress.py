"""Progress on stderr: shown when asked or on a terminal, silent otherwise and under --json."""

import io
import json
import re
import sys
import warnings

import jax
import numpy as np
import pytest
from bayescale.models import get_law

import bayescale as bs
from bayescale import _progress
from bayescale.cli import main
from bayescale.inference import fit_problems
from bayescale.law import ModelSpec
from bayescale.testing import fake_fit, prior_means, simulate


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def _terminal(monkeypatch):
    """Make stderr a terminal; in the test itself, as pytest sets its capture after the fixtures."""
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def _timeless(text):
    """The text with every duration made T, so that a slow machine does not fail the test."""
    return re.sub(r"\d+(\.\d)? s\b|\d+ min \d+ s", "T", text)


def _work(progress):
    with _progress.task("outer work", total=2, progress=progress) as outer:
        with outer.subtask("inner work") as inner, inner.phase("compiling"):
            pass
        outer.advance()
        with outer.phase("sampling"):
            pass
        outer.advance()


def test_progress_is_silent_when_turned_off_even_on_a_terminal(monkeypatch):
    terminal = _terminal(monkeypatch)
    _work(progress=False)
    assert terminal.getvalue() == ""


def test_by_default_progress_shows_only_on_a_terminal(capsys, monkeypatch):
    assert not _progress.enabled(None)  # captured stderr is no terminal
    _work(progress=None)
    assert capsys.readouterr().err == ""
    _terminal(monkeypatch)
    assert _progress.enabled(None)
    assert not _progress.enabled(False)


def test_forced_progress_off_a_terminal_prints_a_line_per_finished_step(capsys):
    _work(progress=True)
    assert _timeless(capsys.readouterr().err).splitlines() == [
        "bayescale: outer work 0/2 > inner work: compiling (T)",
        "bayescale: outer work 1/2  [T]",
        "bayescale: outer work 1/2: sampling (T)",
        "bayescale: outer work 2/2  [T]",
        "bayescale: outer work: done in T",
    ]


def test_on_a_terminal_the_line_is_rewritten_and_cleared_for_a_warning(monkeypatch):
    terminal = _terminal(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: sys.stderr.write(f"warning: {message}\n")  # as the CLI
        with _progress.task("fit", progress=None) as status, status.phase("sampling"):
            warnings.warn("a check failed", UserWarning, stacklevel=1)
    before, warning, after = _timeless(terminal.getvalue()).partition("warning: a check failed\n")
    # Rewritten in place (carriage return, clear to the end), cleared before the warning,
    # redrawn after it, and cleared when done: only the warning is left.
    assert before == "\rbayescale: fit  [T]\x1b[K\rbayescale: fit: sampling  [T]\x1b[K\r\x1b[K"
    assert warning
    assert after.startswith("\rbayescale: fit: sampling  [T]\x1b[K")
    assert after.endswith("\r\x1b[K")
    assert "\n" not in after


def test_an_interrupted_task_says_where_it_stopped(capsys):
    with pytest.raises(KeyboardInterrupt), _progress.task("fit 3 problems", total=3, progress=True) as status:
        status.advance()
        raise KeyboardInterrupt
    assert _timeless(capsys.readouterr().err).splitlines()[-1] == "bayescale: fit 3 problems 1/3: stopped after T"


# The law, sizes and settings of the problems of tests/test_store.py, so that the two share
# one compiled program.
TINY = bs.SamplerConfig(num_warmup=100, num_samples=100, num_chains=2)


@pytest.fixture(scope="module")
def problems(session_key):
    law = get_law("kaplan_n")
    inputs = {"N": np.geomspace(1e7, 1e10, 10)}
    params = {**prior_means(law), "sigma": 0.02}
    datasets = [simulate(law, params, inputs, key=jax.random.fold_in(session_key, i)) for i in range(4)]
    keys = [jax.random.fold_in(session_key, 10 + i) for i in range(4)]
    return [ModelSpec(law, "normal")] * 4, datasets, keys


def test_a_batched_fit_shows_its_problems_and_steps_only_when_asked(problems, capsys):
    specs, datasets, keys = (items[:2] for items in problems)
    quiet = fit_problems(specs, datasets, keys=keys, config=TINY, warn=False, progress=False)
    assert capsys.readouterr().err == ""
    shown = fit_problems(specs, datasets, keys=keys, config=TINY, warn=False, progress=True)
    assert _timeless(capsys.readouterr().err).splitlines() == [
        "bayescale: fit 2 problems 0/2: compiling (T)",
        "bayescale: fit 2 problems 0/2: sampling 2 chains x (100 warmup + 100 draws) (T)",
        "bayescale: fit 2 problems 0/2: summarizing (T)",
        "bayescale: fit 2 problems 1/2  [T]",
        "bayescale: fit 2 problems 2/2  [T]",
        "bayescale: fit 2 problems: done in T",
    ]
    for fitted, reference in zip(shown, quiet, strict=True):  # progress changes nothing in the draws
        np.testing.assert_array_equal(fitted.posterior["aN"], reference.posterior["aN"])


def test_each_bucket_is_a_part_of_the_line(problems, capsys):
    specs, datasets, keys = problems
    fit_problems(specs, datasets, keys=keys, config=TINY, warn=False, bucket_size=2, progress=True)
    lines = _timeless(capsys.readouterr().err).splitlines()
    assert "bayescale: fit 4 problems 0/4 > bucket 1/2: kaplan_n x 2: compiling (T)" in lines
    assert "bayescale: fit 4 problems 2/4 > bucket 2/2: kaplan_n x 2: summarizing (T)" in lines
    assert lines[-1] == "bayescale: fit 4 problems: done in T"


@pytest.fixture
def fake_cli_fit(monkeypatch, problems):
    """``bs.fit`` made instant for the CLI: it records its ``progress`` and shows a task as the real one."""
    specs, datasets, keys = problems
    fitted = fake_fit(specs[0].law, datasets[0], key=keys[0])
    calls = []

    def fit(law, data, *, progress, **options):
        calls.append(progress)
        with _progress.task(f"fit {law.name}", progress=progress) as status, status.phase("sampling"):
            return fitted

    monkeypatch.setattr(bs, "fit", fit)
    return calls


@pytest.mark.parametrize(
    ("options", "progress", "shown"), [((), None, True), (("--json",), False, False), (("--quiet",), False, False)]
)
def test_the_cli_shows_progress_on_a_terminal_unless_json_or_quiet(
    capsys, monkeypatch, fake_cli_fit, options, progress, shown
):
    terminal = _terminal(monkeypatch)
    code = main(["fit", "--example", "chinchilla", "--law", "kaplan_n", *options])
    assert code == 0, terminal.getvalue()
    assert fake_cli_fit == [progress]
    assert ("bayescale: fit kaplan_n: sampling" in terminal.getvalue()) == shown
    if "--json" in options:
        assert terminal.getvalue() == ""
        assert json.loads(capsys.readouterr().out)["law"] == "kaplan_n"
