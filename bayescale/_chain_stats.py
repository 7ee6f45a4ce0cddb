"""Vectorized R-hat, bulk and tail ESS, and MCSE of the mean, as ArviZ computes them.

ArviZ evaluates its diagnostics one scalar element at a time in a Python loop, which costs
tens of milliseconds per fit. :func:`chain_statistics` follows ArviZ's implementation of
Vehtari et al. (2021), "Rank-normalization, folding, and localization: an improved R-hat for
assessing convergence of MCMC", step by step over all elements at once, and gives the
numbers of ``bayescale._arviz.rhat``, ``ess`` and ``mcse`` up to rounding.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, special

from bayescale._arviz import ARVIZ_1, TAIL_QUANTILES

__all__ = ["chain_statistics"]


def chain_statistics(draws: np.ndarray) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat, bulk and tail ESS, and MCSE of the mean of every element.

    Parameters
    ----------
    draws : numpy.ndarray
        (chain, draw, *rest) posterior draws.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``r_hat``, ``ess_bulk``, ``ess_tail`` (at the quantiles ``TAIL_QUANTILES``) and
        ``mcse_mean``, each of shape ``rest``. As in ArviZ, an element with a NaN draw
        gets NaN throughout, and so does every element when there are fewer than 4
        draws; R-hat is NaN with a single chain.
    """
    draws = np.asarray(draws, dtype=float)
    n_chain, n_draw, *rest = draws.shape
    if n_draw < 4:
        return {name: np.full(rest, np.nan) for name in ("r_hat", "ess_bulk", "ess_tail", "mcse_mean")}
    # (element, chain, draw), contiguous along draws for the sorts and FFTs below.
    x = np.ascontiguousarray(np.moveaxis(draws.reshape(n_chain, n_draw, -1), -1, 0))
    flat = x.reshape(len(x), x.shape[-2] * x.shape[-1])
    split = _split_chains(x)

    # Constant draws divide 0 by 0, and a derived constant can overflow in some draws (e^(1/a)
    # for a tiny exponent a); the statistics are then nan or inf, as the table should show.
    with np.errstate(all="ignore"):
        z_bulk, ordered = _normal_scores(split)
        ess_bulk = _ess(z_bulk)
        if n_chain > 1:
            # Folded R-hat: the R-hat of the distances from the median, sensitive to the tails.
            size = ordered.shape[-1]  # even, as the split chains have equal halves
            median = (ordered[:, size // 2 - 1] + ordered[:, size // 2]) / 2
            z_folded, _ = _normal_scores(np.abs(split - median[:, None, None]))
            r_bulk, r_folded = _split_r_hat(z_bulk), _split_r_hat(z_folded)
            r_hat = np.where(r_folded > r_bulk, r_folded, r_bulk)  # Python's max(r_bulk, r_folded), as ArviZ
        else:
            r_hat = np.full(len(x), np.nan)

        # Tail ESS: the smaller ESS of the indicators of lying at or below the two tail
        # quantiles of all draws (the middle draw of odd chains included; with an even
        # count, the split draws are all the draws).
        ordered_all = ordered if n_draw % 2 == 0 else np.sort(flat, axis=-1)
        low, high = (_ess(_split_chains(x <= _quantile(ordered_all, prob)[:, None, None])) for prob in TAIL_QUANTILES)
        ess_tail = np.where(high < low, high, low)  # Python's min(low, high), as ArviZ

        mcse_mean = np.std(flat, axis=-1, ddof=1) / np.sqrt(_ess(split))

    invalid = np.isnan(flat).any(axis=-1)
    stats = {"r_hat": r_hat, "ess_bulk": ess_bulk, "ess_tail": ess_tail, "mcse_mean": mcse_mean}
    return {name: np.where(invalid, np.nan, value).reshape(rest) for name, value in stats.items()}


def _split_chains(x: np.ndarray) -> np.ndarray:
    """Halve each chain of (element, chain, draw) draws; as in ArviZ, an odd count drops the middle draw."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., -half:]], axis=-2)


def _normal_scores(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalise each element's (chain, draw) block.

    Parameters
    ----------
    x : numpy.ndarray
        (element, chain, draw) draws.

    Returns
    -------
    z : numpy.ndarray
        Normal quantiles of the average ranks r (ties share their mean rank), at
        (r - 3/8) / (size + 1/4) (Blom), of shape ``x.shape``. An element with a NaN
        (such as folded draws about an infinite median) gets NaN, as from scipy's
        ``rankdata`` in ArviZ.
    ordered : numpy.ndarray
        (element, chain * draw) the sorted draws of each element.
    """
    flat = x.reshape(len(x), x.shape[-2] * x.shape[-1])
    size = flat.shape[-1]
    order = np.argsort(flat, axis=-1)
    ordered = np.take_along_axis(flat, order, axis=-1)
    # Average ranks are multiples of 1/2, so their scores come from a table rather than an
    # ndtri per draw; index i holds the score of rank i / 2 + 1.
    rank = np.arange(2 * size - 1) / 2 + 1
    scores = special.ndtri((rank - 3 / 8) / (size - 2 * 3 / 8 + 1))
    sorted_scores = np.broadcast_to(scores[::2], flat.shape)  # rank = sorted position + 1 without ties
    tied = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=-1))
    if tied.size:
        sorted_scores = sorted_scores.copy()
        sorted_scores[tied] = scores[_tie_positions(ordered[tied])]
    z = np.empty_like(flat)
    np.put_along_axis(z, order, sorted_scores, axis=-1)
    z[np.isnan(ordered[:, -1])] = np.nan  # sorts put NaN last
    return z.reshape(x.shape), ordered


def _tie_positions(ordered: np.ndarray) -> np.ndarray:
    """First plus last sorted position of the tie group of each sorted draw: twice its average rank less 2."""
    size = ordered.shape[-1]
    position = np.arange(size)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    last = np.minimum.accumulate(np.where(ends, position, size)[:, ::-1], axis=-1)[:, ::-1]
    return first + last


def _split_r_hat(z: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat of (element, chain, draw) draws."""
    n = z.shape[-1]
    between = n * np.var(z.mean(axis=-1), axis=-1, ddof=1)
    within = np.var(z, axis=-1, ddof=1).mean(axis=-1)
    return np.sqrt((between / within + n - 1) / n)


def _quantile(ordered: np.ndarray, prob: float) -> np.ndarray:
    """Type-7 quantile of each row of sorted draws, rounded as each ArviZ line computes it.

    ArviZ 1.x calls ``numpy.quantile``; ArviZ 0.x calls ``scipy.stats.mstats.mquantiles``,
    whose interpolation between two equal draws can land an ulp beside them, and that
    decides whether those draws count as below the quantile.
    """
    if ARVIZ_1:
        return np.quantile(ordered, prob, axis=-1)
    n = ordered.shape[-1]
    aleph = n * prob + (1.0 - prob)
    k = int(np.floor(np.clip(aleph, 1, n - 1)))
    gamma = np.clip(aleph - k, 0, 1)
    return (1.0 - gamma) * ordered[:, k - 1] + gamma * ordered[:, k]


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of (element, chain, draw) draws, as ArviZ's ``_ess``.

    Geyer's initial monotone sequence estimator over the autocorrelations combined across
    chains (Vehtari et al. 2021), with tau bounded below by 1 / log10(size); draws whose
    range is below float resolution count as independent.
    """
    n_chain, n_draw = x.shape[-2:]
    x = x.astype(float, copy=False)
    # Autocovariance by FFT, zero-padded against wrap-around; averaging the power spectra
    # over chains before the inverse FFT gives the chain-mean autocovariance in one pass.
    n_fft = fft.next_fast_len(2 * n_draw, real=True)
    chain_mean = x.mean(axis=-1)
    spectrum = np.fft.rfft(x - chain_mean[..., None], n=n_fft, axis=-1)
    power = np.mean(np.abs(spectrum) ** 2, axis=-2)
    acov = np.fft.irfft(power, n=n_fft, axis=-1)[:, :n_draw] / n_draw

    mean_var = acov[:, 0] * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw + np.var(chain_mean, axis=-1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov) / var_plus[:, None]
    rho[:, 0] = 1.0

    # Initial positive sequence: sums of (even, odd) lag pairs, up to the first pair that is
    # not positive or whose odd lag reaches n_draw - 3, where ArviZ's loop ends. That stopping
    # pair adds only its even lag, and only if that is positive or the pair sum is not negative.
    n_pairs = n_draw // 2
    pairs = rho[:, 0 : 2 * n_pairs : 2] + rho[:, 1 : 2 * n_pairs : 2]
    pair = np.arange(n_pairs)
    stop = np.argmax(~(pairs > 0) | (2 * pair + 1 >= n_draw - 3), axis=-1)
    element = np.arange(len(rho))
    last_even, last_pair = rho[element, 2 * stop], pairs[element, stop]
    # Initial monotone sequence: no pair sum above the one before.
    monotone = np.minimum.accumulate(pairs, axis=-1)
    tau = (
        -1.0
        + 2.0 * np.sum(np.where(pair < stop[:, None], monotone, 0.0), axis=-1)
        + np.where((last_even > 0) | (last_pair >= 0), last_even, 0.0)
    )
    size = n_chain * n_draw
    # ArviZ gives NaN if an autocorrelation it kept is NaN; they all are (non-finite draws) or none.
    ess = np.where(np.isnan(rho[:, 1]), np.nan, size / np.maximum(tau, 1 / np.log10(size)))
    constant = np.ptp(x.reshape(len(x), n_chain * n_draw), axis=-1) < np.finfo(float).resolution
    return np.where(constant, size, ess)
