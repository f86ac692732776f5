"""Transport security exercised, not only configured: a service consumes and publishes
through a broker it reaches over TLS only, and stores in a database it reaches over TLS
as a SCRAM-SHA-256 user, all from its standard settings (``KAFKA_SECURITY_PROTOCOL``,
``KAFKA_SSL_CAFILE``, the credentials and TLS options in ``MONGODB_URI``); clients
without TLS, without the CA, or without the right credentials are refused.

Kafka SASL is not exercised: the pinned embedded broker cannot authenticate anyone
(``seminarops_devtools.testing.transport`` says precisely why; docs/security.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from registration.app import create_app
from registration.settings import RegistrationSettings
from seminarops_devtools.processes import kafka_ready
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_devtools.testing.transport import (
    DatabaseUser,
    SecuredBroker,
    ThrowawayPki,
    make_pki,
    start_authenticated_mongo,
    start_tls_kafka,
    tls_mongo_uri,
)
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.seminar import SeminarScheduled, SessionTimes
from seminarops_shared.events.topics import REGISTRATION_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.kafka_clients import client_options
from seminarops_shared.settings import KafkaSettings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Secured:
    pki: ThrowawayPki
    broker: SecuredBroker
    mongo_port: int
    mongo_uri: str
    user: DatabaseUser


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    workdir = tmp_path_factory.mktemp("transport")
    pki = make_pki(workdir / "pki")
    with (
        start_tls_kafka(workdir, pki) as broker,
        start_authenticated_mongo(workdir, pki) as (mongo, user),
    ):
        yield Secured(pki, broker, mongo.port, mongo.address, user)


def _namespace(secured: Secured) -> Namespace:
    return Namespace(
        secured.broker.address,
        secured.mongo_uri,
        f"t{uuid.uuid4().hex[:10]}",
        kafka_security=secured.broker.security,
    )


def _scheduled(seminar_id: str) -> SeminarScheduled:
    starts = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
    return SeminarScheduled(
        seminar_id=seminar_id,
        title="Coding in the classroom",
        kind=Kind.ONLINE_SEMINAR,
        programme=Programme.ETWINNING,
        language="en",
        timezone="Europe/Brussels",
        sessions=[SessionTimes(starts_at=starts, ends_at=starts.replace(hour=16))],
        capacity=5,
        year=2026,
    )


def _requested(seminar_id: str, participant_id: str) -> RegistrationRequested:
    return RegistrationRequested(
        seminar_id=seminar_id,
        participant=Participant(
            id=participant_id,
            display_name="Teacher",
            email=f"{participant_id}@school.example",
            country="fr",
            school_id="school-1",
        ),
    )


async def test_a_service_consumes_and_publishes_over_tls_and_stores_as_a_database_user(
    secured: Secured,
) -> None:
    namespace = _namespace(secured)
    settings = namespace.settings(RegistrationSettings)
    assert settings.kafka.security_protocol == "SSL"
    assert "tls=true" in settings.mongo.uri.get_secret_value()
    handshakes_before = secured.broker.terminator.handshakes
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    app = create_app(settings)
    async with running(app), KafkaProbe(namespace) as kafka:
        # Consumed: the seminar (seminar.events) and the request (registration.requests).
        await kafka.send_event(_scheduled(seminar), source="/services/seminar")
        await kafka.send_event(_requested(seminar, "anna"))
        # Published: the decision, read back over TLS.
        decided = await eventually(
            lambda: kafka.events(REGISTRATION_EVENTS),
            until=lambda events: any(e.subject == seminar for e in events),
            timeout_s=60,
            what="registration.confirmed.v1 over TLS",
        )
        stored = await app.state.runtime.mongo.db["registrations"].find_one({"seminar_id": seminar})
    assert [e.type for e in decided if e.subject == seminar] == ["registration.confirmed.v1"]
    assert stored is not None
    assert stored["participant_id"] == "anna"
    # The service's consumers and producers, and the probe, all came through the TLS
    # port: the broker advertises no other.
    assert secured.broker.terminator.handshakes - handshakes_before >= 3


def test_a_broker_client_without_tls_or_without_the_ca_is_refused(secured: Secured) -> None:
    address = secured.broker.address
    trusted = client_options(KafkaSettings(**secured.broker.security))
    trusted.pop("bootstrap_servers")
    assert kafka_ready(address, options=trusted), "the TLS client with the CA must connect"
    assert not kafka_ready(address), "a plaintext client must be refused"
    untrusting = client_options(KafkaSettings(security_protocol="SSL"))  # system CAs only
    untrusting.pop("bootstrap_servers")
    assert not kafka_ready(address, options=untrusting), "an unknown CA must be refused"


def _mongo_outcome(uri: str) -> str:
    """What a client with this URI gets when it reads: 'ok', 'refused' (the server said
    no) or 'unreachable' (no conversation: no TLS, or the certificate not trusted)."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000
    )
    try:
        client["any"]["thing"].find_one({})
    except OperationFailure:
        return "refused"
    except PyMongoError:
        return "unreachable"
    finally:
        client.close()
    return "ok"


def test_a_database_client_without_tls_or_credentials_is_refused(
    secured: Secured, tmp_path: Path
) -> None:
    port, pki, user = secured.mongo_port, secured.pki, secured.user
    wrong = DatabaseUser(name=user.name, password="not-it")
    untrusted = make_pki(tmp_path / "other-pki")
    plaintext = f"mongodb://{user.name}:{user.password}@127.0.0.1:{port}/?directConnection=true"
    assert _mongo_outcome(secured.mongo_uri) == "ok"
    assert _mongo_outcome(plaintext) == "unreachable"
    assert _mongo_outcome(tls_mongo_uri(port, untrusted, user)) == "unreachable"
    assert _mongo_outcome(tls_mongo_uri(port, pki)) == "refused"
    assert _mongo_outcome(tls_mongo_uri(port, pki, wrong)) == "refused"
