"""Numbers written for people, alike in the command line's tables and the HTML report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["format_number"]

# Significant digits of a measured or sampled number.
_DIGITS = 4


def format_number(value: Any) -> str:
    """Write a table cell: whole numbers in full, others to four significant digits.

    Steps and counts keep every digit. Other numbers keep their trailing zeros, so that
    "2.910" sits beside "2.951" as a number of the same precision, and are written in
    scientific notation outside [1e-3, 1e5) (or where four digits cannot show the whole
    part). ``None`` is "-".
    """
    if value is None:
        return "-"
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if 1e-3 <= magnitude < 1e5:
        # "#" keeps trailing zeros; it also keeps a bare point ("1234."), which is dropped.
        return f"{value:#.{_DIGITS}g}".rstrip(".")
    return f"{value:.{_DIGITS - 1}e}"
