"""The law catalogue: one law family per module, registered here by name.

Adding a law is one module plus one entry in :data:`LAWS`; the tests parametrized over the
registry then cover it.
"""

from bayescale.errors import UnknownLawError
from bayescale.law import Law
from bayescale.models.chinchilla import CHINCHILLA
from bayescale.models.kaplan import KAPLAN_C, KAPLAN_C_E, KAPLAN_D, KAPLAN_D_E, KAPLAN_N, KAPLAN_N_E
from bayescale.models.kaplan_nd import KAPLAN_ND

__all__ = ["LAWS", "get_law"]

LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        KAPLAN_N,
        KAPLAN_D,
        KAPLAN_C,
        KAPLAN_N_E,
        KAPLAN_D_E,
        KAPLAN_C_E,
        KAPLAN_ND,
        CHINCHILLA,
    )
}


def get_law(name: str) -> Law:
    """Return the registered law called ``name``.

    Raises
    ------
    UnknownLawError
        When no law has that name; the message lists the known ones.
    """
    try:
        return LAWS[name]
    except KeyError:
        raise UnknownLawError(f"unknown law {name!r}; known laws: {', '.join(LAWS)}") from None
