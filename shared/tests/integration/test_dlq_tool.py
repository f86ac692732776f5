"""The operators' dead-letter tool (``python -m seminarops_shared.dlq``) against the real
broker: one way to name a topic, errors instead of tracebacks, a dry run that says what
it would do, and re-drives that cannot loop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.dlq import redrive
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.topics import REGISTRATION_REQUESTS

from .probe_service import Behaviour, ProbeSettings, probe_app

pytestmark = pytest.mark.integration

DLQ = REGISTRATION_REQUESTS + ".dlq"


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


async def _tool(namespace: Namespace, *args: str) -> Run:
    """The tool as an operator runs it: its own process, ``KAFKA_*`` from the environment."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": namespace.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": f"{namespace.prefix}.",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "seminarops_shared.dlq",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def _letter(kafka: KafkaProbe, namespace: Namespace, value: bytes, **headers: str) -> None:
    """A dead letter as the pipeline writes one (origin topic and partition)."""
    await kafka.send_raw(
        DLQ,
        value,
        key=b"sem-1",
        headers=[
            ("x-dlq-original-topic", namespace.topic(REGISTRATION_REQUESTS).encode()),
            ("x-dlq-original-partition", b"0"),
            ("x-dlq-reason-kind", b"handler_error"),
            *((name.replace("_", "-"), text.encode()) for name, text in headers.items()),
        ],
        partition=0,
    )


async def test_every_command_takes_the_origin_topic_or_its_dlq_name(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    await _letter(kafka, namespace, b"letter-0")
    by_origin = await _tool(namespace, "list", "--topic", REGISTRATION_REQUESTS)
    by_dlq = await _tool(namespace, "list", "--topic", DLQ)
    assert (by_origin.status, by_dlq.status) == (0, 0), (by_origin.stderr, by_dlq.stderr)
    assert by_origin.json() == by_dlq.json()
    [summary] = by_origin.json().values()  # type: ignore[attr-defined]
    assert summary["count"] == 1
    assert summary["records"][0]["redrives"] == 0

    for name in (REGISTRATION_REQUESTS, DLQ):
        shown = await _tool(namespace, "show", name, "0", "0")
        assert shown.status == 0, shown.stderr
        assert shown.json()["value"] == "letter-0"  # type: ignore[index]
        dry = await _tool(namespace, "redrive", name, "--dry-run")
        assert dry.status == 0, dry.stderr
        assert dry.json()["would_redrive"] == 1  # type: ignore[index]


async def test_errors_are_one_line_and_a_non_zero_status_never_a_traceback(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    await _letter(kafka, namespace, b"letter-0")

    missing_offset = await _tool(namespace, "show", REGISTRATION_REQUESTS, "0", "99")
    assert missing_offset.status == 1
    assert missing_offset.stderr == (
        f"dlq: no dead letter at {namespace.topic(DLQ)} partition 0 offset 99\n"
    )
    assert missing_offset.stdout == ""

    missing_partition = await _tool(namespace, "show", DLQ, "7", "0")
    assert missing_partition.status == 1
    assert "has no partition 7" in missing_partition.stderr

    unknown_topic = await _tool(namespace, "redrive", "seminar.evnts")
    assert unknown_topic.status == 2
    assert "unknown topic 'seminar.evnts'" in unknown_topic.stderr

    negative = await _tool(namespace, "show", DLQ, "0", "-1")
    assert negative.status == 2

    for run in (missing_offset, missing_partition, unknown_topic, negative):
        assert "Traceback" not in run.stderr


async def test_an_unreachable_broker_is_an_error_not_a_traceback() -> None:
    unreachable = Namespace("127.0.0.1:9", "mongodb://127.0.0.1:9", f"t{uuid.uuid4().hex[:8]}")
    run = await _tool(unreachable, "list")
    assert run.status == 1
    assert run.stderr.startswith("dlq: the broker at 127.0.0.1:9 failed")
    assert "Traceback" not in run.stderr


async def test_a_dry_run_says_what_it_would_do_and_moves_nothing(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    await _letter(kafka, namespace, b"letter-0")
    await _letter(kafka, namespace, b"letter-1", x_dlq_redrives="3")
    dry = await _tool(namespace, "redrive", REGISTRATION_REQUESTS, "--dry-run")
    assert dry.status == 0, dry.stderr
    assert dry.json() == {
        "would_redrive": 1,
        "skipped": 0,
        "rehashed": 0,
        "refused": 1,
        "records": [
            {
                "partition": 0,
                "offset": 0,
                "to_topic": namespace.topic(REGISTRATION_REQUESTS),
                "to_partition": 0,
                "reason_kind": "handler_error",
                "redrives": 0,
            }
        ],
        "refused_records": [{"partition": 0, "offset": 1, "redrives": 3}],
    }
    assert await kafka.read_all(REGISTRATION_REQUESTS) == []
    # Nothing moved: the real run still finds the one to re-drive.
    real = await redrive(namespace.kafka(), REGISTRATION_REQUESTS)
    assert (real["redriven"], real["refused"]) == (1, 1)


def _request(seminar_id: str) -> RegistrationRequested:
    return RegistrationRequested(seminar_id=seminar_id, participant=Participant(id="always-bug-1"))


async def test_a_record_that_keeps_failing_is_re_driven_at_most_max_redrives_times(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    """Each round sends it back, it fails again and returns to the DLQ with its count;
    the round after the limit refuses it (the DLQ stops growing) until ``--force``."""
    app = probe_app(namespace.settings(ProbeSettings), Behaviour())
    seminar = f"sem-{uuid.uuid4().hex[:8]}"
    async with running(app):
        await kafka.send_event(_request(seminar))
        await eventually(lambda: kafka.read_all(DLQ), what="first dead letter")
        for round_ in range(1, 3):
            result = await redrive(namespace.kafka(), DLQ, max_redrives=2)
            assert (result["redriven"], result["refused"]) == (1, 0)
            letters = await eventually(
                lambda: kafka.read_all(DLQ),
                until=lambda r, n=round_: len(r) == n + 1,
                what=f"dead-lettered again after round {round_}",
            )
            headers = [name for name, _ in letters[-1].headers]
            assert dict(letters[-1].headers)["x-dlq-redrives"] == str(round_).encode()
            assert headers.count("x-redriven-from") == 1  # this round's origin only

        refused = await redrive(namespace.kafka(), DLQ, max_redrives=2)
        assert (refused["redriven"], refused["refused"]) == (0, 1)
        assert refused["refused_records"] == [
            {"partition": letters[-1].partition, "offset": letters[-1].offset, "redrives": 2}
        ]
        assert len(await kafka.read_all(DLQ)) == 3
        # Passed over: a later run does not meet it again.
        assert (await redrive(namespace.kafka(), DLQ, max_redrives=2))["refused"] == 0

    # --force sends it even so (new dead letters of the same record, from here on).
    await _letter(kafka, namespace, b"stubborn", x_dlq_redrives="5")
    forced = await _tool(namespace, "redrive", DLQ, "--max-redrives", "2", "--force")
    assert forced.status == 0, forced.stderr
    assert forced.json()["redriven"] == 1  # type: ignore[index]
    again = [r for r in await kafka.read_all(REGISTRATION_REQUESTS) if r.value == b"stubborn"]
    assert [dict(r.headers)["x-dlq-redrives"] for r in again] == [b"6"]
