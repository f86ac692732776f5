"""Projections of the other services' events: what the metrics service remembers.

Each projection document is a pure fold of the events about one natural key:

- a seminar (``seminar_id``): how reports group it (kind, programme, year), its host
  school and status;
- a registration (``registration_id``): its current status (the newest ``version``
  wins), which stages it ever went through (confirmed, waitlisted, ...) and what each
  of its versions was (``steps``: registered again, offers and their answers);
- a participation (``seminar_id``, ``participant_id``): the participant's country and
  school (from registration events) and whether they attended (from seminar events);
- an evaluation (``evaluation_id``): one response and its rating;
- a certificate (``certificate_id``): how reports group it and whether it was revoked.

Every fold is idempotent (applying an event twice changes nothing the second time) and
order-tolerant where events can arrive out of order (across topics, or registration
versions): fields come from one topic each, stages only ever get set, and a
registration's status follows its highest version. The same functions serve the live
consumer and the rebuild from the topics, so both reach the same documents.

Pure: no database, no clock; participant ids arrive already pseudonymised when the
person asked to be forgotten (``seminarops_shared.privacy.pseudonym``).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from seminarops_shared.events.feedback import EvaluationSubmitted
from seminarops_shared.events.registration import (
    CertificateIssued,
    CertificateRevoked,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationOffered,
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
    SeminarWentLive,
)
from seminarops_shared.events.vocabulary import Kind, Programme, Rating

SeminarEvent = (
    SeminarScheduled
    | SeminarRescheduled
    | SeminarWentLive
    | SeminarCancelled
    | SeminarCompleted
    | AttendanceRecorded
)
RegistrationEvent = (
    RegistrationConfirmed
    | RegistrationWaitlisted
    | RegistrationPromoted
    | RegistrationOffered
    | RegistrationCancelled
    | RegistrationRejected
)
CertificateEvent = CertificateIssued | CertificateRevoked


class SeminarStatus(enum.StrEnum):
    """A seminar's life cycle; it only moves forward (``rank``)."""

    SCHEDULED = "scheduled"
    LIVE = "live"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]


_STATUS_RANK = {
    SeminarStatus.SCHEDULED: 0,
    SeminarStatus.LIVE: 1,
    SeminarStatus.COMPLETED: 2,
    SeminarStatus.CANCELLED: 3,
}


@dataclass(frozen=True, slots=True)
class SeminarView:
    seminar_id: str
    kind: Kind | None = None
    programme: Programme | None = None
    year: int | None = None
    title: str | None = None
    capacity: int | None = None
    host_school_id: str | None = None
    open_to_other_schools: bool | None = None
    status: SeminarStatus = SeminarStatus.SCHEDULED


@dataclass(frozen=True, slots=True)
class RegistrationView:
    registration_id: str
    seminar_id: str
    participant_id: str
    status: RegistrationStatus
    version: int
    country: str | None = None
    school_id: str | None = None
    ever_confirmed: bool = False
    ever_waitlisted: bool = False
    ever_promoted: bool = False
    ever_cancelled: bool = False
    ever_rejected: bool = False
    # (version, step) of every event seen, by version (``step_of``): the funnel reads
    # registering again, offers and their answers from neighbouring versions.
    steps: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ParticipationView:
    """One person at one seminar. ``attended`` makes them a participant (CONTRACT.md:
    the seminar service records attendance only for confirmed registrants)."""

    seminar_id: str
    participant_id: str
    attended: bool = False
    kind: Kind | None = None
    programme: Programme | None = None
    year: int | None = None
    country: str | None = None
    school_id: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateView:
    """One certificate of attendance: its grouping, and whether it was revoked. No
    participant id: the reports count certificates, never whose they are."""

    certificate_id: str
    seminar_id: str
    kind: Kind
    programme: Programme
    year: int
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class EvaluationView:
    evaluation_id: str
    seminar_id: str
    kind: Kind
    programme: Programme
    year: int
    overall: Rating
    participant_id: str | None = None


# ---- seminars ------------------------------------------------------------------------


def seminar_after(current: SeminarView | None, event: SeminarEvent) -> SeminarView:
    """The seminar projection after ``event``.

    Invariant: the status never moves backwards (a late ``went_live`` does not undo
    ``completed``); grouping fields come from the newest seminar event that carries
    them (seminar events of one seminar share a partition, so they arrive in order).
    Idempotent: applying the same event again yields the same view.
    """
    view = current or SeminarView(seminar_id=event.seminar_id)
    changes: dict[str, object] = {}
    status: SeminarStatus | None = None
    match event:
        case SeminarScheduled():
            changes |= {
                "kind": event.kind,
                "programme": event.programme,
                "year": event.year,
                "title": event.title,
                "capacity": event.capacity,
                "host_school_id": event.host_school_id,
                "open_to_other_schools": event.open_to_other_schools,
            }
        case SeminarRescheduled():
            changes |= {"year": event.year, "capacity": event.new_capacity}
        case SeminarWentLive():
            status = SeminarStatus.LIVE
        case SeminarCancelled():
            status = SeminarStatus.CANCELLED
        case SeminarCompleted():
            changes |= {
                "kind": event.kind,
                "programme": event.programme,
                "year": event.year,
                "host_school_id": event.host_school_id,
                "open_to_other_schools": event.open_to_other_schools,
            }
            status = SeminarStatus.COMPLETED
        case AttendanceRecorded():
            changes |= {"kind": event.kind, "programme": event.programme, "year": event.year}
    if status is not None and status.rank > view.status.rank:
        changes["status"] = status
    return dataclasses.replace(view, **changes)  # type: ignore[arg-type]


# ---- registrations -------------------------------------------------------------------

_STATUS_OF: dict[type[RegistrationEvent], RegistrationStatus] = {
    RegistrationConfirmed: RegistrationStatus.CONFIRMED,
    RegistrationWaitlisted: RegistrationStatus.WAITLISTED,
    RegistrationPromoted: RegistrationStatus.CONFIRMED,
    RegistrationOffered: RegistrationStatus.OFFERED,
    RegistrationCancelled: RegistrationStatus.CANCELLED,
    RegistrationRejected: RegistrationStatus.REJECTED,
}
_STAGE_OF: dict[type[RegistrationEvent], str] = {
    RegistrationConfirmed: "ever_confirmed",
    RegistrationWaitlisted: "ever_waitlisted",
    RegistrationPromoted: "ever_promoted",
    RegistrationCancelled: "ever_cancelled",
    RegistrationRejected: "ever_rejected",
}

# Steps of a registration's versions (``RegistrationView.steps``).
STEP_CONFIRMED = "confirmed"
STEP_WAITLISTED = "waitlisted"
STEP_PROMOTED = "promoted"
STEP_OFFERED = "offered"
STEP_CANCELLED = "cancelled"
STEP_OFFER_DECLINED = "offer_declined"
STEP_OFFER_EXPIRED = "offer_expired"
STEP_REJECTED = "rejected"
STEP_NOT_ELIGIBLE = "not_eligible"
_CANCELLATION_STEPS = frozenset({STEP_CANCELLED, STEP_OFFER_DECLINED, STEP_OFFER_EXPIRED})
# The registration service's reasons these steps stand for.
_CANCELLATION_REASONS = {"offer_declined": STEP_OFFER_DECLINED, "offer_expired": STEP_OFFER_EXPIRED}
_REJECTION_REASONS = {"not_eligible": STEP_NOT_ELIGIBLE}


def step_of(event: RegistrationEvent) -> str:
    """What the event made of the registration at its version."""
    match event:
        case RegistrationConfirmed():
            return STEP_CONFIRMED
        case RegistrationWaitlisted():
            return STEP_WAITLISTED
        case RegistrationPromoted():
            return STEP_PROMOTED
        case RegistrationOffered():
            return STEP_OFFERED
        case RegistrationCancelled():
            return _CANCELLATION_REASONS.get(event.reason, STEP_CANCELLED)
        case RegistrationRejected():
            return _REJECTION_REASONS.get(event.reason, STEP_REJECTED)


def _with_step(
    steps: tuple[tuple[int, str], ...], version: int, step: str
) -> tuple[tuple[int, str], ...]:
    """``steps`` with ``(version, step)``; a version already known keeps its step (the
    registration service emits one event per version)."""
    if any(v == version for v, _ in steps):
        return steps
    return tuple(sorted((*steps, (version, step))))


def registration_after(
    current: RegistrationView | None, event: RegistrationEvent, *, participant_id: str
) -> RegistrationView:
    """The registration projection after ``event`` (``participant_id`` as stored:
    pseudonymised if the person was erased).

    Invariant: the status is the one of the highest ``version`` seen, whatever order
    the events came in; stages (``ever_*``) are only ever set; a promotion also
    counts as confirmed. Idempotent and commutative over the events of a registration.
    """
    stage = _STAGE_OF.get(type(event))
    stages = {stage: True} if stage else {}
    if isinstance(event, RegistrationPromoted):
        stages["ever_confirmed"] = True
    if current is None:
        return RegistrationView(
            registration_id=event.registration_id,
            seminar_id=event.seminar_id,
            participant_id=participant_id,
            status=_STATUS_OF[type(event)],
            version=event.version,
            country=event.country,
            school_id=event.school_id,
            steps=((event.version, step_of(event)),),
            **stages,
        )
    changes: dict[str, object] = dict(stages)
    changes["steps"] = _with_step(current.steps, event.version, step_of(event))
    if event.version > current.version:
        changes |= {"status": _STATUS_OF[type(event)], "version": event.version}
    if event.country is not None and current.country is None:
        changes["country"] = event.country
    if event.school_id is not None and current.school_id is None:
        changes["school_id"] = event.school_id
    return dataclasses.replace(current, **changes)  # type: ignore[arg-type]


# ---- participations ------------------------------------------------------------------


def participation_registered(
    current: ParticipationView | None,
    *,
    seminar_id: str,
    participant_id: str,
    country: str | None,
    school_id: str | None,
) -> ParticipationView:
    """Country and school of a registrant, from a registration event.

    Touches only ``country`` and ``school_id`` (and only to fill them), so it commutes
    with attendance, which comes from another topic. Idempotent.
    """
    view = current or ParticipationView(seminar_id=seminar_id, participant_id=participant_id)
    changes: dict[str, object] = {}
    if country is not None and view.country is None:
        changes["country"] = country
    if school_id is not None and view.school_id is None:
        changes["school_id"] = school_id
    return dataclasses.replace(view, **changes)  # type: ignore[arg-type]


def participation_attended(
    current: ParticipationView | None,
    *,
    seminar_id: str,
    participant_id: str,
    kind: Kind,
    programme: Programme,
    year: int,
) -> ParticipationView:
    """This registrant attended: they count as a participant of ``year``.

    Invariant: one document per (seminar, participant), so an attendee listed by
    several ``attendance.recorded`` events and by ``seminar.completed`` counts once.
    Idempotent.
    """
    view = current or ParticipationView(seminar_id=seminar_id, participant_id=participant_id)
    return dataclasses.replace(view, attended=True, kind=kind, programme=programme, year=year)


def participation_regrouped(
    current: ParticipationView,
    *,
    year: int,
    kind: Kind | None = None,
    programme: Programme | None = None,
) -> ParticipationView:
    """An attendee's seminar moved year (rescheduled) or was completed with its final
    grouping: the attendance follows it. Rows without attendance stay as they are."""
    if not current.attended:
        return current
    return dataclasses.replace(
        current,
        year=year,
        kind=kind or current.kind,
        programme=programme or current.programme,
    )


# ---- certificates -------------------------------------------------------------------


def certificate_after(current: CertificateView | None, event: CertificateEvent) -> CertificateView:
    """The certificate projection after ``event``.

    Invariant: once revoked, a certificate stays revoked (a late or repeated issue does
    not make it valid again); either event alone makes it known (issued). Idempotent
    and commutative over a certificate's events."""
    view = current or CertificateView(
        certificate_id=event.certificate_id,
        seminar_id=event.seminar_id,
        kind=event.kind,
        programme=event.programme,
        year=event.year,
    )
    if isinstance(event, CertificateRevoked) and not view.revoked:
        return dataclasses.replace(view, revoked=True)
    return view


# ---- evaluations --------------------------------------------------------------------


def evaluation_of(event: EvaluationSubmitted, *, participant_id: str | None) -> EvaluationView:
    """One response, as reports count it (kind, programme and year as the feedback
    service stamped them). Keyed by ``evaluation_id``: a repeat is the same document."""
    return EvaluationView(
        evaluation_id=event.evaluation_id,
        seminar_id=event.seminar_id,
        kind=event.kind,
        programme=event.programme,
        year=event.year,
        overall=event.overall,
        participant_id=participant_id,
    )


__all__ = [
    "CertificateEvent",
    "CertificateView",
    "EvaluationView",
    "ParticipationView",
    "RegistrationEvent",
    "RegistrationView",
    "SeminarEvent",
    "SeminarStatus",
    "SeminarView",
    "certificate_after",
    "evaluation_of",
    "participation_attended",
    "participation_registered",
    "participation_regrouped",
    "registration_after",
    "seminar_after",
    "step_of",
]


# ---- per-seminar tallies ---------------------------------------------------------------
#
# The funnel and the registration gauges read one small document per seminar instead of
# aggregating every registration of it (at 10,000 registrations that aggregation took
# ~0.8 s on the embedded database). The projector keeps the tallies as it folds: every
# change of a registration, participation or evaluation view moves the tallies by the
# difference between what the view counted for before and after. The fold and its tally
# change are written in the same transaction, so they agree; a fold that changes
# nothing (a repeat) moves nothing.

# The funnel stages a view counts for, and ``status:<status>`` for the current status
# of a registration (the ``seminarops_registrations`` gauge).
STATUS_TALLY_PREFIX = "status:"


def registration_tally(view: RegistrationView | None) -> dict[str, int]:
    """What one registration counts for in its seminar's tally."""
    if view is None:
        return {}
    return {
        "requested": 1,
        "confirmed": int(view.ever_confirmed),
        "waitlisted": int(view.ever_waitlisted),
        "promoted": int(view.ever_promoted),
        "cancelled": int(view.status is RegistrationStatus.CANCELLED),
        "rejected": int(view.status is RegistrationStatus.REJECTED),
        f"{STATUS_TALLY_PREFIX}{view.status.value}": 1,
        **journey_tally(view.steps),
    }


def journey_tally(steps: tuple[tuple[int, str], ...]) -> dict[str, int]:
    """What a registration's versions count for in the funnel: ``registered_again``
    (confirmed or waitlisted right after a cancellation: the person asked again; the
    registration itself still counts once in ``requested`` and ``confirmed``),
    ``offers_made``, ``offers_accepted`` (confirmed right after an offer),
    ``offers_declined``, ``offers_expired``, ``not_eligible``. Neighbouring versions:
    the registration service moves the version by one per event."""
    by_version = dict(steps)
    counts = dict.fromkeys(JOURNEY_COUNTERS, 0)
    for version, step in steps:
        before = by_version.get(version - 1)
        if step in (STEP_CONFIRMED, STEP_WAITLISTED) and before in _CANCELLATION_STEPS:
            counts["registered_again"] += 1
        elif step == STEP_CONFIRMED and before == STEP_OFFERED:
            counts["offers_accepted"] += 1
        elif step == STEP_OFFERED:
            counts["offers_made"] += 1
        elif step == STEP_OFFER_DECLINED:
            counts["offers_declined"] += 1
        elif step == STEP_OFFER_EXPIRED:
            counts["offers_expired"] += 1
        elif step == STEP_NOT_ELIGIBLE:
            counts["not_eligible"] += 1
    return counts


JOURNEY_COUNTERS = (
    "registered_again",
    "offers_made",
    "offers_accepted",
    "offers_declined",
    "offers_expired",
    "not_eligible",
)


def participation_tally(view: ParticipationView | None) -> dict[str, int]:
    return {"attended": int(view is not None and view.attended)}


def evaluation_tally(view: EvaluationView | None) -> dict[str, int]:
    return {"evaluated": int(view is not None)}


def tally_change(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """``after - before``, without the counters that did not move."""
    change = {key: after.get(key, 0) - before.get(key, 0) for key in before.keys() | after}
    return {key: n for key, n in sorted(change.items()) if n}
