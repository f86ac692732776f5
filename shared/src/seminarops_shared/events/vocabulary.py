"""The contract's vocabulary (CONTRACT.md "HTTP"): kinds, programmes, ratings."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints


class Kind(enum.StrEnum):
    LEARNING_EVENT = "learning_event"
    ONLINE_SEMINAR = "online_seminar"
    PD_WORKSHOP = "pd_workshop"


class Programme(enum.StrEnum):
    ETWINNING = "etwinning"
    ETWINNING_PLUS = "etwinning_plus"


class Rating(enum.StrEnum):
    EXCELLENT = "excellent"
    VERY_GOOD = "very_good"
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"


def _upper(value: str) -> str:
    return value.upper()


# Identifiers from other platform systems: opaque, but bounded and printable.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
# ISO 3166-1 alpha-2, normalised to upper case.
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$"), AfterValidator(_upper)]
Year = Annotated[int, Field(ge=1990, le=2200)]
