"""The HTML report: every section, inlined valid figures, escaped text, and a real browser render."""

import base64
import html
import re
import shutil
import subprocess

import jax
import numpy as np
import pytest
from bayescale.models import get_law
from matplotlib.image import imread

import bayescale as bs
from bayescale._numbers import format_number
from bayescale.extrapolate import describe_need
from bayescale.report import SECTIONS
from bayescale.testing import fake_fit, prior_means, simulate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIT_SECTIONS = ("Data", "Law and priors", "Posterior", "Diagnostics", "Forecast", "Loss frontier")
# Chromium flags for a quiet, offline, one-shot headless render.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _ladder(key):
    law = get_law("chinchilla")
    inputs = {"N": np.geomspace(1e7, 1e10, 12), "D": np.geomspace(1e9, 1e12, 12)}
    return simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=key)


@pytest.fixture(scope="module")
def two_fits():
    """Two laws of N and D on the same runs, so that they can be compared."""
    keys = jax.random.split(jax.random.key(0), 3)
    data = _ladder(keys[0])
    return [fake_fit(get_law(name), data, key=k) for name, k in zip(("chinchilla", "kaplan_nd"), keys[1:])]


@pytest.fixture(scope="module")
def report(two_fits, small_extrapolation, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    bs.write_report(two_fits, str(path), key=jax.random.key(1), extrapolations=[small_extrapolation])
    return path


def _images(text):
    return re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">', text)


def test_every_section_and_one_valid_png_per_frontier(report, two_fits):
    text = report.read_text()
    for title in FIT_SECTIONS:
        assert text.count(f">{title}</h3>") == len(two_fits), title
    assert text.count("<h2>Comparison</h2>") == 1
    # Neither law is a learning-curve law: the one fan-chart section is the extrapolation's.
    assert text.count("Learning-curve fan charts</h3>") == 1
    images = _images(text)
    alts = ["chinchilla: loss frontier", "kaplan_nd: loss frontier", "fan chart: a, b"]
    assert [alt for alt, _ in images] == alts
    for _, encoded in images:
        png = base64.b64decode(encoded, validate=True)
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
    assert set(SECTIONS) >= set(FIT_SECTIONS) | {"Comparison", "Learning-curve fan charts"}


def test_an_extrapolation_gets_its_final_losses_and_fan_chart(report, small_extrapolation, tmp_path, key):
    text = report.read_text()
    for run, entry in small_extrapolation.summary()["runs"].items():
        final = entry["final_loss"]
        cells = [run, entry["observed_until_step"], entry["to_step"], final["median"], final["q05"], final["q95"]]
        row = "".join(
            f'<td class="text">{cell}</td>' if isinstance(cell, str) else f"<td>{format_number(cell)}</td>"
            for cell in cells
        )
        assert row in text, run
    alone = tmp_path / "alone.html"
    bs.write_report([], str(alone), key=key, extrapolations=[small_extrapolation])
    assert [alt for alt, _ in _images(alone.read_text())] == ["fan chart: a, b"]
    with pytest.raises(ValueError, match="at least one fit or extrapolation"):
        bs.write_report([], str(tmp_path / "empty.html"), key=key)


def test_report_holds_the_numbers_and_fetches_nothing(report, two_fits):
    text = report.read_text()
    first = two_fits[0]
    assert html.escape(first.law.formula) in text and html.escape(first.law.reference) in text
    assert f"{len(first.data)} rows" in text
    for name in first.summary:
        assert f'<td class="text">{html.escape(name)}</td>' in text
    assert "R-hat" in text and "ESS bulk" in text and "stacking weight" in text
    largest = 10 * first.data["C"].max()
    assert f"C = {largest:.3e} FLOPs" in text  # the default budget
    assert "tokens per parameter" in text
    # Self-contained: no external stylesheet, script, font or image.
    assert not re.search(r'<(link|script)|src="(?!data:)|url\(', text)


def test_steps_and_counts_are_written_in_full_and_other_numbers_to_four_digits():
    """A target step of 23,936 read 2.394e+04 (four significant digits), losing its last digits;
    a median of 2.910 read 2.91 beside an interval's 2.951, as if less precise."""
    assert [format_number(v) for v in (23936, np.int64(23936), 0, 5)] == ["23936", "23936", "0", "5"]
    assert [format_number(v) for v in (2.91, 2.5, 1234.0, 0.0, 23936.0, 1.23456e6, 4e-4, None)] == [
        "2.910",
        "2.500",
        "1234",
        "0",
        "2.394e+04",
        "1.235e+06",
        "4.000e-04",
        "-",
    ]


def test_text_is_escaped_and_given_budgets_are_used(tmp_path, key):
    data = _ladder(key)
    hostile = "<script>alert('x')</script> & runs.csv"
    fitted = fake_fit(
        get_law("chinchilla"), type(data)(data.columns, hostile, data.rows, notes=("<b>note</b>",)), key=key
    )
    path = tmp_path / "report.html"
    bs.write_report(fitted, str(path), key=key, compute=[1e22, 1e23])
    text = path.read_text()
    assert "<script>" not in text and html.escape(hostile) in text and "&lt;b&gt;note&lt;/b&gt;" in text
    assert "C = 1.000e+22 FLOPs" in text and "C = 1.000e+23 FLOPs" in text
    assert "<h2>Comparison</h2>" not in text  # one fit: nothing to compare
    with pytest.raises(bs.DataError, match="compute"):
        bs.write_report(fitted, str(tmp_path / "other.html"), key=key, compute=-1.0)
    assert not (tmp_path / "other.html").exists()


def test_a_learning_curve_law_gets_notes_not_invented_figures(tmp_path, key, two_fits):
    law = get_law("pow3")
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, {"x": np.linspace(0.1, 1.0, 12)}, key=key)
    path = tmp_path / "report.html"
    bs.write_report([fake_fit(law, data, key=key), two_fits[0]], str(path), key=key)
    text = path.read_text()
    for title in (*FIT_SECTIONS, "Learning-curve fan charts"):
        assert f">{title}</h3>" in text, title
    assert text.count("Learning-curve fan charts</h3>") == 1  # the curve law's only
    assert [alt for alt, _ in _images(text)] == ["chinchilla: loss frontier"]
    assert "No fan chart" in text and "target step" in text
    assert "No forecast at a compute budget" in text and "No loss frontier" in text
    # Fits of other runs are not comparable: the report says so instead of failing.
    assert "Not compared" in text and "same data" in text


def _row(text, first_cell):
    """The cells of the table row that starts with ``first_cell``."""
    row = re.search(rf'<tr><td class="text">{re.escape(first_cell)}</td>(.*?)</tr>', text)
    assert row, first_cell
    return re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))


def test_the_loss_needed_gets_each_runs_probability_and_a_line_on_its_fan_chart(
    tmp_path, key, small_extrapolation, monkeypatch
):
    finals = [entry["final_loss"]["median"] for entry in small_extrapolation.summary()["runs"].values()]
    need = float(np.median(finals))
    drawn = []
    real_plot = bs.report.plot_extrapolation

    def recording_plot(*args, **kwargs):
        drawn.append(kwargs.get("need"))
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(bs.report, "plot_extrapolation", recording_plot)
    path = tmp_path / "need.html"
    bs.write_report([], str(path), key=key, extrapolations=[small_extrapolation], need=need)
    text = path.read_text()
    assert f"<th>P(&lt;= {need:g})</th>" in text
    # The column holds the extrapolation's own probabilities, after the final loss's interval.
    for run, probability in small_extrapolation.probability_at_or_below(need).items():
        assert _row(text, run)[5] == f"{probability:.2f}", run
    assert drawn == [need]
    # And from which step each run logs it.
    for run, entry in small_extrapolation.summary(need=need)["runs"].items():
        assert html.escape(f"{run} logs {describe_need(entry['need'])}") in text
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="the report"):
            bs.write_report([], str(tmp_path / "bad.html"), key=key, extrapolations=[small_extrapolation], need=bad)


def test_checkpoints_held_back_are_reported_beside_the_forecast(tmp_path, key, held_back_extrapolation):
    path = tmp_path / "held.html"
    bs.write_report([], str(path), key=key, extrapolations=[held_back_extrapolation])
    text = path.read_text()
    assert "<th>logged (held back)</th><th>error</th>" in text
    for run, entry in held_back_extrapolation.summary()["runs"].items():
        assert _row(text, run)[5:7] == [format_number(entry["logged"]), f"{100 * entry['error']:+.2f}%"], run
        assert f"{run}: {entry['held_back']['checkpoints']} checkpoints, RMSLE of the median" in text


def test_the_loss_needed_gets_a_new_runs_probability_at_each_budget(tmp_path, key, two_fits):
    fitted, budget = two_fits[0], 1e23
    # The median of the loss a new run measures: the report's probability is a half, up to
    # the Monte-Carlo error of two forecasts with independent noise (the posterior draws
    # are shared), each a share of num_draws draws.
    draws = bs.forecast(fitted, compute=budget, key=jax.random.key(7)).draws("loss_observed")
    need = float(np.median(draws))
    path = tmp_path / "need.html"
    bs.write_report(fitted, str(path), key=key, compute=[budget, 10 * budget], need=need)
    text = path.read_text()
    at_budget, at_ten_times = map(float, _row(text, f"P(a new run measures a loss &lt;= {need:g})"))
    standard_error = np.sqrt(2 * 0.25 / fitted.num_draws)
    assert abs(at_budget - 0.5) < 4 * standard_error + 0.005  # plus the rounding to two decimals
    assert at_ten_times > at_budget  # a larger budget reaches a lower loss


@pytest.mark.parametrize(
    ("name", "inputs", "frontier"),
    [
        ("kaplan_c_e", {"C": np.geomspace(1e18, 1e21, 10)}, True),
        # U, the unique tokens, is not fixed by a budget: no forecast nor frontier.
        (
            "data_constrained",
            {"N": np.geomspace(1e7, 1e10, 10), "D": np.geomspace(1e9, 1e12, 10), "U": np.geomspace(1e9, 1e11, 10)},
            False,
        ),
    ],
)
def test_forecast_and_frontier_only_where_a_budget_fixes_the_loss(tmp_path, key, name, inputs, frontier):
    law = get_law(name)
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=key)
    path = tmp_path / "report.html"
    bs.write_report(fake_fit(law, data, key=key), str(path), key=key)
    text = path.read_text()
    assert len(_images(text)) == int(frontier)
    assert ("expected loss" in text) == frontier
    assert ("No forecast at a compute budget: law data_constrained reads U" in text) == (not frontier)


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium or chromium-browser binary on PATH")
def test_a_headless_browser_renders_every_section_and_the_figures(report, two_fits, tmp_path):
    common = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    url = report.resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    for title in (*FIT_SECTIONS, "Comparison", "Learning-curve fan charts"):
        assert f">{title}</h" in dom, title
    assert len(_images(dom)) == len(two_fits) + 1  # a frontier per fit, the extrapolation's fan chart
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,12000", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = imread(shot)[..., :3]
    # The frontier's median line and bands are matplotlib's blue (C0); the page's own
    # styles have no blue, so blue pixels mean the inlined images were decoded and drawn.
    blue = (pixels[..., 2] > 0.5) & (pixels[..., 2] - pixels[..., 0] > 0.25)
    assert blue.sum() > 1000
    assert pixels.std() > 0.05  # not a blank page
