"""Rebuild the projections from the topics: ``python -m metrics rebuild``.

1. Take the rebuild lock (one rebuild at a time) and note the active projection set.
2. Read ``seminar.events``, ``registration.events`` and ``feedback.events`` from the
   earliest offset up to the end offsets captured at the start, with a plain consumer
   (no group: the live consumer's offsets are untouched). Records are decoded and
   checked exactly as the live pipeline does; what it would dead-letter is skipped,
   and an event id seen twice is applied once.
3. Fold every event in memory with the same ``Projector`` the live consumer uses,
   then write the documents into a fresh projection set (``<name>__rebuild_<ts>``)
   and build its indexes.
4. Switch: one write of the pointer document makes the new set the active one.
5. Catch up: events that arrived after step 2's end offsets are applied to the new
   set, in transactions, up to the end offsets captured after the switch (folded a
   batch at a time as the live consumer folds its batches: ``fold_batch``). Together
   with the live consumer (which resolves the pointer in every transaction) nothing
   is missed: whatever the live consumer put into the old set was fetched before the
   switch and so lies before those end offsets. Applying an event twice is harmless
   (every projection is a fold keyed by natural keys).
6. Drop the previous set (unless ``--keep-previous``), release the lock.

Requires the topics to keep their records (retention) for as long as projections must
be rebuildable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pymongo.asynchronous.collection import AsyncCollection

from seminarops_shared import retry
from seminarops_shared.clock import Clock, utc_now
from seminarops_shared.events import ReceivedEvent
from seminarops_shared.kafka import Rejected, decode_record
from seminarops_shared.kafka_clients import client_options, end_offsets
from seminarops_shared.mongo import Document, Mongo
from seminarops_shared.service import default_allowed_sources, service_source
from seminarops_shared.settings import KafkaSettings
from seminarops_shared.unit_of_work import UnitOfWork

from .handlers import PROJECTED_TYPES, Projector, fold_batch
from .held_projections import HELD_PROJECTIONS
from .repository import (
    REBUILD_SUFFIX_PREFIX,
    PersonAtSeminar,
    ProjectionPointer,
    Projections,
    ProjectionSet,
    attendance_doc,
    certificate_doc,
    evaluation_doc,
    person_doc,
    seminar_doc,
)
from .settings import MetricsSettings
from .store import MemoryProjectionStore
from .subscribers import TOPICS

_log = structlog.get_logger(__name__)

Offsets = dict[TopicPartition, int]


@dataclass
class RebuildResult:
    projection_set: str
    previous_set: str
    records_read: int = 0
    events_applied: int = 0
    skipped_invalid: int = 0
    skipped_other_types: int = 0
    duplicates: int = 0
    caught_up: int = 0
    documents: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    dropped_sets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- reading the topics ----------------------------------------------------------------


def _consumer_options(kafka: KafkaSettings) -> dict[str, Any]:
    return {
        **client_options(kafka),
        "client_id": f"{kafka.client_id_prefix}-metrics-rebuild",
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }


class TopicReader:
    """All partitions of the metrics service's topics, read between offsets, no group."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._consumer = AIOKafkaConsumer(**_consumer_options(kafka))
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # fetches metadata for every topic
        for logical in TOPICS:
            topic = self._kafka.topic(logical)
            found = self._consumer.partitions_for_topic(topic) or set()
            self.partitions += [TopicPartition(topic, p) for p in sorted(found)]
        if self.partitions:
            self._consumer.assign(self.partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def beginnings(self) -> Offsets:
        if not self.partitions:
            return {}
        return dict(await self._consumer.beginning_offsets(self.partitions))

    async def ends(self) -> Offsets:
        if not self.partitions:
            return {}
        return await end_offsets(self._consumer, self.partitions)

    async def read(
        self, start: Mapping[TopicPartition, int], end: Mapping[TopicPartition, int]
    ) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        """Batches of records with ``start <= offset < end``, in order per partition."""
        remaining = {tp for tp in self.partitions if end.get(tp, 0) > start.get(tp, 0)}
        for tp in remaining:
            self._consumer.seek(tp, start.get(tp, 0))
        while remaining:
            fetched = await self._consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in fetched.items():
                wanted = [r for r in records if r.offset < end[tp]]
                if wanted:
                    yield wanted
            for tp in list(remaining):
                if await self._consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)


def decode(record: ConsumerRecord[bytes, bytes], kafka: KafkaSettings) -> ReceivedEvent | None:
    """The event in ``record``, checked as the live pipeline checks it; ``None`` for a
    record it would dead-letter (and so never applied)."""
    try:
        received, _ = decode_record(record, kafka=kafka, allowed_sources=default_allowed_sources())
    except Rejected:
        return None
    return received


# ---- the rebuild ---------------------------------------------------------------------


class _Replay:
    """Decodes, de-duplicates by event id and folds events into a store."""

    def __init__(
        self, kafka: KafkaSettings, result: RebuildResult, *, pseudonym_key: bytes
    ) -> None:
        self._kafka = kafka
        self._result = result
        self._seen: set[str] = set()
        self.projector = Projector(pseudonym_key=pseudonym_key)

    def events(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[ReceivedEvent]:
        out: list[ReceivedEvent] = []
        for record in records:
            self._result.records_read += 1
            event = decode(record, self._kafka)
            if event is None:
                self._result.skipped_invalid += 1
            elif not isinstance(event.data, PROJECTED_TYPES):
                self._result.skipped_other_types += 1
            elif event.id in self._seen:
                self._result.duplicates += 1
            else:
                self._seen.add(event.id)
                out.append(event)
        return out


def _people(store: MemoryProjectionStore) -> dict[tuple[str, str], PersonAtSeminar]:
    """(seminar, person) -> their registration and participation, as one document
    holds them."""
    keys = sorted(store.registrations.keys() | store.participations_by_key.keys())
    return {
        key: (store.registrations.get(key), store.participations_by_key.get(key)) for key in keys
    }


async def _write(
    projections: Projections, store: MemoryProjectionStore, batch: int
) -> dict[str, int]:
    documents: dict[str, list[Document]] = {
        "seminars": [seminar_doc(v) for v in store.seminars.values()],
        "registrations": [
            person_doc(seminar_id, person, *views)
            for (seminar_id, person), views in _people(store).items()
        ],
        "participations": [
            attendance_doc(v) for v in store.participations_by_key.values() if v.attended
        ],
        "evaluations": [evaluation_doc(v) for v in store.evaluations.values()],
        "certificates": [certificate_doc(v) for v in store.certificates.values()],
        "erasures": [{"_id": anon, "erased_at": at} for anon, at in store.erasures.items()],
        "tallies": [
            {"_id": seminar_id, **{key: n for key, n in counters.items() if n}}
            for seminar_id, counters in store.tallies.items()
        ],
    }
    targets: dict[str, AsyncCollection[Document]] = {
        "seminars": projections.seminars.collection,
        "registrations": projections.registrations.collection,
        "participations": projections.participations.collection,
        "evaluations": projections.evaluations.collection,
        "certificates": projections.certificates.collection,
        "erasures": projections.erasures.collection,
        "tallies": projections.tallies.collection,
    }
    for name, docs in documents.items():
        for i in range(0, len(docs), batch):
            await targets[name].insert_many(docs[i : i + batch], ordered=False)
    return {name: len(docs) for name, docs in documents.items()}


async def rebuild(
    settings: MetricsSettings,
    *,
    clock: Clock = utc_now,
    keep_previous: bool = False,
    force: bool = False,
) -> RebuildResult:
    """Rebuild every projection from the topics into a fresh set and switch to it
    (see the module docstring). The live service may keep running meanwhile."""
    mongo = Mongo(settings.mongo, settings.database_name)
    pointer = ProjectionPointer(mongo.db)
    owner = f"rebuild-{uuid.uuid4().hex[:12]}"
    started = clock()
    await pointer.lock_rebuild(owner=owner, at=started, force=force)
    try:
        previous = await pointer.active()
        target = ProjectionSet(suffix=f"{REBUILD_SUFFIX_PREFIX}{started:%Y%m%dT%H%M%S%f}")
        result = RebuildResult(projection_set=target.suffix, previous_set=previous.suffix)
        projections = Projections.of(mongo.db, target)
        replay = _Replay(settings.kafka, result, pseudonym_key=settings.privacy.key)
        reader = TopicReader(settings.kafka)
        await reader.start()
        try:
            t0 = time.perf_counter()
            begin, end = await reader.beginnings(), await reader.ends()
            store = MemoryProjectionStore()
            async for records in reader.read(begin, end):
                for event in replay.events(records):
                    await replay.projector.apply(event.data, store)
                    result.events_applied += 1
            t1 = time.perf_counter()
            result.documents = await _write(projections, store, settings.rebuild_insert_batch)
            await projections.ensure_indexes()
            t2 = time.perf_counter()
            await pointer.switch(
                target,
                at=clock(),
                details={
                    "previous": previous.suffix,
                    "events_applied": result.events_applied,
                    "end_offsets": {f"{tp.topic}:{tp.partition}": o for tp, o in end.items()},
                },
            )
            _log.info("projection set switched", active=target.suffix, previous=previous.suffix)
            later = await reader.ends()
            async for records in reader.read(end, later):
                events = replay.events(records)
                for i in range(0, len(events), settings.rebuild_catch_up_batch):
                    await _apply_live(
                        mongo,
                        projections,
                        replay.projector,
                        events[i : i + settings.rebuild_catch_up_batch],
                    )
                    result.caught_up += len(events[i : i + settings.rebuild_catch_up_batch])
            t3 = time.perf_counter()
            result.seconds = {
                "read_and_fold": round(t1 - t0, 3),
                "write_and_index": round(t2 - t1, 3),
                "catch_up": round(t3 - t2, 3),
                "total": round(t3 - t0, 3),
            }
        finally:
            await reader.stop()
        if not keep_previous:
            for stale in await pointer.projection_sets():
                if stale != target:
                    await pointer.drop(stale)
                    result.dropped_sets.append(stale.suffix)
        _log.info("projections rebuilt", **result.as_dict())
        return result
    finally:
        await pointer.unlock_rebuild(owner=owner)
        await mongo.close()


async def _apply_live(
    mongo: Mongo, projections: Projections, projector: Projector, events: list[ReceivedEvent]
) -> None:
    """Fold one catch-up batch into the new set in one transaction, retried when a
    concurrent one (the live consumer's) touched the same documents."""

    async def attempt() -> None:
        # Each attempt's unit of work holds what it read: every attempt starts afresh
        # from what the database holds, never from a rolled-back attempt's documents.
        # No outbox here (the rebuild emits nothing): the unit of work only holds the
        # documents, written (``flush``) before the transaction commits.
        async with mongo.transaction() as session:
            uow = UnitOfWork(session=session, source=service_source("metrics"), clock=utc_now)
            store = uow.cache(HELD_PROJECTIONS).bind(projections, uow)
            await fold_batch(events, projector=projector, store=store)
            await uow.flush()

    await retry.run(retry.HTTP, attempt)
