"""The roster consumer applies a batch of registration events in one go, against the real
broker and database: repeats and out-of-order versions end in the newest version, no
processed-event marker is written, and what changed nothing is counted as a duplicate."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from seminar.settings import SeminarSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events import Event
from seminarops_shared.events.registration import (
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.events.topics import REGISTRATION_EVENTS
from seminarops_shared.idempotency import PROCESSED_EVENTS
from seminarops_shared.privacy import pseudonym
from seminarops_shared.service import create_missing_topics

from ..conftest import REGISTRATION_SOURCE, AppFactory

pytestmark = pytest.mark.integration

PROCESSED_METRIC = "seminarops_events_processed_total"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def change(kind: type[Event], seminar_id: str, participant_id: str, *, version: int) -> Event:
    """A registration event of ``kind`` as the registration service publishes it."""
    fields: dict[str, Any] = {
        "registration_id": f"reg-{seminar_id}-{participant_id}",
        "seminar_id": seminar_id,
        "participant_id": participant_id,
        "version": version,
    }
    if kind in (RegistrationConfirmed, RegistrationWaitlisted):
        fields["requested_at"] = datetime(2025, 1, 1, tzinfo=UTC)
    if kind is RegistrationWaitlisted:
        fields["position"] = 1
    if kind is RegistrationCancelled:
        fields["previous_status"] = RegistrationStatus.CONFIRMED
        fields["reason"] = "participant cancelled"
    return kind(**fields)


def outcomes(app: FastAPI) -> dict[str, int]:
    """The consumer's records so far by outcome, from its own Prometheus counter."""
    counted: dict[str, int] = {}
    for family in app.state.metrics.events_processed.collect():
        for sample in family.samples:
            if sample.name == PROCESSED_METRIC:
                outcome = sample.labels["outcome"]
                counted[outcome] = counted.get(outcome, 0) + int(sample.value)
    return counted


async def consumed(app: FastAPI, records: int) -> dict[str, int]:
    """Wait until the consumer has dealt with ``records`` records in all; its outcomes."""

    async def probe() -> dict[str, int]:
        return outcomes(app)

    return await eventually(
        probe, until=lambda o: sum(o.values()) >= records, what=f"{records} records consumed"
    )


async def roster_of(app: FastAPI, seminar_id: str) -> dict[str, tuple[str, int, str | None]]:
    """participant -> (status, version, registration id), straight from the collection."""
    docs = app.state.runtime.mongo.db["roster"].find({"seminar_id": seminar_id})
    return {
        doc["participant_id"]: (doc["status"], doc["version"], doc["registration_id"])
        async for doc in docs
    }


async def markers(app: FastAPI) -> int:
    return int(await app.state.runtime.mongo.db[PROCESSED_EVENTS].count_documents({}))


async def send_all(kafka: KafkaProbe, events: Sequence[tuple[Event, str | None]]) -> None:
    """Publish in order (one seminar: one partition); an event id given twice is a
    redelivery of the same record."""
    for data, event_id in events:
        await kafka.send_event(data, source=REGISTRATION_SOURCE, event_id=event_id)


async def test_a_batch_with_repeats_and_old_versions_ends_in_the_newest_versions(
    namespace: Namespace, kafka: KafkaProbe, make_app: AppFactory
) -> None:
    messy, clean = unique("sem-messy"), unique("sem-clean")
    a, b, c, d = (unique("p") for _ in range(4))
    repeated = str(uuid.uuid4())
    # Everything is on the topic before the service starts: its first polls are whole
    # batches holding the repeats and the old versions together.
    history: list[tuple[Event, str | None]] = [
        (change(RegistrationConfirmed, messy, a, version=1), None),
        (change(RegistrationCancelled, messy, a, version=3), None),
        (change(RegistrationConfirmed, messy, a, version=2), None),  # older: nothing
        (change(RegistrationWaitlisted, messy, b, version=1), repeated),
        (change(RegistrationWaitlisted, messy, b, version=1), repeated),  # redelivered
        (change(RegistrationPromoted, messy, b, version=2), None),
        (change(RegistrationCancelled, messy, c, version=2), None),
        (change(RegistrationConfirmed, messy, c, version=1), None),  # older: nothing
        (change(RegistrationConfirmed, messy, d, version=1), None),
        (change(RegistrationConfirmed, messy, d, version=1), None),  # same, new id
    ]
    # The same people with only their newest version each, on another seminar.
    newest = [
        (change(RegistrationCancelled, clean, a, version=3), None),
        (change(RegistrationPromoted, clean, b, version=2), None),
        (change(RegistrationCancelled, clean, c, version=2), None),
        (change(RegistrationConfirmed, clean, d, version=1), None),
    ]
    await create_missing_topics(namespace.settings(SeminarSettings))
    await send_all(kafka, history)
    await send_all(kafka, newest)

    app = make_app()
    async with running(app) as client:
        counted = await consumed(app, len(history) + len(newest))
        messy_roster = await roster_of(app, messy)
        clean_roster = await roster_of(app, clean)
        stored_markers = await markers(app)
        exposed = await client.get("/metrics")

    assert messy_roster == {
        a: ("cancelled", 3, f"reg-{messy}-{a}"),
        b: ("confirmed", 2, f"reg-{messy}-{b}"),
        c: ("cancelled", 2, f"reg-{messy}-{c}"),
        d: ("confirmed", 1, f"reg-{messy}-{d}"),
    }
    same_shape = {p: (s, v) for p, (s, v, _) in messy_roster.items()}
    assert same_shape == {p: (s, v) for p, (s, v, _) in clean_roster.items()}
    assert stored_markers == 0
    # The older a and c, the redelivered b and the second d changed nothing.
    assert counted == {"processed": 6 + len(newest), "duplicate": 4}
    duplicates = sum(
        sample.value
        for family in text_string_to_metric_families(exposed.text)
        for sample in family.samples
        if sample.name == PROCESSED_METRIC
        and sample.labels["outcome"] == "duplicate"
        and sample.labels["topic"].endswith(REGISTRATION_EVENTS)
    )
    assert duplicates == 4


async def test_erasure_moves_people_once_and_a_repeat_changes_nothing(
    namespace: Namespace, kafka: KafkaProbe, make_app: AppFactory
) -> None:
    settings = namespace.settings(SeminarSettings)
    first, second = unique("sem-one"), unique("sem-two")
    person, other = unique("p"), unique("p")
    hidden = pseudonym(person, key=settings.privacy.key)
    app = make_app()
    async with running(app):
        db = app.state.runtime.mongo.db
        # The registration service erased the person first: one event already carries
        # the pseudonym (newer on the first seminar, older on the second).
        await send_all(
            kafka,
            [
                (change(RegistrationConfirmed, first, person, version=1), None),
                (change(RegistrationCancelled, first, hidden, version=2), None),
                (change(RegistrationConfirmed, first, other, version=1), None),
                (change(RegistrationConfirmed, second, hidden, version=1), None),
                (change(RegistrationCancelled, second, person, version=3), None),
            ],
        )
        await consumed(app, 5)
        recorded_at = datetime(2025, 3, 11, 16, 5, tzinfo=UTC)
        await db["attendance"].insert_many(
            [
                {
                    "_id": f"{seminar}|{person}",
                    "seminar_id": seminar,
                    "participant_id": person,
                    "recorded_at": recorded_at,
                }
                for seminar in (first, second)
            ]
        )

        erasure = ParticipantErased(participant_id=person, erased_at=datetime.now(UTC))
        sent = await kafka.send_event(erasure, source=REGISTRATION_SOURCE)
        await consumed(app, 6)
        # Redelivered, announced again (a second erasure request), and a late event.
        await kafka.send_event(erasure, source=REGISTRATION_SOURCE, event_id=sent.id)
        await kafka.send_event(erasure, source=REGISTRATION_SOURCE)
        await send_all(kafka, [(change(RegistrationConfirmed, first, person, version=4), None)])
        # An erasure request naming the pseudonym itself: nothing to replace.
        await kafka.send_event(
            ParticipantErased(participant_id=hidden, erased_at=datetime.now(UTC)),
            source=REGISTRATION_SOURCE,
        )
        counted = await consumed(app, 10)
        rosters = (await roster_of(app, first), await roster_of(app, second))
        attendance = db["attendance"].find({"participant_id": {"$in": [person, hidden]}})
        attended = sorted(
            [(doc["_id"], doc["participant_id"], doc["recorded_at"]) async for doc in attendance]
        )
        stored_markers = await markers(app)

    assert rosters == (
        {
            hidden: ("confirmed", 4, f"reg-{first}-{person}"),  # the late event, on the pseudonym
            other: ("confirmed", 1, f"reg-{first}-{other}"),
        },
        {hidden: ("cancelled", 3, f"reg-{second}-{person}")},  # the newer one moved over
    )
    assert attended == sorted(
        (f"{seminar}|{hidden}", hidden, recorded_at) for seminar in (first, second)
    )
    assert stored_markers == 0
    # The redelivered erasure, the second one and the one naming the pseudonym.
    assert counted == {"processed": 7, "duplicate": 3}
