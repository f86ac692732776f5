"""The embedded broker and database really work, and ``make up``/``make down`` manage
them by pid: started once, adopted on the next ``up``, stopped by ``down`` with the
database files and the broker's log left in place, and cleared up after a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import MongoClient

from seminarops_devtools import devstack
from seminarops_devtools.processes import (
    LOCALHOST,
    ensure_topics,
    free_port,
    free_port_block,
    is_same_process,
    kafka_ready,
    mongo_ready,
    pid_alive,
    port_open,
    wait_for_exit,
)
from seminarops_devtools.testing.servers import (
    resolve_test_infrastructure,
    start_embedded_kafka,
    start_embedded_mongo,
)

pytestmark = pytest.mark.integration


def _port(address: str) -> int:
    """The port of ``host:port`` or ``mongodb://host:port/?...``."""
    port = urlsplit(address if "//" in address else f"//{address}").port
    assert port is not None
    return port


async def test_embedded_kafka_round_trip_through_a_consumer_group(tmp_path: Path) -> None:
    server = start_embedded_kafka(tmp_path)
    try:
        topic = f"devstack-{uuid.uuid4().hex[:8]}"
        assert ensure_topics(server.address, [topic], partitions=3) == [topic]
        assert ensure_topics(server.address, [topic], partitions=3) == [], "creation is idempotent"

        sent = {f"seminar-{i}".encode(): f"event-{i}".encode() for i in range(6)}
        producer = AIOKafkaProducer(bootstrap_servers=server.address, acks="all")
        await producer.start()
        try:
            for key, value in sent.items():
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=server.address,
            group_id=f"devstack-test-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            received: dict[bytes, bytes] = {}
            async with asyncio.timeout(60):  # the group join alone takes a few seconds
                while len(received) < len(sent):
                    batches = await consumer.getmany(timeout_ms=500)
                    received.update(
                        (record.key, record.value)
                        for records in batches.values()
                        for record in records
                        if record.key is not None and record.value is not None
                    )
            await consumer.commit()
        finally:
            await consumer.stop()
        assert received == sent
    finally:
        server.stop()
    assert not server.running
    assert not port_open(LOCALHOST, server.port)


def test_embedded_mongo_transaction_commits_atomically_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    server = start_embedded_mongo(tmp_path)
    try:
        with MongoClient[dict[str, object]](server.address) as client:
            db = client["devstack_test"]
            with client.start_session() as session, session.start_transaction():
                db.seminars.insert_one({"_id": "s1", "seats_taken": 1}, session=session)
                db.outbox.insert_one({"_id": "e1", "seminar_id": "s1"}, session=session)
                # Isolation: outside the transaction nothing is visible before the commit.
                assert db.seminars.find_one({"_id": "s1"}) is None

            def fail_midway() -> None:
                with client.start_session() as session, session.start_transaction():
                    db.seminars.insert_one({"_id": "s2", "seats_taken": 1}, session=session)
                    db.outbox.insert_one({"_id": "e2", "seminar_id": "s2"}, session=session)
                    raise RuntimeError("abort")

            with pytest.raises(RuntimeError, match="abort"):
                fail_midway()

            assert [d["_id"] for d in db.seminars.find()] == ["s1"]
            assert [d["_id"] for d in db.outbox.find()] == ["e1"]
    finally:
        server.stop()
    assert not server.running
    assert not port_open(LOCALHOST, server.port)

    # Same files, new process (what `make down` then `make up` does): the commit stays.
    with (
        start_embedded_mongo(tmp_path) as restarted,
        MongoClient[dict[str, object]](restarted.address) as client,
    ):
        assert client["devstack_test"].outbox.find_one({"_id": "e1"}) == {
            "_id": "e1",
            "seminar_id": "s1",
        }


def test_environment_wins_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    monkeypatch.setenv("MONGODB_URI", "mongodb://db.example:27017/?replicaSet=rs0")
    with resolve_test_infrastructure(tmp_path) as (kafka, mongo):
        assert (kafka, mongo) == (
            "kafka.example:9092",
            "mongodb://db.example:27017/?replicaSet=rs0",
        )
    assert list(tmp_path.iterdir()) == []


def test_embedded_fallback_serves_the_session_then_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv("SEMINAROPS_TEST_INFRASTRUCTURE", "embedded")
    with resolve_test_infrastructure(tmp_path) as (kafka, mongo):
        assert kafka_ready(kafka)
        assert mongo_ready(mongo)
    assert not port_open(LOCALHOST, _port(kafka))
    assert not port_open(LOCALHOST, _port(mongo))


def test_devstack_up_is_idempotent_and_down_stops_what_it_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "uv.lock").touch()
    (tmp_path / "services").mkdir()
    config = devstack.StackConfig.from_env(_stack_env(), root=tmp_path)
    try:
        devstack.up(config, infra_only=True)
        first = {name: devstack.read_record(config, name) for name in _INFRA}
        assert all(r is not None and is_same_process(r.pid, r.command) for r in first.values())
        assert "topics: created 8 (2 partitions each)" in capsys.readouterr().out

        devstack.up(config, infra_only=True)
        again = {name: devstack.read_record(config, name) for name in _INFRA}
        assert again == first, "a second `up` adopts the running servers"
        out = capsys.readouterr().out
        assert "kafka: already running" in out
        assert "topics: all 8 exist" in out
    finally:
        devstack.down(config)

    pids = [r.pid for r in first.values() if r is not None]
    assert not any(pid_alive(pid) for pid in pids)
    assert not list(config.run_dir.glob("*.pid"))
    assert not port_open(LOCALHOST, config.kafka_port)
    assert not port_open(LOCALHOST, config.mongo_port)
    assert any(config.mongo_data.iterdir()), "the database files survive `down`"
    assert any(config.kafka_log_dir.iterdir()), "the broker's log survives `down`"

    devstack.down(config)
    assert "nothing was running" in capsys.readouterr().out


_INFRA = ("s3", "kafka", "mongodb")


def _stack_env() -> dict[str, str]:
    return {
        "KAFKA_PORT": str(free_port()),
        "MONGODB_PORT": str(free_port()),
        "S3_PORT": str(free_port_block(8)),
        "KAFKA_PARTITIONS": "2",
    }


def test_devstack_up_after_a_crash_clears_what_the_crash_left_and_keeps_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a crash leaves behind, one of each: a pid file whose process is gone (the
    broker, SIGKILLed), a process whose pid file is gone (the database), a recorded
    process that is alive but answers nothing (the object store, SIGSTOPped). ``up``
    clears all three and starts on the same data: the topics it created are there."""
    (tmp_path / "uv.lock").touch()
    (tmp_path / "services").mkdir()
    config = devstack.StackConfig.from_env(_stack_env(), root=tmp_path)
    before: dict[str, devstack.PidRecord | None] = {}
    try:
        devstack.up(config, infra_only=True)
        before = {name: devstack.read_record(config, name) for name in _INFRA}
        kafka, mongodb, s3 = (before[name] for name in ("kafka", "mongodb", "s3"))
        assert kafka is not None
        assert mongodb is not None
        assert s3 is not None
        os.killpg(kafka.pid, signal.SIGKILL)
        assert wait_for_exit(kafka.pid, timeout_s=10)
        config.pid_path("mongodb").unlink()
        os.killpg(s3.pid, signal.SIGSTOP)
        capsys.readouterr()

        devstack.up(config, infra_only=True)

        out = capsys.readouterr().out
        assert f"kafka: pid {kafka.pid} from an earlier run is gone" in out
        assert f"mongodb: stopped 1 process(es) left by an earlier run (pid {mongodb.pid})" in out
        assert f"s3: pid {s3.pid} runs but does not answer; stopping it" in out
        assert "topics: all 8 exist" in out, "the broker's log outlived the crash"
        assert not any(pid_alive(r.pid) for r in (kafka, mongodb, s3))
        after = {name: devstack.running_record(config, name) for name in _INFRA}
        assert all(after.values()), after
    finally:
        devstack.down(config)
        # Should the test fail before `up` cleared them, the processes it orphaned
        # (no pid file) must not outlive it.
        for record in before.values():
            if record is not None and pid_alive(record.pid):
                os.killpg(record.pid, signal.SIGCONT)
                os.killpg(record.pid, signal.SIGKILL)
