"""Datasets shipped with bayescale, each with its source note beside it.

``chinchilla``: Epoch AI's reconstruction of the Chinchilla final-loss data (Besiroglu et
al. 2024, arXiv:2404.10102, from Hoffmann et al. 2022, Figure 4); 245 runs, with N and C
read from the figure and D = C / (6N). See ``epoch_chinchilla.SOURCE.md`` for the origin,
the attribution and the column quirks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import resources

import numpy as np

from bayescale.data import ScalingData, read_table

__all__ = ["EXAMPLES", "Example", "load_example"]


def _epoch_filter(data: ScalingData) -> ScalingData:
    """Epoch's filter: drop the 5 highest losses (colour-decoding artefacts), keeping 240."""
    threshold = np.sort(data["loss"])[-5]
    return data.select(data["loss"] < threshold, "Epoch's filter (drop the 5 highest losses)")


@dataclasses.dataclass(frozen=True)
class Example:
    """A bundled dataset: its file, column mapping, and the filter its publishers applied."""

    filename: str
    mapping: dict[str, str]
    description: str
    source_note: str
    published_filter: Callable[[ScalingData], ScalingData] | None = None


EXAMPLES = {
    "chinchilla": Example(
        filename="epoch_chinchilla.csv",
        mapping={"N": "Model Size", "C": "Training FLOP"},
        description="Chinchilla final losses, Epoch AI's reconstruction (Besiroglu et al. 2024), 245 runs",
        source_note="epoch_chinchilla.SOURCE.md",
        published_filter=_epoch_filter,
    ),
}


def load_example(name: str, *, published_filter: bool = True) -> ScalingData:
    """Load a bundled dataset by name.

    Parameters
    ----------
    name : {"chinchilla"}
        The dataset.
    published_filter : bool, default True
        Apply the filter the dataset's publishers used, recorded in the data's notes; for
        ``chinchilla``, Epoch's (drop the 5 highest-loss rows, n = 240).

    Returns
    -------
    ScalingData
    """
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; bundled examples: {', '.join(EXAMPLES)}")
    example = EXAMPLES[name]
    with resources.as_file(resources.files(__package__) / example.filename) as path:
        data = read_table(path, example.mapping)
    data = dataclasses.replace(data, source=f"example {name} ({example.filename})")
    if published_filter and example.published_filter is not None:
        data = example.published_filter(data)
    return data
