"""Figures: the loss frontier with credible bands, the exponents' pair plot, learning-curve fan charts.

Posterior predictive checks have three: replicated against observed loss, the LOO-PIT
ECDF, and residuals against the inputs.

Every function returns the matplotlib Figure (and draws on ``ax`` when one is given), so
callers can save, show or assert on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from matplotlib.figure import Figure

from bayescale.checks import ALPHA, ks_band, ks_uniform, loo_pit, posterior_predictive, residuals
from bayescale.diagnostics import QUANTILES
from bayescale.extrapolate import Extrapolation, _needed_losses, describe_reach
from bayescale.forecast import expected_loss_at_compute
from bayescale.inference import Fit

__all__ = [
    "plot_exponents",
    "plot_extrapolation",
    "plot_frontier",
    "plot_loo_pit",
    "plot_ppc",
    "plot_residuals",
]

#: Central credible bands drawn around the posterior median, widest first.
BANDS = (0.9, 0.5)
_GRID_POINTS = 60
# Most bins of the residuals' running median; each holds at least _MIN_PER_BIN points.
_MAX_BINS, _MIN_PER_BIN = 8, 5


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
    if "N" in fit.data:
        points = ax.scatter(compute, loss, c=np.log10(fit.data["N"]), s=12, cmap="viridis", label="runs", zorder=3)
        figure.colorbar(points, ax=ax, label="log10 N")
    else:  # a law of C alone: no size to colour by (a cmap without colours is a UserWarning)
        ax.scatter(compute, loss, s=12, color="C0", label="runs", zorder=3)
    if target_compute is not None:
        ax.axvline(target_compute, color="grey", linestyle="--", linewidth=1, label=f"target C = {target_compute:.3g}")
    ax.set(
        xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="loss", title=f"{fit.law.name}: loss frontier"
    )
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


def plot_extrapolation(
    result: Extrapolation,
    run: str | Sequence[str] | None = None,
    *,
    need: float | Mapping[str, float] | None = None,
    ax=None,
) -> Figure:
    """Fan chart of learning curves: the checkpoints, then the predicted rest of each run.

    Each run's checkpoints are drawn as points (loss against step, log step axis); from the
    last checkpoint to the target step come the posterior median of the loss the run will
    log, its 50% and 90% bands, and at the target step the 90% interval of the final loss.
    Checkpoints held back from the fit (``observed_until``) are drawn hollow. Several runs
    share the axes, one colour each.

    Parameters
    ----------
    result : Extrapolation
        The output of :func:`~bayescale.extrapolate.extrapolate`.
    run : str or sequence of str, optional
        The run, or runs, to draw; every run by default.
    need : float or Mapping[str, float], optional
        A loss needed at the target step, for every run or per run: a dashed line at it,
        labelled with each drawn run's probability of landing at or below it, and on it,
        where a run's median reaches it by the target, a diamond at the step from which
        the run logs it with a chance of one half and a bar from 5% to 95%
        (:meth:`~bayescale.extrapolate.Extrapolation.steps_to_reach`).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When a run asked for is not one of ``result.runs``.
    """
    runs = result.runs if run is None else (run,) if isinstance(run, str) else tuple(run)
    for name in runs:
        if name not in result.runs:
            raise ValueError(f"no run {name!r} in this extrapolation; runs: {', '.join(result.runs)}")
    figure, ax = _new_axes(ax)
    labels = result.data["run"].astype(str)
    # One run: a legend of what is drawn. Several: a legend of runs by colour, the other
    # artists keeping their labels hidden behind a leading underscore.
    several = len(runs) > 1
    hide = "_" if several else ""
    needed = {} if need is None else _needed_losses(need, result.runs)
    needed = {name: loss for name, loss in needed.items() if name in runs}
    probabilities = result.probability_at_or_below(needed)
    reached = result.steps_to_reach(needed)
    shared = not isinstance(need, Mapping)  # one loss for every run, drawn once
    for index, name in enumerate(runs):
        colour = f"C{index % 10}"
        rows = labels == name
        steps, curve = result.curve(name)
        observed_steps, observed_loss = result.data["step"][rows], result.data["loss"][rows]
        ax.scatter(observed_steps, observed_loss, s=12, color=colour, label=f"{hide}checkpoints", zorder=3)
        held_steps, held_loss = result.held_back(name)
        if len(held_steps):
            ax.scatter(
                held_steps,
                held_loss,
                s=6,
                facecolors="none",
                edgecolors=colour,
                linewidths=0.5,
                label=f"{hide}held back (not fitted)",
                zorder=2,
            )
        for width, alpha in zip(BANDS, (0.2, 0.35), strict=True):
            low, high = np.quantile(curve, [(1 - width) / 2, (1 + width) / 2], axis=0)
            band = f"{hide}{width:.0%} interval"
            ax.fill_between(steps, low, high, color=colour, alpha=alpha, linewidth=0, label=band)
        chance = f", P(<= {needed[name]:g}) {probabilities[name]:.2f}" if name in needed else ""
        ax.plot(
            steps, np.median(curve, axis=0), color=colour, label=f"{name}{chance}" if several else "posterior median"
        )
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
        if name in needed and not (shared and index):
            if not several:
                label = f"loss needed {needed[name]:g}, P(at or below) {probabilities[name]:.2f}"
            else:  # each run's probability is in its own label
                label = f"loss needed {needed[name]:g}" if shared else "_loss needed"
            ax.axhline(needed[name], color="0.3" if shared else colour, linestyle="--", linewidth=1, label=label)
        if name in needed and reached[name]["median"] is not None:
            early, median, late = (reached[name][level] for level in ("q05", "median", "q95"))
            late = steps[-1] if late is None else late  # not by the target: the bar runs to it
            ax.errorbar(
                median,
                needed[name],
                xerr=[[median - early], [late - median]],
                fmt="D",
                color=colour,
                markersize=4,
                capsize=3,
                label=f"{hide}logs {describe_reach(needed[name], reached[name])}",
                zorder=4,
            )
    title = f"{runs[0]}: predicted loss" if not several else "predicted loss: median, 50% and 90% bands"
    ax.set(xscale="log", xlabel="step", ylabel="loss", title=title)
    ax.legend(loc="upper right", fontsize="small")
    return figure


def plot_ppc(fit: Fit, *, key: jax.Array, ax=None) -> Figure:
    """Observed loss against its replications: posterior predictive median and 90% interval.

    Each observation is a point at its observed loss (x) and the median of its replicated
    loss (y, see :func:`~bayescale.checks.posterior_predictive`), with the 90% interval as
    an error bar; points whose observed loss falls outside it are highlighted. A law that
    fits puts the points along the diagonal with about one in ten outside.

    Parameters
    ----------
    fit : Fit
        Any fit.
    key : jax.Array
        PRNG key for the replications.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, ax = _new_axes(ax)
    low, median, high = np.exp(np.quantile(posterior_predictive(fit, key=key), QUANTILES, axis=0))
    observed = fit.data["loss"]
    outside = (observed < low) | (observed > high)
    groups = (
        (~outside, "C0", "inside 90% interval"),
        (outside, "C3", f"outside 90% interval ({outside.sum()} of {outside.size})"),
    )
    for rows, colour, label in groups:
        if rows.any():
            error = [median[rows] - low[rows], high[rows] - median[rows]]
            ax.errorbar(observed[rows], median[rows], yerr=error, fmt="o", markersize=3, color=colour, label=label)
    span = [min(observed.min(), low.min()), max(observed.max(), high.max())]
    ax.plot(span, span, color="grey", linestyle="--", linewidth=1, label="replicated = observed")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="observed loss",
        ylabel="replicated loss",
        title=f"{fit.law.name}: posterior predictive check",
    )
    ax.legend(loc="upper left", fontsize="small")
    return figure


def plot_loo_pit(fit: Fit, ax=None) -> Figure:
    """ECDF of the LOO-PIT values minus the uniform CDF, with a simultaneous band.

    The curve leaves the ``1 - ALPHA`` band exactly when the Kolmogorov-Smirnov test of
    :func:`~bayescale.checks.check` flags the values as not uniform. A hump above zero
    means observations sit low in their leave-one-out predictives (the law predicts too
    high), a dip the reverse; a curve above zero and then below means predictives too
    narrow, below and then above, too wide.

    Parameters
    ----------
    fit : Fit
        Any fit.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, ax = _new_axes(ax)
    pit = np.sort(loo_pit(fit)[0])
    n = pit.size
    # The ECDF exactly: a jump of 1/n at each value, drawn as a vertical step.
    grid = np.concatenate([[0.0], np.repeat(pit, 2), [1.0]])
    ecdf = np.concatenate([[0.0], np.repeat(np.arange(n + 1) / n, 2)[1:-1], [1.0]])
    half_width = ks_band(n)
    ax.fill_between(
        [0.0, 1.0], -half_width, half_width, color="C0", alpha=0.2, linewidth=0, label=f"{1 - ALPHA:.0%} band"
    )
    ax.plot(grid, ecdf - grid, color="C0", label="ECDF - uniform")
    ax.axhline(0.0, color="grey", linewidth=1)
    ax.set(
        xlim=(0.0, 1.0),
        xlabel="LOO-PIT",
        ylabel="ECDF - uniform",
        title=f"{fit.law.name}: LOO-PIT (KS p = {ks_uniform(pit)[1]:.2g})",
    )
    ax.legend(loc="upper right", fontsize="small")
    return figure


def plot_residuals(fit: Fit) -> Figure:
    """Residuals of log loss against each of N, D and C the data have, one panel each.

    Residuals are observed log loss minus the posterior median of the law's expected log
    loss (see :func:`~bayescale.checks.residuals`); a running median over equal-count bins
    shows a trend the law misses, such as a floor or a bend at the largest runs.

    Parameters
    ----------
    fit : Fit
        Any fit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    residual, inputs = residuals(fit)
    figure = Figure(figsize=(4.0 * len(inputs), 3.6), layout="constrained")
    axes = figure.subplots(1, len(inputs), sharey=True, squeeze=False)[0]
    bins = max(1, min(_MAX_BINS, residual.size // _MIN_PER_BIN))
    for ax, (name, values) in zip(axes, inputs.items(), strict=True):
        ax.scatter(values, residual, s=12, color="C0", label="observations")
        ax.axhline(0.0, color="grey", linewidth=1)
        groups = np.array_split(np.argsort(values, kind="stable"), bins)
        centres = [np.median(values[rows]) for rows in groups]
        ax.plot(centres, [np.median(residual[rows]) for rows in groups], color="C3", marker="s", label="binned median")
        ax.set(xscale="log" if np.all(values > 0) else "linear", xlabel=name)
    axes[0].set_ylabel("residual of log loss")
    axes[0].legend(loc="best", fontsize="small")
    figure.suptitle(f"{fit.law.name}: observed minus posterior median")
    return figure
