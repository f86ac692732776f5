"""Connection options for plain aiokafka clients (admin clients, the DLQ tool, ``make up``),
built from :class:`~.settings.KafkaSettings`.

Kept apart from ``kafka.py`` so tools that only need to connect (``devstack``) do not
pay for importing FastStream; ``kafka.py`` re-exports it.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
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


__all__ = ["client_options"]


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
