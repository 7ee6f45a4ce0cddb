"""Datasets shipped with bayescale, each with its source note beside it.

``chinchilla``: Epoch AI's reconstruction of the Chinchilla final-loss data (Besiroglu et
al. 2024, arXiv:2404.10102, from Hoffmann et al. 2022, Figure 4); 245 runs, with N and C
read from the figure and D = C / (6N). See ``epoch_chinchilla.SOURCE.md`` for the origin,
the attribution and the column quirks.

``isoflops_ml_scalefit``, ``isoflops_llama_3``, ``isoflops_marin_dclm``: IsoFLOP runs of
three sources as harmonised by Open-Athena/scaling-law-analysis: the Chinchilla runs of
apple/ml-scalefit (124), the Llama 3 IsoFLOP figure, digitised (133), and Marin's scaling
ladder on DCLM (85). See ``open_athena_isoflops.SOURCE.md`` for the origin, the licence
situation and which rows were kept.

``mpl_100m``: learning curves, not finished runs: the checkpoints (step, learning rate,
loss) of a 100M language model trained for 24,000 steps under three schedules (constant,
cosine, warmup-stable-decay), from the Multi-Power Law's release (Luo et al. 2025), for
:func:`bayescale.extrapolate`. See ``mpl_100m_curves.SOURCE.md``.

``revisiting_lang_262m.csv`` (read directly by ``examples/04_downstream_bigbench.py``, not
a :func:`load_example` table): the BIG-bench rows and the 262M model's validation-loss
curve of Alabdulmohsin et al.'s (2022) extrapolation benchmark; see
``revisiting_lang_262m.SOURCE.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import resources

import numpy as np

from bayescale.data import ScalingData, read_table
from bayescale.errors import DataError

__all__ = ["EXAMPLES", "Example", "load_example"]


def _epoch_filter(data: ScalingData) -> ScalingData:
    """Epoch's filter: drop the 5 highest losses (colour-decoding artefacts), keeping 240."""
    threshold = np.sort(data["loss"])[-5]
    return data.select(data["loss"] < threshold, "Epoch's filter (drop the 5 highest losses)")


@dataclasses.dataclass(frozen=True)
class Example:
    """A bundled dataset: its file, column mapping, and the filter its publishers applied.

    ``learning_curves`` marks the checkpoints of training runs (for ``extrapolate``), as
    opposed to one row per finished run (for ``fit`` and ``compare``).
    """

    filename: str
    mapping: dict[str, str]
    description: str
    source_note: str
    published_filter: Callable[[ScalingData], ScalingData] | None = None
    learning_curves: bool = False


# Open-Athena's harmonised columns. ``budget`` is the IsoFLOP budget a run belongs to, not
# 6 N D exactly (0.90-1.10 times it for ml_scalefit, up to 1.35 for marin_dclm).
_ISOFLOPS_MAPPING = {"N": "params", "D": "tokens", "C": "budget"}

EXAMPLES = {
    "chinchilla": Example(
        filename="epoch_chinchilla.csv",
        mapping={"N": "Model Size", "C": "Training FLOP"},
        description="Chinchilla final losses, Epoch AI's reconstruction (Besiroglu et al. 2024), 245 runs",
        source_note="epoch_chinchilla.SOURCE.md",
        published_filter=_epoch_filter,
    ),
    "isoflops_ml_scalefit": Example(
        filename="open_athena_isoflops_ml_scalefit.csv",
        mapping=_ISOFLOPS_MAPPING,
        description="Chinchilla IsoFLOP runs from apple/ml-scalefit, via Open-Athena, 124 runs",
        source_note="open_athena_isoflops.SOURCE.md",
    ),
    "isoflops_llama_3": Example(
        filename="open_athena_isoflops_llama_3.csv",
        mapping=_ISOFLOPS_MAPPING,
        description="Llama 3 IsoFLOP figure, digitised, loss as plotted, via Open-Athena, 133 runs",
        source_note="open_athena_isoflops.SOURCE.md",
    ),
    "isoflops_marin_dclm": Example(
        filename="open_athena_isoflops_marin_dclm.csv",
        mapping=_ISOFLOPS_MAPPING,
        description="Marin scaling ladder on DCLM, Paloma macro loss, via Open-Athena, 85 runs",
        source_note="open_athena_isoflops.SOURCE.md",
    ),
    "mpl_100m": Example(
        filename="mpl_100m_curves.csv",
        mapping={},
        description="checkpoints of a 100M LM over 24,000 steps under constant, cosine and WSD schedules "
        "(Luo et al. 2025), 3 runs",
        source_note="mpl_100m_curves.SOURCE.md",
        learning_curves=True,
    ),
}


def load_example(name: str, *, published_filter: bool = True) -> ScalingData:
    """Load a bundled dataset by name.

    Parameters
    ----------
    name : {"chinchilla", "isoflops_ml_scalefit", "isoflops_llama_3", "isoflops_marin_dclm", "mpl_100m"}
        The dataset; :data:`EXAMPLES` describes each.
    published_filter : bool, default True
        Apply the filter the dataset's publishers used, recorded in the data's notes; for
        ``chinchilla``, Epoch's (drop the 5 highest-loss rows, n = 240).

    Returns
    -------
    ScalingData
    """
    if name not in EXAMPLES:
        raise DataError(f"unknown example {name!r}; bundled examples: {', '.join(EXAMPLES)}")
    example = EXAMPLES[name]
    with resources.as_file(resources.files(__package__) / example.filename) as path:
        data = read_table(path, example.mapping)
    data = dataclasses.replace(data, source=f"example {name} ({example.filename})")
    if published_filter and example.published_filter is not None:
        data = example.published_filter(data)
    return data
