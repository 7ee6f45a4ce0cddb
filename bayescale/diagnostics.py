"""Sampler health and posterior summaries.

:func:`diagnose` reads a fit's draws and returns a :class:`Diagnostics` report: R-hat,
bulk and tail ESS, divergences, tree-depth saturation and E-BFMI, checked against the
thresholds below, each failed check with its likely cause and what to try next; and the
parameters the data barely informed, by how much each posterior contracted from its prior.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import numpyro.distributions as dist
import scipy.stats

from bayescale import _arviz
from bayescale._chain_stats import chain_statistics

__all__ = [
    "MAX_RHAT",
    "MIN_BFMI",
    "MIN_CONTRACTION",
    "MIN_ESS_PER_CHAIN",
    "Diagnostics",
    "check_loss_needed",
    "diagnose",
    "max_pareto_k",
    "prior_interval",
    "probability_at_or_below",
    "summarize",
    "tail_checked_means",
]

#: R-hat above this means the chains disagree (Vehtari et al. 2021 recommend 1.01).
MAX_RHAT = 1.01
#: Bulk and tail ESS below 100 per chain make quantiles and R-hat itself unreliable
#: (Vehtari et al. 2021).
MIN_ESS_PER_CHAIN = 100
#: E-BFMI below 0.3 means the momentum resampling explores the energy poorly (Betancourt 2016).
MIN_BFMI = 0.3
#: Quantiles reported for every parameter: the median and a central 90% interval.
QUANTILES = (0.05, 0.5, 0.95)
#: A law parameter whose posterior contracted less than this from its prior was barely
#: informed by the data: its 90% interval is still more than 95% as wide as the prior's.
MIN_CONTRACTION = 0.1
#: Prior draws behind the 90% interval of a prior without a quantile function below; the
#: interval's ends are then known to about 1% of its width.
_PRIOR_DRAWS = 2**16
#: Exact quantile functions (SciPy's, which JAX depends on) of the prior families the law
#: catalogue uses, keyed by exact type: sampling them means tracing and compiling JAX's
#: samplers (Beta's rejection loops), about a second in every new process.
# Each takes the prior's parameters (by NumPyro's names) and the probabilities.
_PRIOR_QUANTILES = {
    dist.Normal: lambda p, q: scipy.stats.norm.ppf(q, p["loc"], p["scale"]),
    dist.HalfNormal: lambda p, q: scipy.stats.halfnorm.ppf(q, scale=p["scale"]),
    dist.LogNormal: lambda p, q: scipy.stats.lognorm.ppf(q, p["scale"], scale=np.exp(p["loc"])),
    dist.Beta: lambda p, q: scipy.stats.beta.ppf(q, p["concentration1"], p["concentration0"]),
    dist.Gamma: lambda p, q: scipy.stats.gamma.ppf(q, p["concentration"], scale=1.0 / p["rate"]),
}


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """Health report of one fit.

    Attributes
    ----------
    divergences : int
        Divergent transitions after warmup.
    max_r_hat, min_ess_bulk, min_ess_tail : float
        Worst values over the scalar parameters.
    tree_depth_saturation : float
        Fraction of draws whose trajectory hit the tree-depth cap.
    min_bfmi : float
        Lowest E-BFMI over the chains.
    mean_tree_depth : float
        Average NUTS tree depth after warmup (cost per draw grows as 2^depth).
    problems : tuple of str
        One sentence per failed check: what failed, the likely cause, what to try.
    weakly_identified : tuple of str
        Law parameters (rows of the summary, ``name`` or ``name[run]``) whose posterior
        contracted less than :data:`MIN_CONTRACTION` from the prior: the data taught them
        nearly nothing. Not a sampler failure, so it does not make ``ok`` false.
    """

    divergences: int
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    tree_depth_saturation: float
    min_bfmi: float
    mean_tree_depth: float
    problems: tuple[str, ...] = ()
    weakly_identified: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    def identification_note(self) -> str:
        """One sentence naming the weakly identified parameters; empty when there are none."""
        if not self.weakly_identified:
            return ""
        return (
            f"the data barely informed {', '.join(self.weakly_identified)}: posterior about as wide as the prior "
            f"(contraction < {MIN_CONTRACTION}), so these and any forecast leaning on them come from the prior"
        )

    def to_dict(self) -> dict:
        """Return the report as plain JSON-ready values."""
        values = dataclasses.asdict(self)
        values["problems"] = list(self.problems)
        values["weakly_identified"] = list(self.weakly_identified)
        values["ok"] = self.ok
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> Diagnostics:
        """Rebuild a report from :meth:`to_dict`'s output (``ok`` is recomputed, not read)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        kept = {name: value for name, value in values.items() if name in fields}
        lists = {name: tuple(values.get(name, ())) for name in ("problems", "weakly_identified")}
        return cls(**{**kept, **lists})


def scalar_parameters(posterior) -> list[str]:
    """Names of the posterior variables with one value per draw (no data dimension)."""
    return [name for name, values in posterior.data_vars.items() if values.dims == ("chain", "draw")]


@functools.lru_cache(maxsize=256)
def prior_interval(prior) -> tuple[float, float]:
    """Return the central 90% interval of a prior distribution.

    Exact for the families of ``_PRIOR_QUANTILES``; any other distribution is sampled
    (not all of NumPyro's have a quantile function), with a fixed key, so that the
    interval, and every contraction computed from it, is the same on every call.

    Parameters
    ----------
    prior : numpyro.distributions.Distribution
        A scalar prior.

    Returns
    -------
    tuple of float
        Its 5% and 95% quantiles.
    """
    quantile = _PRIOR_QUANTILES.get(type(prior))
    if quantile is not None:
        parameters = {name: np.asarray(getattr(prior, name), np.float64) for name in prior.arg_constraints}
        low, high = quantile(parameters, np.array([0.05, 0.95]))
    else:
        draws = np.asarray(prior.sample(jax.random.key(0), (_PRIOR_DRAWS,)), dtype=np.float64)
        low, high = np.quantile(draws, (0.05, 0.95))
    return float(low), float(high)


def chain_columns(data, var_names: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Return the columns of :func:`summarize` that need the chains: R-hat, bulk and tail ESS, MCSE of the mean.

    ArviZ's numbers (:mod:`bayescale._chain_stats` computes them as ArviZ does, vectorized).

    Returns
    -------
    dict
        ``{"r_hat", "ess_bulk", "ess_tail", "mcse_mean"}``, each ``{name: array}`` (a
        scalar, or one value per element of a vector variable).
    """
    posterior = _arviz.group(data, "posterior")
    return _by_column({name: chain_statistics(np.asarray(posterior[name])) for name in var_names})


def batch_chain_columns(datas: Sequence, var_names: Sequence[str]) -> list[dict[str, dict[str, np.ndarray]]] | None:
    """:func:`chain_columns` of several fits' draws at once, or None when their shapes differ.

    One vectorized pass over a whole batch, rather than one per fit and variable.
    """
    posteriors = [_arviz.group(data, "posterior") for data in datas]
    by_name = {}
    for name in var_names:
        arrays = [np.asarray(posterior[name]) for posterior in posteriors]
        if len({array.shape for array in arrays}) > 1:
            return None
        by_name[name] = chain_statistics(np.stack(arrays, axis=-1))
    return [
        _by_column(
            {name: {column: value[..., position] for column, value in stats.items()} for name, stats in by_name.items()}
        )
        for position in range(len(datas))
    ]


def _by_column(by_name: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """``{name: {column: value}}`` turned into ``{column: {name: value}}``."""
    columns = ("r_hat", "ess_bulk", "ess_tail", "mcse_mean")
    return {column: {name: stats[column] for name, stats in by_name.items()} for column in columns}


def summarize(
    data,
    var_names: Sequence[str] | None = None,
    priors: Mapping[str, object] | None = None,
    columns: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> dict[str, dict[str, float]]:
    """Posterior summary of parameters, one row per scalar or per element of a per-run vector.

    Parameters
    ----------
    data : arviz.InferenceData or xarray.DataTree
        Draws with a ``posterior`` group.
    var_names : sequence of str, optional
        Variables to summarise: scalars, or vectors over one dimension (such as ``run``),
        whose rows are named ``name[label]``. All scalar ones by default.
    priors : Mapping[str, numpyro.distributions.Distribution], optional
        The prior of each sampled variable (per-run ones: of each run's value). Rows of
        these variables get a ``contraction`` column: ``1 - (w_post / w_prior)^2``, with
        ``w`` the width of the central 90% interval. For a normal posterior and prior this
        is Betancourt's ``1 - var_post / var_prior``; widths keep it meaningful for
        heavy-tailed priors. Near 1, the data determined the parameter; near 0, the
        posterior is the prior.
    columns : Mapping, optional
        The :func:`chain_columns` of these draws, when already computed (for a batch, by
        :func:`batch_chain_columns`).

    Returns
    -------
    dict
        ``{name: {"mean", "sd", "median", "q05", "q95", "r_hat", "ess_bulk", "ess_tail",
        "mcse_mean"}}``, and ``"contraction"`` for the variables in ``priors``.
    """
    priors = priors or {}
    posterior = _arviz.group(data, "posterior")
    names = list(var_names) if var_names is not None else scalar_parameters(posterior)
    if columns is None:
        columns = chain_columns(data, names)
    table = {}
    for name in names:
        values = np.asarray(posterior[name])
        labels = (
            [None] if values.ndim == 2 else [str(label) for label in posterior[name][posterior[name].dims[2]].values]
        )
        values = values.reshape(*values.shape[:2], -1)
        for position, label in enumerate(labels):
            draws = values[..., position].ravel()
            with np.errstate(all="ignore"):
                q05, median, q95 = np.quantile(draws, QUANTILES)
                mean, sd = float(draws.mean()), float(draws.std(ddof=1))
            row = {"mean": mean, "sd": sd, "median": float(median), "q05": float(q05), "q95": float(q95)}
            row.update({column: float(np.ravel(result[name])[position]) for column, result in columns.items()})
            if name in priors:
                prior_low, prior_high = prior_interval(priors[name])
                row["contraction"] = 1.0 - ((row["q95"] - row["q05"]) / (prior_high - prior_low)) ** 2
            table[name if label is None else f"{name}[{label}]"] = row
    return table


def max_pareto_k(num_draws: int) -> float:
    """Return the largest Pareto k-hat of a tail at which the mean of ``num_draws`` draws is reliable.

    ``1 - 1 / log10(S)`` (Vehtari et al. 2024): beyond it the sample mean of S draws is
    ruled by a few extreme ones and converges too slowly to be estimated (0.72 for 4000).
    """
    return 1.0 - 1.0 / np.log10(num_draws)


def probability_at_or_below(draws: np.ndarray, loss: float, what: str) -> np.ndarray:
    """Share of the draws at or below ``loss``, per column: the chance of reaching a loss needed.

    Parameters
    ----------
    draws : numpy.ndarray
        (draws, ...) Monte-Carlo draws of a loss.
    loss : float
        The loss needed; a positive number.
    what : str
        What the loss is needed for, for the error message (``"run 'a'"``).

    Returns
    -------
    numpy.ndarray
        One probability per column (a 0-d array for 1-D draws).

    Raises
    ------
    ValueError
        When ``loss`` is not a positive finite number.
    """
    return np.mean(draws <= check_loss_needed(loss, what), axis=0)


def check_loss_needed(loss: float, what: str) -> float:
    """Return a loss needed as a float, or raise ValueError unless it is a positive finite number.

    ``what`` names what the loss is needed for, in the message (``"run 'a'"``).
    """
    number = isinstance(loss, (int, float, np.floating, np.integer)) and not isinstance(loss, bool)
    if not (number and np.isfinite(loss) and loss > 0):
        raise ValueError(f"the loss needed for {what} is {loss!r}; expected a positive number")
    return float(loss)


def tail_checked_means(draws: np.ndarray, what: str) -> tuple[list[float | None], str | None]:
    """Each column's mean, or None where the draws' tails are too heavy for a mean.

    Predictive draws under Student-t noise of few degrees of freedom can reach
    astronomically far (a loss of 1e300 in a few of 4000 draws), and their average then
    says nothing about the forecast while its median and quantiles stay sound.

    Parameters
    ----------
    draws : numpy.ndarray
        (draws, columns) Monte-Carlo draws.
    what : str
        What the draws are of, for the note (``"run 'a', final loss"``).

    Returns
    -------
    means : list of float or None
        One per column; None where the Pareto k-hat of a tail (:func:`bayescale._arviz.pareto_khat`)
        exceeds :func:`max_pareto_k`.
    note : str or None
        Says which columns lost their mean and why; None when none did.
    """
    khat = _arviz.pareto_khat(draws)
    khat[np.isnan(khat)] = np.inf  # a degenerate tail gives no mean either
    limit = max_pareto_k(len(draws))
    heavy = khat > limit
    means = [None if drop else float(column.mean()) for drop, column in zip(heavy, draws.T, strict=True)]
    if not heavy.any():
        return means, None
    where = f" at {heavy.sum()} of {len(heavy)} targets" if len(heavy) > 1 else ""
    note = (
        f"{what}: tails too heavy for a mean{where} (Pareto k {khat[heavy].max():.2f}, above {limit:.2f} "
        f"for {len(draws)} draws); mean null, read the median and interval"
    )
    return means, note


def _bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain from the Hamiltonian energy of each draw (chains, draws).

    A chain whose energy never changes is stuck: its E-BFMI is 0, not 0 / 0.
    """
    numerator = np.mean(np.diff(energy, axis=1) ** 2, axis=1)
    variance = np.var(energy, axis=1)
    return np.divide(numerator, variance, out=np.zeros_like(numerator), where=variance > 0)


def diagnose(
    data,
    summary: Mapping[str, Mapping[str, float]],
    max_tree_depth: int | None,
    law_parameters: Sequence[str] = (),
    target_accept: float | None = None,
) -> Diagnostics:
    """Check a fit's draws and explain each failure.

    Parameters
    ----------
    data : arviz.InferenceData or xarray.DataTree
        Draws with ``posterior`` and ``sample_stats`` groups.
    summary : Mapping
        Output of :func:`summarize` for the sampled parameters.
    max_tree_depth : int or None
        The tree-depth cap the sampler ran with; None for trajectories of fixed length.
    law_parameters : sequence of str
        The law's parameters, checked for contraction (noise parameters are not: a
        Student-t's degrees of freedom, say, may rightly stay as uncertain as the prior).
    target_accept : float, optional
        The target acceptance the sampler ran at, so that the advice on divergences starts
        from it rather than from a value the fit may already have used.

    Returns
    -------
    Diagnostics
    """
    stats = _arviz.group(data, "sample_stats")
    num_chains = stats.sizes["chain"]
    divergences = int(np.asarray(stats["diverging"]).sum())
    depth = np.asarray(stats["tree_depth"])
    saturation = 0.0 if max_tree_depth is None else float(np.mean(depth >= max_tree_depth))
    bfmi = _bfmi(np.asarray(stats["energy"], dtype=np.float64))
    max_r_hat = max((row["r_hat"] for row in summary.values()), default=float("nan"))
    min_bulk = min((row["ess_bulk"] for row in summary.values()), default=float("nan"))
    min_tail = min((row["ess_tail"] for row in summary.values()), default=float("nan"))
    worst_r_hat = max(summary, key=lambda name: summary[name]["r_hat"], default="")
    worst_ess = min(summary, key=lambda name: summary[name]["ess_bulk"], default="")

    problems = []
    if divergences:
        smaller_steps = "a higher target_accept" if target_accept is None else f"target_accept above {target_accept:g}"
        problems.append(
            f"{divergences} divergent transitions: the posterior has regions of high curvature the "
            "sampler cannot follow, often a parameter the data barely constrain (such as E with no "
            f"run near saturation) or a prior in conflict with the data; try {smaller_steps}, "
            "or a law or priors the data can identify"
        )
    if not max_r_hat < MAX_RHAT:
        problems.append(
            f"R-hat of {worst_r_hat} is {max_r_hat:.3f} (want < {MAX_RHAT}): the chains disagree, "
            "likely a multimodal or non-identified posterior (parameters the data cannot tell apart, "
            "or a prior pulling against the data); inspect the pair plot, run longer "
            "(num_warmup, num_samples) or simplify the law"
        )
    ess_floor = MIN_ESS_PER_CHAIN * num_chains
    if not min(min_bulk, min_tail) >= ess_floor:
        problems.append(
            f"effective sample size of {worst_ess} is {min(min_bulk, min_tail):.0f} (want >= {ess_floor}): "
            "draws are strongly autocorrelated; run more samples or chains"
        )
    if saturation > 0:
        problems.append(
            f"{saturation:.1%} of draws hit the tree-depth cap {max_tree_depth}: the posterior is "
            "badly scaled or very long-tailed; raise max_tree_depth or check the priors"
        )
    if np.any(bfmi < MIN_BFMI):
        problems.append(
            f"E-BFMI {bfmi.min():.2f} (want >= {MIN_BFMI}): heavy tails in the energy; "
            "a reparameterisation or tighter priors may help"
        )
    weakly_identified = tuple(
        name
        for name, row in summary.items()
        if name.split("[")[0] in law_parameters and row.get("contraction", 1.0) < MIN_CONTRACTION
    )
    return Diagnostics(
        divergences=divergences,
        max_r_hat=float(max_r_hat),
        min_ess_bulk=float(min_bulk),
        min_ess_tail=float(min_tail),
        tree_depth_saturation=saturation,
        min_bfmi=float(bfmi.min()),
        mean_tree_depth=float(depth.mean()),
        problems=tuple(problems),
        weakly_identified=weakly_identified,
    )
