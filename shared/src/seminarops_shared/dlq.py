"""Dead letters for operators: list, inspect and re-drive them after a fix.

    python -m seminarops_shared.dlq list [--topic registration.requests]
    python -m seminarops_shared.dlq show registration.requests 2 17
    python -m seminarops_shared.dlq redrive registration.requests [--reason-kind handler_error] [--dry-run]

Every command names a topic the same way: the origin topic (``registration.requests``)
or its dead-letter topic (``registration.requests.dlq``); both mean the same dead
letters. Output is JSON on stdout; a problem (no such record, the broker unreachable) is
one line on stderr and exit status 1; a usage error is exit status 2.

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
consumers' event-id markers.

A re-driven record carries ``x-dlq-redrives`` (how often it was re-driven), and the
pipeline keeps that header when it dead-letters the record again. A dead letter
re-driven ``--max-redrives`` times already (default 3) is refused: re-driving a record
whose cause is not fixed would only grow the DLQ, round after round. ``--force`` sends it
anyway. ``--dry-run`` changes nothing and moves no position: it reports what a real
run would re-drive and refuse. Uses ``KAFKA_*`` settings (bootstrap servers, security,
topic prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
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
    DLQ_REDRIVES,
    client_options,
    header_texts,
    read_to_end,
)
from .settings import KafkaSettings

REDRIVE_GROUP = "dlq-redrive"
REDRIVEN_FROM = "x-redriven-from"
DEFAULT_MAX_REDRIVES = 3
_DLQ_SUFFIX = dead_letter_topic("")


class DeadLetterError(Exception):
    """What the operator asked for cannot be done (reported on stderr, exit status 1)."""


def origin_topic(name: str) -> str:
    """The logical origin topic of ``name``: an event topic or its ``.dlq`` topic."""
    origin = name.removesuffix(_DLQ_SUFFIX)
    if origin not in EVENT_TOPICS:
        known = ", ".join(EVENT_TOPICS)
        raise ValueError(f"unknown topic {name!r}: one of {known} (or the same with .dlq)")
    return origin


def redrives_of(headers: dict[str, str]) -> int:
    """How often this dead letter was re-driven before (0 when never, or unreadable)."""
    text = headers.get(DLQ_REDRIVES, "0")
    return int(text) if text.isdigit() else 0


async def _records(
    kafka: KafkaSettings,
    topic: str,
    *,
    group: str | None = None,
    start: dict[int, int] | None = None,
    partitions: Sequence[int] | None = None,
) -> AsyncIterator[tuple[AIOKafkaConsumer, ConsumerRecord[bytes, bytes]]]:
    """Every record of ``topic`` (or of its ``partitions``) up to its end now; from the
    group's position if given, or from ``start`` (offset per partition)."""
    consumer = AIOKafkaConsumer(
        **client_options(kafka),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await _started(consumer)
    try:
        existing = sorted(consumer.partitions_for_topic(topic) or ())
        missing = sorted(set(partitions or ()) - set(existing))
        chosen = [TopicPartition(topic, p) for p in (partitions or existing)]
        if missing:
            raise DeadLetterError(f"{topic} has no partition {missing[0]} (it has {existing})")
        if chosen:
            consumer.assign(chosen)
            offsets: dict[TopicPartition, int] | None = None
            if group is not None:
                offsets = {tp: (await consumer.committed(tp)) or 0 for tp in chosen}
            elif start is not None:
                offsets = {TopicPartition(topic, p): o for p, o in start.items()}
            async for record in read_to_end(consumer, chosen, start=offsets):
                yield consumer, record
    finally:
        # aiokafka 0.14 starts a group-less consumer's bookkeeping task without letting
        # it run; stopped before its first step, that task raises CancelledError out of
        # stop(). One turn of the loop lets it start (it then ends cleanly).
        await asyncio.sleep(0)
        await consumer.stop()


async def _started(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """``client`` started, or stopped again (no "Unclosed" warning) and the error raised."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


async def list_dead_letters(kafka: KafkaSettings, topics: list[str]) -> dict[str, Any]:
    """Per dead-letter topic: the count, the count per reason kind, and each record's
    place, reason, failing group and redrive count. ``topics``: origin or ``.dlq`` names."""
    summary: dict[str, Any] = {}
    for name in topics:
        topic = kafka.topic(dead_letter_topic(origin_topic(name)))
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
                    "redrives": redrives_of(headers),
                }
            )
        summary[topic] = {"count": len(rows), "by_reason_kind": dict(kinds), "records": rows}
    return summary


async def show_dead_letter(
    kafka: KafkaSettings, topic: str, partition: int, offset: int
) -> dict[str, Any]:
    """One dead letter in full. ``topic``: the origin or the ``.dlq`` name. Raises
    ``DeadLetterError`` when there is no such partition or no record at that offset."""
    physical = kafka.topic(dead_letter_topic(origin_topic(topic)))
    async for _, record in _records(
        kafka, physical, start={partition: offset}, partitions=[partition]
    ):
        if record.offset == offset:
            return {
                "topic": physical,
                "partition": partition,
                "offset": offset,
                "key": (record.key or b"").decode("utf-8", errors="replace"),
                "headers": header_texts(record),
                "value": (record.value or b"").decode("utf-8", errors="replace")[:100_000],
            }
        break  # the offset is gone (expired) or was never written: the next one came
    raise DeadLetterError(f"no dead letter at {physical} partition {partition} offset {offset}")


def _original_partition(headers: dict[str, str], partitions: set[int]) -> int | None:
    """The partition the dead letter was consumed from, if recorded and still there."""
    try:
        partition = int(headers[DLQ_ORIGINAL_PARTITION])
    except (KeyError, ValueError):
        return None
    return partition if partition in partitions else None


def _redriven_headers(headers: dict[str, str], record: ConsumerRecord[Any, Any]) -> list[Any]:
    """The original headers, without the dead letter's own, plus where it came from (this
    round's place only) and how often it has now been re-driven (kept if it is
    dead-lettered again)."""
    kept = [
        (name, value.encode())
        for name, value in headers.items()
        if not name.startswith(DLQ_HEADER_PREFIX) and name != REDRIVEN_FROM
    ]
    kept.append((REDRIVEN_FROM, f"{record.topic}:{record.partition}:{record.offset}".encode()))
    kept.append((DLQ_REDRIVES, str(redrives_of(headers) + 1).encode()))
    return kept


async def redrive(
    kafka: KafkaSettings,
    topic: str,
    *,
    reason_kind: str | None = None,
    dry_run: bool = False,
    max_redrives: int = DEFAULT_MAX_REDRIVES,
    force: bool = False,
) -> dict[str, Any]:
    """Re-publish dead letters to their original topic and partition.

    Returns counts: ``redriven`` (``would_redrive`` in a dry run, with the ``records``),
    ``skipped`` (another reason kind, or no origin header), ``rehashed`` (sent by key
    hash, the original partition unknown) and ``refused`` (re-driven ``max_redrives``
    times already; ``force`` sends them too), with the refused records listed. A dry
    run sends nothing and moves no position."""
    producer = AIOKafkaProducer(**client_options(kafka), acks="all")
    await _started(producer)
    sent = 0
    counts = {"skipped": 0, "rehashed": 0, "refused": 0}
    planned: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    known: dict[str, set[int]] = {}
    dlq = kafka.topic(dead_letter_topic(origin_topic(topic)))
    try:
        group = f"{REDRIVE_GROUP}.{reason_kind}" if reason_kind else REDRIVE_GROUP
        async for consumer, record in _records(kafka, dlq, group=kafka.group(group)):
            headers = header_texts(record)
            original = headers.get(DLQ_ORIGINAL_TOPIC)
            place = {"partition": record.partition, "offset": record.offset}
            if original is None or (reason_kind and headers.get(DLQ_REASON_KIND) != reason_kind):
                counts["skipped"] += 1
            elif redrives_of(headers) >= max_redrives and not force:
                counts["refused"] += 1
                refused.append(place | {"redrives": redrives_of(headers)})
            else:
                if original not in known:
                    known[original] = set(await producer.partitions_for(original))
                partition = _original_partition(headers, known[original])
                if partition is None:
                    counts["rehashed"] += 1
                if dry_run:
                    planned.append(
                        place
                        | {
                            "to_topic": original,
                            "to_partition": partition,  # None: by the key's hash
                            "reason_kind": headers.get(DLQ_REASON_KIND),
                            "redrives": redrives_of(headers),
                        }
                    )
                else:
                    await producer.send_and_wait(
                        original,
                        value=record.value,
                        key=record.key,
                        headers=_redriven_headers(headers, record),
                        partition=partition,
                    )
                    sent += 1
            if not dry_run:
                tp = TopicPartition(record.topic, record.partition)
                await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
    finally:
        await producer.stop()
    if dry_run:
        return {
            "would_redrive": len(planned),
            **counts,
            "records": planned,
            "refused_records": refused,
        }
    return {"redriven": sent, **counts, "refused_records": refused}


def _topic_argument(name: str) -> str:
    try:
        return origin_topic(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seminarops_shared.dlq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    topic_help = (
        "the origin topic (registration.requests, seminar.events, registration.events, "
        "feedback.events) or its .dlq name"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser(
        "list",
        help="count and summarise dead letters",
        description="Count the dead letters per topic and reason kind and list each "
        "one's partition, offset, reason, failing group and redrive count.",
    )
    listing.add_argument(
        "--topic",
        action="append",
        type=_topic_argument,
        help=f"{topic_help}; repeat for several (default: every topic)",
    )
    show = sub.add_parser(
        "show",
        help="one dead letter in full",
        description="Print one dead letter's key, headers and value.",
    )
    show.add_argument("topic", type=_topic_argument, help=topic_help)
    show.add_argument("partition", type=_non_negative, help="the dead letter's partition")
    show.add_argument("offset", type=_non_negative, help="its offset (from 'list')")
    again = sub.add_parser(
        "redrive",
        help="publish dead letters back to the topic and partition they came from",
        description="Each dead letter goes back to its original topic and partition "
        "(x-dlq-original-partition). One without that header, or naming a partition "
        "the topic no longer has, goes by its key (murmur2, the Java client's "
        "partitioner) and is counted as 'rehashed'. One already re-driven "
        "--max-redrives times (header x-dlq-redrives) is refused unless --force.",
    )
    again.add_argument("topic", type=_topic_argument, help=topic_help)
    again.add_argument(
        "--reason-kind",
        help="only dead letters of this reason kind (e.g. handler_error); keeps its own "
        "position (group dlq-redrive.<kind>)",
    )
    again.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would be re-driven and refused; send nothing, move no position",
    )
    again.add_argument(
        "--max-redrives",
        type=_non_negative,
        default=DEFAULT_MAX_REDRIVES,
        help="refuse dead letters re-driven this often already (default %(default)s)",
    )
    again.add_argument(
        "--force",
        action="store_true",
        help="re-drive dead letters over --max-redrives too (their cause is fixed now)",
    )
    return parser


async def _run(args: argparse.Namespace, kafka: KafkaSettings) -> Any:
    if args.command == "list":
        return await list_dead_letters(kafka, args.topic or list(EVENT_TOPICS))
    if args.command == "show":
        return await show_dead_letter(kafka, args.topic, args.partition, args.offset)
    return await redrive(
        kafka,
        args.topic,
        reason_kind=args.reason_kind,
        dry_run=args.dry_run,
        max_redrives=args.max_redrives,
        force=args.force,
    )


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 1 failed, 2 usage error)."""
    args = build_parser().parse_args(argv)
    kafka = KafkaSettings()
    # aiokafka logs every failed connection attempt; the one line below says it all.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        result = asyncio.run(_run(args, kafka))
    except DeadLetterError as error:
        sys.stderr.write(f"dlq: {error}\n")
        return 1
    except (KafkaError, OSError) as error:
        sys.stderr.write(f"dlq: the broker at {kafka.bootstrap_servers} failed: {error!r}\n")
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
