"""Figures: the loss frontier with credible bands, the exponents' pair plot, learning-curve fan charts.

Every function returns the matplotlib Figure (and draws on ``ax`` when one is given), so
callers can save, show or assert on it.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from bayescale.diagnostics import QUANTILES
from bayescale.extrapolate import Extrapolation
from bayescale.forecast import expected_loss_at_compute
from bayescale.inference import Fit

__all__ = ["plot_exponents", "plot_extrapolation", "plot_frontier"]

#: Central credible bands drawn around the posterior median, widest first.
BANDS = (0.9, 0.5)
_GRID_POINTS = 60


def _new_axes(ax, figsize=(6.4, 4.4)):
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.add_subplot()


def plot_frontier(fit: Fit, *, target_compute: float | None = None, ax=None) -> Figure:
    """Loss against compute: the runs, the posterior median frontier and 50%/90% bands.

    For a law of N and D the frontier is the loss at the compute-optimal split of each
    budget; for a law of C alone it is the law itself. The curve is carried from the
    smallest run out to ``target_compute`` (or a decade past the largest run), which is
    marked.

    Parameters
    ----------
    fit : Fit
        A fit of a law of N and D, or of C.
    target_compute : float, optional
        The budget to extrapolate to, in FLOPs.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, ax = _new_axes(ax)
    compute, loss = fit.data["C"], fit.data["loss"]
    high = max(target_compute or 0.0, compute.max() * 10.0)
    grid = np.geomspace(compute.min() / 2.0, high, _GRID_POINTS)
    frontier = expected_loss_at_compute(fit, grid)["loss"]
    for width, alpha in zip(BANDS, (0.2, 0.35), strict=True):
        low, upper = np.quantile(frontier, [(1 - width) / 2, (1 + width) / 2], axis=0)
        ax.fill_between(grid, low, upper, color="C0", alpha=alpha, linewidth=0, label=f"{width:.0%} interval")
    ax.plot(grid, np.median(frontier, axis=0), color="C0", label="posterior median")
    colour = np.log10(fit.data["N"]) if "N" in fit.data else None
    points = ax.scatter(compute, loss, c=colour, s=12, cmap="viridis", label="runs", zorder=3)
    if colour is not None:
        figure.colorbar(points, ax=ax, label="log10 N")
    if target_compute is not None:
        ax.axvline(target_compute, color="grey", linestyle="--", linewidth=1, label=f"target C = {target_compute:.3g}")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="loss", title=f"{fit.law.name}: loss frontier")
    ax.legend(loc="upper right", fontsize="small")
    return figure


def plot_exponents(fit: Fit, *, var_names: tuple[str, ...] | None = None) -> Figure:
    """Pair plot of the law's exponents: marginal histograms and pairwise scatter.

    Parameters
    ----------
    fit : Fit
        Any fit.
    var_names : tuple of str, optional
        Parameters to show; the law's exponents by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = var_names or fit.law.exponents or tuple(fit.law.priors)
    draws = {name: np.asarray(fit.posterior[name]).ravel() for name in names}
    size = len(names)
    figure = Figure(figsize=(2.6 * size, 2.6 * size), layout="constrained")
    axes = figure.subplots(size, size, squeeze=False)
    for row, y_name in enumerate(names):
        for column, x_name in enumerate(names):
            ax = axes[row, column]
            if row == column:
                ax.hist(draws[x_name], bins=40, color="C0", alpha=0.8)
                ax.set_yticks([])
            elif row > column:
                ax.scatter(draws[x_name], draws[y_name], s=2, alpha=0.25, color="C0", rasterized=True)
            else:
                ax.set_axis_off()
                continue
            if row == size - 1:
                ax.set_xlabel(x_name)
            if column == 0 and row != column:
                ax.set_ylabel(y_name)
    figure.suptitle(f"{fit.law.name}: posterior of the exponents")
    return figure


def plot_extrapolation(result: Extrapolation, run: str | None = None, *, ax=None) -> Figure:
    """Fan chart of learning curves: the checkpoints, then the predicted rest of each run.

    Each run's checkpoints are drawn as points (loss against step, log step axis); from the
    last checkpoint to the target step come the posterior median of the loss the run will
    log, its 50% and 90% bands, and at the target step the 90% interval of the final loss.
    Several runs share the axes, one colour each.

    Parameters
    ----------
    result : Extrapolation
        The output of :func:`~bayescale.extrapolate.extrapolate`.
    run : str, optional
        The run to draw; every run by default.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When ``run`` is not one of ``result.runs``.
    """
    if run is not None and run not in result.runs:
        raise ValueError(f"no run {run!r} in this extrapolation; runs: {', '.join(result.runs)}")
    runs = result.runs if run is None else (run,)
    figure, ax = _new_axes(ax)
    labels = result.data["run"].astype(str)
    # One run: a legend of what is drawn. Several: a legend of runs by colour, the other
    # artists keeping their labels hidden behind a leading underscore.
    several = len(runs) > 1
    hide = "_" if several else ""
    for index, name in enumerate(runs):
        colour = f"C{index % 10}"
        rows = labels == name
        steps, curve = result.curve(name)
        observed_steps, observed_loss = result.data["step"][rows], result.data["loss"][rows]
        ax.scatter(observed_steps, observed_loss, s=12, color=colour, label=f"{hide}checkpoints", zorder=3)
        for width, alpha in zip(BANDS, (0.2, 0.35), strict=True):
            low, high = np.quantile(curve, [(1 - width) / 2, (1 + width) / 2], axis=0)
            band = f"{hide}{width:.0%} interval"
            ax.fill_between(steps, low, high, color=colour, alpha=alpha, linewidth=0, label=band)
        ax.plot(steps, np.median(curve, axis=0), color=colour, label=name if several else "posterior median")
        low, median, high = np.quantile(result.final_loss(name), QUANTILES)
        ax.errorbar(
            steps[-1],
            median,
            yerr=[[median - low], [high - median]],
            fmt="o",
            color=colour,
            markersize=4,
            capsize=4,
            label=f"{hide}final loss at step {steps[-1]}, 90% interval",
        )
    title = f"{runs[0]}: predicted loss" if not several else "predicted loss: median, 50% and 90% bands"
    ax.set(xscale="log", xlabel="step", ylabel="loss", title=title)
    ax.legend(loc="upper right", fontsize="small")
    return figure
