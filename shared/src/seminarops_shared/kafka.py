"""Kafka plumbing on FastStream: the broker, and the one consumption pipeline every
service uses.

Per batch of records (one poll):
1. decode each record: JSON, CloudEvents envelope, allowed ``source`` for the topic,
   known ``type`` (upcast to the newest version), valid ``data``; a record that fails
   any of these is dead-lettered to ``<topic>.dlq`` with ``x-dlq-reason`` and skipped;
2. hand the valid ones to the lanes (``lanes``) and go on to the next poll; a lane
   applies them in ONE MongoDB transaction (with those of later polls that queued up
   meanwhile), together with their processed-event markers (duplicates are skipped) and
   the events they emit (outbox): one handler call per event, or one call of a *batch
   handler* with all fresh events of the batch (in order), so that it can read what
   they need with one query and write with one;
3. commit the offsets only after that transaction committed (at least once), in the
   background.

Failures: infrastructure outages (database or broker unreachable) are retried with
capped exponential backoff for as long as they last (``retry.OUTAGE``); write conflicts
for longer than the database's transaction lifetime (``retry.WRITE_CONFLICT``).
Anything else makes the batch fall back to one event per transaction, so one bad event
cannot hold back its neighbours; an event that still fails after
``max_attempts`` (or raises ``PermanentError``) is dead-lettered and the partition
moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections import Counter
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from . import retry
from .events import REGISTRY, Envelope, ReceivedEvent, UnknownEventType
from .events.topics import dead_letter_topic
from .kafka_clients import (
    DLQ_CONSUMER_GROUP,
    DLQ_FAILED_AT,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    DLQ_REASON_KIND,
    client_options,
    header_text,
    header_texts,
)
from .keyed import ClaimConflict, Turns
from .lanes import Lanes, OffsetCommits, Piece
from .observability import ServiceMetrics
from .offset_gaps import OffsetGaps
from .publishing import RecordPublisher
from .settings import KafkaSettings
from .subscriptions import Batch, BatchHandler, EventHandler, Subscription
from .unit_of_work import UnitOfWorkFactory, current_traceparent

_log = structlog.get_logger(__name__)

MAX_RECORD_BYTES = 1024 * 1024
# A dead letter keeps at most this much of the original value (with headers it must
# stay under the producer's 1 MiB request limit, or the dead letter itself would stick).
DLQ_MAX_VALUE_BYTES = 512 * 1024


class PermanentError(Exception):
    """This event can never be applied (a rule it breaks, not a passing fault): dead-letter it."""


def build_broker(settings: KafkaSettings, *, client_id: str) -> KafkaBroker:
    """A FastStream Kafka broker from settings. Idempotent producers are a setting:
    on for real Kafka, off for the embedded Tansu broker (no InitProducerId there)."""
    return KafkaBroker(
        settings.bootstrap_servers,
        client_id=f"{settings.client_id_prefix}-{client_id}",
        acks="all" if settings.acks == "all" else int(settings.acks),
        enable_idempotence=settings.enable_idempotence,
        security=_security(settings),
        # Topics are created by `make up`, by the platform (Strimzi), or by
        # `ensure_topics`; a typo must not silently create a new one.
        allow_auto_create_topics=False,
        graceful_timeout=settings.graceful_timeout_s,
        logger=None,
    )


def _security(settings: KafkaSettings) -> BaseSecurity | None:
    import ssl

    context = None
    if settings.security_protocol in {"SSL", "SASL_SSL"}:
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.security_protocol in {"SASL_PLAINTEXT", "SASL_SSL"}:
        username = settings.sasl_username or ""
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }
        kind = kinds[settings.sasl_mechanism or "PLAIN"]
        return kind(username=username, password=password, ssl_context=context)
    if context is not None:
        return BaseSecurity(ssl_context=context)
    return None


class DeadLetters:
    """Sends a record that cannot be processed to ``<topic>.dlq``, original bytes and
    headers kept, the reason and origin in ``x-dlq-*`` headers."""

    def __init__(self, publisher: RecordPublisher, *, group: str, metrics: ServiceMetrics) -> None:
        self._publisher = publisher
        self._group = group
        self._metrics = metrics

    async def send(
        self, record: ConsumerRecord[Any, Any], *, reason: str, reason_kind: str, attempts: int
    ) -> None:
        headers = header_texts(record)
        value: bytes = record.value or b""
        if len(value) > DLQ_MAX_VALUE_BYTES:
            headers["x-dlq-truncated-from-bytes"] = str(len(value))
            value = value[:DLQ_MAX_VALUE_BYTES]
        headers |= {
            DLQ_REASON: reason[:2000],
            DLQ_REASON_KIND: reason_kind,
            DLQ_ORIGINAL_TOPIC: record.topic,
            DLQ_ORIGINAL_PARTITION: str(record.partition),
            DLQ_ORIGINAL_OFFSET: str(record.offset),
            DLQ_CONSUMER_GROUP: self._group,
            "x-dlq-attempts": str(attempts),
            DLQ_FAILED_AT: datetime.now(UTC).isoformat(),
        }
        await _until_published(
            lambda: self._publisher.publish(
                dead_letter_topic(record.topic), key=record.key, value=value, headers=headers
            )
        )
        self._metrics.dlq_records.labels(self._metrics.service, record.topic, reason_kind).inc()
        _log.warning(
            "record dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason[:500],
            attempts=attempts,
        )


async def _until_published(publish: Callable[[], Awaitable[None]]) -> None:
    def note(error: BaseException, delay: float) -> None:
        _log.warning("publish failed, retrying", error=repr(error), retry_in_s=delay)

    await retry.run(retry.OUTAGE, publish, on_retry=note)


class Rejected(Exception):
    """A record that is not a valid event here. ``event_type``: the envelope's ``type``
    when the envelope parsed (the metrics label it), ``None`` when it did not."""

    def __init__(self, reason_kind: str, reason: str, *, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason_kind = reason_kind
        self.reason = reason
        self.event_type = event_type


def logical_topic(physical: str, kafka: KafkaSettings) -> str:
    prefix = kafka.topic_prefix
    return physical[len(prefix) :] if prefix and physical.startswith(prefix) else physical


def decode_record(
    record: ConsumerRecord[Any, Any],
    *,
    kafka: KafkaSettings,
    allowed_sources: Mapping[str, Sequence[str]],
) -> tuple[ReceivedEvent, str]:
    """The event in ``record`` and its logical topic, checked as every consumer checks
    it (the live pipeline and the metrics rebuild alike). Raises ``Rejected`` with the
    reason for anything that is not a valid event on that topic."""
    value = record.value
    if not value:
        raise Rejected("empty", "empty record: no CloudEvents envelope")
    if len(value) > MAX_RECORD_BYTES:
        raise Rejected("too_large", f"record of {len(value)} bytes exceeds {MAX_RECORD_BYTES}")
    try:
        envelope = Envelope.from_json_bytes(value)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            raise Rejected("invalid_json", "not valid JSON: " + _summary(error)) from None
        raise Rejected("invalid_envelope", "invalid envelope: " + _summary(error)) from None
    logical = logical_topic(record.topic, kafka)
    # The type labels the dead letter's metrics only when this system knows it: a label
    # taken from any string a producer sends would grow the series without bound.
    known_type = envelope.type if REGISTRY.knows(envelope.type) else None
    allowed = allowed_sources.get(logical)
    if allowed is not None and not any(envelope.source.startswith(p) for p in allowed):
        raise Rejected(
            "forbidden_source",
            f"source {envelope.source!r} may not publish to {logical} (allowed: {list(allowed)})",
            event_type=known_type,
        )
    try:
        received = REGISTRY.decode(envelope)
    except UnknownEventType as error:
        raise Rejected("unknown_type", str(error)) from None
    except ValidationError as error:
        raise Rejected(
            "invalid_data",
            f"invalid data for {envelope.type}: {_summary(error)}",
            event_type=envelope.type,
        ) from None
    if received.data.topic != logical:
        raise Rejected(
            "wrong_topic",
            f"{envelope.type} belongs on {received.data.topic}, not {logical}",
            event_type=envelope.type,
        )
    return received, logical


@dataclass(frozen=True, slots=True)
class _Item:
    record: ConsumerRecord[Any, Any]
    event: ReceivedEvent
    logical_topic: str


Outcomes = list[tuple[_Item, str]]

# Records decoded between two turns of the event loop (``EventConsumer._decoded``).
_DECODE_TURN = 50


def _not_permanent(error: BaseException) -> bool:
    return not isinstance(error, PermanentError)


# A handler's own failures (not an outage, not a conflict): the event is tried again at
# once, a few times (``max_attempts``), then dead-lettered.
HANDLER_FAILURE = retry.RetryPolicy(
    name="handler_failure", retries=_not_permanent, initial_delay_s=0.0, max_delay_s=0.0
)


class EventConsumer:
    """One consumer group's pipeline, following its ``Subscription``: which event types
    it applies and how (see ``subscriptions``), and whether its writes contend per key
    (``KeyedWrites``: the claim is then the first statement of every batch
    transaction). Other known types on its topics are skipped (counted as ``ignored``).

    Every event gets a processed-event marker (its id, written in the batch's
    transaction) except those of idempotent types (``Batch(idempotent=True)``), whose
    repeats the batch handler tells apart by returning the ids that changed nothing.

    A batch is applied by ONE ``retry.run`` of ``_transaction`` under the combined
    policy (outages around write conflicts around a contended claim); a batch that fails
    otherwise falls back to one event per transaction (``_one_by_one``)."""

    def __init__(
        self,
        *,
        group: str,
        subscription: Subscription,
        uow: UnitOfWorkFactory,
        dead_letters: DeadLetters,
        metrics: ServiceMetrics,
        kafka: KafkaSettings,
        allowed_sources: Mapping[str, Sequence[str]],
        max_attempts: int = 3,
    ) -> None:
        self.group = group
        self.topics = subscription.topics
        self._handlers = dict(subscription.handlers)
        self._keyed = subscription.keyed
        self._turns = self._keyed.turns if self._keyed is not None else Turns()
        self._idempotent = subscription.idempotent
        self._uow = uow
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._kafka = kafka
        self._allowed_sources = allowed_sources
        self._max_attempts = max_attempts
        # A claim that meets another writer is tried again within milliseconds, for the
        # policy's patience; past it, it is a write conflict like any other.
        claim = (
            ()
            if self._keyed is None
            else (
                retry.CONTENDED.within(self._keyed.patience_s).retrying(
                    lambda error: isinstance(error, ClaimConflict)
                ),
            )
        )
        self._transient = retry.Nested(retry.OUTAGE, retry.WRITE_CONFLICT, *claim)
        self._lanes: Lanes[_Item] = Lanes(
            apply=self._apply, applied=self._applied, max_records=kafka.max_batch_records
        )
        # The offsets of what the lanes applied, for the consumer that fetched it.
        self._commits: OffsetCommits | None = None
        self._gaps = OffsetGaps(patience_s=kafka.offset_gap_patience_s)

    # ---- processing ------------------------------------------------------------------

    async def handle(self, body: Any, message: KafkaMessage) -> None:
        """FastStream's handler of this group's polls: decode each record (what is not a
        valid event here is dead-lettered), then hand the valid ones to the lanes
        (``lanes``), which apply them while the next poll is fetched, and commit the
        offsets after. Returns once the poll is queued (waiting while the lanes are
        full); once closing, or for a poll fetched before a revocation, without
        applying it (it is not committed either: it is read again).

        On FastStream's in-memory ``TestKafkaBroker`` (no offsets to commit) the poll is
        applied before this returns."""
        epoch = self._lanes.epoch  # before anything awaits: the assignment it came from
        if self._lanes.closing:
            return
        raw = message.raw_message
        records: Sequence[ConsumerRecord[Any, Any]] = raw if isinstance(raw, tuple) else (raw,)
        consumer = message.consumer
        if isinstance(consumer, AIOKafkaConsumer):
            records = self._without_holes(records, consumer)
        items = await self._decoded(records)
        if not isinstance(consumer, AIOKafkaConsumer):
            piece = Piece(items, list(records), epoch)
            await self._apply(piece)
            self._observe(piece, consumer)
            return
        if self._commits is None or self._commits.consumer is not consumer:
            self._commits = OffsetCommits(consumer)
        await self._lanes.submit(self._pieces(items, records, epoch))

    def _without_holes(
        self, records: Sequence[ConsumerRecord[Any, Any]], consumer: AIOKafkaConsumer
    ) -> list[ConsumerRecord[Any, Any]]:
        """The poll up to where a partition's offsets jump (``offset_gaps``); those
        partitions are fetched again from the offset that did not come."""
        cut = self._gaps.cut(records)
        service = self._metrics.service
        for tp, offset in cut.rewind.items():
            _log.warning(
                "records skipped by the broker, fetching them again",
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
            )
            self._metrics.offset_gaps.labels(service, tp.topic, "fetched_again").inc()
            # Revoked meanwhile: its next owner starts at the committed offset anyway.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(tp, offset)
        for tp, (expected, found) in cut.accepted.items():
            _log.error(
                "a hole in a partition's offsets stayed: going on past it",
                topic=tp.topic,
                partition=tp.partition,
                expected=expected,
                found=found,
            )
            self._metrics.offset_gaps.labels(service, tp.topic, "accepted").inc()
        return cut.records

    async def _decoded(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[_Item]:
        """The records' events this group applies, in order; the others are
        dead-lettered (not valid here) or counted as ignored (not its types)."""
        items: list[_Item] = []
        for n, record in enumerate(records, start=1):
            if n % _DECODE_TURN == 0:
                # Decoding a poll is one long stretch of CPU: let a lane whose database
                # answer came in meanwhile send its next statement first.
                await asyncio.sleep(0)
            try:
                event, logical = decode_record(
                    record, kafka=self._kafka, allowed_sources=self._allowed_sources
                )
            except Rejected as rejected:
                await self._dead_letters.send(
                    record, reason=rejected.reason, reason_kind=rejected.reason_kind, attempts=1
                )
                self._metrics.processed(
                    topic=record.topic,
                    event_type=rejected.event_type or "unknown",
                    outcome="dead_lettered",
                )
                continue
            if type(event.data) in self._handlers:
                items.append(_Item(record=record, event=event, logical_topic=logical))
            else:
                self._metrics.processed(
                    topic=record.topic, event_type=event.envelope.type, outcome="ignored"
                )
        return items

    def _lane_of(self, record: ConsumerRecord[Any, Any]) -> Hashable:
        """Keyed writes: a lane per partition (the keys' turns keep one key's writers
        apart, whatever lanes they come by); otherwise one lane, one transaction at a
        time."""
        return (record.topic, record.partition) if self._keyed is not None else None

    def _pieces(
        self, items: Sequence[_Item], records: Sequence[ConsumerRecord[Any, Any]], epoch: int
    ) -> list[tuple[Hashable, Piece[_Item]]]:
        by_lane: dict[Hashable, tuple[list[_Item], list[ConsumerRecord[Any, Any]]]] = {}
        for record in records:
            by_lane.setdefault(self._lane_of(record), ([], []))[1].append(record)
        for item in items:
            by_lane[self._lane_of(item.record)][0].append(item)
        return [
            (lane, Piece(lane_items, lane_records, epoch))
            for lane, (lane_items, lane_records) in by_lane.items()
        ]

    async def _apply(self, piece: Piece[_Item]) -> None:
        """Apply a piece's events in one transaction (``_transaction``, under the
        combined retry policy); if that fails otherwise, one event per transaction.
        Returns when every event is applied, skipped or dead-lettered."""
        items = piece.items
        if not items:
            return
        keys = set(self._keyed.keys_of([i.event for i in items])) if self._keyed else set()
        try:
            outcomes = await retry.run(
                self._transient,
                functools.partial(self._transaction, items, keys),
                on_retry=self._noting_transient(items),
            )
        except Exception as error:
            await self._one_by_one(items, error)
        else:
            self._count(outcomes)

    def _applied(self, piece: Piece[_Item]) -> None:
        """A piece of the current assignment is applied: its offsets may be committed."""
        if self._commits is not None:
            self._commits.note(piece.ends)
            self._observe(piece, self._commits.consumer)

    def _observe(self, piece: Piece[_Item], consumer: Any) -> None:
        elapsed = time.perf_counter() - piece.fetched_at
        now = time.time()
        service = self._metrics.service
        # Per topic, not per record: the lane does this between two transactions.
        by_topic: dict[str, list[ConsumerRecord[Any, Any]]] = {}
        for record in piece.records:
            by_topic.setdefault(record.topic, []).append(record)
        for topic, records in by_topic.items():
            processing = self._metrics.event_processing_seconds.labels(service, topic)
            age = self._metrics.event_age_seconds.labels(service, topic)
            for record in records:
                processing.observe(elapsed)
                age.observe(max(0.0, now - record.timestamp / 1000))
        _log.debug(
            "batch processed", records=len(piece.records), applied=len(piece.items), seconds=elapsed
        )
        self.record_lag(piece.records, consumer)

    @property
    def held_records(self) -> int:
        """Records fetched and queued, not yet being applied (``lanes``)."""
        return self._lanes.held_records

    @property
    def closing(self) -> bool:
        return self._lanes.closing

    async def revoked(self) -> None:
        """The group takes this member's partitions back: drop what is queued, commit
        what is applied (``lanes``: Rebalance)."""
        self._lanes.revoke()
        self._gaps.forget()
        if self._commits is not None:
            try:
                await self._commits.flush()
            except KafkaError as error:
                _log.warning("offsets not committed before a rebalance", error=repr(error))
                self._commits.forget()

    async def close(self, timeout_s: float, *, commit_timeout_s: float) -> None:
        """Stop taking polls; apply what is queued and in flight (for at most
        ``timeout_s``), commit its offsets (for at most ``commit_timeout_s``)."""
        await self._lanes.close(timeout_s)
        if self._commits is not None:
            await self._commits.stop(commit_timeout_s)

    async def _one_by_one(self, items: list[_Item], batch_error: Exception) -> None:
        """The batch failed for a reason that is not transient: each event in its own
        transaction; its neighbours go on whatever becomes of it. The event whose
        handler raised has had its first attempt; its neighbours were only rolled back
        with it."""
        culprit = getattr(batch_error, "seminarops_event_id", None)
        if len(items) > 1:
            _log.info("batch failed, applying its events one by one", error=repr(batch_error))
        for item in items:
            failed_here = len(items) == 1 or item.event.id == culprit
            await self._alone(item, batch_error if failed_here else None)

    def _keys_of_one(self, item: _Item) -> set[str]:
        return set(self._keyed.keys_of([item.event])) if self._keyed else set()

    async def _alone(self, item: _Item, first_error: Exception | None) -> None:
        """``item`` tried ``max_attempts`` times in all (each through outages and
        conflicts as a batch is), then dead-lettered; at once for a ``PermanentError``."""
        attempts = 0 if first_error is None else 1
        error = first_error
        left = self._max_attempts - attempts
        if left > 0 and not isinstance(first_error, PermanentError):

            def failed_again(_error: BaseException, _delay: float) -> None:
                nonlocal attempts
                attempts += 1

            try:
                outcomes = await retry.run(
                    retry.Nested(HANDLER_FAILURE.attempts(left), *self._transient.levels),
                    functools.partial(self._transaction, [item], self._keys_of_one(item)),
                    on_retry=self._noting_transient([item]) | {HANDLER_FAILURE.name: failed_again},
                )
            except Exception as failure:
                error = failure
                attempts += 1
            else:
                self._count(outcomes)
                return
        kind = "rule_violation" if isinstance(error, PermanentError) else "handler_error"
        await self._dead_letters.send(
            item.record,
            reason=f"{item.event.envelope.type}: {error!r}",
            reason_kind=kind,
            attempts=max(attempts, 1),
        )
        self._metrics.processed(
            topic=item.record.topic, event_type=item.event.envelope.type, outcome="dead_lettered"
        )

    def _noting_transient(self, items: Sequence[_Item]) -> dict[str, retry.OnRetry]:
        """Outages and write conflicts are logged and counted; a contended claim's quick
        retries only at debug."""

        def note(error: BaseException, delay: float) -> None:
            self._metrics.transient_retries.labels(
                self._metrics.service, items[0].record.topic
            ).inc()
            _log.warning(
                "transient failure, retrying batch",
                error=repr(error),
                events=len(items),
                retry_in_s=round(delay, 3),
            )

        return {retry.OUTAGE.name: note, retry.WRITE_CONFLICT.name: note}

    def _count(self, applied: tuple[Outcomes, set[str]]) -> None:
        """Count what a committed transaction did. Only events of idempotent types are
        repeats when their handler reports they changed nothing; a marked event that
        changed nothing was still new."""
        outcomes, unchanged = applied
        counted = Counter(
            (
                item.record.topic,
                item.event.envelope.type,
                "duplicate"
                if item.event.id in unchanged and type(item.event.data) in self._idempotent
                else outcome,
            )
            for item, outcome in outcomes
        )
        for (topic, event_type, outcome), count in counted.items():
            self._metrics.processed(
                topic=topic, event_type=event_type, outcome=outcome, count=count
            )

    async def _transaction(
        self, items: Sequence[_Item], keys: Collection[str]
    ) -> tuple[Outcomes, set[str]]:
        """One attempt at ``items`` in ONE transaction, in the keys' turns (held for the
        attempt, never while backing off): the keys' claim first, then the
        processed-event markers (one query, one insert; none for idempotent types),
        then each fresh event to its handler, in order: a run of consecutive events that
        share a batch handler in one call, any other event on its own. Returns each
        event's outcome and the ids the batch handlers reported as unchanged."""
        outcomes: Outcomes = []
        unchanged: set[str] = set()
        async with self._turns.hold(keys), self._uow.begin() as uow:
            if self._keyed is not None:
                try:
                    await self._keyed.claim(uow, keys)
                except PyMongoError as error:
                    if retry.is_write_conflict(error):
                        raise ClaimConflict(error) from error
                    raise
            marked = [i.event.id for i in items if type(i.event.data) not in self._idempotent]
            fresh = await self._uow.claim(uow, self.group, marked) if marked else set()
            in_batch: set[str] = set()
            todo: list[_Item] = []
            for item in items:
                event_id = item.event.id
                repeat = event_id in in_batch or (
                    type(item.event.data) not in self._idempotent and event_id not in fresh
                )
                if repeat:
                    outcomes.append((item, "duplicate"))
                    continue
                in_batch.add(event_id)  # the same id twice in one batch
                todo.append(item)
                outcomes.append((item, "processed"))
            start = 0
            while start < len(todo):
                handler = self._handlers[type(todo[start].event.data)]
                end = start + 1
                if isinstance(handler, Batch):
                    while end < len(todo) and (
                        isinstance(same := self._handlers[type(todo[end].event.data)], Batch)
                        and same.handle is handler.handle
                    ):
                        end += 1
                run = todo[start:end]
                try:
                    # A run of one event is logged and traced as that event; a longer
                    # run's handler passes each event's trace context on with what it
                    # emits.
                    with _event_context(run[0]) if len(run) == 1 else contextlib.nullcontext():
                        if isinstance(handler, Batch):
                            changed_nothing = await handler.handle([i.event for i in run], uow)
                            unchanged.update(changed_nothing or ())
                        else:
                            await handler(run[0].event, uow)
                except Exception as error:
                    # A run of one: that event is the culprit (its first attempt is
                    # spent); in a longer run nobody knows which one it was: each is
                    # tried on its own.
                    if len(run) == 1:
                        error.seminarops_event_id = run[0].event.id  # type: ignore[attr-defined]
                    raise
                start = end
        return outcomes, unchanged

    def record_lag(self, records: Sequence[ConsumerRecord[Any, Any]], consumer: Any) -> None:
        """Consumer lag per partition seen in this batch: high watermark - next offset.
        Nothing when the consumer knows no high watermarks (FastStream's in-memory
        ``TestKafkaBroker`` hands over a stand-in without them)."""
        if not hasattr(consumer, "highwater"):
            return
        last: dict[tuple[str, int], int] = {}
        for record in records:
            last[(record.topic, record.partition)] = record.offset
        from aiokafka import TopicPartition

        for (topic, partition), offset in last.items():
            highwater = consumer.highwater(TopicPartition(topic, partition))
            if highwater is not None:
                self._metrics.consumer_lag.labels(
                    self._metrics.service, self.group, topic, str(partition)
                ).set(max(0, highwater - offset - 1))


@contextlib.contextmanager
def _event_context(item: _Item) -> Iterator[None]:
    """The event's trace context (for the events its handler emits) and its log fields,
    bound for the length of its handling: the one place this happens."""
    envelope = item.event.envelope
    token = current_traceparent.set(envelope.traceparent)
    structlog.contextvars.bind_contextvars(
        topic=item.logical_topic,
        event_id=envelope.id,
        event_type=envelope.type,
        trace_id=_trace_id(envelope.traceparent),
    )
    try:
        yield
    finally:
        current_traceparent.reset(token)
        structlog.contextvars.unbind_contextvars("topic", "event_id", "event_type", "trace_id")


def _trace_id(traceparent: str | None) -> str | None:
    # traceparent: version-traceid-spanid-flags
    if traceparent and traceparent.count("-") == 3:
        return traceparent.split("-")[1]
    return None


def _summary(error: ValidationError, limit: int = 5) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
        for e in error.errors()[:limit]
    ]
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _sanitise_headers(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    # FastStream decodes header values as UTF-8 and would fail the whole batch on one
    # hostile header; replace what does not decode before it looks.
    headers = record.headers or ()
    if all(_decodes(value) for _, value in headers):
        return record
    cleaned = tuple((name, header_text(value).encode()) for name, value in headers)
    return dataclasses.replace(record, headers=cleaned)


def _decodes(value: bytes | None) -> bool:
    try:
        (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the pipeline when the group takes its partitions back (``lanes``)."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer.revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


def subscribe(broker: KafkaBroker, consumer: EventConsumer, kafka: KafkaSettings) -> Any:
    """Register ``consumer`` on ``broker``: batches, consumer group = service. Offsets
    are the pipeline's (``AckPolicy.MANUAL``): committed by its lanes after the
    transaction that applied the records, never ack-first (``lanes``)."""

    async def parse_raw(records: Any, original_parser: Callable[[Any], Awaitable[Any]]) -> Any:
        return await original_parser(tuple(_sanitise_headers(r) for r in records))

    async def keep_raw(message: Any) -> Any:
        # The pipeline decodes itself, so that a bad record is dead-lettered instead
        # of failing FastStream's JSON decoding for the whole batch.
        return None

    subscriber = broker.subscriber(
        *(kafka.topic(t) for t in consumer.topics),
        group_id=kafka.group(consumer.group),
        batch=True,
        max_records=kafka.max_batch_records,
        batch_timeout_ms=kafka.batch_timeout_ms,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        ack_policy=AckPolicy.MANUAL,
        listener=_Revocations(consumer),
        parser=parse_raw,
        decoder=keep_raw,
        title=f"{consumer.group}:{'+'.join(consumer.topics)}",
        include_in_schema=False,
    )

    subscriber(consumer.handle)
    return subscriber


__all__ = [
    "BatchHandler",
    "DeadLetters",
    "EventConsumer",
    "EventHandler",
    "PermanentError",
    "build_broker",
    "client_options",
    "subscribe",
]
