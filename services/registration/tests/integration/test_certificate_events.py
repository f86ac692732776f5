"""``certificate.issued.v1`` and ``certificate.revoked.v1`` on ``registration.events``,
against the real broker and database: one per certificate, keyed by the seminar, with
the seminar's grouping and never a name; a revocation names the pseudonym; a replayed
completion and a repeated erasure announce nothing more."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from registration.certificates import certificate_id
from registration.journey import CERTIFICATE_ISSUE_JOB
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events.envelope import Envelope
from seminarops_shared.events.seminar import SeminarCompleted
from seminarops_shared.events.topics import REGISTRATION_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.privacy import is_pseudonym

from ..conftest import SEMINAR_SOURCE, new_id, requested
from .conftest import database, registration_app, schedule, statuses

pytestmark = pytest.mark.integration


def _completed(seminar_id: str, attendees: list[str]) -> SeminarCompleted:
    return SeminarCompleted(
        seminar_id=seminar_id,
        kind=Kind.PD_WORKSHOP,
        programme=Programme.ETWINNING,
        year=2026,
        attendee_ids=attendees,
    )


async def _certificate_events(kafka: KafkaProbe, seminar_id: str) -> list[Envelope]:
    return [
        e
        for e in await kafka.events(REGISTRATION_EVENTS)
        if e.type.startswith("certificate.") and e.subject == seminar_id
    ]


async def _jobs_left(app: FastAPI, seminar_id: str) -> int:
    return int(
        await database(app)["scheduled_jobs"].count_documents(
            {"group": seminar_id, "kind": CERTIFICATE_ISSUE_JOB}
        )
    )


async def test_issue_and_revocation_are_announced_once_each_without_names(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = new_id("sem")
    app = registration_app(namespace)
    async with running(app) as client:
        await schedule(app, kafka, seminar, 5)
        for person in ["ada", "bo"]:
            await kafka.send_event(requested(seminar, person))
        await eventually(
            lambda: statuses(app, seminar), until=lambda c: c.total() == 2, what="registered"
        )
        await kafka.send_event(_completed(seminar, ["ada", "bo"]), source=SEMINAR_SOURCE)
        issued = await eventually(
            lambda: _certificate_events(kafka, seminar),
            until=lambda found: len(found) == 2,
            what="two certificate.issued.v1",
        )
        # The same completion again (a new event id): the certificates exist, so
        # nothing is issued or announced.
        await kafka.send_event(_completed(seminar, ["ada", "bo"]), source=SEMINAR_SOURCE)
        await eventually(lambda: _jobs_left(app, seminar), until=lambda n: n == 0, what="jobs")
        first = await client.post("/v1/participants/ada/erase")
        second = await client.post("/v1/participants/ada/erase")
        everything = await eventually(
            lambda: _certificate_events(kafka, seminar),
            until=lambda found: len(found) == 3,
            what="one certificate.revoked.v1",
        )
        records = [
            r
            for r in await kafka.read_all(REGISTRATION_EVENTS)
            if r.value and b'"certificate.' in r.value and seminar.encode() in r.value
        ]
    assert first.json()["certificates_revoked"] == 1
    assert second.json()["certificates_revoked"] == 0
    assert sorted(e.type for e in everything) == [
        "certificate.issued.v1",
        "certificate.issued.v1",
        "certificate.revoked.v1",
    ]
    by_holder: dict[str, Any] = {e.data["participant_id"]: e.data for e in issued}
    assert set(by_holder) == {"ada", "bo"}
    ada = by_holder["ada"]
    assert ada["certificate_id"] == certificate_id(seminar, "ada")
    assert (ada["seminar_id"], ada["kind"], ada["programme"], ada["year"]) == (
        seminar,
        "pd_workshop",
        "etwinning",
        2026,
    )
    assert "display_name" not in ada
    assert all(e.source == "/services/registration" for e in everything)
    assert {r.key for r in records} == {seminar.encode()}
    [revoked] = [e for e in everything if e.type == "certificate.revoked.v1"]
    assert revoked.data["certificate_id"] == certificate_id(seminar, "ada")
    assert is_pseudonym(revoked.data["participant_id"])
    assert revoked.data["reason"] == "participant_erased"
    assert "ada" not in {str(v) for v in revoked.data.values()}
