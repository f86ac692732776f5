"""The ``seminar`` group's subscription on FastStream's ``TestKafkaBroker``: each consumed
event type reaches its handler, decoded; a record that cannot be decoded goes to the
DLQ with its reason; a type the service does not act on is skipped. The service behind
the handlers is a mock and no database is involved (see
``seminarops_devtools.testing.in_memory_broker``); what the handlers then do is tested
against the real broker and database in ``tests/integration``."""

from __future__ import annotations

from unittest.mock import AsyncMock

import pytest

from seminar.domain import RosterStatus
from seminar.handlers import SeminarService
from seminar.subscribers import subscription
from seminarops_devtools.testing.in_memory_broker import in_memory_subscription, owner_source
from seminarops_devtools.testing.samples import poison_records, sample_event
from seminarops_shared.events import Event
from seminarops_shared.events.registration import (
    CertificateIssued,
    CertificateRevoked,
    ParticipantErased,
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationOffered,
    RegistrationPromoted,
    RegistrationRejected,
    RegistrationWaitlisted,
)
from seminarops_shared.events.topics import REGISTRATION_EVENTS

ROSTER_CHANGES = {
    RegistrationConfirmed: RosterStatus.CONFIRMED,
    RegistrationPromoted: RosterStatus.CONFIRMED,
    RegistrationWaitlisted: RosterStatus.WAITLISTED,
    RegistrationCancelled: RosterStatus.CANCELLED,
}
CONSUMED: list[type[Event]] = [*ROSTER_CHANGES, ParticipantErased]


def _service() -> AsyncMock:
    service = AsyncMock(spec=SeminarService)
    service.apply_registrations.side_effect = lambda _uow, entries: [True] * len(entries)
    service.erase_participant.return_value = True
    return service


def test_every_type_the_subscription_routes_is_tested_here() -> None:
    assert set(subscription(_service()).handlers) == set(CONSUMED)


@pytest.mark.parametrize("kind", list(ROSTER_CHANGES))
async def test_a_registration_change_reaches_the_rosters_as_an_entry(kind: type[Event]) -> None:
    service = _service()
    event = sample_event(kind)
    async with in_memory_subscription(subscription(service), group="seminar") as running:
        await running.publish_event(event)
    service.apply_registrations.assert_awaited_once()
    [entry] = service.apply_registrations.await_args.args[1]
    assert (entry.seminar_id, entry.participant_id) == (event.seminar_id, event.participant_id)  # type: ignore[attr-defined]
    assert entry.status == ROSTER_CHANGES[kind]
    service.erase_participant.assert_not_awaited()
    assert running.dead_letters == []


async def test_an_erasure_reaches_erase_participant() -> None:
    service = _service()
    event = sample_event(ParticipantErased)
    async with in_memory_subscription(subscription(service), group="seminar") as running:
        await running.publish_event(event)
    assert service.erase_participant.await_args.args[1] == event.participant_id  # type: ignore[attr-defined]
    service.apply_registrations.assert_not_awaited()
    assert running.dead_letters == []


@pytest.mark.parametrize(
    "kind",
    [RegistrationRejected, RegistrationOffered, CertificateIssued, CertificateRevoked],
    ids=lambda kind: kind.event_type,
)
async def test_a_type_the_service_does_not_act_on_is_skipped_not_dead_lettered(
    kind: type[Event],
) -> None:
    service = _service()
    async with in_memory_subscription(subscription(service), group="seminar") as running:
        await running.publish_event(sample_event(kind))
    assert service.mock_calls == []
    assert running.dead_letters == []


@pytest.mark.parametrize(
    ("reason_kind", "value"),
    poison_records(REGISTRATION_EVENTS, source=owner_source(REGISTRATION_EVENTS)).items(),
)
async def test_an_undecodable_record_goes_to_the_dlq_with_its_reason(
    reason_kind: str, value: bytes
) -> None:
    service = _service()
    async with in_memory_subscription(subscription(service), group="seminar") as running:
        await running.publish_raw(REGISTRATION_EVENTS, value)
    [letter] = running.dead_letters
    assert letter.topic == running.kafka.topic(REGISTRATION_EVENTS + ".dlq")
    assert letter.value == value
    assert letter.headers["x-dlq-reason-kind"] == reason_kind
    assert letter.headers["x-dlq-reason"]
    assert letter.headers["x-dlq-original-topic"] == running.kafka.topic(REGISTRATION_EVENTS)
    assert letter.headers["x-dlq-consumer-group"] == "seminar"
    assert service.mock_calls == []
