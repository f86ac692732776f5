"""A season through the seminar service (issue 3): 300 seminars imported from one CSV,
their rosters filled by ``registration.confirmed.v1`` events, attendance recorded and
each seminar completed; measures the time of the whole flow and of each step, and
checks that every expected event was published once.

    .venv/bin/python benchmarks/seminar_season.py [--seminars 300] [--registrants 3]
                                                  [--attendees 2] [--concurrency 1]

The service runs in this process (its real lifespan: database, consumer, outbox relay,
scheduler) and is called over ASGI, so the numbers are the service's own work without
a network hop. Against ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` when set, otherwise
against embedded servers it starts (and stops). Each run uses fresh topics and a fresh
database (dropped afterwards). Prints a summary and one JSON line; exits 1 if a check
failed. ``run_season()`` is the same for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from seminar.app import create_app
from seminar.settings import SeminarSettings
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.servers import resolve_test_infrastructure
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared.events import envelope_for
from seminarops_shared.events.registration import RegistrationConfirmed
from seminarops_shared.events.topics import REGISTRATION_EVENTS, SEMINAR_EVENTS
from seminarops_shared.logging import configure_logging
from seminarops_shared.settings import AuthSettings, Role

TOKEN = "season-operator-token"  # a throwaway token for this run
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
ZONES = ["Europe/Brussels", "Europe/Lisbon", "Europe/Helsinki", "Europe/Athens", "Europe/Kyiv"]
KINDS = ["online_seminar", "learning_event", "pd_workshop"]
PROGRAMMES = ["etwinning", "etwinning_plus"]


def season_csv(prefix: str, seminars: int) -> bytes:
    """A past season (from September 2024), local wall-clock times in five zones;
    every third seminar a learning event of three weekly sessions."""
    lines = ["id,title,kind,programme,starts_at,ends_at,sessions,timezone,capacity,language"]
    first = datetime(2024, 9, 2, 16, 0)  # noqa: DTZ001 - wall-clock time, zone per row
    for i in range(seminars):
        kind = KINDS[i % 3]
        start = first + timedelta(days=i // 2, hours=3 * (i % 2))  # 16:00 or 19:00
        if kind == "learning_event":
            sessions = ";".join(
                f"{(start + timedelta(weeks=w)).isoformat()}/"
                f"{(start + timedelta(weeks=w, hours=2)).isoformat()}"
                for w in range(3)
            )
            times = f",,{sessions}"
        else:
            times = f"{start.isoformat()},{(start + timedelta(minutes=90)).isoformat()},"
        lines.append(
            f"{prefix}-{i:05d},Seminar {i},{kind},{PROGRAMMES[i % 2]},{times},{ZONES[i % 5]},500,en"
        )
    return ("\n".join(lines) + "\n").encode()


async def run_season(
    *,
    kafka_bootstrap_servers: str,
    mongodb_uri: str,
    seminars: int = 300,
    registrants: int = 3,
    attendees: int = 2,
    concurrency: int = 1,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Run the season once against the given broker and database; returns the result
    (``ok`` says whether every check passed)."""
    prefix = f"season{uuid.uuid4().hex[:8]}"
    namespace = Namespace(kafka_bootstrap_servers, mongodb_uri, prefix)
    settings = namespace.settings(
        SeminarSettings, auth=AuthSettings(tokens={Role.OPERATOR: [SecretStr(TOKEN)]})
    )
    app = create_app(settings)
    ids = [f"{prefix}-{i:05d}" for i in range(seminars)]
    people = {s: [f"t-{s}-{n}" for n in range(registrants)] for s in ids}
    timings: dict[str, float] = {}
    report: dict[str, Any] = {}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, linger_ms=5)
    try:
        async with running(app) as client, KafkaProbe(namespace) as probe:
            await producer.start()
            started = time.perf_counter()

            response = await client.post(
                "/v1/seminars/import",
                content=season_csv(prefix, seminars),
                headers={**OPERATOR, "Content-Type": "text/csv"},
                timeout=timeout_s,
            )
            response.raise_for_status()
            report["import"] = {k: response.json()[k] for k in ("created", "unchanged", "rejected")}
            timings["import"] = time.perf_counter() - started

            mark = time.perf_counter()
            sends = []
            for seminar_id, registered in people.items():
                for participant in registered:
                    envelope = envelope_for(
                        RegistrationConfirmed(
                            registration_id=f"reg-{participant}",
                            seminar_id=seminar_id,
                            participant_id=participant,
                            version=1,
                            requested_at=datetime(2024, 8, 1, tzinfo=UTC),
                        ),
                        source="/services/registration",
                        time=datetime.now(UTC),
                    )
                    sends.append(
                        await producer.send(
                            namespace.topic(REGISTRATION_EVENTS),
                            envelope.to_json_bytes(),
                            key=seminar_id.encode(),
                        )
                    )
            await asyncio.gather(*sends)
            roster = app.state.runtime.mongo.db["roster"]
            expected_roster = seminars * registrants
            await eventually(
                lambda: roster.count_documents({}),
                until=lambda filled: filled >= expected_roster,
                # The budget runs from the first send, as the step's timing does.
                timeout_s=timeout_s - (time.perf_counter() - mark),
                what="rosters filled",
            )
            timings["rosters"] = time.perf_counter() - mark

            mark = time.perf_counter()
            recorded: Counter[str] = Counter()
            gate = asyncio.Semaphore(concurrency)

            async def close(seminar_id: str) -> None:
                async with gate:
                    attended = await client.post(
                        f"/v1/seminars/{seminar_id}/attendance",
                        json={"participant_ids": [*people[seminar_id][:attendees], "stranger-1"]},
                        headers=OPERATOR,
                    )
                    attended.raise_for_status()
                    recorded[seminar_id] = len(attended.json()["recorded"])
                    completed = await client.post(
                        f"/v1/seminars/{seminar_id}/complete", headers=OPERATOR
                    )
                    completed.raise_for_status()

            await asyncio.gather(*(close(s) for s in ids))
            timings["attendance_and_completion"] = time.perf_counter() - mark

            mark = time.perf_counter()
            wanted = seminars * (3 if attendees else 2)
            await eventually(
                app.state.runtime.outbox.backlog,
                until=lambda backlog: not backlog,
                timeout_s=timeout_s,
                what="outbox drained",
            )
            timings["published"] = time.perf_counter() - mark
            timings["total"] = time.perf_counter() - started

            events = await probe.events(SEMINAR_EVENTS)
            dead = await probe.read_all(REGISTRATION_EVENTS + ".dlq")
    finally:
        await producer.stop()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
        with contextlib.suppress(Exception):
            await mongo.drop_database(settings.database_name)
        await mongo.close()

    per_seminar = Counter((e.subject, e.type) for e in events)
    completions = {e.subject: e.data for e in events if e.type == "seminar.completed.v1"}
    checks = {
        "all_imported": report["import"]["created"] == seminars,
        "attendance_recorded": all(recorded[s] == attendees for s in ids),
        "events_once_each": len(events) == wanted
        and len({e.id for e in events}) == len(events)
        and set(per_seminar.values()) == {1},
        "completions_carry_attendees": len(completions) == seminars
        and all(completions[s]["attendee_ids"] == sorted(people[s][:attendees]) for s in ids),
        "nothing_dead_lettered": not dead,
    }
    return {
        "benchmark": "seminar_season",
        "seminars": seminars,
        "registration_events": seminars * registrants,
        "http_calls": 1 + 2 * seminars,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "events": dict(Counter(e.type for e in events)),
        "checks": checks,
        "ok": all(checks.values()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seminars", type=int, default=300)
    parser.add_argument("--registrants", type=int, default=3, help="per seminar")
    parser.add_argument("--attendees", type=int, default=2, help="of the registrants")
    parser.add_argument("--concurrency", type=int, default=1, help="seminars closed at once")
    args = parser.parse_args(argv)
    configure_logging(service="seminar", level="WARNING", json=True)
    with resolve_test_infrastructure() as (kafka, mongo):
        result = asyncio.run(
            run_season(
                kafka_bootstrap_servers=kafka,
                mongodb_uri=mongo,
                seminars=args.seminars,
                registrants=args.registrants,
                attendees=min(args.attendees, args.registrants),
                concurrency=args.concurrency,
            )
        )
    seconds = result["seconds"]
    print(
        f"season of {result['seminars']} seminars, {result['registration_events']} registration "
        f"events, {result['http_calls']} HTTP calls: {seconds['total']:.1f} s in total"
    )
    for step, value in seconds.items():
        if step != "total":
            print(f"  {step:<28}{value:7.2f} s")
    failed = [name for name, ok in result["checks"].items() if not ok]
    print("checks: " + ("all passed" if not failed else "FAILED " + ", ".join(failed)))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
