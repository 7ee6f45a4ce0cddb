"""Learning-rate schedules and the two areas a schedule-aware law reads.

A schedule gives the learning rate at every optimiser step. It comes from the ``lr``
column of a run's log, from a table (``step``, ``lr`` and optionally ``run``) covering the
steps not yet run, or from a named shape with its parameters (:func:`named_schedule`).
:func:`annealing_features` turns a schedule into the inputs of the ``lr_annealing`` law
(Tissue et al. 2024): the forward area S1 (sum of learning rates) and the annealing area
S2 (momentum-smoothed sum of the decreases), both relative to the peak rate.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

import numpy as np

from bayescale.errors import DataError

__all__ = ["ANNEALING_MOMENTUM", "Schedule", "annealing_features", "named_schedule", "parse_schedule"]

#: Momentum of the annealing area, lambda in Tissue et al. (2024), who find 0.999 fits
#: across model sizes; the loss responds to a drop in learning rate over about 1/(1 - lambda)
#: = 1000 steps.
ANNEALING_MOMENTUM = 0.999


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
    """A standard schedule by name.

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
        raise DataError(f"schedule {name!r}: expected peak > 0, 0 <= final <= peak, 0 <= warmup < total; got {parameters}")
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
    """A named schedule from text such as ``cosine:peak=3e-4,final=3e-5,warmup=2160,total=24000``."""
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
    """A schedule through logged (step, lr) points, linear between them.

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


def annealing_features(schedule: Schedule, steps: np.ndarray, *, momentum: float = ANNEALING_MOMENTUM) -> Mapping[str, np.ndarray]:
    """The forward area S1 and the annealed fraction S2 at the given steps.

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
    if steps.max(initial=0) > schedule.total_steps:
        raise DataError(
            f"schedule {schedule.description} covers steps up to {schedule.total_steps}, "
            f"but step {int(steps.max())} is needed; give the schedule of the remaining steps"
        )
    peak = schedule.rates.max()
    relative = schedule.rates / peak
    forward = np.cumsum(relative)
    decreases = np.concatenate([[0.0], relative[:-1] - relative[1:]])
    # The warmup's rise to the peak is not an anneal (Tissue et al. count changes after
    # warmup): changes count from the first step at the peak on, so S2 is 0 at constant
    # rate and 1 after a complete anneal.
    decreases[: int(np.argmax(relative)) + 1] = 0.0
    annealed = np.cumsum(_momentum_sum(decreases, momentum)) * (1.0 - momentum)
    return {"S1": forward[steps], "S2": annealed[steps]}
