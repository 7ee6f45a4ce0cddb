"""Exception and warning types raised by bayescale.

Bad input raises :class:`DataError`; an unknown law name raises :class:`UnknownLawError`.
Both derive from :class:`BayescaleError`, so a caller (the CLI among them) can catch every
user-facing error with one clause. Programmer mistakes stay plain ``TypeError`` or
``ValueError``.
"""

import os
import sys

__all__ = [
    "BayescaleError",
    "ConvergenceWarning",
    "DataError",
    "DownsampledLogWarning",
    "IdentifiabilityWarning",
    "UnknownLawError",
    "UnreliableLOOWarning",
    "external_stacklevel",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class BayescaleError(Exception):
    """Base class of the errors bayescale raises for a user's input or request."""


class DataError(BayescaleError, ValueError):
    """Input data that cannot be used as given.

    The message names where the problem is (file, row, column), what was found and what
    was expected, so it can be shown to a user on one line.
    """


class UnknownLawError(BayescaleError, ValueError):
    """A law name that is not in the catalogue; the message lists the known names."""


class ConvergenceWarning(UserWarning):
    """The sampler did not converge well enough to trust the posterior as it is.

    Raised as a warning after a fit whose R-hat, effective sample size, divergences or
    tree-depth saturation fail their checks; the message says what to try next.
    """


class IdentifiabilityWarning(UserWarning):
    """The data taught the posterior (almost) nothing about some of a law's parameters.

    Raised after a fit in which a parameter's posterior is about as wide as its prior
    (see :data:`bayescale.diagnostics.MIN_CONTRACTION`): that parameter, and any forecast
    that leans on it, is the prior's, not the data's. The message names the parameters.
    """


class UnreliableLOOWarning(UserWarning):
    """PSIS-LOO estimates are unreliable for some points (Pareto k above 0.7).

    Those points are influential: the posterior changes much when one is left out, so the
    importance-sampling estimate of its leave-one-out density is not to be trusted.
    """


class DownsampledLogWarning(UserWarning):
    """A training log that looks like a sample of the curve, not every logged point.

    W&B's ``run.history()`` returns 500 sampled rows by default and TensorBoard's dashboard
    keeps 1000 points per scalar, so an exported curve can be missing most of its steps;
    the message says how to export every point.
    """


def external_stacklevel() -> int:
    """Return the ``stacklevel`` that makes a warning point at the first caller outside bayescale.

    Call it in the function that calls :func:`warnings.warn`. A fixed ``stacklevel`` is
    right for one call path only, and a warning from deep inside a fit (``fit`` ->
    ``fit_problems`` -> ...) or from a function that several entry points share would
    otherwise point into bayescale, where the user can do nothing. (Python 3.12's
    ``skip_file_prefixes`` does the same, but bayescale supports 3.11.)

    Returns
    -------
    int
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
