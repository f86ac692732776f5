"""Connection options for plain aiokafka clients (admin clients, the DLQ tool, ``make up``),
built from :class:`~.settings.KafkaSettings`.

Kept apart from ``kafka.py`` so tools that only need to connect (``devstack``) do not
pay for importing FastStream; ``kafka.py`` re-exports it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .settings import KafkaSettings


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options for plain aiokafka clients (admin, tools), with the same
    security settings as the FastStream broker (``kafka.build_broker``)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in {"SSL", "SASL_SSL"}:
        options["ssl_context"] = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.security_protocol in {"SASL_PLAINTEXT", "SASL_SSL"}:
        options["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


__all__ = [
    "DLQ_CONSUMER_GROUP",
    "DLQ_FAILED_AT",
    "DLQ_HEADER_PREFIX",
    "DLQ_ORIGINAL_OFFSET",
    "DLQ_ORIGINAL_PARTITION",
    "DLQ_ORIGINAL_TOPIC",
    "DLQ_REASON",
    "DLQ_REASON_KIND",
    "DLQ_REDRIVES",
    "client_options",
    "end_offsets",
    "header_text",
    "header_texts",
    "read_to_end",
]

# The headers a dead letter carries (``kafka.DeadLetters`` writes them, the ``dlq``
# tool reads them).
DLQ_HEADER_PREFIX = "x-dlq-"
DLQ_REASON = "x-dlq-reason"
DLQ_REASON_KIND = "x-dlq-reason-kind"
DLQ_ORIGINAL_TOPIC = "x-dlq-original-topic"
# Where the record was: ``redrive`` puts it back on that partition (a producer with
# another partitioner than murmur2, e.g. librdkafka's default, chose it, not the key's
# hash).
DLQ_ORIGINAL_PARTITION = "x-dlq-original-partition"
DLQ_ORIGINAL_OFFSET = "x-dlq-original-offset"
DLQ_CONSUMER_GROUP = "x-dlq-consumer-group"
DLQ_FAILED_AT = "x-dlq-failed-at"
# How often a record was re-driven from its DLQ (``dlq redrive`` sets it; dead-lettering
# keeps the record's headers, so it survives the next round and caps the rounds).
DLQ_REDRIVES = "x-dlq-redrives"


def header_text(value: bytes | None) -> str:
    """A header value as text, whatever bytes it holds."""
    return (value or b"").decode("utf-8", errors="replace")


def header_texts(record: Any) -> dict[str, str]:
    """A record's headers as text, by name."""
    return {name: header_text(value) for name, value in record.headers or ()}


async def end_offsets(consumer: Any, partitions: Sequence[Any]) -> dict[Any, int]:
    """Where each partition ends now, for readers that read "everything so far".

    Not ListOffsets alone: the embedded broker (Tansu 0.6) answers it with one offset
    per record *batch*, so a topic written in multi-record batches looks shorter than
    it is, while its fetch responses carry the right high watermark. So: seek to what
    ListOffsets says (never past the true end), fetch once, and take the high
    watermark the fetch reports. On Kafka both agree. Leaves the positions moved.
    """
    if not partitions:
        return {}
    listed: dict[Any, int] = dict(await consumer.end_offsets(list(partitions)))
    for tp in partitions:
        consumer.seek(tp, listed[tp])
    await consumer.getmany(*partitions, timeout_ms=500, max_records=1)
    return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in partitions}


async def read_to_end(
    consumer: Any, partitions: Sequence[Any], *, start: Mapping[Any, int] | None = None
) -> AsyncIterator[Any]:
    """Every record of ``partitions`` (assigned to ``consumer``) from ``start`` (offset
    per partition; the beginning where not given) up to where each partition ends now.
    Records appended meanwhile are not read."""
    end = await end_offsets(consumer, partitions)
    for tp in partitions:
        if start is not None and tp in start:
            consumer.seek(tp, start[tp])
        else:
            await consumer.seek_to_beginning(tp)
    remaining = {tp for tp in partitions if await consumer.position(tp) < end[tp]}
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, records in batch.items():
            for record in records:
                if record.offset < end[tp]:
                    yield record
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
