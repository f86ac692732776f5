"""The shared consumption pipeline against the real broker and database."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.inbound import Participant, RegistrationRequested
from seminarops_shared.events.topics import REGISTRATION_EVENTS, REGISTRATION_REQUESTS
from seminarops_shared.service import Runtime

from .probe_service import Behaviour, ProbeSettings, effect, probe_app

pytestmark = pytest.mark.integration


def _request(seminar_id: str, participant_id: str) -> RegistrationRequested:
    return RegistrationRequested(seminar_id=seminar_id, participant=Participant(id=participant_id))


def _seminar() -> str:
    return f"sem-{uuid.uuid4().hex[:8]}"


async def _applied(app: object, seminar_id: str) -> int:
    doc = await effect(app, seminar_id)  # type: ignore[arg-type]
    return int(doc["applied"]) if doc else 0


async def test_event_round_trip_through_consumer_and_outbox(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    app = probe_app(namespace.settings(ProbeSettings))
    seminar = _seminar()
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    async with running(app):
        sent = envelope_for(
            _request(seminar, "p1"),
            source="/platform/teacher-portal",
            time=utc_now(),
            traceparent=traceparent,
        )
        await kafka.send_envelope(sent, topic=REGISTRATION_REQUESTS, key=seminar)
        out = await eventually(lambda: kafka.events(REGISTRATION_EVENTS), what="confirmed event")
    [confirmed] = out
    assert confirmed.type == "registration.confirmed.v1"
    assert confirmed.source == "/services/probe"
    assert confirmed.subject == seminar
    assert confirmed.traceparent == traceparent
    assert confirmed.data["participant_id"] == "p1"
    records = await kafka.read_all(REGISTRATION_EVENTS)
    assert records[0].key == seminar.encode()


async def test_same_event_delivered_three_times_takes_effect_once(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    app = probe_app(namespace.settings(ProbeSettings))
    seminar = _seminar()
    envelope = envelope_for(
        _request(seminar, "p1"), source="/platform/teacher-portal", time=utc_now()
    )
    async with running(app):
        # Twice in what is likely one batch, once more after it was certainly applied.
        await kafka.send_envelope(envelope, topic=REGISTRATION_REQUESTS, key=seminar)
        await kafka.send_envelope(envelope, topic=REGISTRATION_REQUESTS, key=seminar)
        await eventually(lambda: _applied(app, seminar), what="first effect")
        await kafka.send_envelope(envelope, topic=REGISTRATION_REQUESTS, key=seminar)
        marker = envelope_for(
            _request(seminar, "p2"), source="/platform/teacher-portal", time=utc_now()
        )
        await kafka.send_envelope(marker, topic=REGISTRATION_REQUESTS, key=seminar)
        # p2 comes after the third copy on the same partition: once it is applied, the
        # third copy has been seen too.
        await eventually(
            lambda: _applied(app, seminar), until=lambda n: n >= 2, what="marker applied"
        )
        doc = await effect(app, seminar)
    assert doc is not None
    assert doc["participants"] == ["p1", "p2"]
    assert [e.data["participant_id"] for e in await kafka.events(REGISTRATION_EVENTS)] == [
        "p1",
        "p2",
    ]


async def test_poison_records_are_dead_lettered_and_later_records_still_processed(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    app = probe_app(namespace.settings(ProbeSettings))
    seminar = _seminar()
    good = envelope_for(_request(seminar, "good"), source="/platform/x", time=utc_now())
    raw_good = json.loads(good.to_json_bytes())
    poison: dict[str, bytes | None] = {
        "invalid_json": b"{this is not json",
        "invalid_envelope": json.dumps({**raw_good, "specversion": "0.3"}).encode(),
        "invalid_data": json.dumps(
            {**raw_good, "id": "x1", "data": {"seminar_id": seminar}}
        ).encode(),
        "unknown_type": json.dumps(
            {**raw_good, "id": "x2", "type": "registration.teleported.v1"}
        ).encode(),
        "forbidden_source": json.dumps(
            {**raw_good, "id": "x3", "source": "/services/registration"}
        ).encode(),
        "wrong_topic": json.dumps(
            {
                **raw_good,
                "id": "x4",
                "type": "seminar.cancelled.v1",
                "data": {"seminar_id": seminar},
            }
        ).encode(),
        "empty": None,
        "too_large": b"{" + b" " * (1024 * 1024 + 10) + b"}",
    }
    async with running(app):
        for value in poison.values():
            await kafka.send_raw(
                REGISTRATION_REQUESTS,
                value,
                key=seminar.encode(),
                headers=[("bad-header", b"\xff\xfe")],
            )
        await kafka.send_event(_request(seminar, "rule-breaker"))
        await kafka.send_envelope(good, topic=REGISTRATION_REQUESTS, key=seminar)
        await eventually(lambda: _applied(app, seminar), what="good record after the poison")
        dead = await eventually(
            lambda: kafka.read_all(REGISTRATION_REQUESTS + ".dlq"),
            until=lambda r: len(r) >= len(poison) + 1,
            what="all poison in the DLQ",
        )
    kinds = sorted(dict(r.headers)["x-dlq-reason-kind"].decode() for r in dead)
    assert kinds == sorted([*poison, "rule_violation"])
    for record in dead:
        headers = dict(record.headers)
        assert headers["x-dlq-reason"]
        assert headers["x-dlq-original-topic"] == namespace.topic(REGISTRATION_REQUESTS).encode()
        assert headers["x-dlq-consumer-group"] == b"probe"
        assert headers["x-dlq-original-offset"].isdigit()


async def test_every_poison_record_is_dead_lettered_within_three_attempts_and_the_partition_moves_on_within_10_s(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    """The issue's promise, measured: every kind of poison (undecodable records, a rule
    breaker, a handler that always fails) lands in the DLQ after at most three attempts,
    with its reason, and a good record behind all of them on the same partition is
    applied within 10 s of being sent."""
    app = probe_app(namespace.settings(ProbeSettings), Behaviour())
    seminar = _seminar()
    template = json.loads(
        envelope_for(_request(seminar, "x"), source="/platform/x", time=utc_now()).to_json_bytes()
    )

    def variant(**changes: object) -> bytes:
        return json.dumps({**template, "id": uuid.uuid4().hex, **changes}).encode()

    poison: list[bytes | None] = [
        b"\x00\xff not json",
        variant(specversion="2.0"),
        variant(data={"seminar_id": seminar, "participant": {"id": ""}}),
        variant(type="registration.teleported.v1"),
        variant(source="/services/seminar"),
        None,
        b'{"pad": "' + b"x" * (1024 * 1024) + b'"}',
    ]
    async with running(app):
        # Warm-up: the consumer has joined its group and processes this partition.
        await kafka.send_event(_request(seminar, "warm-up"))
        await eventually(lambda: _applied(app, seminar), what="warm-up applied")
        for value in poison:
            await kafka.send_raw(REGISTRATION_REQUESTS, value, key=seminar.encode())
        await kafka.send_event(_request(seminar, "rule-breaker"))
        await kafka.send_event(_request(seminar, "always-bug"))
        sent_at = time.monotonic()
        await kafka.send_event(_request(seminar, "behind-the-poison"))
        await eventually(
            lambda: _applied(app, seminar),
            until=lambda n: n == 2,
            timeout_s=10,
            what="the record behind the poison applied within 10 s",
        )
        moved_on_after_s = time.monotonic() - sent_at
        dead = await eventually(
            lambda: kafka.read_all(REGISTRATION_REQUESTS + ".dlq"),
            until=lambda r: len(r) >= len(poison) + 2,
            what="every poison record in the DLQ",
        )
    assert moved_on_after_s < 10, f"moved on after {moved_on_after_s:.1f} s"
    assert len(dead) == len(poison) + 2
    for record in dead:
        headers = dict(record.headers)
        assert headers["x-dlq-reason"], headers
        assert 1 <= int(headers["x-dlq-attempts"]) <= 3, headers
    attempts = {
        dict(r.headers)["x-dlq-reason-kind"].decode(): int(dict(r.headers)["x-dlq-attempts"])
        for r in dead
    }
    assert attempts == {
        "invalid_json": 1,
        "invalid_envelope": 1,
        "invalid_data": 1,
        "unknown_type": 1,
        "forbidden_source": 1,
        "empty": 1,
        "too_large": 1,
        "rule_violation": 1,
        "handler_error": 3,
    }


async def test_transient_and_passing_failures_are_retried_and_lasting_ones_dead_lettered(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    behaviour = Behaviour()
    app = probe_app(namespace.settings(ProbeSettings), behaviour)
    seminar = _seminar()
    async with running(app):
        for participant in ["flaky-db", "flaky-bug", "always-bug", "after"]:
            await kafka.send_event(_request(seminar, participant))
        await eventually(
            lambda: _applied(app, seminar), until=lambda n: n == 3, what="three applied"
        )
        dead = await eventually(
            lambda: kafka.read_all(REGISTRATION_REQUESTS + ".dlq"), what="dead letter"
        )
        doc = await effect(app, seminar)
    assert doc is not None
    assert sorted(doc["participants"]) == ["after", "flaky-bug", "flaky-db"]
    [record] = dead
    headers = dict(record.headers)
    assert headers["x-dlq-reason-kind"] == b"handler_error"
    assert headers["x-dlq-attempts"] == b"3"
    assert behaviour.calls["always-bug"] == 3


async def test_crash_between_commit_and_publish_loses_nothing(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = _seminar()
    crashed = probe_app(namespace.settings(ProbeSettings))
    async with running(crashed):
        runtime: Runtime = crashed.state.runtime

        async def crash(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("process died before publishing")

        runtime.publisher.publish_many = crash  # type: ignore[method-assign]
        await kafka.send_event(_request(seminar, "p1"))
        await eventually(lambda: _applied(crashed, seminar), what="state committed")
        assert await runtime.outbox.backlog() == 1
    assert await kafka.events(REGISTRATION_EVENTS) == []

    # Another replica (a new owner) takes the abandoned entry over and publishes it.
    successor = probe_app(namespace.settings(ProbeSettings, outbox_takeover_after_s=0.5))
    async with running(successor):
        published = await eventually(
            lambda: kafka.events(REGISTRATION_EVENTS), what="published by successor"
        )
        assert await successor.state.runtime.outbox.backlog() == 0
        assert await _applied(successor, seminar) == 1
    assert [e.data["participant_id"] for e in published] == ["p1"]


async def test_restarted_consumer_resumes_from_its_committed_offset(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    seminar = _seminar()
    first = probe_app(namespace.settings(ProbeSettings))
    async with running(first):
        for i in range(5):
            await kafka.send_event(_request(seminar, f"a{i}"))
        await eventually(
            lambda: _applied(first, seminar), until=lambda n: n == 5, what="first five"
        )
    for i in range(5):
        await kafka.send_event(_request(seminar, f"b{i}"))
    second = probe_app(namespace.settings(ProbeSettings))
    async with running(second):
        await eventually(lambda: _applied(second, seminar), until=lambda n: n == 10, what="all ten")
        metrics = (await _metrics_text(second)).splitlines()
    counted = [line for line in metrics if line.startswith("seminarops_events_processed_total")]
    processed = [line for line in counted if 'outcome="processed"' in line]
    # The second consumer applied only the five new events and saw none of the old ones.
    assert sum(float(line.rsplit(" ", 1)[1]) for line in processed) == 5
    assert not [line for line in counted if 'outcome="duplicate"' in line]


async def _metrics_text(app: object) -> str:
    from prometheus_client import generate_latest

    return generate_latest(app.state.metrics.registry).decode()  # type: ignore[attr-defined]


async def test_dead_letters_are_listed_and_redriven_once_after_a_fix(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    from seminarops_shared.dlq import list_dead_letters, redrive

    behaviour = Behaviour()
    app = probe_app(namespace.settings(ProbeSettings), behaviour)
    seminar = _seminar()
    async with running(app):
        await kafka.send_event(_request(seminar, "always-bug-1"))
        await eventually(lambda: kafka.read_all(REGISTRATION_REQUESTS + ".dlq"), what="dead letter")
        listing = await list_dead_letters(namespace.kafka(), [REGISTRATION_REQUESTS])
        [summary] = listing.values()
        assert summary["count"] == 1
        assert summary["by_reason_kind"] == {"handler_error": 1}

        behaviour.before_effect = lambda participant_id: None  # type: ignore[method-assign]  # the fix
        dlq = REGISTRATION_REQUESTS + ".dlq"
        assert await redrive(namespace.kafka(), dlq) == _counts(redriven=1)
        await eventually(lambda: _applied(app, seminar), what="re-driven event applied")
        # A second run finds nothing new to re-drive.
        assert await redrive(namespace.kafka(), dlq) == _counts(redriven=0)


def _counts(*, redriven: int, skipped: int = 0, rehashed: int = 0) -> dict[str, object]:
    """A real re-drive's result that refused nothing."""
    return {
        "redriven": redriven,
        "skipped": skipped,
        "rehashed": rehashed,
        "refused": 0,
        "refused_records": [],
    }


async def test_a_filtered_redrive_leaves_the_other_dead_letters_to_a_later_run(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    from seminarops_shared.dlq import redrive

    dlq = REGISTRATION_REQUESTS + ".dlq"
    original = namespace.topic(REGISTRATION_REQUESTS).encode()
    for n, kind in enumerate(["rule_violation", "handler_error", "rule_violation"]):
        await kafka.send_raw(
            dlq,
            f"letter-{n}".encode(),
            key=b"sem",
            headers=[("x-dlq-original-topic", original), ("x-dlq-reason-kind", kind.encode())],
        )

    only_bugs = await redrive(namespace.kafka(), dlq, reason_kind="handler_error")
    # Made by hand, without x-dlq-original-partition: re-driven by their key's hash.
    assert only_bugs == _counts(redriven=1, skipped=2, rehashed=1)
    # The unfiltered run keeps its own position: it still sees every dead letter (the
    # one re-driven already is absorbed by the consumers' markers).
    assert await redrive(namespace.kafka(), dlq) == _counts(redriven=3, rehashed=3)
    records = await kafka.read_all(REGISTRATION_REQUESTS)
    assert sorted(r.value for r in records) == [b"letter-0", b"letter-1", b"letter-1", b"letter-2"]
    assert {r.partition for r in records} == {_murmur2_partition(b"sem", 3)}


def _murmur2_partition(key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def test_redrive_puts_a_dead_letter_back_on_the_partition_it_came_from(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    """A record a producer put on another partition than its key's murmur2 hash (as
    librdkafka's default CRC32 partitioner does) goes back there, not to the hash."""
    from seminarops_shared.dlq import redrive

    behaviour = Behaviour()
    app = probe_app(namespace.settings(ProbeSettings), behaviour)
    seminar = _seminar()
    partition = (_murmur2_partition(seminar.encode(), 3) + 1) % 3
    dlq = REGISTRATION_REQUESTS + ".dlq"
    async with running(app):
        sent = envelope_for(
            _request(seminar, "always-bug-1"), source="/platform/partner-portal", time=utc_now()
        )
        await kafka.send_envelope(
            sent, topic=REGISTRATION_REQUESTS, key=seminar, partition=partition
        )
        [letter] = await eventually(lambda: kafka.read_all(dlq), what="dead letter")
        behaviour.before_effect = lambda participant_id: None  # type: ignore[method-assign]  # the fix
        counts = await redrive(namespace.kafka(), dlq)
        await eventually(lambda: _applied(app, seminar), what="re-driven event applied")
        records = await kafka.read_all(REGISTRATION_REQUESTS)
    headers = dict(letter.headers)
    assert headers["x-dlq-original-partition"] == str(partition).encode()
    assert headers["x-dlq-original-offset"] == b"0"
    original, again = records
    assert (original.partition, original.offset) == (partition, 0)
    assert again.partition == partition  # not the key's hash
    assert (again.key, again.value) == (seminar.encode(), original.value)
    assert dict(again.headers)["x-redriven-from"] == (
        f"{namespace.topic(dlq)}:{letter.partition}:{letter.offset}".encode()
    )
    # The dead letter's own headers stay behind; only the redrive count goes along.
    assert [name for name, _ in again.headers if name.startswith("x-dlq-")] == ["x-dlq-redrives"]
    assert dict(again.headers)["x-dlq-redrives"] == b"1"
    assert counts == _counts(redriven=1)


async def test_dead_letter_metrics_carry_the_event_type_whenever_the_envelope_parsed(
    namespace: Namespace, kafka: KafkaProbe
) -> None:
    """``type`` on ``outcome="dead_lettered"`` is the envelope's type when this system
    knows it (invalid data, a forbidden source, the wrong topic), ``unknown`` only for a
    record without a readable envelope or with a type nobody registered (a label made
    of any string a producer sends would grow the series without bound)."""
    app = probe_app(namespace.settings(ProbeSettings))
    seminar = _seminar()
    template = json.loads(
        envelope_for(_request(seminar, "x"), source="/platform/x", time=utc_now()).to_json_bytes()
    )

    def variant(**changes: object) -> bytes:
        return json.dumps({**template, "id": uuid.uuid4().hex, **changes}).encode()

    poison = [
        variant(data={"seminar_id": seminar}),  # invalid data
        variant(source="/services/seminar"),  # forbidden source
        variant(type="seminar.cancelled.v1", data={"seminar_id": seminar}),  # wrong topic
        variant(type="registration.teleported.v1"),  # a type nobody knows
        b"{not json",
    ]
    async with running(app):
        for value in poison:
            await kafka.send_raw(REGISTRATION_REQUESTS, value, key=seminar.encode())
        await eventually(
            lambda: kafka.read_all(REGISTRATION_REQUESTS + ".dlq"),
            until=lambda r: len(r) >= len(poison),
            what="every poison record dead-lettered",
        )
        metrics = await _metrics_text(app)
    dead = {
        line.split('type="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("seminarops_events_processed_total") and "dead_lettered" in line
    }
    assert dead == {"registration.requested.v1": 2, "seminar.cancelled.v1": 1, "unknown": 2}
