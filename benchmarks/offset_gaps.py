"""Does a consumer reading as several producers write one partition see every record?

Four producers (``--producers``) write ``--records`` records each into one partition of
a fresh topic on the embedded broker, eight sends in flight each, while two readers
consume it from the start: one plain, one that cuts its polls where the offsets jump
and seeks back (``seminarops_shared.offset_gaps``, as every service's consumer does).
When the producers are done, each reader goes on until it has every record or ten
seconds pass; a third reader, started afterwards, reads the whole partition. Repeated
``--rounds`` times (a topic each), on one broker.

    .venv/bin/python benchmarks/offset_gaps.py [--rounds 7] [--producers 4] [--records 3000]

Prints one line per round and a JSON summary. Measured on the embedded Tansu (memory
engine): the plain reader missed 8 of 12,001 records in 3 of 7 rounds, records the
reader started afterwards saw (issue 18's season lost one metrics registration so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from seminarops_devtools.processes import free_port, start_kafka, stop_popen
from seminarops_shared.offset_gaps import OffsetGaps

IN_FLIGHT = 8
SETTLE_S = 10.0


async def _produce(address: str, topic: str, records: int, producer_no: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=0, acks="all")
    await producer.start()
    try:
        pending: list[Any] = []
        for n in range(records):
            value = f"{producer_no}-{n}".encode()
            pending.append(await producer.send(topic, value, partition=0))
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _read(
    address: str, topic: str, total: int, done: asyncio.Event, gaps: OffsetGaps | None
) -> tuple[set[int], int]:
    """The offsets one reader received (kept, with ``gaps``), and how often it
    fetched again."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=address, enable_auto_commit=False, fetch_max_wait_ms=25
    )
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    seen: set[int] = set()
    fetched_again = 0
    settle_deadline: float | None = None
    try:
        while len(seen) < total:
            if done.is_set():
                settle_deadline = settle_deadline or time.monotonic() + SETTLE_S
                if time.monotonic() > settle_deadline:
                    break
            polled = [r for rs in (await consumer.getmany(timeout_ms=200)).values() for r in rs]
            if gaps is not None:
                cut = gaps.cut(polled)
                for rewound, offset in cut.rewind.items():
                    consumer.seek(rewound, offset)
                    fetched_again += 1
                polled = cut.records
            seen.update(r.offset for r in polled)
    finally:
        await consumer.stop()
    return seen, fetched_again


async def _read_afterwards(address: str, topic: str, total: int) -> set[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False)
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    seen: set[int] = set()
    try:
        while len(seen) < total and (polled := await consumer.getmany(timeout_ms=2000)):
            seen.update(r.offset for rs in polled.values() for r in rs)
    finally:
        await consumer.stop()
    return seen


async def _round(address: str, producers: int, records: int) -> dict[str, Any]:
    topic = f"offset-gaps-{time.time_ns()}"
    total = producers * records
    done = asyncio.Event()
    # The topic exists (auto-created with one partition) before the readers start.
    first = AIOKafkaProducer(bootstrap_servers=address)
    await first.start()
    await first.send_and_wait(topic, b"first", partition=0)
    await first.stop()
    total += 1
    plain = asyncio.create_task(_read(address, topic, total, done, None))
    guarded = asyncio.create_task(_read(address, topic, total, done, OffsetGaps(patience_s=2)))
    await asyncio.gather(*(_produce(address, topic, records, n) for n in range(producers)))
    done.set()
    (plain_seen, _), (guarded_seen, fetched_again) = await asyncio.gather(plain, guarded)
    afterwards = await _read_afterwards(address, topic, total)
    return {
        "records": total,
        "read_afterwards": len(afterwards),
        "plain_missed": len(afterwards - plain_seen),
        "guarded_missed": len(afterwards - guarded_seen),
        "guarded_fetched_again": fetched_again,
    }


async def _rounds(address: str, rounds: int, producers: int, records: int) -> list[dict[str, Any]]:
    results = []
    for n in range(1, rounds + 1):
        result = await _round(address, producers, records)
        print(f"round {n}: {result}", flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--records", type=int, default=3000, help="per producer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="offset-gaps-") as scratch:
        broker = start_kafka(
            port=free_port(), log_path=Path(scratch) / "broker.log", detached=False
        )
        try:
            results = asyncio.run(
                _rounds(broker.address, args.rounds, args.producers, args.records)
            )
        finally:
            stop_popen(broker.process, timeout_s=10)
    summary = {
        "rounds": len(results),
        "records_per_round": results[0]["records"] if results else 0,
        "rounds_where_plain_missed": sum(1 for r in results if r["plain_missed"]),
        "plain_missed": sum(r["plain_missed"] for r in results),
        "guarded_missed": sum(r["guarded_missed"] for r in results),
        "guarded_fetched_again": sum(r["guarded_fetched_again"] for r in results),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
