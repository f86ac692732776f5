"""What docker-compose.yml hands out, exercised against the embedded servers: the
certificates of ``deploy/tls/make-certs.sh`` and the database user mongodb-init creates
(readWrite on the service's own database, nothing else).

The embedded broker serves TLS through the terminator with the script's kafka-1
certificate, the embedded database serves TLS with its mongodb certificate, and both are
verified against the script's CA, host name included. The registration service consumes,
publishes and stores as the user ``registration`` whose only role is readWrite on its
own database, as in Compose; that user is refused every other database. Kafka SASL and
ACLs cannot be exercised here (docs/security.md says why): the compose file and
tests/deploy/test_compose_security.py are their proof.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from registration.app import create_app
from registration.settings import RegistrationSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_devtools.testing.transport import (
    DatabaseUser,
    SecuredBroker,
    ThrowawayPki,
    start_authenticated_mongo,
    start_tls_kafka,
    tls_mongo_uri,
)
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.seminar import SeminarScheduled, SessionTimes
from seminarops_shared.events.topics import REGISTRATION_EVENTS
from seminarops_shared.events.vocabulary import Kind, Programme

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MAKE_CERTS = ROOT / "deploy" / "tls" / "make-certs.sh"
# Unauthorized: the server's answer to an action the user's roles do not grant.
UNAUTHORIZED = 13


@dataclass(frozen=True)
class ComposeLike:
    prefix: str
    broker: SecuredBroker
    mongo_port: int
    mongo_pki: ThrowawayPki
    user: DatabaseUser


def _pki(directory: Path, node: str) -> ThrowawayPki:
    return ThrowawayPki(
        ca_file=directory / "ca.pem",
        cert_file=directory / f"{node}.pem",
        key_file=directory / f"{node}-key.pem",
    )


@pytest.fixture(scope="module")
def compose_like(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeLike]:
    workdir = tmp_path_factory.mktemp("compose-credentials")
    generated = workdir / "generated"
    subprocess.run([str(MAKE_CERTS), str(generated)], capture_output=True, timeout=120, check=True)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    # Namespace gives the service the database "<prefix>_registration"; mongodb-init's
    # role, scoped the same way.
    own_database = f"{prefix}_registration"
    mongo_pki = _pki(generated, "mongodb")
    with (
        start_tls_kafka(workdir, _pki(generated, "kafka-1")) as broker,
        start_authenticated_mongo(
            workdir,
            mongo_pki,
            user_name="registration",
            roles=({"role": "readWrite", "db": own_database},),
        ) as (mongo, user),
    ):
        yield ComposeLike(prefix, broker, mongo.port, mongo_pki, user)


def _scheduled(seminar_id: str) -> SeminarScheduled:
    starts = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
    return SeminarScheduled(
        seminar_id=seminar_id,
        title="Assessment for learning",
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
            country="be",
            school_id="school-2",
        ),
    )


async def test_a_service_runs_on_the_scripts_certificates_as_its_own_database_user(
    compose_like: ComposeLike,
) -> None:
    uri = tls_mongo_uri(compose_like.mongo_port, compose_like.mongo_pki, compose_like.user)
    namespace = Namespace(
        compose_like.broker.address,
        uri,
        compose_like.prefix,
        kafka_security=compose_like.broker.security,
    )
    settings = namespace.settings(RegistrationSettings)
    assert settings.kafka.ssl_cafile == str(compose_like.mongo_pki.ca_file)
    assert settings.database_name == f"{compose_like.prefix}_registration"
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    app = create_app(settings)
    async with running(app), KafkaProbe(namespace) as kafka:
        await kafka.send_event(_scheduled(seminar), source="/services/seminar")
        await kafka.send_event(_requested(seminar, "bea"))
        decided = await eventually(
            lambda: kafka.events(REGISTRATION_EVENTS),
            until=lambda events: any(e.subject == seminar for e in events),
            timeout_s=60,
            what="registration.confirmed.v1 on the script's certificates",
        )
        stored = await app.state.runtime.mongo.db["registrations"].find_one({"seminar_id": seminar})
    assert [e.type for e in decided if e.subject == seminar] == ["registration.confirmed.v1"]
    assert stored is not None
    assert stored["participant_id"] == "bea"


def test_the_service_user_is_refused_every_other_database(compose_like: ComposeLike) -> None:
    uri = tls_mongo_uri(compose_like.mongo_port, compose_like.mongo_pki, compose_like.user)
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        own = client[f"{compose_like.prefix}_registration"]["probe"]
        own.insert_one({"_id": "mine"})
        assert own.find_one({"_id": "mine"}) == {"_id": "mine"}
        for other in (f"{compose_like.prefix}_metrics", f"{compose_like.prefix}_seminar", "admin"):
            with pytest.raises(OperationFailure) as refused:
                client[other]["probe"].insert_one({"_id": "not mine"})
            assert refused.value.code == UNAUTHORIZED, other
            with pytest.raises(OperationFailure) as refused:
                client[other]["probe"].find_one({})
            assert refused.value.code == UNAUTHORIZED, other
        with pytest.raises(OperationFailure) as refused:
            client.admin.command("listDatabases")
        assert refused.value.code == UNAUTHORIZED
    finally:
        client.close()
