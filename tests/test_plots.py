"""Figures: assert on what is drawn (lines, bands, points, labels), not on pixels."""

import jax
import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection

import bayescale as bs
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


def test_exponent_pair_plot_has_a_panel_per_pair(chinchilla):
    figure = bs.plot_exponents(chinchilla)
    visible = [ax for ax in figure.axes if ax.axison]
    assert len(visible) == 3  # two histograms and one scatter for (alpha, beta)
    assert {ax.get_xlabel() for ax in visible} >= {"alpha", "beta"}
