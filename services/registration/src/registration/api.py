"""HTTP entry points: translate requests into the use cases of ``handlers``.

Every route needs a bearer token: the state-changing ones, and the reads, which all
return personal data (names, e-mail addresses). Operators and platform systems act for
anyone; a participant (a JWT whose ``sub`` is their id) only for themselves
(``Caller.may_act_for``: 403 otherwise). A seminar's whole list stays with operators and
platform systems (docs/security.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from seminarops_shared.auth import Caller, require_role
from seminarops_shared.errors import NotFound
from seminarops_shared.events.inbound import Participant
from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.events.vocabulary import Identifier
from seminarops_shared.http_idempotency import IDEMPOTENT, IdempotentRoute
from seminarops_shared.mongo import Document
from seminarops_shared.problems import never_answers
from seminarops_shared.service import service_source, service_state
from seminarops_shared.settings import Role
from seminarops_shared.unit_of_work import UnitOfWork, current_traceparent

from .callers import PathId, PersonalCaller, personal
from .handlers import Outcome, OutcomeStatus, RegistrationRequest, RegistrationsOverHttp
from .journey_api import Journey

router = APIRouter(prefix="/v1", tags=["registrations"], route_class=IdempotentRoute)

# The `source` of requests made over this API (the events' `source` field says which
# path a registration came by; the envelope's is always /services/registration).
HTTP_SOURCE = service_source("registration") + "/http"

# Far beyond any seminar's registrations and well inside the 64-bit integers the
# database takes: a larger offset is a 422 naming the parameter, not a driver error.
MAX_OFFSET = 1_000_000

_readers = Depends(require_role(Role.PLATFORM, Role.OPERATOR))
_operators = Depends(require_role(Role.OPERATOR))


async def registrations(request: Request) -> RegistrationsOverHttp:
    # async: FastAPI would run a plain ``def`` dependency in its thread pool (a thread
    # hand-off on every request).
    return service_state(request, RegistrationsOverHttp)


Service = Annotated[RegistrationsOverHttp, Depends(registrations)]


class RegistrationIn(BaseModel):
    """The same as a ``registration.requested.v1`` event's data."""

    model_config = ConfigDict(extra="forbid")

    seminar_id: Identifier
    participant: Participant


class DecisionOut(BaseModel):
    """The registration a request resolved to. ``pending``: the seminar is not known
    yet; the request is parked and decided when it is (see the service README)."""

    id: str
    status: OutcomeStatus
    position: int | None = Field(default=None, description="place in the waiting list")
    reason: str | None = None


class RegistrationOut(BaseModel):
    id: str
    seminar_id: str
    participant_id: str
    status: str = Field(
        description="confirmed, waitlisted, offered, cancelled, rejected, or pending "
        "(parked: the seminar is not known yet)"
    )
    version: int | None = None
    waitlist_seq: int | None = None
    waitlist_position: int | None = Field(
        default=None,
        description="place in the waiting list at this read (1 = promoted next); "
        "null unless waitlisted",
    )
    offer_expires_at: datetime | None = Field(
        default=None, description="when the seat offer lapses; null unless offered"
    )
    reason: str | None = None
    country: str | None = None
    school_id: str | None = None
    display_name: str | None = None
    email: str | None = None
    source: str | None = None
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    updated_at: datetime | None = None


class SeminarRegistrationsOut(BaseModel):
    seminar_id: str
    seminar_status: str
    capacity: int
    confirmed: int
    waitlisted: int
    offered: int
    parked: int
    limit: int
    offset: int
    registrations: list[RegistrationOut]


class ParticipantRegistrationsOut(BaseModel):
    participant_id: str
    registrations: list[RegistrationOut]


class ErasureOut(BaseModel):
    participant_id: str
    registrations_anonymised: int
    certificates_revoked: int = 0


def _registration(doc: Document) -> RegistrationOut:
    return RegistrationOut(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


def _pending(doc: Document) -> RegistrationOut:
    participant: dict[str, Any] = doc["participant"]
    return RegistrationOut(
        id=doc["_id"],
        seminar_id=doc["seminar_id"],
        participant_id=participant["id"],
        status=OutcomeStatus.PENDING.value,
        country=participant.get("country"),
        school_id=participant.get("school_id"),
        display_name=participant.get("display_name"),
        email=participant.get("email"),
        source=doc.get("source"),
        requested_at=doc.get("requested_at"),
    )


def _decision(outcome: Outcome) -> DecisionOut:
    return DecisionOut(
        id=outcome.registration_id,
        status=outcome.status,
        position=outcome.position,
        reason=outcome.reason,
    )


@router.post(
    "/registrations",
    response_model=DecisionOut,
    status_code=status.HTTP_201_CREATED,
    # The caller first: the key belongs to the caller (http_idempotency).
    dependencies=[Depends(personal), IDEMPOTENT],
    responses={
        200: {"description": "the registration existed already (a repeat)"},
        202: {"description": "the seminar is not known yet: the request is parked"},
        403: {"description": "a participant registering someone else"},
    },
    summary="Register a participant (the same as registration.requested.v1)",
)
async def request_registration(
    body: RegistrationIn, service: Service, response: Response, caller: PersonalCaller
) -> DecisionOut:
    caller.may_act_for(body.participant.id)
    # A write conflict that outlasts the retries is a 503 (the shared error handler).
    outcome = await service.request(
        RegistrationRequest(
            seminar_id=body.seminar_id,
            participant=body.participant,
            source=HTTP_SOURCE,
            request_id=f"http:{uuid.uuid4()}",
            requested_at=service.now(),
            traceparent=current_traceparent.get(),
        )
    )
    if outcome.status is OutcomeStatus.PENDING:
        response.status_code = status.HTTP_202_ACCEPTED
    elif not outcome.created:
        response.status_code = status.HTTP_200_OK
    return _decision(outcome)


async def _found(registration_id: str, service: RegistrationsOverHttp) -> RegistrationOut | None:
    """The registration, or the parked request, by that id."""
    doc = await service.registrations.reads.registration(registration_id)
    if doc is not None:
        return _registration(doc)
    parked = await service.registrations.reads.parked_request(registration_id)
    return None if parked is None else _pending(parked)


@router.get(
    "/registrations/{registration_id}",
    response_model=RegistrationOut,
    responses={403: {"description": "a participant asking for a registration not theirs"}},
    summary="One registration (or a parked request, status pending)",
)
async def get_registration(
    registration_id: PathId, service: Service, caller: PersonalCaller
) -> RegistrationOut:
    found = await _found(registration_id, service)
    if not caller.acts_for_anyone:
        # Before "not found": registration ids derive from (seminar, participant), so a
        # 404 for a stranger's id would tell a participant whether that person registered.
        caller.may_act_for(None if found is None else found.participant_id)
    if found is None:
        raise NotFound(f"no registration {registration_id}")
    return found


async def _seminar_to_change(
    registration_id: str, service: RegistrationsOverHttp, caller: Caller
) -> str:
    """The seminar of the registration (or parked request) the caller is about to
    change: the change runs in that seminar's turn. A participant changes only their
    own registration (403 otherwise); nothing by that id is 404 (a request sent on
    Kafka and not decided yet, too: the caller asks again later). Neither whose a
    registration is nor its seminar ever changes (erasure makes it nobody's), so
    reading them before the transaction is as good as inside it."""
    found = await _found(registration_id, service)
    if not caller.acts_for_anyone:
        caller.may_act_for(None if found is None else found.participant_id)
    if found is None:
        raise NotFound(f"no registration {registration_id}")
    return found.seminar_id


async def _cancel(
    registration_id: str, service: RegistrationsOverHttp, caller: Caller
) -> DecisionOut:
    seminar_id = await _seminar_to_change(registration_id, service, caller)
    traceparent = current_traceparent.get()

    async def work(uow: UnitOfWork) -> Outcome | None:
        return await service.registrations.cancelling.cancel(
            uow, registration_id=registration_id, traceparent=traceparent, source=HTTP_SOURCE
        )

    # A completed seminar's registration cannot change: RegistrationClosed (a Conflict).
    outcome = await service.run(work, seminar_id=seminar_id)
    if outcome is None:
        raise NotFound(f"no registration {registration_id}")
    return _decision(outcome)


@router.delete(
    "/registrations/{registration_id}",
    response_model=DecisionOut,
    responses={403: {"description": "a participant cancelling a registration not theirs"}},
    summary="Cancel a registration (frees the seat; the waiting list moves up)",
)
async def delete_registration(
    registration_id: PathId, service: Service, caller: PersonalCaller
) -> DecisionOut:
    return await _cancel(registration_id, service, caller)


@router.post(
    "/registrations/{registration_id}/cancel",
    response_model=DecisionOut,
    responses={403: {"description": "a participant cancelling a registration not theirs"}},
    summary="Cancel a registration (the same as DELETE)",
)
async def cancel_registration(
    registration_id: PathId, service: Service, caller: PersonalCaller
) -> DecisionOut:
    return await _cancel(registration_id, service, caller)


_OFFER_ANSWERS: dict[int | str, dict[str, Any]] = {
    403: {"description": "a participant answering an offer not theirs"},
    404: {"description": "no registration by that id"},
    409: {"description": "no seat offer to answer: never offered, answered, or expired"},
}


async def _answer_offer(
    registration_id: str, service: RegistrationsOverHttp, caller: Caller, *, accept: bool
) -> DecisionOut:
    seminar_id = await _seminar_to_change(registration_id, service, caller)
    traceparent = current_traceparent.get()
    offers = service.registrations.offers
    answer = offers.accept if accept else offers.decline

    async def work(uow: UnitOfWork) -> Outcome:
        return await answer(uow, registration_id=registration_id, traceparent=traceparent)

    return _decision(await service.run(work, seminar_id=seminar_id))


@router.post(
    "/registrations/{registration_id}/accept",
    response_model=DecisionOut,
    responses=_OFFER_ANSWERS,
    summary="Accept a seat offer (status offered): the registration is confirmed",
)
async def accept_offer(
    registration_id: PathId, service: Service, caller: PersonalCaller
) -> DecisionOut:
    return await _answer_offer(registration_id, service, caller, accept=True)


@router.post(
    "/registrations/{registration_id}/decline",
    response_model=DecisionOut,
    responses=_OFFER_ANSWERS,
    summary="Decline a seat offer: cancelled (offer_declined); the seat goes to the next",
)
async def decline_offer(
    registration_id: PathId, service: Service, caller: PersonalCaller
) -> DecisionOut:
    return await _answer_offer(registration_id, service, caller, accept=False)


@router.get(
    "/seminars/{seminar_id}/registrations",
    response_model=SeminarRegistrationsOut,
    dependencies=[_readers],
    summary="A seminar's registrations and their status (personal data: operators and "
    "platform systems only)",
)
async def seminar_registrations(
    seminar_id: PathId,
    service: Service,
    status_filter: Annotated[RegistrationStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> SeminarRegistrationsOut:
    book = await service.registrations.reads.seat_book(seminar_id)
    if book is None:
        raise NotFound(f"no seminar {seminar_id} known here")
    docs = await service.registrations.reads.of_seminar(
        seminar_id, status=status_filter, limit=limit, offset=offset
    )
    return SeminarRegistrationsOut(
        seminar_id=seminar_id,
        seminar_status=book.status.value,
        capacity=book.capacity,
        confirmed=book.confirmed,
        waitlisted=book.waitlisted,
        offered=book.offered,
        parked=book.parked,
        limit=limit,
        offset=offset,
        registrations=[_registration(d) for d in docs],
    )


@router.get(
    "/participants/{participant_id}/registrations",
    response_model=ParticipantRegistrationsOut,
    responses={403: {"description": "a participant asking for someone else's"}},
    openapi_extra=never_answers(404),  # none yet is an empty list
    summary="A participant's registrations",
)
async def participant_registrations(
    participant_id: PathId,
    service: Service,
    caller: PersonalCaller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ParticipantRegistrationsOut:
    caller.may_act_for(participant_id)
    docs = await service.registrations.reads.of_participant(participant_id, limit=limit)
    return ParticipantRegistrationsOut(
        participant_id=participant_id, registrations=[_registration(d) for d in docs]
    )


@router.post(
    "/participants/{participant_id}/erase",
    response_model=ErasureOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[_operators],
    openapi_extra=never_answers(404, 409),  # an unknown person: nothing to erase, 0
    summary="Erase a participant (the same as participant.erasure_requested.v1)",
)
async def erase_participant(
    participant_id: PathId, service: Service, journey: Journey
) -> ErasureOut:
    async def work(uow: UnitOfWork) -> tuple[int, int]:
        changed = await service.registrations.erasure.erase(uow, participant_id=participant_id)
        revoked = await journey.revoke_certificates(uow, participant_id=participant_id)
        return changed, revoked

    changed, revoked = await service.run(work)
    return ErasureOut(
        participant_id=participant_id,
        registrations_anonymised=changed,
        certificates_revoked=revoked,
    )
