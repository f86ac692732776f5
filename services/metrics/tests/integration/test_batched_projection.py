"""The live consumer's batch fold (``ProjectionService.project_batch``: bulk reads, one
bulk write per collection) builds exactly the documents the event-by-event fold does,
whatever the batch boundaries, with replays and an erasure in the middle of a batch;
and the per-seminar tallies it keeps are what counting the views again gives. The
rebuild's catch-up (the same batch fold onto the set the rebuild wrote) ends with the
same documents too."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from metrics.domain import (
    EvaluationView,
    ParticipationView,
    RegistrationView,
    evaluation_tally,
    participation_tally,
    registration_tally,
)
from metrics.handlers import ProjectionService, Projector
from metrics.rebuild import _apply_live, _write
from metrics.repository import (
    ProjectionPointer,
    Projections,
    ProjectionSet,
    attendance_doc,
    evaluation_view,
    participation_view,
    person_key,
    registration_view,
    seminar_view,
)
from metrics.store import MemoryProjectionStore
from seminarops_devtools.testing.stack import Namespace
from seminarops_shared.clock import utc_now
from seminarops_shared.events import Event
from seminarops_shared.mongo import Mongo
from seminarops_shared.unit_of_work import UnitOfWork

pytestmark = pytest.mark.integration

PSEUDONYM_KEY = b"metrics-batch-test-pseudonym-key"


@dataclass(frozen=True)
class _Received:
    """What ``project_batch`` reads of a consumed event: its data and id."""

    data: Event
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _recount(
    registrations: Iterable[RegistrationView],
    participations: Iterable[ParticipationView],
    evaluations: Iterable[EvaluationView],
) -> dict[str, dict[str, int]]:
    """The tallies counted from scratch from the views (what the report aggregations
    computed before the tallies existed)."""
    tallies: dict[str, dict[str, int]] = {}
    counted = (
        [(v.seminar_id, registration_tally(v)) for v in registrations]
        + [(v.seminar_id, participation_tally(v)) for v in participations]
        + [(v.seminar_id, evaluation_tally(v)) for v in evaluations]
    )
    for seminar_id, counts in counted:
        for key, n in counts.items():
            if n:
                seminar = tallies.setdefault(seminar_id, {})
                seminar[key] = seminar.get(key, 0) + n
    return tallies


async def _memory_state(events: list[Any]) -> tuple[Any, ...]:
    store = MemoryProjectionStore()
    projector = Projector(pseudonym_key=PSEUDONYM_KEY)
    for sent in events:
        await projector.apply(sent.data, store)
    tallies = {s: nonzero for s, counts in store.tallies.items() if (nonzero := _nonzero(counts))}
    assert tallies == _recount(
        store.registrations.values(),
        store.participations_by_key.values(),
        store.evaluations.values(),
    )
    return (
        store.seminars,
        store.registrations,
        store.participations_by_key,
        store.evaluations,
        set(store.erasures),
        tallies,
    )


def _key(view: ParticipationView) -> str:
    return person_key(view.seminar_id, view.participant_id)


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: n for key, n in counts.items() if n}


async def _database_state(projections: Projections) -> tuple[Any, ...]:
    seminars = [seminar_view(d) async for d in projections.seminars.collection.find()]
    people = await projections.registrations.collection.find().to_list()
    registrations = [v for d in people if (v := registration_view(d)) is not None]
    participations = [v for d in people if (v := participation_view(d)) is not None]
    # The reports' index holds exactly the attendees, as their documents do.
    attendees = await projections.participations.collection.find().to_list()
    assert sorted(attendees, key=lambda d: d["_id"]) == [
        attendance_doc(v) for v in sorted(participations, key=_key) if v.attended
    ]
    evaluations = [evaluation_view(d) async for d in projections.evaluations.collection.find()]
    erasures = {d["_id"] async for d in projections.erasures.collection.find()}
    tallies = {
        s: nonzero
        for s, counts in (await projections.tallies.of(None)).items()
        if (nonzero := _nonzero(counts))
    }
    assert tallies == _recount(registrations, participations, evaluations)
    return (
        {v.seminar_id: v for v in seminars},
        {(v.seminar_id, v.participant_id): v for v in registrations},
        {(v.seminar_id, v.participant_id): v for v in participations},
        {v.evaluation_id: v for v in evaluations},
        erasures,
        tallies,
    )


@pytest.mark.parametrize("batch_size", [1, 4, 9, 1000])
async def test_batches_fold_to_the_same_documents_as_single_events(
    namespace: Namespace, two_year_history: Any, replays_of: Any, batch_size: int
) -> None:
    events = list(two_year_history.events) + replays_of(two_year_history)
    mongo = Mongo(namespace.mongo(), f"{namespace.prefix}_metrics_batches_{batch_size}")
    try:
        pointer = ProjectionPointer(mongo.db)
        projections = Projections.of(mongo.db, await pointer.active())
        await projections.ensure_indexes()
        service = ProjectionService(
            pointer=pointer, projector=Projector(pseudonym_key=PSEUDONYM_KEY)
        )
        for start in range(0, len(events), batch_size):
            batch = [_Received(sent.data) for sent in events[start : start + batch_size]]
            async with mongo.transaction() as session:
                uow = UnitOfWork(session=session, source="/services/metrics", clock=utc_now)
                await service.project_batch(batch, uow)  # type: ignore[arg-type]
                # What the unit of work's factory does at commit.
                await uow.flush()
        assert await _database_state(projections) == await _memory_state(events)
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


@pytest.mark.parametrize("written", [0, 30, 60])
async def test_the_rebuilds_catch_up_folds_onto_the_written_set_as_in_memory(
    namespace: Namespace, two_year_history: Any, replays_of: Any, written: int
) -> None:
    """The first ``written`` events folded in memory and written as the rebuild writes
    its set, the rest caught up in transactions of five (30: the erasure falls into
    the catch-up, mid-batch)."""
    events = list(two_year_history.events) + replays_of(two_year_history)
    mongo = Mongo(namespace.mongo(), f"{namespace.prefix}_metrics_catch_up_{written}")
    try:
        projections = Projections.of(mongo.db, ProjectionSet(suffix="__rebuild_test"))
        projector = Projector(pseudonym_key=PSEUDONYM_KEY)
        folded = MemoryProjectionStore()
        for sent in events[:written]:
            await projector.apply(sent.data, folded)
        await _write(projections, folded, 7)
        await projections.ensure_indexes()
        for start in range(written, len(events), 5):
            batch = [_Received(sent.data) for sent in events[start : start + 5]]
            await _apply_live(mongo, projections, projector, batch)  # type: ignore[arg-type]
        assert await _database_state(projections) == await _memory_state(events)
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


class _Crash(Exception):
    """The process died after folding a batch and before its transaction committed."""


async def test_a_batch_redelivered_after_a_crash_mid_way_counts_once(
    namespace: Namespace, two_year_history: Any
) -> None:
    """Registration events carry no processed-event marker: the fold itself must absorb
    a redelivery. A batch folded and written but never committed (the process died),
    then delivered again, and the next poll overlapping a committed batch (offsets not
    committed before the crash): every document and tally as if each event came once."""
    events = list(two_year_history.events)
    half = len(events) // 2
    mongo = Mongo(namespace.mongo(), f"{namespace.prefix}_metrics_redelivery")
    try:
        pointer = ProjectionPointer(mongo.db)
        projections = Projections.of(mongo.db, await pointer.active())
        await projections.ensure_indexes()
        service = ProjectionService(
            pointer=pointer, projector=Projector(pseudonym_key=PSEUDONYM_KEY)
        )

        async def fold(batch: list[Any], *, crash: bool = False) -> None:
            async with mongo.transaction() as session:
                uow = UnitOfWork(session=session, source="/services/metrics", clock=utc_now)
                await service.project_batch([_Received(s.data) for s in batch], uow)  # type: ignore[arg-type]
                await uow.flush()
                if crash:
                    raise _Crash

        with pytest.raises(_Crash):
            await fold(events[:half], crash=True)
        assert await projections.registrations.collection.count_documents({}) == 0
        await fold(events[:half])  # redelivered after the restart
        await fold(events[half // 2 :])  # the next poll starts inside the committed batch
        await fold(events[half:])  # and that one redelivered in turn

        assert await _database_state(projections) == await _memory_state(events)
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()
