"""The contract's vocabulary (CONTRACT.md "HTTP"): kinds, programmes, ratings."""

from __future__ import annotations

import enum
from typing import Annotated

import pycountry
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


class Promotion(enum.StrEnum):
    """How a freed seat is given (CONTRACT.md "Participant journey")."""

    AUTOMATIC = "automatic"  # the head of the waiting list is confirmed at once
    OFFER = "offer"  # the head of the waiting list is offered the seat for a while


def _iso_country(value: str) -> str:
    code = value.upper()
    # pycountry carries the ISO 3166-1 list as the standard's maintenance agency
    # publishes it; a hand-kept list would drift.
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


# Identifiers from other platform systems: opaque, but bounded and printable.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
# ISO 3166-1 alpha-2, an assigned code, normalised to upper case.
CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]{2}$"), AfterValidator(_iso_country)
]
Year = Annotated[int, Field(ge=1990, le=2200)]
