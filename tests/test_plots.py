"""Figures: assert on what is drawn (lines, bands, points, labels), not on pixels."""

import warnings

import jax
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection, PolyCollection

import bayescale as bs
from bayescale.extrapolate import CURVE_CONFIG
from bayescale.models import get_law
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


# The settings of the CLI's extrapolation tests (law, sampler, two runs of 20 checkpoints),
# so both modules share one compiled program.
# The settings (and data shape) of the CLI's extrapolate test, so the program is compiled once.
EXTRAPOLATION_CONFIG = CURVE_CONFIG.replace(num_warmup=100, num_samples=100, num_chains=2)


@pytest.fixture(scope="module")
def extrapolation():
    from bayescale.extrapolate import extrapolate

    rng = np.random.default_rng(0)
    steps = np.arange(10, 201, 10)
    table = {
        "run": np.repeat(["a", "b"], len(steps)),
        "step": np.tile(steps, 2),
        "loss": np.concatenate([2.0 + scale * steps**-0.5 for scale in (3.0, 2.0)]) * np.exp(rng.normal(0, 0.01, 40)),
    }
    # So few draws may fail the convergence checks; the figure does not depend on them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        return extrapolate(
            table, to_step={"a": 400, "b": 800}, key=jax.random.key(0), law="pow3", config=EXTRAPOLATION_CONFIG
        )


def _band_limits(band):
    """Lowest and highest y of a fill_between polygon at each of its x values."""
    vertices = band.get_paths()[0].vertices
    xs = np.unique(vertices[:, 0])
    return xs, np.array([[vertices[vertices[:, 0] == x, 1].min(), vertices[vertices[:, 0] == x, 1].max()] for x in xs])


def test_fan_chart_draws_checkpoints_median_bands_and_final_interval(extrapolation):
    ax = bs.plot_extrapolation(extrapolation, "a").axes[0]
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
    q05, q50, q95 = np.quantile(extrapolation.final_loss("a"), [0.05, 0.5, 0.95])
    bar = next(c for c in ax.collections if isinstance(c, LineCollection))
    [(start, end)] = bar.get_segments()
    assert start[0] == end[0] == 400
    assert sorted([start[1], end[1]]) == pytest.approx([q05, q95])
    assert median.get_ydata()[-1] == pytest.approx(q50)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"


def test_fan_chart_of_several_runs_has_a_colour_and_legend_entry_per_run(extrapolation):
    ax = bs.plot_extrapolation(extrapolation).axes[0]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a", "b"]
    medians = [line for line in ax.get_lines() if line.get_label() in ("a", "b")]
    assert [line.get_xdata()[-1] for line in medians] == [400, 800]
    assert medians[0].get_color() != medians[1].get_color()
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 4
    with pytest.raises(ValueError, match="no run 'c'"):
        bs.plot_extrapolation(extrapolation, "c")
