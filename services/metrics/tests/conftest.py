"""Test helpers shared by the unit and integration tests of the metrics service: a
two-year history of seminars as the other services would publish it, and the reports
it must yield, computed by hand (see the comments)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from seminarops_shared.events import Event
from seminarops_shared.events.feedback import EvaluationSubmitted
from seminarops_shared.events.registration import (
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationRejected,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.events.seminar import (
    AttendanceRecorded,
    SeminarCancelled,
    SeminarCompleted,
    SeminarRescheduled,
    SeminarScheduled,
    SessionTimes,
)
from seminarops_shared.events.topics import FEEDBACK_EVENTS, REGISTRATION_EVENTS, SEMINAR_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme, Rating

SOURCES = {
    SEMINAR_EVENTS: "/services/seminar",
    REGISTRATION_EVENTS: "/services/registration",
    FEEDBACK_EVENTS: "/services/feedback",
}

ONLINE, LEARNING, WORKSHOP = Kind.ONLINE_SEMINAR, Kind.LEARNING_EVENT, Kind.PD_WORKSHOP
ETW, PLUS = Programme.ETWINNING, Programme.ETWINNING_PLUS

# participant -> (country, school)
PEOPLE: dict[str, tuple[str | None, str | None]] = {
    "p1": ("FR", "sch-a"),
    "p2": ("FR", "sch-a"),
    "p3": ("DE", "sch-b"),
    "p4": ("ES", None),
    "p5": ("ES", None),
    "p6": ("IT", None),
    "q1": ("PL", "sch-c"),
    "q2": ("PL", "sch-c"),
    "q3": ("PL", "sch-c"),
    "q4": ("PL", "sch-c"),
    "r1": ("AT", None),
    "r2": ("AT", None),
    "r3": ("AT", None),
    "a1": ("FR", "sch-d"),
    "a2": ("FR", "sch-d"),
    "a3": ("FR", "sch-d"),
    "b1": (None, None),
    "b2": (None, None),
    "w1": ("DE", "sch-b"),
    "w2": ("DE", "sch-b"),
    "w3": ("DE", "sch-b"),
}


@dataclass(frozen=True)
class Sent:
    """One event as a producer publishes it: its data, envelope id and source."""

    data: Event
    event_id: str

    @property
    def source(self) -> str:
        return SOURCES[self.data.topic]


@dataclass
class History:
    events: list[Sent] = field(default_factory=list)
    _counter: int = 0

    def add(self, data: Event) -> Sent:
        self._counter += 1
        sent = Sent(data=data, event_id=f"evt-{self._counter:04d}")
        self.events.append(sent)
        return sent

    def __iter__(self) -> Iterator[Sent]:
        return iter(self.events)

    # ---- builders ----------------------------------------------------------------------

    def schedule(
        self,
        seminar_id: str,
        *,
        kind: Kind,
        programme: Programme,
        starts: datetime,
        host: str | None = None,
        open_to_others: bool = True,
    ) -> None:
        self.add(
            SeminarScheduled(
                seminar_id=seminar_id,
                title=f"Seminar {seminar_id}",
                kind=kind,
                programme=programme,
                language="en",
                timezone="Europe/Brussels",
                sessions=[SessionTimes(starts_at=starts, ends_at=starts + timedelta(hours=1))],
                capacity=30,
                year=starts.year,
                host_school_id=host,
                open_to_other_schools=open_to_others,
            )
        )

    def _person(self, seminar_id: str, participant_id: str, version: int) -> dict[str, Any]:
        country, school = PEOPLE[participant_id]
        return {
            "registration_id": f"reg-{seminar_id}-{participant_id}",
            "seminar_id": seminar_id,
            "participant_id": participant_id,
            "country": country,
            "school_id": school,
            "version": version,
        }

    def confirm(self, seminar_id: str, *participants: str, version: int = 1) -> None:
        for p in participants:
            self.add(
                RegistrationConfirmed(
                    **self._person(seminar_id, p, version),
                    requested_at=datetime(2024, 1, 1, tzinfo=UTC),
                )
            )

    def waitlist(self, seminar_id: str, participant: str, *, version: int = 1) -> None:
        self.add(
            RegistrationWaitlisted(
                **self._person(seminar_id, participant, version),
                requested_at=datetime(2024, 1, 1, tzinfo=UTC),
                position=1,
            )
        )

    def promote(self, seminar_id: str, participant: str, *, version: int) -> None:
        self.add(RegistrationPromoted(**self._person(seminar_id, participant, version)))

    def cancel(self, seminar_id: str, participant: str, *, version: int, reason: str) -> None:
        self.add(
            RegistrationCancelled(
                **self._person(seminar_id, participant, version),
                previous_status=RegistrationStatus.CONFIRMED,
                reason=reason,
            )
        )

    def reject(self, seminar_id: str, participant: str, *, reason: str) -> None:
        self.add(RegistrationRejected(**self._person(seminar_id, participant, 1), reason=reason))

    def attend(
        self, seminar_id: str, kind: Kind, programme: Programme, year: int, *people: str
    ) -> None:
        self.add(
            AttendanceRecorded(
                seminar_id=seminar_id,
                kind=kind,
                programme=programme,
                year=year,
                participant_ids=list(people),
            )
        )

    def complete(
        self,
        seminar_id: str,
        kind: Kind,
        programme: Programme,
        year: int,
        *attendees: str,
        host: str | None = None,
        open_to_others: bool = True,
    ) -> None:
        self.add(
            SeminarCompleted(
                seminar_id=seminar_id,
                kind=kind,
                programme=programme,
                year=year,
                attendee_ids=list(attendees),
                host_school_id=host,
                open_to_other_schools=open_to_others,
            )
        )

    def evaluate(
        self,
        seminar_id: str,
        kind: Kind,
        programme: Programme,
        year: int,
        participant: str,
        overall: Rating,
    ) -> None:
        self.add(
            EvaluationSubmitted(
                seminar_id=seminar_id,
                evaluation_id=f"ev-{seminar_id}-{participant}",
                kind=kind,
                programme=programme,
                year=year,
                overall=overall,
                form_id="standard",
                form_version=1,
                participant_id=participant,
            )
        )


def build_two_year_history() -> History:
    h = History()
    at = datetime(2024, 3, 5, 15, tzinfo=UTC)
    # ---- 2024 ----
    # S1 online/eTwinning, hosted by sch-c, open. p5 cancels, p6 is promoted; both
    # registrations' version 2 is published before their version 1 (out of order).
    h.schedule("s1", kind=ONLINE, programme=ETW, starts=at, host="sch-c")
    h.cancel("s1", "p5", version=2, reason="participant_request")
    h.promote("s1", "p6", version=2)
    h.confirm("s1", "p1", "p2", "p3", "p4", "p5")
    h.waitlist("s1", "p6")
    h.attend("s1", ONLINE, ETW, 2024, "p1", "p2", "p3")
    # p6 only on the completion's list: the union makes 4 participants.
    h.complete("s1", ONLINE, ETW, 2024, "p1", "p2", "p3", "p6", host="sch-c")
    h.evaluate("s1", ONLINE, ETW, 2024, "p1", Rating.EXCELLENT)
    h.evaluate("s1", ONLINE, ETW, 2024, "p2", Rating.VERY_GOOD)
    h.evaluate("s1", ONLINE, ETW, 2024, "p6", Rating.GOOD)
    # S2 learning/eTwinning Plus: 3 participants, 1 response.
    h.schedule("s2", kind=LEARNING, programme=PLUS, starts=at + timedelta(days=30))
    h.confirm("s2", "q1", "q2", "q3")
    h.complete("s2", LEARNING, PLUS, 2024, "q1", "q2", "q3")
    h.evaluate("s2", LEARNING, PLUS, 2024, "q1", Rating.EXCELLENT)
    # S3 pd workshop, hosted by sch-b (closed), cancelled: nobody takes part.
    h.schedule(
        "s3",
        kind=WORKSHOP,
        programme=ETW,
        starts=at + timedelta(days=60),
        host="sch-b",
        open_to_others=False,
    )
    h.confirm("s3", "r1", "r2")
    h.add(SeminarCancelled(seminar_id="s3", reason="trainer ill"))
    h.cancel("s3", "r1", version=2, reason="seminar_cancelled")
    h.cancel("s3", "r2", version=2, reason="seminar_cancelled")
    h.reject("s3", "r3", reason="seminar_cancelled")
    # ---- 2025 ----
    # S6 first scheduled for December 2024, then moved to January 2025: a 2025 seminar.
    h.schedule("s6", kind=LEARNING, programme=PLUS, starts=datetime(2024, 12, 10, 15, tzinfo=UTC))
    h.add(
        SeminarRescheduled(
            seminar_id="s6",
            old_sessions=[
                SessionTimes(
                    starts_at=datetime(2024, 12, 10, 15, tzinfo=UTC),
                    ends_at=datetime(2024, 12, 10, 16, tzinfo=UTC),
                )
            ],
            new_sessions=[
                SessionTimes(
                    starts_at=datetime(2025, 1, 14, 15, tzinfo=UTC),
                    ends_at=datetime(2025, 1, 14, 16, tzinfo=UTC),
                )
            ],
            old_capacity=30,
            new_capacity=30,
            year=2025,
        )
    )
    h.confirm("s6", "q1", "q2")
    h.waitlist("s6", "q4")
    h.attend("s6", LEARNING, PLUS, 2025, "q1", "q2")
    h.complete("s6", LEARNING, PLUS, 2025, "q1", "q2")
    h.evaluate("s6", LEARNING, PLUS, 2025, "q1", Rating.VERY_GOOD)
    h.evaluate("s6", LEARNING, PLUS, 2025, "q2", Rating.VERY_GOOD)
    # S4 online/eTwinning hosted by sch-a (open); p1 comes back (counts again in 2025).
    at = datetime(2025, 2, 4, 15, tzinfo=UTC)
    h.schedule("s4", kind=ONLINE, programme=ETW, starts=at, host="sch-a")
    h.confirm("s4", "p1", "p2", "a1", "a2", "a3")
    h.attend("s4", ONLINE, ETW, 2025, "p1", "p2")
    h.attend("s4", ONLINE, ETW, 2025, "a1", "a2", "a3")
    h.complete("s4", ONLINE, ETW, 2025, "p1", "p2", "a1", "a2", "a3", host="sch-a")
    h.evaluate("s4", ONLINE, ETW, 2025, "p1", Rating.EXCELLENT)
    h.evaluate("s4", ONLINE, ETW, 2025, "a1", Rating.EXCELLENT)
    h.evaluate("s4", ONLINE, ETW, 2025, "a2", Rating.FAIR)
    # S5 online/eTwinning hosted by sch-a (open); b2 asks to be forgotten, and their
    # evaluation arrives after that.
    h.schedule("s5", kind=ONLINE, programme=ETW, starts=at + timedelta(days=7), host="sch-a")
    h.confirm("s5", "b1", "b2")
    h.complete("s5", ONLINE, ETW, 2025, "b1", "b2", host="sch-a")
    h.evaluate("s5", ONLINE, ETW, 2025, "b1", Rating.POOR)
    h.add(ParticipantErased(participant_id="b2", erased_at=datetime(2025, 3, 1, tzinfo=UTC)))
    h.evaluate("s5", ONLINE, ETW, 2025, "b2", Rating.GOOD)
    # S7 pd workshop/eTwinning Plus hosted by sch-b (closed): 4 attend (p1 among
    # them: p1 takes part twice in 2025), not completed yet, nobody answered.
    h.schedule(
        "s7",
        kind=WORKSHOP,
        programme=PLUS,
        starts=at + timedelta(days=90),
        host="sch-b",
        open_to_others=False,
    )
    h.confirm("s7", "w1", "w2", "w3", "p1")
    h.attend("s7", WORKSHOP, PLUS, 2025, "w1", "w2")
    h.attend("s7", WORKSHOP, PLUS, 2025, "w3", "p1")
    return h


def replays(history: History) -> list[Sent]:
    """Events published again under NEW ids (a producer retry after a lost ack, a
    re-import): the natural keys must absorb them."""
    by_id = {s.event_id: s for s in history}
    again = [
        next(
            s for s in history if isinstance(s.data, SeminarCompleted) and s.data.seminar_id == "s1"
        ),
        next(
            s
            for s in history
            if isinstance(s.data, AttendanceRecorded) and s.data.seminar_id == "s7"
        ),
        next(
            s
            for s in history
            if isinstance(s.data, EvaluationSubmitted) and s.data.evaluation_id == "ev-s4-p1"
        ),
        # an old version: must not undo p5's cancellation
        next(
            s
            for s in history
            if isinstance(s.data, RegistrationConfirmed) and s.data.participant_id == "p5"
        ),
        # the erased person's evaluation, with their original id, once more
        next(
            s
            for s in history
            if isinstance(s.data, EvaluationSubmitted) and s.data.evaluation_id == "ev-s5-b2"
        ),
    ]
    assert all(s.event_id in by_id for s in again)
    return [Sent(data=s.data, event_id=f"replay-{i}-{s.event_id}") for i, s in enumerate(again)]


# ---- the reports the history must yield (computed by hand) --------------------------

EXPECTED_PARTICIPATION = {
    2024: {
        "year": 2024,
        "rows": [
            # s2: q1 q2 q3
            {"kind": "learning_event", "programme": "etwinning_plus", "participants": 3,
             "previous_year_participants": 0, "growth_pct": None},
            # s1: p1 p2 p3 (attendance) + p6 (completion)
            {"kind": "online_seminar", "programme": "etwinning", "participants": 4,
             "previous_year_participants": 0, "growth_pct": None},
        ],
        "total_participants": 7,
    },
    2025: {
        "year": 2025,
        "rows": [
            # s6: q1 q2; (2 - 3) / 3 = -33.33
            {"kind": "learning_event", "programme": "etwinning_plus", "participants": 2,
             "previous_year_participants": 3, "growth_pct": -33.3},
            # s4: p1 p2 a1 a2 a3, s5: b1 b2; (7 - 4) / 4 = 75
            {"kind": "online_seminar", "programme": "etwinning", "participants": 7,
             "previous_year_participants": 4, "growth_pct": 75.0},
            # s7: w1 w2 w3 p1; nobody the year before
            {"kind": "pd_workshop", "programme": "etwinning_plus", "participants": 4,
             "previous_year_participants": 0, "growth_pct": None},
        ],
        "total_participants": 13,
    },
}  # fmt: skip

_NO_RATINGS = {"excellent": 0, "very_good": 0, "good": 0, "fair": 0, "poor": 0}

EXPECTED_SATISFACTION = {
    2024: {
        "year": 2024,
        "rows": [
            # 1 of 3 answered (33.33); 1 of 1 excellent
            {"kind": "learning_event", "programme": "etwinning_plus", "participants": 3,
             "responses": 1, "response_rate_pct": 33.3,
             "ratings": {**_NO_RATINGS, "excellent": 1}, "excellent_or_very_good_pct": 100.0},
            # 3 of 4 (75); 2 of 3 excellent or very good (66.67)
            {"kind": "online_seminar", "programme": "etwinning", "participants": 4,
             "responses": 3, "response_rate_pct": 75.0,
             "ratings": {**_NO_RATINGS, "excellent": 1, "very_good": 1, "good": 1},
             "excellent_or_very_good_pct": 66.7},
        ],
        # 4 of 7 (57.14); 3 of 4 (75)
        "total": {"participants": 7, "responses": 4, "response_rate_pct": 57.1,
                  "excellent_or_very_good_pct": 75.0},
    },
    2025: {
        "year": 2025,
        "rows": [
            {"kind": "learning_event", "programme": "etwinning_plus", "participants": 2,
             "responses": 2, "response_rate_pct": 100.0,
             "ratings": {**_NO_RATINGS, "very_good": 2}, "excellent_or_very_good_pct": 100.0},
            # 5 of 7 (71.43): p1 a1 excellent, a2 fair, b1 poor, b2 (erased) good; 2 of 5
            {"kind": "online_seminar", "programme": "etwinning", "participants": 7,
             "responses": 5, "response_rate_pct": 71.4,
             "ratings": {"excellent": 2, "very_good": 0, "good": 1, "fair": 1, "poor": 1},
             "excellent_or_very_good_pct": 40.0},
            # nobody answered: a rate of 0.0, no satisfaction figure
            {"kind": "pd_workshop", "programme": "etwinning_plus", "participants": 4,
             "responses": 0, "response_rate_pct": 0.0, "ratings": _NO_RATINGS,
             "excellent_or_very_good_pct": None},
        ],
        # 7 of 13 (53.85); 4 of 7 (57.14)
        "total": {"participants": 13, "responses": 7, "response_rate_pct": 53.8,
                  "excellent_or_very_good_pct": 57.1},
    },
}  # fmt: skip


def _funnel(**counts: int) -> dict[str, int]:
    stages = (
        "requested",
        "confirmed",
        "waitlisted",
        "promoted",
        "cancelled",
        "rejected",
        "attended",
        "evaluated",
        "registered_again",
        "offers_made",
        "offers_accepted",
        "offers_declined",
        "offers_expired",
        "not_eligible",
    )
    return {stage: counts.get(stage, 0) for stage in stages}


EXPECTED_FUNNEL_2024 = {
    "year": 2024,
    "kind": None,
    "seminars": [
        {"seminar_id": "s2", "title": "Seminar s2", "kind": "learning_event", "programme": "etwinning_plus",
         **_funnel(requested=3, confirmed=3, attended=3, evaluated=1)},
        {"seminar_id": "s1", "title": "Seminar s1", "kind": "online_seminar", "programme": "etwinning",
         **_funnel(requested=6, confirmed=6, waitlisted=1, promoted=1, cancelled=1, attended=4, evaluated=3)},
        {"seminar_id": "s3", "title": "Seminar s3", "kind": "pd_workshop", "programme": "etwinning",
         **_funnel(requested=3, confirmed=2, cancelled=2, rejected=1)},
    ],
    "by_kind": [
        {"kind": "learning_event", "seminars": 1, **_funnel(requested=3, confirmed=3, attended=3, evaluated=1)},
        {"kind": "online_seminar", "seminars": 1,
         **_funnel(requested=6, confirmed=6, waitlisted=1, promoted=1, cancelled=1, attended=4, evaluated=3)},
        {"kind": "pd_workshop", "seminars": 1, **_funnel(requested=3, confirmed=2, cancelled=2, rejected=1)},
    ],
    "total": _funnel(requested=12, confirmed=11, waitlisted=1, promoted=1, cancelled=3, rejected=1,
                     attended=7, evaluated=4),
}  # fmt: skip

EXPECTED_FUNNEL_2025_LEARNING = {
    "year": 2025,
    "kind": "learning_event",
    "seminars": [
        {"seminar_id": "s6", "title": "Seminar s6", "kind": "learning_event", "programme": "etwinning_plus",
         **_funnel(requested=3, confirmed=2, waitlisted=1, attended=2, evaluated=2)},
    ],
    "by_kind": [
        {"kind": "learning_event", "seminars": 1,
         **_funnel(requested=3, confirmed=2, waitlisted=1, attended=2, evaluated=2)},
    ],
    "total": _funnel(requested=3, confirmed=2, waitlisted=1, attended=2, evaluated=2),
}  # fmt: skip

EXPECTED_COUNTRIES_2025 = {
    "year": 2025,
    "rows": [
        {"country": "DE", "participants": 3, "teachers": 3},  # w1 w2 w3
        {"country": "FR", "participants": 6, "teachers": 5},  # p1 twice, p2, a1 a2 a3
        {"country": "PL", "participants": 2, "teachers": 2},  # q1 q2
        {"country": None, "participants": 2, "teachers": 2},  # b1, b2 (erased)
    ],
    "total_participants": 13,
}

EXPECTED_SCHOOLS_2025 = {
    "year": 2025,
    "rows": [
        # p1 (s4, s7) and p2 (s4); hosted s4 and s5, both open
        {"school_id": "sch-a", "teachers": 2, "participants": 3, "hosted_events": 2, "hosted_open_events": 2},
        # w1 w2 w3; hosted s7, closed
        {"school_id": "sch-b", "teachers": 3, "participants": 3, "hosted_events": 1, "hosted_open_events": 0},
        {"school_id": "sch-c", "teachers": 2, "participants": 2, "hosted_events": 0, "hosted_open_events": 0},
        {"school_id": "sch-d", "teachers": 3, "participants": 3, "hosted_events": 0, "hosted_open_events": 0},
    ],
}  # fmt: skip

EXPECTED_SCHOOLS_2024 = {
    "year": 2024,
    "rows": [
        {"school_id": "sch-a", "teachers": 2, "participants": 2, "hosted_events": 0, "hosted_open_events": 0},
        {"school_id": "sch-b", "teachers": 1, "participants": 1, "hosted_events": 0, "hosted_open_events": 0},
        # s3 (hosted by sch-b) was cancelled: it does not count
        {"school_id": "sch-c", "teachers": 3, "participants": 3, "hosted_events": 1, "hosted_open_events": 1},
    ],
}  # fmt: skip

# Prometheus samples (name, labels) -> value
EXPECTED_GAUGES = {
    ("seminarops_registrations", (("kind", "online_seminar"), ("status", "confirmed"))): 12,
    ("seminarops_registrations", (("kind", "online_seminar"), ("status", "cancelled"))): 1,
    ("seminarops_registrations", (("kind", "learning_event"), ("status", "confirmed"))): 5,
    ("seminarops_registrations", (("kind", "learning_event"), ("status", "waitlisted"))): 1,
    ("seminarops_registrations", (("kind", "pd_workshop"), ("status", "confirmed"))): 4,
    ("seminarops_registrations", (("kind", "pd_workshop"), ("status", "cancelled"))): 2,
    ("seminarops_registrations", (("kind", "pd_workshop"), ("status", "rejected"))): 1,
    ("seminarops_participants", (("kind", "online_seminar"), ("programme", "etwinning"), ("year", "2024"))): 4,
    ("seminarops_participants", (("kind", "learning_event"), ("programme", "etwinning_plus"), ("year", "2024"))): 3,
    ("seminarops_participants", (("kind", "online_seminar"), ("programme", "etwinning"), ("year", "2025"))): 7,
    ("seminarops_participants", (("kind", "learning_event"), ("programme", "etwinning_plus"), ("year", "2025"))): 2,
    ("seminarops_participants", (("kind", "pd_workshop"), ("programme", "etwinning_plus"), ("year", "2025"))): 4,
    ("seminarops_evaluations", (("kind", "online_seminar"), ("rating", "excellent"))): 3,
    ("seminarops_evaluations", (("kind", "online_seminar"), ("rating", "very_good"))): 1,
    ("seminarops_evaluations", (("kind", "online_seminar"), ("rating", "good"))): 2,
    ("seminarops_evaluations", (("kind", "online_seminar"), ("rating", "fair"))): 1,
    ("seminarops_evaluations", (("kind", "online_seminar"), ("rating", "poor"))): 1,
    ("seminarops_evaluations", (("kind", "learning_event"), ("rating", "excellent"))): 1,
    ("seminarops_evaluations", (("kind", "learning_event"), ("rating", "very_good"))): 2,
    ("seminarops_response_rate_pct", (("kind", "online_seminar"), ("year", "2024"))): 75.0,
    ("seminarops_response_rate_pct", (("kind", "learning_event"), ("year", "2024"))): 33.3,
    ("seminarops_response_rate_pct", (("kind", "online_seminar"), ("year", "2025"))): 71.4,
    ("seminarops_response_rate_pct", (("kind", "learning_event"), ("year", "2025"))): 100.0,
    ("seminarops_response_rate_pct", (("kind", "pd_workshop"), ("year", "2025"))): 0.0,
}  # fmt: skip


@pytest.fixture
def two_year_history() -> History:
    return build_two_year_history()


@dataclass(frozen=True)
class Expected:
    participation: dict[int, dict[str, Any]]
    satisfaction: dict[int, dict[str, Any]]
    funnel_2024: dict[str, Any]
    funnel_2025_learning: dict[str, Any]
    countries_2025: dict[str, Any]
    schools_2024: dict[str, Any]
    schools_2025: dict[str, Any]
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def expected() -> Expected:
    return Expected(
        participation=EXPECTED_PARTICIPATION,
        satisfaction=EXPECTED_SATISFACTION,
        funnel_2024=EXPECTED_FUNNEL_2024,
        funnel_2025_learning=EXPECTED_FUNNEL_2025_LEARNING,
        countries_2025=EXPECTED_COUNTRIES_2025,
        schools_2024=EXPECTED_SCHOOLS_2024,
        schools_2025=EXPECTED_SCHOOLS_2025,
        gauges=EXPECTED_GAUGES,
    )


@pytest.fixture
def replays_of() -> Any:
    """``replays_of(history)``: some of its events again under new ids."""
    return replays
