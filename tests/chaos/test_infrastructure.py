"""Restarts of the infrastructure mid-stream: the broker (its log in S3, so it survives)
and the database (its files survive; same port). Clients reconnect, nothing accepted is
lost, nothing is counted twice."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from seminarops_shared.events.topics import (
    REGISTRATION_EVENTS,
    REGISTRATION_REQUESTS,
    dead_letter_topic,
)

from .harness import PLATFORM, SCENARIO_TIMEOUT_S, SERVICES, SUBSCRIPTIONS, Chaos

# A scenario that fails waits out its deadlines (traffic, then audit) to report why.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SCENARIO_TIMEOUT_S)]


async def test_broker_crash_and_restart(chaos: Chaos) -> None:
    async def crash(suite: Chaos) -> dict[str, Any]:
        before = {
            t: await suite.system.topic_size(t)
            for t in (REGISTRATION_REQUESTS, REGISTRATION_EVENTS)
        }
        await suite.system.restart_broker(signal.SIGKILL)
        after = {
            t: await suite.system.topic_size(t)
            for t in (REGISTRATION_REQUESTS, REGISTRATION_EVENTS)
        }
        # The log survived the crash: every record acknowledged before it is still there.
        for topic, size in before.items():
            assert after[topic] >= size, (
                f"{topic}: {after[topic]} records after the restart < {size}"
            )
        return {"log_records_kept": sum(before.values())}

    result = await chaos.run("broker SIGKILL + restart (s3 log)", crash)

    assert (result.lost, result.double_counted) == (0, 0)


async def test_database_crash_and_restart(chaos: Chaos) -> None:
    async def crash(suite: Chaos) -> dict[str, Any]:
        await suite.system.restart_database(signal.SIGKILL)
        return {}

    result = await chaos.run("database SIGKILL + restart", crash)

    assert (result.lost, result.double_counted) == (0, 0)


async def _stall(pid: int, seconds: float) -> None:
    """Freeze a process (SIGSTOP) for ``seconds``, then let it go on (SIGCONT): a
    server that stops answering without closing a connection, as a long GC pause, a
    hung disk or a VM migration would make it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)  # the fault's length, not a synchronisation
    finally:
        os.kill(pid, signal.SIGCONT)


STALL_S = 20.0
FULL_S = 10.0


@pytest.mark.heavy
async def test_database_stalls(chaos: Chaos) -> None:
    async def stall(suite: Chaos) -> dict[str, Any]:
        assert suite.system.mongo is not None
        await _stall(suite.system.mongo.pid, STALL_S)
        return {"stalled_s": STALL_S}

    result = await chaos.run("database SIGSTOP 20 s, SIGCONT", stall)

    assert (result.lost, result.double_counted) == (0, 0)


@pytest.mark.heavy
async def test_broker_stalls(chaos: Chaos) -> None:
    async def stall(suite: Chaos) -> dict[str, Any]:
        assert suite.system.kafka is not None
        await _stall(suite.system.kafka.pid, STALL_S)
        return {"stalled_s": STALL_S}

    result = await chaos.run("broker SIGSTOP 20 s, SIGCONT", stall)

    assert (result.lost, result.double_counted) == (0, 0)


async def _dead_letters(suite: Chaos) -> int:
    topics = {t for s in SERVICES for t in SUBSCRIPTIONS[s]}
    return sum([await suite.system.topic_size(dead_letter_topic(t)) for t in topics])


_GROWTH_DATABASE = "chaos_disk_growth"


async def _grow_until_refused(mongodb_uri: str) -> int:
    """Insert 100 kB documents into a database of their own until one is refused; the
    megabytes that went in."""
    blob = "x" * 100_000
    async with AsyncMongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        collection = client[_GROWTH_DATABASE]["growth"]
        for inserted in range(10_000):
            try:
                await collection.insert_one({"blob": blob})
            except PyMongoError:
                return inserted // 10
    raise AssertionError("1 GB went into a full disk")


async def _first_refusal(suite: Chaos) -> str:
    """Ask the registration service to take a request (for a seminar nobody scheduled,
    so that it is parked: a write, and none the audit counts) until it refuses with
    503 and Retry-After; the answer."""
    url = f"{suite.system.primary('registration').url}/v1/registrations"
    deadline = time.monotonic() + 60
    # The write that meets the full disk waits for the database (about 20 s, measured)
    # before the service gives up on it and answers 503.
    async with httpx.AsyncClient(timeout=60) as http:
        for attempt in itertools.count():
            body = {"seminar_id": "disk-full-probe", "participant": {"id": f"probe-{attempt}"}}
            answer = await http.post(url, json=body, headers=PLATFORM)
            if answer.status_code == 503 and "Retry-After" in answer.headers:
                return f"503 Retry-After: {answer.headers['Retry-After']}"
            assert answer.status_code < 500, f"a full disk answered {answer.status_code}"
            assert time.monotonic() < deadline, "no write was refused with a full disk"
            await asyncio.sleep(0.2)  # polling interval
    raise AssertionError("unreachable")


@pytest.mark.heavy
async def test_database_disk_fills_up(chaos: Chaos) -> None:
    """The database's disk fills up mid-stream: writes fail, HTTP answers 503 with
    Retry-After, consumers wait instead of dead-lettering. Then space is freed and the
    database restarted (WiredTiger, like mongod, does not take writes again in-process
    after running out of space: measured), and everything converges."""
    refused_with_retry_after = (503, True)

    async def fill(suite: Chaos) -> dict[str, Any]:
        system = suite.system
        assert system.database_disk is not None
        dead_letters_before = await _dead_letters(suite)
        refusals_before = suite.traffic.refusals[refused_with_retry_after]
        ballast = system.database_disk.fill()
        try:
            # The database takes writes into files it has already allocated until it
            # needs more; data growing elsewhere in it makes that happen now.
            grown_mb = await _grow_until_refused(system.mongodb_uri)
            refusal = await _first_refusal(suite)
            await asyncio.sleep(FULL_S)  # the fault's length, not a synchronisation
        finally:
            system.database_disk.free()
        await system.restart_database(signal.SIGKILL)
        async with AsyncMongoClient(system.mongodb_uri) as client:
            await client.drop_database(_GROWTH_DATABASE)
        return {
            "ballast_mb": ballast >> 20,
            "grown_mb_until_refused": grown_mb,
            "probe_answer": refusal,
            "traffic_refused_503_retry_after": suite.traffic.refusals[refused_with_retry_after]
            - refusals_before,
            "dead_letters_before": dead_letters_before,
        }

    result = await chaos.run("database disk full, freed, restarted", fill)

    assert (result.lost, result.double_counted) == (0, 0)
    assert await _dead_letters(chaos) == result.notes["dead_letters_before"], (
        "something that could succeed later was dead-lettered"
    )
