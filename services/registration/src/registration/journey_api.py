"""HTTP entry points of the participant journey: certificates of attendance and the
participant's calendar (CONTRACT.md "Participant journey").

A person's certificates and calendar are personal data: they need a token with a role
that may read registrations. Verifying a certificate by its code is public, and says
only what a certificate states: the holder's display name while it is valid, never an
e-mail address or the participant id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from . import calendar_ics, certificate_pdf
from .callers import PathId, PersonalCaller
from .certificates import CODE_PATTERN, Certificate, CertificateStatus
from .journey import ParticipantJourney

router = APIRouter(prefix="/v1", tags=["participant journey"])

Code = Annotated[
    str, Path(pattern=CODE_PATTERN, description="the certificate's public verification code")
]


async def journey(request: Request) -> ParticipantJourney:
    """The journey's use cases, as ``app.create_app`` wired them (``app.state.journey``)."""
    found = getattr(request.app.state, "journey", None)
    if not isinstance(found, ParticipantJourney):
        raise TypeError(f"app.state.journey is {type(found).__name__}, not ParticipantJourney")
    return found


Journey = Annotated[ParticipantJourney, Depends(journey)]


class CertificateFacts(BaseModel):
    """What a certificate states about the seminar."""

    code: str = Field(description="public verification code")
    status: CertificateStatus
    valid: bool
    seminar_id: str
    seminar_title: str | None
    kind: str
    programme: str
    year: int
    timezone: str | None = Field(description="the seminar's own time zone (IANA)")
    starts_at: datetime | None
    ends_at: datetime | None
    hours: float | None = Field(description="all sessions together; null if unknown")
    issued_at: datetime


class CertificateOut(CertificateFacts):
    display_name: str | None


class ParticipantCertificatesOut(BaseModel):
    participant_id: str
    certificates: list[CertificateOut]


class VerificationOut(CertificateFacts):
    """Public: the holder's display name while the certificate is valid (a revoked
    certificate names nobody)."""

    display_name: str | None
    revoked_at: datetime | None


def _facts(certificate: Certificate) -> dict[str, Any]:
    return {
        "code": certificate.code,
        "status": certificate.status,
        "valid": certificate.valid,
        "seminar_id": certificate.seminar_id,
        "seminar_title": certificate.seminar_title,
        "kind": certificate.kind,
        "programme": certificate.programme,
        "year": certificate.year,
        "timezone": certificate.timezone,
        "starts_at": certificate.starts_at,
        "ends_at": certificate.ends_at,
        "hours": certificate.hours,
        "issued_at": certificate.issued_at,
    }


@router.get(
    "/participants/{participant_id}/certificates",
    response_model=ParticipantCertificatesOut,
    responses={403: {"description": "a participant asking for someone else's"}},
    summary="A participant's certificates of attendance (personal data: token needed)",
)
async def participant_certificates(
    participant_id: PathId, service: Journey, caller: PersonalCaller
) -> ParticipantCertificatesOut:
    caller.may_act_for(participant_id)
    found = await service.certificates_of(participant_id)
    return ParticipantCertificatesOut(
        participant_id=participant_id,
        certificates=[CertificateOut(**_facts(c), display_name=c.display_name) for c in found],
    )


# Declared before "/certificates/{code}": the more specific path is matched first.
@router.get(
    "/certificates/{code}.pdf",
    response_class=Response,
    responses={
        200: {"content": {certificate_pdf.MEDIA_TYPE: {}}, "description": "the certificate"},
        404: {"description": "no such code, or the certificate was revoked"},
    },
    summary="A certificate of attendance as PDF (public: whoever has the code)",
)
async def certificate_document(code: Code, request: Request, service: Journey) -> Response:
    as_requested = str(request.url_for("verify_certificate", code=code))
    document = await service.certificate_pdf(code, as_requested=as_requested)
    return Response(
        document,
        media_type=certificate_pdf.MEDIA_TYPE,
        headers={"Content-Disposition": f'inline; filename="certificate-{code}.pdf"'},
    )


@router.get(
    "/certificates/{code}",
    response_model=VerificationOut,
    name="verify_certificate",
    summary="Verify a certificate by its code (public): valid or revoked, and its facts",
)
async def verify_certificate(code: Code, service: Journey) -> VerificationOut:
    found = await service.verify(code)
    return VerificationOut(
        **_facts(found),
        display_name=found.display_name if found.valid else None,
        revoked_at=found.revoked_at,
    )


@router.get(
    "/participants/{participant_id}/calendar.ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "RFC 5545 calendar"},
        403: {"description": "a participant asking for someone else's"},
    },
    summary="A participant's confirmed and offered seminars as an iCalendar feed",
)
async def participant_calendar(
    participant_id: PathId, service: Journey, caller: PersonalCaller
) -> Response:
    caller.may_act_for(participant_id)
    text = await service.calendar(participant_id)
    return Response(
        text,
        media_type=calendar_ics.MEDIA_TYPE,
        headers={"Content-Disposition": 'inline; filename="seminars.ics"'},
    )
