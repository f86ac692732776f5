"""Dead letters for operators: list, inspect and re-drive them after a fix.

    python -m seminarops_shared.dlq list [--topic registration.requests]
    python -m seminarops_shared.dlq show registration.requests.dlq 2 17
    python -m seminarops_shared.dlq redrive registration.requests.dlq [--reason-kind handler_error] [--dry-run]

``redrive`` publishes each dead letter's original key, value and headers back to the
topic and partition it came from (``x-dlq-original-topic``, ``x-dlq-original-partition``;
the services have always written both), not to the partition its key hashes to: a
producer with another partitioner (librdkafka's default, CRC32) may have put it
elsewhere, next to the seminar's other records. A dead letter without a usable
partition header (made by hand or by another tool, or naming a partition the topic no
longer has) goes by its key through the murmur2 partitioner instead, where the Java
client would put it; the result counts those as ``rehashed``. Progress is kept in the
consumer group ``dlq-redrive`` (one position per DLQ partition), so a second run
re-drives only what arrived since. A run with ``--reason-kind`` keeps its own position
(group ``dlq-redrive.<kind>``): the dead letters it passes over stay for a run without
the filter. Re-driven events that were in fact applied meanwhile are absorbed by the
consumers' event-id markers. Uses ``KAFKA_*`` settings (bootstrap servers, security,
topic prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from .events.topics import EVENT_TOPICS, dead_letter_topic
from .kafka_clients import (
    DLQ_CONSUMER_GROUP,
    DLQ_FAILED_AT,
    DLQ_HEADER_PREFIX,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    DLQ_REASON_KIND,
    client_options,
    header_texts,
    read_to_end,
)
from .settings import KafkaSettings

REDRIVE_GROUP = "dlq-redrive"


async def _records(
    kafka: KafkaSettings, topic: str, *, group: str | None = None
) -> AsyncIterator[tuple[AIOKafkaConsumer, ConsumerRecord[bytes, bytes]]]:
    """Every record of ``topic`` up to its end now; from the group's position if given."""
    consumer = AIOKafkaConsumer(
        **client_options(kafka),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        start = None
        if group is not None:
            start = {tp: (await consumer.committed(tp)) or 0 for tp in partitions}
        async for record in read_to_end(consumer, partitions, start=start):
            yield consumer, record
    finally:
        await consumer.stop()


async def list_dead_letters(kafka: KafkaSettings, topics: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for logical in topics:
        topic = kafka.topic(dead_letter_topic(logical))
        kinds: Counter[str] = Counter()
        rows = []
        async for _, record in _records(kafka, topic):
            headers = header_texts(record)
            kinds[headers.get(DLQ_REASON_KIND, "?")] += 1
            rows.append(
                {
                    "partition": record.partition,
                    "offset": record.offset,
                    "reason_kind": headers.get(DLQ_REASON_KIND),
                    "reason": headers.get(DLQ_REASON, "")[:200],
                    "failed_at": headers.get(DLQ_FAILED_AT),
                    "group": headers.get(DLQ_CONSUMER_GROUP),
                }
            )
        summary[topic] = {"count": len(rows), "by_reason_kind": dict(kinds), "records": rows}
    return summary


async def show_dead_letter(
    kafka: KafkaSettings, topic: str, partition: int, offset: int
) -> dict[str, Any]:
    async for _, record in _records(kafka, kafka.topic(topic)):
        if record.partition == partition and record.offset == offset:
            return {
                "key": (record.key or b"").decode("utf-8", errors="replace"),
                "headers": header_texts(record),
                "value": (record.value or b"").decode("utf-8", errors="replace")[:100_000],
            }
    raise LookupError(f"no record at {topic}[{partition}]@{offset}")


def _original_partition(headers: dict[str, str], partitions: set[int]) -> int | None:
    """The partition the dead letter was consumed from, if recorded and still there."""
    try:
        partition = int(headers[DLQ_ORIGINAL_PARTITION])
    except (KeyError, ValueError):
        return None
    return partition if partition in partitions else None


async def redrive(
    kafka: KafkaSettings, topic: str, *, reason_kind: str | None = None, dry_run: bool = False
) -> dict[str, int]:
    """Re-publish dead letters to their original topic and partition; returns counts
    (``rehashed``: re-driven by key hash, their original partition unknown)."""
    producer = AIOKafkaProducer(**client_options(kafka), acks="all")
    await producer.start()
    counts = {"redriven": 0, "skipped": 0, "rehashed": 0}
    known: dict[str, set[int]] = {}
    try:
        group = f"{REDRIVE_GROUP}.{reason_kind}" if reason_kind else REDRIVE_GROUP
        async for consumer, record in _records(kafka, kafka.topic(topic), group=kafka.group(group)):
            headers = header_texts(record)
            original = headers.get(DLQ_ORIGINAL_TOPIC)
            if original is None or (reason_kind and headers.get(DLQ_REASON_KIND) != reason_kind):
                counts["skipped"] += 1
                continue
            if original not in known:
                known[original] = set(await producer.partitions_for(original))
            partition = _original_partition(headers, known[original])
            if partition is None:
                counts["rehashed"] += 1
            if not dry_run:
                kept = [
                    (k, v.encode())
                    for k, v in headers.items()
                    if not k.startswith(DLQ_HEADER_PREFIX)
                ]
                kept.append(
                    (
                        "x-redriven-from",
                        f"{record.topic}:{record.partition}:{record.offset}".encode(),
                    )
                )
                await producer.send_and_wait(
                    original,
                    value=record.value,
                    key=record.key,
                    headers=kept,
                    partition=partition,
                )
                tp = TopicPartition(record.topic, record.partition)
                await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
            counts["redriven"] += 1
    finally:
        await producer.stop()
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seminarops_shared.dlq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="count and summarise dead letters")
    listing.add_argument(
        "--topic", action="append", choices=EVENT_TOPICS, help="source topic (default all)"
    )
    show = sub.add_parser("show", help="one dead letter in full")
    show.add_argument("topic")
    show.add_argument("partition", type=int)
    show.add_argument("offset", type=int)
    again = sub.add_parser(
        "redrive",
        help="publish dead letters back to the topic and partition they came from",
        description="Each dead letter goes back to its original topic and partition "
        "(x-dlq-original-partition). One without that header, or naming a partition "
        "the topic no longer has, goes by its key (murmur2, the Java client's "
        "partitioner) and is counted as 'rehashed'.",
    )
    again.add_argument("topic", help="the .dlq topic")
    again.add_argument("--reason-kind", help="only these (e.g. handler_error)")
    again.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    kafka = KafkaSettings()
    if args.command == "list":
        result: Any = asyncio.run(list_dead_letters(kafka, args.topic or list(EVENT_TOPICS)))
    elif args.command == "show":
        result = asyncio.run(show_dead_letter(kafka, args.topic, args.partition, args.offset))
    else:
        if not args.topic.endswith(".dlq"):
            parser.error("redrive takes a .dlq topic")
        result = asyncio.run(
            redrive(kafka, args.topic, reason_kind=args.reason_kind, dry_run=args.dry_run)
        )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
