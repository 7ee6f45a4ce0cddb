"""Figures: assert on what is drawn (lines, bands, points, labels), not on pixels."""

import jax
import numpy as np
import pytest
from bayescale.models import get_law
from matplotlib.collections import LineCollection, PathCollection, PolyCollection

import bayescale as bs
from bayescale.extrapolate import describe_reach
from bayescale.testing import fake_fit, prior_means, simulate


@pytest.fixture(scope="module")
def chinchilla():
    law = get_law("chinchilla")
    key = jax.random.key(0)
    inputs = {"N": np.geomspace(1e7, 1e10, 12), "D": np.geomspace(1e9, 1e12, 12)}
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, inputs, key=key)
    return fake_fit(law, data, key=key)


def test_frontier_draws_data_median_and_bands_to_the_target(chinchilla):
    figure = bs.plot_frontier(chinchilla, target_compute=5.76e23)
    ax = figure.axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(bands) == 2  # 90% and 50%
    assert len(points[0].get_offsets()) == len(chinchilla.data)
    median = next(line for line in ax.get_lines() if line.get_label() == "posterior median")
    assert median.get_xdata().max() >= 5.76e23
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("compute")
    target = next(line for line in ax.get_lines() if "target" in line.get_label())
    assert target.get_xdata()[0] == pytest.approx(5.76e23)


def test_frontier_of_a_law_of_compute_alone_draws_the_runs_without_a_colour_bar(key):
    law = get_law("kaplan_c_e")
    data = simulate(law, {**prior_means(law), "sigma": 0.02}, {"C": np.geomspace(1e18, 1e21, 10)}, key=key)
    figure = bs.plot_frontier(fake_fit(law, data, key=key))  # no warning: the suite makes warnings errors
    points = [c for c in figure.axes[0].collections if isinstance(c, PathCollection)]
    assert len(points[0].get_offsets()) == len(data)
    assert len(figure.axes) == 1  # no colour bar


def test_exponent_pair_plot_has_a_panel_per_pair(chinchilla):
    figure = bs.plot_exponents(chinchilla)
    visible = [ax for ax in figure.axes if ax.axison]
    assert len(visible) == 3  # two histograms and one scatter for (alpha, beta)
    assert {ax.get_xlabel() for ax in visible} >= {"alpha", "beta"}


def _band_limits(band):
    """Lowest and highest y of a fill_between polygon at each of its x values."""
    vertices = band.get_paths()[0].vertices
    xs = np.unique(vertices[:, 0])
    return xs, np.array([[vertices[vertices[:, 0] == x, 1].min(), vertices[vertices[:, 0] == x, 1].max()] for x in xs])


def test_fan_chart_draws_checkpoints_median_bands_and_final_interval(small_extrapolation):
    ax = bs.plot_extrapolation(small_extrapolation, "a").axes[0]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 1
    np.testing.assert_array_equal(points[0].get_offsets()[:, 0], np.arange(10, 201, 10))
    median = next(line for line in ax.get_lines() if line.get_label() == "posterior median")
    assert median.get_xdata()[0] == 200 and median.get_xdata()[-1] == 400
    bands = {c.get_label(): c for c in ax.collections if isinstance(c, PolyCollection)}
    assert set(bands) == {"90% interval", "50% interval"}
    (x90, wide), (x50, narrow) = _band_limits(bands["90% interval"]), _band_limits(bands["50% interval"])
    assert x90.min() == 200 and x90.max() == 400
    np.testing.assert_array_equal(x50, x90)
    assert np.all(wide[:, 0] <= narrow[:, 0]) and np.all(narrow[:, 1] <= wide[:, 1])
    # The median of the curve at the target lies inside both bands.
    assert wide[-1, 0] <= median.get_ydata()[-1] <= wide[-1, 1]
    # The final loss: its 90% interval as an error bar at the target step.
    q05, q50, q95 = np.quantile(small_extrapolation.final_loss("a"), [0.05, 0.5, 0.95])
    bar = next(c for c in ax.collections if isinstance(c, LineCollection))
    [(start, end)] = bar.get_segments()
    assert start[0] == end[0] == 400
    assert sorted([start[1], end[1]]) == pytest.approx([q05, q95])
    assert median.get_ydata()[-1] == pytest.approx(q50)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"


def test_fan_chart_marks_the_loss_needed_with_each_runs_probability(small_extrapolation):
    result = small_extrapolation
    chance = result.probability_at_or_below(2.15)
    ax = bs.plot_extrapolation(result, need=2.15).axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {2.15}  # one line for a loss every run shares
    legend = {text.get_text() for text in ax.get_legend().get_texts()}
    assert legend == {f"a, P(<= 2.15) {chance['a']:.2f}", f"b, P(<= 2.15) {chance['b']:.2f}", "loss needed 2.15"}
    ax = bs.plot_extrapolation(result, "a", need={"a": 2.2}).axes[0]
    [dashed] = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert set(dashed.get_ydata()) == {2.2}
    chance = result.probability_at_or_below({"a": 2.2})["a"]
    assert dashed.get_label() == f"loss needed 2.2, P(at or below) {chance:.2f}"
    # On the line, from which step the run logs it: a diamond at the median, a bar to 5% and 95%.
    reached = result.steps_to_reach({"a": 2.2})["a"]
    assert reached["median"] is not None, reached  # run a's median falls below 2.2 before its target
    [bar] = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_segments()[0][0][1] == 2.2]
    [(start, end)] = bar.get_segments()
    late = reached["q95"] or result.curve("a")[0][-1]
    assert sorted([start[0], end[0]]) == [reached["q05"], late]
    assert any(line.get_xdata()[0] == reached["median"] for line in ax.get_lines() if line.get_marker() == "D")
    legend = {text.get_text() for text in ax.get_legend().get_texts()}
    assert f"logs {describe_reach(2.2, reached)}" in legend
    # Per run, each run's line in its own colour.
    ax = bs.plot_extrapolation(result, need={"a": 2.2, "b": 2.0}).axes[0]
    medians = {line.get_label().split(",")[0]: line for line in ax.get_lines() if line.get_linestyle() == "-"}
    dashed = {line.get_ydata()[0]: line.get_color() for line in ax.get_lines() if line.get_linestyle() == "--"}
    assert dashed == {2.2: medians["a"].get_color(), 2.0: medians["b"].get_color()}


def test_fan_chart_of_several_runs_has_a_colour_and_legend_entry_per_run(small_extrapolation):
    ax = bs.plot_extrapolation(small_extrapolation).axes[0]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a", "b"]
    medians = [line for line in ax.get_lines() if line.get_label() in ("a", "b")]
    assert [line.get_xdata()[-1] for line in medians] == [400, 800]
    assert medians[0].get_color() != medians[1].get_color()
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 4
    with pytest.raises(ValueError, match="no run 'c'"):
        bs.plot_extrapolation(small_extrapolation, "c")
