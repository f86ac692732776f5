"""What the services write to their logs, as production runs them: ``python -m <service>``
processes configured from the environment only (tokens in ``AUTH_TOKENS``, the pseudonym
key in ``PRIVACY_PSEUDONYM_KEY``, JSON logs, here at DEBUG to see everything), driven
through HTTP and Kafka with authenticated calls, refused calls (an unknown token, a
wrong role), registrations carrying names and e-mail addresses, a rejected one, a
poison record, and two erasures.

Then the logs of all four processes are read back and must contain no token (neither
the configured ones nor the unknown one a caller presented), not the pseudonym key, and
no name or e-mail address of anyone (CONVENTIONS.md: "No personal data in logs").
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from seminarops_devtools.processes import free_port, spawn
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.server_fixtures import Infrastructure
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, new_namespace
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.inbound import (
    Participant,
    ParticipantErasureRequested,
    RegistrationRequested,
)
from seminarops_shared.events.topics import REGISTRATION_REQUESTS
from seminarops_shared.privacy import pseudonym

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SERVICES = ("seminar", "registration", "feedback", "metrics")
TOKENS = {
    "operator": f"op-{secrets.token_hex(12)}",
    "platform": f"pf-{secrets.token_hex(12)}",
    "participant": f"pt-{secrets.token_hex(12)}",
}
GUESSED_TOKEN = f"guess-{secrets.token_hex(12)}"
PSEUDONYM_KEY = secrets.token_hex(32)

ANA = Participant(
    id=f"t-ana-{uuid.uuid4().hex[:6]}",
    display_name="Anabela Quintela-Sousa",
    email="anabela.qs@escola-pt.example",
    country="PT",
    school_id="sch-pt-1",
)
BEA = Participant(
    id=f"t-bea-{uuid.uuid4().hex[:6]}",
    display_name="Beatrix Vandermolen",
    email="beatrix.vdm@school-be.example",
    country="BE",
)
# Never accepted: in a 422 body and in a poison record only.
REJECTED_NAME, REJECTED_EMAIL = "Cemile Aydinoglu-Rejected", "cemile.rejected@okul-tr.example"
PERSONAL_DATA = [str(v) for p in (ANA, BEA) for v in (p.display_name, p.email)] + [
    REJECTED_NAME,
    REJECTED_EMAIL,
]


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@dataclass
class Process:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def service_env(name: str, port: int, namespace: Namespace) -> dict[str, str]:
    prefix = name.upper()
    return {
        **os.environ,
        f"{prefix}_HOST": "127.0.0.1",
        f"{prefix}_PORT": str(port),
        f"{prefix}_LOG_JSON": "true",
        f"{prefix}_LOG_LEVEL": "DEBUG",
        f"{prefix}_OUTBOX_POLL_INTERVAL_S": "0.2",
        f"{prefix}_SCHEDULER_POLL_INTERVAL_S": "0.2",
        "KAFKA_BOOTSTRAP_SERVERS": namespace.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": f"{namespace.prefix}.",
        "KAFKA_PARTITIONS": "3",
        "KAFKA_BATCH_TIMEOUT_MS": "5",
        "KAFKA_SESSION_TIMEOUT_MS": "1000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "250",
        "MONGODB_URI": namespace.mongodb_uri,
        "MONGODB_DATABASE_PREFIX": f"{namespace.prefix}_",
        "AUTH_TOKENS": json.dumps({role: [token] for role, token in TOKENS.items()}),
        "PRIVACY_PSEUDONYM_KEY": PSEUDONYM_KEY,
    }


async def _ready(client: httpx.AsyncClient, process: Process) -> bool:
    assert process.process.poll() is None, process.log_path.read_text(errors="replace")[-3000:]
    try:
        return (await client.get(f"{process.url}/health/ready")).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Logs:
    """Each service's log, as the lines it wrote (the start headers left out), and the
    participant ids the seminar roster and the registrations showed after the erasures."""

    lines: dict[str, list[str]]
    roster_ids: set[str]
    registration_ids: set[str]

    def search(self, needle: str) -> list[str]:
        return [
            f"{name}: {line[:300]}"
            for name, lines in self.lines.items()
            for line in lines
            if needle in line
        ]


async def _flow(processes: dict[str, Process], namespace: Namespace) -> tuple[set[str], set[str]]:
    urls = {name: p.url for name, p in processes.items()}
    async with httpx.AsyncClient(timeout=30) as client, KafkaProbe(namespace) as kafka:
        created = await client.post(
            f"{urls['seminar']}/v1/seminars",
            headers=bearer("operator"),
            json={
                "title": "Logs without secrets",
                "kind": "online_seminar",
                "programme": "etwinning",
                "starts_at": "2025-03-10T16:00:00+01:00",
                "ends_at": "2025-03-10T17:30:00+01:00",
                "timezone": "Europe/Brussels",
                "capacity": 5,
                "language": "en",
            },
        )
        assert created.status_code == 201, created.text
        seminar_id = created.json()["id"]
        # Refused calls: an unknown token, a role that may not do this.
        refused = await client.post(
            f"{urls['seminar']}/v1/seminars",
            headers={"Authorization": f"Bearer {GUESSED_TOKEN}"},
            json={},
        )
        assert refused.status_code == 401
        forbidden = await client.get(
            f"{urls['registration']}/v1/seminars/{seminar_id}/registrations",
            headers=bearer("participant"),
        )
        assert forbidden.status_code == 403

        # Ana over Kafka, Bea over HTTP; a third person refused over both.
        await kafka.send_envelope(
            envelope_for(
                RegistrationRequested(seminar_id=seminar_id, participant=ANA),
                source="/platform/teacher-portal",
                time=utc_now(),
            ),
            topic=REGISTRATION_REQUESTS,
            key=seminar_id,
        )
        bea = await client.post(
            f"{urls['registration']}/v1/registrations",
            headers=bearer("platform"),
            json={"seminar_id": seminar_id, "participant": BEA.model_dump(mode="json")},
        )
        assert bea.status_code in {200, 201, 202}, bea.text
        rejected = {
            "id": "t-cem",
            "display_name": REJECTED_NAME,
            "email": REJECTED_EMAIL,
            "country": "Turkey",  # not ISO 3166-1 alpha-2
        }
        invalid = await client.post(
            f"{urls['registration']}/v1/registrations",
            headers=bearer("platform"),
            json={"seminar_id": seminar_id, "participant": rejected},
        )
        assert invalid.status_code == 422, invalid.text
        poison = envelope_for(
            RegistrationRequested(seminar_id=seminar_id, participant=ANA),
            source="/platform/teacher-portal",
            time=utc_now(),
        ).model_dump(mode="json")
        poison["data"]["participant"] = rejected
        await kafka.send_raw(
            REGISTRATION_REQUESTS, json.dumps(poison).encode(), key=seminar_id.encode()
        )

        async def registered() -> dict[str, Any]:
            response = await client.get(
                f"{urls['registration']}/v1/seminars/{seminar_id}/registrations",
                headers=bearer("operator"),
            )
            return response.json() if response.status_code == 200 else {}

        await eventually(
            registered,
            until=lambda body: len(body.get("registrations", [])) == 2,
            timeout_s=30,
            what="both registrations stored",
        )
        await eventually(
            lambda: kafka.read_all(REGISTRATION_REQUESTS + ".dlq"),
            timeout_s=30,
            what="the poison record dead-lettered",
        )

        # Both ask to be forgotten: Ana over Kafka, Bea over HTTP.
        await kafka.send_event(ParticipantErasureRequested(participant_id=ANA.id))
        erased = await client.post(
            f"{urls['registration']}/v1/participants/{BEA.id}/erase", headers=bearer("operator")
        )
        assert erased.status_code == 202, erased.text

        async def roster() -> str:
            response = await client.get(
                f"{urls['seminar']}/v1/seminars/{seminar_id}/roster", headers=bearer("platform")
            )
            return response.text if response.status_code == 200 else ""

        after = await eventually(
            roster,
            until=lambda text: "erased-" in text and ANA.id not in text and BEA.id not in text,
            timeout_s=30,
            what="the erasures reached the seminar service",
        )
        return (
            {e["participant_id"] for e in json.loads(after)["entries"]},
            {r["participant_id"] for r in (await registered())["registrations"]},
        )


@pytest.fixture(scope="module")
async def logs(infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory) -> Logs:
    """Start the four services, run the flow, stop them (SIGTERM), read their logs."""
    namespace = new_namespace(infrastructure.kafka_bootstrap_servers, infrastructure.mongodb_uri)
    directory = tmp_path_factory.mktemp("service-logs")
    processes: dict[str, Process] = {}
    try:
        for name in SERVICES:
            port = free_port()
            log_path = directory / f"{name}.log"
            process = spawn(
                [sys.executable, "-m", name],
                log_path=log_path,
                detached=False,
                env=service_env(name, port, namespace),
            )
            processes[name] = Process(name, port, log_path, process)
        async with httpx.AsyncClient(timeout=5) as client:
            for process in processes.values():
                await eventually(
                    lambda p=process: _ready(client, p),  # type: ignore[misc]
                    timeout_s=90,
                    interval_s=0.2,
                    what=f"{process.name} ready",
                )
        roster_ids, registration_ids = await _flow(processes, namespace)
    finally:
        for process in processes.values():
            if process.process.poll() is None:
                process.process.terminate()
        for process in processes.values():
            try:
                await asyncio.to_thread(process.process.wait, 30)
            except subprocess.TimeoutExpired:
                process.process.kill()
                await asyncio.to_thread(process.process.wait, 5)
    return Logs(
        {
            name: [
                line
                for line in p.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                if line.strip() and not line.startswith("=== ")
            ]
            for name, p in processes.items()
        },
        roster_ids=roster_ids,
        registration_ids=registration_ids,
    )


def test_the_logs_are_json_lines_and_show_the_flow(logs: Logs) -> None:
    """The capture works: every service logged, in JSON, at start-up and shutdown, and
    the dead letter and the erasures are there (so the searches below can find things)."""
    for name, lines in logs.lines.items():
        events = [json.loads(line) for line in lines]  # each line is one JSON object
        assert {"service started", "service stopped"} <= {e.get("event") for e in events}, name
        assert all(e.get("service") == name for e in events if "service" in e), name
        # Tokens and the key are configured, so neither start-up warning may appear.
        assert not [e for e in events if "OPEN" in str(e.get("event"))], name
        assert not [e for e in events if "PRIVACY_PSEUDONYM_KEY" in str(e.get("event"))], name
    assert logs.search("record dead-lettered"), "the poison record was dead-lettered"
    assert logs.search("participant erased")


def test_every_service_pseudonymises_with_the_configured_key(logs: Logs) -> None:
    """The key comes from PRIVACY_PSEUDONYM_KEY (not the development default), and the
    registration and seminar services map each erased person to the same pseudonym."""
    expected = {pseudonym(p.id, key=PSEUDONYM_KEY.encode()) for p in (ANA, BEA)}
    assert logs.registration_ids == expected
    assert logs.roster_ids == expected


def test_no_token_and_no_key_is_ever_logged(logs: Logs) -> None:
    secrets_found = {
        label: logs.search(value)
        for label, value in {**TOKENS, "guessed": GUESSED_TOKEN, "key": PSEUDONYM_KEY}.items()
    }
    assert {label: found for label, found in secrets_found.items() if found} == {}


def test_no_name_or_email_is_ever_logged(logs: Logs) -> None:
    found = {needle: logs.search(needle) for needle in PERSONAL_DATA}
    assert {needle: lines for needle, lines in found.items() if lines} == {}


_RAISE_WITH_A_SECRET_IN_SCOPE = """
import logging, sys
import structlog
from seminarops_shared.logging import configure_logging

configure_logging(service="probe", level="DEBUG", json=sys.argv[1] == "json")

def handle(authorization: str) -> None:
    headers = {"authorization": authorization}
    raise RuntimeError("boom")

try:
    handle(sys.argv[2])
except RuntimeError:
    structlog.get_logger("probe").exception("unhandled error")
    logging.getLogger("stdlib").exception("unhandled error")
"""


@pytest.mark.parametrize("renderer", ["json", "console"])
def test_a_logged_traceback_never_shows_local_variables(renderer: str) -> None:
    """An unhandled error is logged with its traceback (the service's catch-all does
    so); the locals of the frames, the request's bearer token among them, stay out."""
    secret = f"Bearer {secrets.token_hex(16)}"
    result = subprocess.run(
        [sys.executable, "-c", _RAISE_WITH_A_SECRET_IN_SCOPE, renderer, secret],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "RuntimeError" in result.stderr  # the traceback is there...
    assert secret.split()[1] not in result.stderr  # ...without the locals
