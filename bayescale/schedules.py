"""Learning-rate schedules and the two areas a schedule-aware law reads.

A schedule gives the learning rate at every optimiser step. It comes from the ``lr``
column of a run's log, from a table (``step``, ``lr`` and optionally ``run``) covering the
steps not yet run, or from a named shape with its parameters (:func:`named_schedule`).
:func:`annealing_features` turns a schedule into the inputs of the ``lr_annealing`` law
(Tissue et al. 2024): the forward area S1 (sum of learning rates) and the annealing area
S2 (momentum-smoothed sum of the decreases), both relative to the peak rate.
:func:`drop_features` bins the decreases by the area run since each, the inputs of the
Multi-Power Law (Luo et al. 2025), whose loss drop after a decrease grows with that area
at a rate the law learns.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

import numpy as np

from bayescale.errors import DataError

__all__ = [
    "ANNEALING_MOMENTUM",
    "DROP_BINS",
    "DROP_INPUTS",
    "Schedule",
    "annealing_features",
    "drop_features",
    "named_schedule",
    "parse_schedule",
]

#: Momentum of the annealing area, lambda in Tissue et al. (2024), who find 0.999 fits
#: across model sizes; the loss responds to a drop in learning rate over about 1/(1 - lambda)
#: = 1000 steps.
ANNEALING_MOMENTUM = 0.999

#: Bins of the learning-rate decreases by the area run since each, in steps at the peak
#: rate: [0, 1), then [2^(j-1), 2^j) for bin j, the last open-ended (2^22, about 4e6
#: steps at the peak rate). Within a factor-2 bin a saturating response such as the
#: Multi-Power Law's changes little, so evaluating it at the bin's mean log area is
#: accurate to a fraction of a percent of the drop (tests/test_schedules.py).
DROP_BINS = 24
#: The inputs :func:`drop_features` computes, each with a column per bin.
DROP_INPUTS = ("drop_mass", "drop_log_area", "drop_log_rate")
# Rates and areas are floored here before their logs: a schedule that ends at rate 0 has
# a last decrease with no area after it, whose response the law reads as not yet begun.
_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A learning rate for every step from 0 to ``len(rates) - 1``.

    Attributes
    ----------
    rates : numpy.ndarray
        Learning rate at each step, float64.
    description : str
        Where it came from, for notes and errors.
    """

    rates: np.ndarray
    description: str

    @property
    def total_steps(self) -> int:
        """Last step the schedule covers."""
        return len(self.rates) - 1


def _warmup_then(shape, steps: np.ndarray, warmup: int, peak: float) -> np.ndarray:
    rates = shape(steps)
    if warmup > 0:
        rates = np.where(steps < warmup, peak * (steps + 1) / warmup, rates)
    return rates


_SHAPES = {
    "constant": ("peak", "warmup", "total"),
    "cosine": ("peak", "final", "warmup", "total"),
    "linear": ("peak", "final", "warmup", "total"),
    "wsd": ("peak", "final", "warmup", "total", "decay"),
}


def named_schedule(name: str, **parameters: float) -> Schedule:
    """Return a standard schedule by name.

    Parameters
    ----------
    name : {"constant", "cosine", "linear", "wsd"}
        ``constant``: linear warmup to ``peak``, then constant. ``cosine``: warmup, then a
        cosine from ``peak`` to ``final`` at ``total``. ``linear``: warmup, then a straight
        line to ``final``. ``wsd`` (warmup-stable-decay): warmup, ``peak`` until the last
        ``decay`` steps (or fraction of ``total`` when below 1), then a linear decay to
        ``final``.
    **parameters : float
        ``peak``, ``final`` (default 0), ``warmup`` (default 0), ``total`` (steps), and for
        ``wsd`` ``decay``.

    Returns
    -------
    Schedule
    """
    if name not in _SHAPES:
        raise DataError(f"unknown schedule {name!r}; expected one of {', '.join(_SHAPES)}")
    allowed = _SHAPES[name]
    unknown = set(parameters) - set(allowed)
    if unknown:
        raise DataError(f"schedule {name!r} takes {', '.join(allowed)}; got unknown {', '.join(sorted(unknown))}")
    for required in ("peak", "total") + (("decay",) if name == "wsd" else ()):
        if required not in parameters:
            raise DataError(f"schedule {name!r} needs {required}=")
    peak, final = float(parameters["peak"]), float(parameters.get("final", 0.0))
    warmup, total = int(parameters.get("warmup", 0)), int(parameters["total"])
    if not (peak > 0 and 0 <= final <= peak and 0 <= warmup < total):
        raise DataError(
            f"schedule {name!r}: expected peak > 0, 0 <= final <= peak, 0 <= warmup < total; got {parameters}"
        )
    steps = np.arange(total + 1, dtype=np.float64)
    progress = np.clip((steps - warmup) / max(total - warmup, 1), 0.0, 1.0)
    if name == "constant":
        shape = lambda s: np.full_like(s, peak)  # noqa: E731
    elif name == "cosine":
        shape = lambda s: final + 0.5 * (peak - final) * (1 + np.cos(math.pi * progress))  # noqa: E731
    elif name == "linear":
        shape = lambda s: peak + (final - peak) * progress  # noqa: E731
    else:
        decay = float(parameters["decay"])
        decay_steps = decay * total if decay < 1 else decay
        start = total - decay_steps
        shape = lambda s: np.where(s < start, peak, peak + (final - peak) * np.clip((s - start) / decay_steps, 0, 1))  # noqa: E731
    description = f"{name}(" + ", ".join(f"{k}={v:g}" for k, v in parameters.items()) + ")"
    return Schedule(_warmup_then(shape, steps, warmup, peak), description)


_SPEC = re.compile(r"^\s*(?P<name>[a-z]+)\s*(?::(?P<args>.*))?$")


def parse_schedule(text: str) -> Schedule:
    """Return a named schedule from text such as ``cosine:peak=3e-4,final=3e-5,warmup=2160,total=24000``."""
    match = _SPEC.match(text)
    if not match:
        raise DataError(f"--schedule {text!r}: expected NAME:key=value,... or a file")
    parameters = {}
    for item in filter(None, (match["args"] or "").split(",")):
        key, separator, value = item.partition("=")
        try:
            parameters[key.strip()] = float(value)
        except ValueError:
            raise DataError(f"--schedule {text!r}: {item!r} is not key=number") from None
        if not separator:
            raise DataError(f"--schedule {text!r}: {item!r} is not key=number")
    return named_schedule(match["name"], **parameters)


def schedule_from_points(steps: np.ndarray, rates: np.ndarray, description: str, until: int) -> Schedule:
    """Return a schedule through logged (step, lr) points, linear between them.

    Before the first logged step the rate is taken to rise linearly from 0 (a warmup), the
    common case of logs that start after warmup; after the last it stays at the last value
    (the caller checks that the points reach as far as needed).
    """
    order = np.argsort(steps)
    steps, rates = np.asarray(steps, np.float64)[order], np.asarray(rates, np.float64)[order]
    grid = np.arange(int(until) + 1, dtype=np.float64)
    known = np.interp(grid, steps, rates)
    if steps[0] > 0:
        known = np.where(grid < steps[0], rates[0] * grid / steps[0], known)
    return Schedule(known, description)


def _momentum_sum(decreases: np.ndarray, momentum: float) -> np.ndarray:
    """m_i = momentum * m_{i-1} + d_i, in closed form within blocks (no per-step Python loop)."""
    out = np.empty_like(decreases)
    # Blocks short enough that momentum**-block stays far inside float64 (e^200).
    carry, block = 0.0, max(1, min(2048, int(200.0 / -math.log(momentum))))
    powers = momentum ** np.arange(block)
    for start in range(0, len(decreases), block):
        chunk = decreases[start : start + block]
        size = len(chunk)
        # m_{start+j} = momentum^(j+1) carry + sum_{k<=j} momentum^(j-k) d_k
        weighted = np.cumsum(chunk / powers[:size]) * powers[:size]
        out[start : start + size] = weighted + carry * powers[:size] * momentum
        carry = out[start + size - 1]
    return out


def _check_reach(schedule: Schedule, steps: np.ndarray) -> None:
    if steps.max(initial=0) > schedule.total_steps:
        raise DataError(
            f"schedule {schedule.description} covers steps up to {schedule.total_steps}, "
            f"but step {int(steps.max())} is needed; give the schedule of the remaining steps"
        )


def _relative_decreases(schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """Rates relative to the peak, and the decrease into each step from the one before.

    The warmup's rise to the peak is not an anneal (Tissue et al. and Luo et al. count
    changes after warmup): decreases count from the first step at the peak on, so there
    are none at constant rate and they sum to 1 for an anneal from the peak to zero.
    """
    relative = schedule.rates / schedule.rates.max()
    decreases = np.concatenate([[0.0], relative[:-1] - relative[1:]])
    decreases[: int(np.argmax(relative)) + 1] = 0.0
    return relative, decreases


def annealing_features(
    schedule: Schedule, steps: np.ndarray, *, momentum: float = ANNEALING_MOMENTUM
) -> Mapping[str, np.ndarray]:
    """Return the forward area S1 and the annealed fraction S2 at the given steps.

    Parameters
    ----------
    schedule : Schedule
        Learning rates from step 0 to at least ``max(steps)``.
    steps : numpy.ndarray
        Steps at which to evaluate (checkpoints or forecast targets).
    momentum : float
        lambda of the annealing area.

    Returns
    -------
    dict
        ``S1``: sum of rates up to each step, in steps at the peak rate; ``S2``: the
        annealing area as a fraction of a complete anneal, ``(1 - lambda) sum m_i / peak``,
        counted from the first step at the peak rate.
    """
    steps = np.asarray(steps, dtype=np.int64)
    _check_reach(schedule, steps)
    relative, decreases = _relative_decreases(schedule)
    forward = np.cumsum(relative)
    annealed = np.cumsum(_momentum_sum(decreases, momentum)) * (1.0 - momentum)
    return {"S1": forward[steps], "S2": annealed[steps]}


def drop_features(schedule: Schedule, steps: np.ndarray, *, area_unit: float = 1.0) -> Mapping[str, np.ndarray]:
    """Return the learning-rate decreases before each step, binned by the area run since each.

    The Multi-Power Law (Luo et al. 2025, eq. 5) sums over every earlier step k the
    decrease ``eta_{k-1} - eta_k`` times a response that grows with ``eta_k^-gamma S_k(t)``,
    where ``S_k(t)`` is the sum of the rates from step k to step t. That sum runs over
    every step of a cosine; here the decreases before each step are binned by
    ``S_k(t)`` (:data:`DROP_BINS`, factor-2 bins), so the law evaluates a fixed number of
    terms per checkpoint.

    Parameters
    ----------
    schedule : Schedule
        Learning rates from step 0 to at least ``max(steps)``.
    steps : numpy.ndarray
        Steps at which to evaluate.
    area_unit : float, default 1
        Steps at the peak rate per unit of ``drop_log_area`` (the bins stay in steps).

    Returns
    -------
    dict
        Arrays of shape ``(len(steps), DROP_BINS)``: ``drop_mass``, the sum of the relative
        decreases in each bin (a complete anneal from the peak sums to 1 over the bins);
        ``drop_log_area`` and ``drop_log_rate``, the mean over the bin, weighted by the
        size of each decrease, of ``log(S_k(t) / area_unit)`` and of ``log(eta_k / peak)``.
        Empty bins hold zeros.
    """
    steps = np.asarray(steps, dtype=np.int64)
    _check_reach(schedule, steps)
    relative, decreases = _relative_decreases(schedule)
    forward = np.cumsum(relative)
    changes = np.flatnonzero(decreases)
    log_rate = np.log(np.maximum(relative[changes], _TINY))
    features = {name: np.zeros((len(steps), DROP_BINS)) for name in DROP_INPUTS}
    for row, step in enumerate(steps):
        before = np.searchsorted(changes, step, side="right")
        if before == 0:
            continue
        k = changes[:before]
        # S_k(t): the rates from step k to step t, both included.
        log_area = np.log(np.maximum(forward[step] - forward[k] + relative[k], _TINY))
        bins = np.clip(np.floor(log_area / np.log(2.0)).astype(np.int64) + 1, 0, DROP_BINS - 1)
        size = np.abs(decreases[k])
        total = np.bincount(bins, size, DROP_BINS)
        weight = np.where(total > 0, total, 1.0)
        features["drop_mass"][row] = np.bincount(bins, decreases[k], DROP_BINS)
        features["drop_log_area"][row] = np.bincount(bins, size * (log_area - math.log(area_unit)), DROP_BINS) / weight
        features["drop_log_rate"][row] = np.bincount(bins, size * log_rate[:before], DROP_BINS) / weight
    return features
