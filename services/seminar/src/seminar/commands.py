"""What operators send: request bodies (HTTP and CSV rows), validated into domain input.

Every rule of ``domain.define_seminar`` runs while the body is validated, so a bad
seminar is a 422 naming the problem before anything is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    field_validator,
    model_validator,
)

from seminarops_shared.events.vocabulary import (
    CountryCode,
    Identifier,
    Kind,
    Programme,
    Promotion,
)

from . import domain

MAX_ATTENDANCE_IDS = 10_000

Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=domain.MAX_REASON_LENGTH)
]


class SessionIn(BaseModel):
    """One session. Times with a UTC offset are taken as they are; times without one
    are wall-clock times in the seminar's time zone."""

    model_config = ConfigDict(extra="forbid")

    starts_at: datetime = Field(examples=["2026-03-29T10:00:00+02:00"])
    ends_at: datetime = Field(examples=["2026-03-29T11:30:00+02:00"])


def _raw_sessions(
    *, sessions: list[SessionIn] | None, starts_at: datetime | None, ends_at: datetime | None
) -> list[tuple[datetime, datetime]] | None:
    if sessions is not None:
        if starts_at is not None or ends_at is not None:
            raise ValueError("give either sessions or starts_at/ends_at, not both")
        return [(s.starts_at, s.ends_at) for s in sessions]
    if starts_at is None and ends_at is None:
        return None
    if starts_at is None or ends_at is None:
        raise ValueError("give both starts_at and ends_at")
    return [(starts_at, ends_at)]


class SeminarIn(BaseModel):
    """A seminar to schedule (the contract's body, plus optional fields).

    One session as ``starts_at``/``ends_at``, or several as ``sessions`` (a learning event
    running over days or weeks). ``id`` is optional: give one to make the call
    idempotent (the same seminar again answers 200 with it; a different one 409)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Identifier | None = None
    title: str = Field(min_length=1, max_length=domain.MAX_TITLE_LENGTH)
    kind: Kind
    programme: Programme
    starts_at: datetime | None = Field(default=None, examples=["2026-03-29T10:00:00+02:00"])
    ends_at: datetime | None = Field(default=None, examples=["2026-03-29T11:30:00+02:00"])
    sessions: list[SessionIn] | None = Field(
        default=None, min_length=1, max_length=domain.MAX_SESSIONS
    )
    timezone: str = Field(examples=["Europe/Brussels"], description="IANA time zone name")
    capacity: int = Field(gt=0, le=domain.MAX_CAPACITY)
    language: str = Field(examples=["en", "pt-BR"], description="ISO 639 language code")
    theme: str | None = Field(default=None, max_length=domain.MAX_THEME_LENGTH)
    moderator: Identifier | None = Field(
        default=None, description="the moderator's platform id (not a name)"
    )
    host_school_id: Identifier | None = None
    open_to_other_schools: bool = True
    promotion: Promotion = Field(
        default=Promotion.AUTOMATIC,
        description=(
            "how a freed seat is given: `automatic` confirms the head of the waiting list "
            "at once; `offer` offers it the seat for `offer_hours`"
        ),
    )
    offer_hours: int | None = Field(
        default=None,
        ge=1,
        le=domain.MAX_OFFER_HOURS,
        description=(
            f"how long an offered seat stands (1-{domain.MAX_OFFER_HOURS} hours); only with "
            f"promotion `offer` (422 with `automatic`); default {domain.DEFAULT_OFFER_HOURS}"
        ),
    )
    eligible_countries: list[CountryCode] | None = Field(
        default=None,
        min_length=1,
        max_length=250,
        description=(
            "who may register: ISO 3166-1 alpha-2 codes (upper-cased, each kept once); "
            "absent: everyone. A request from another country, or naming none, is "
            "rejected `not_eligible`. Example: the eTwinning Plus countries "
            "(etwinning.net, 'News from eTwinning Plus - Georgia and Lebanon')."
        ),
        examples=[["AM", "AZ", "GE", "JO", "LB", "MD", "TN", "UA"]],
    )

    _definition: domain.SeminarDefinition | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return domain.time_zone(value).key

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return domain.language_code(value)

    @model_validator(mode="after")
    def _valid_seminar(self) -> Self:
        raw = _raw_sessions(sessions=self.sessions, starts_at=self.starts_at, ends_at=self.ends_at)
        if raw is None:
            raise ValueError("give starts_at and ends_at, or sessions")
        self._definition = domain.define_seminar(
            title=self.title,
            kind=self.kind,
            programme=self.programme,
            theme=self.theme,
            language=self.language,
            timezone=self.timezone,
            sessions=raw,
            capacity=self.capacity,
            moderator=self.moderator,
            host_school_id=self.host_school_id,
            open_to_other_schools=self.open_to_other_schools,
            promotion=self.promotion,
            offer_hours=self.offer_hours,
            eligible_countries=self.eligible_countries,
        )
        return self

    def definition(self) -> domain.SeminarDefinition:
        assert self._definition is not None  # set by the validator
        return self._definition


class RescheduleIn(BaseModel):
    """New times (``starts_at``/``ends_at`` or ``sessions``) and/or a new capacity.
    Naive times are wall-clock times in the seminar's time zone."""

    model_config = ConfigDict(extra="forbid")

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    sessions: list[SessionIn] | None = Field(
        default=None, min_length=1, max_length=domain.MAX_SESSIONS
    )
    capacity: int | None = Field(default=None, gt=0, le=domain.MAX_CAPACITY)
    reason: Reason | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> Self:
        raw = self.raw_sessions()
        if raw is None and self.capacity is None:
            raise ValueError("give new starts_at/ends_at or sessions, and/or a new capacity")
        return self

    def raw_sessions(self) -> list[tuple[datetime, datetime]] | None:
        return _raw_sessions(sessions=self.sessions, starts_at=self.starts_at, ends_at=self.ends_at)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


class AttendanceIn(BaseModel):
    """Who attended: participant ids (duplicates count once)."""

    model_config = ConfigDict(extra="forbid")

    participant_ids: list[Identifier] = Field(min_length=1, max_length=MAX_ATTENDANCE_IDS)
