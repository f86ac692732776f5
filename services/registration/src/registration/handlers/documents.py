"""The registration documents and events the use cases write: built here, in one
place, so that every use case stores and announces a registration alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from seminarops_shared.events import Event
from seminarops_shared.events.inbound import Participant
from seminarops_shared.events.registration import (
    RegistrationConfirmed,
    RegistrationRejected,
    RegistrationWaitlisted,
)
from seminarops_shared.mongo import Document
from seminarops_shared.unit_of_work import UnitOfWork, current_traceparent

from .. import domain
from ..domain import Decision, DecisionKind
from .outcomes import CancellationRequest, RegistrationRequest


@contextlib.contextmanager
def traced(traceparent: str | None) -> Iterator[None]:
    """Events emitted inside carry ``traceparent`` (the request's trace context)."""
    token = current_traceparent.set(traceparent)
    try:
        yield
    finally:
        current_traceparent.reset(token)


def event_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What every registration event carries: ids, country, school, version, source;
    never a name or an e-mail address."""
    return {
        "registration_id": doc["_id"],
        "seminar_id": doc["seminar_id"],
        "participant_id": doc["participant_id"],
        "country": doc.get("country"),
        "school_id": doc.get("school_id"),
        "version": int(doc["version"]),
        "source": doc.get("source"),
    }


def latest_request(doc: Mapping[str, Any]) -> datetime:
    """When the latest request seen for this registration was published."""
    last: datetime | None = doc.get("last_requested_at")
    requested: datetime = doc["requested_at"]
    return last if last is not None and domain.later_request(last, requested) else requested


def cancellation_time(doc: Mapping[str, Any]) -> datetime:
    """When the cancellation that ended this registration was published (registrations
    cancelled before that was stored: when it was applied)."""
    published: datetime | None = doc.get("cancellation_published_at")
    if published is not None:
        return published
    applied: datetime = doc.get("cancelled_at") or doc["updated_at"]
    return applied


def cancellation_doc(cancellation: CancellationRequest, *, now: datetime) -> Document:
    return {
        "_id": cancellation.registration_id,
        "seminar_id": cancellation.seminar_id,
        "participant_id": cancellation.participant_id,
        "event_id": cancellation.event_id,
        "source": cancellation.source,
        "cancelled_at": cancellation.cancelled_at,
        "traceparent": cancellation.traceparent,
        "kept_at": now,
    }


def registration_doc(
    request: RegistrationRequest, decision: Decision, *, now: datetime, version: int
) -> Document:
    participant = request.participant
    doc: Document = {
        "_id": request.registration_id,
        "seminar_id": request.seminar_id,
        "participant_id": participant.id,
        "status": decision.kind.value,
        "version": version,
        "country": participant.country,
        "school_id": participant.school_id,
        # Personal data: stored here only, never in an event or a log line.
        "display_name": participant.display_name,
        "email": str(participant.email) if participant.email else None,
        "source": request.source,
        "request_id": request.request_id,
        "requested_at": request.requested_at,
        "decided_at": now,
        "updated_at": now,
    }
    if decision.waitlist_seq is not None:
        doc["waitlist_seq"] = decision.waitlist_seq
    if decision.reason is not None:
        doc["reason"] = decision.reason
    return doc


def parked_doc(request: RegistrationRequest, *, seq: int, now: datetime) -> Document:
    return {
        "_id": request.registration_id,
        "seminar_id": request.seminar_id,
        "seq": seq,
        "parked_at": now,
        "participant": request.participant.model_dump(mode="json"),
        "source": request.source,
        "request_id": request.request_id,
        "requested_at": request.requested_at,
        "traceparent": request.traceparent,
    }


def request_from_parked(doc: Mapping[str, Any]) -> RegistrationRequest:
    return RegistrationRequest(
        seminar_id=doc["seminar_id"],
        participant=Participant.model_validate(doc["participant"]),
        source=doc["source"],
        request_id=doc["request_id"],
        requested_at=doc["requested_at"],
        traceparent=doc.get("traceparent"),
    )


def emit_decision(
    uow: UnitOfWork, request: RegistrationRequest, doc: Document, decision: Decision
) -> None:
    """Announce a decided request: confirmed, waitlisted (with its position) or
    rejected (with its reason), in the request's trace context."""
    fields = event_fields(doc)
    event: Event
    if decision.kind is DecisionKind.CONFIRMED:
        event = RegistrationConfirmed(**fields, requested_at=request.requested_at)
    elif decision.kind is DecisionKind.WAITLISTED:
        assert decision.position is not None
        event = RegistrationWaitlisted(
            **fields, requested_at=request.requested_at, position=decision.position
        )
    else:
        event = RegistrationRejected(**fields, reason=decision.reason or "rejected")
    with traced(request.traceparent):
        uow.emit(event)
