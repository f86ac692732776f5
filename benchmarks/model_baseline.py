"""The model baseline (issue 18): the pipeline's own database writes, and nothing else.

``MODEL`` below is a table: per service, the collections it writes (with the indexes
they have), and per event or per transaction which documents it inserts, updates and
deletes, in transactions of how many events. ``run_model`` writes exactly that into
the database with a bare loop (no Kafka, no services, no reads): registration's
transactions and, as they commit, metrics' transactions of what registration decided,
concurrently, as the two processes do. Its events per second are what the database can
do for this data model; the pipeline's over it (``model_ratio``) is how close the
services come to that.

The table was read off ``write_census`` (the pipeline's traffic through real services,
counted write by write in the database's oplog); ``compare`` checks it against a fresh
census and names every difference. When the data model changes, the bench warns; then
update the table (the collections, their indexes, the rows of ``writes``).

Registration, deciding one ``registration.requested.v1`` (a seminar with room):
one registration per event (two secondary indexes); per transaction the seat book
claimed (``$inc claims``) and saved (its counters), and one outbox document holding
every event of the transaction; after the commit the relay deletes that document
(outside the transaction). Metrics, projecting ``registration.confirmed.v1`` (projection
format 3): one document per person and seminar, with no secondary index, per event, and
the seminar's tally once per transaction.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import ASCENDING, AsyncMongoClient, IndexModel

Document = dict[str, Any]
Op = Literal["inserts", "updates", "deletes"]
Per = Literal["event", "transaction"]


@dataclass(frozen=True)
class Collection:
    """A collection the model writes: its secondary indexes (key fields, in order)
    and how its documents look (``document(seminar id, event number)``)."""

    name: str
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: frozenset[tuple[str, ...]] = frozenset()
    document: Callable[[str, int], Document] | None = None
    # For an insert per transaction: its one document for all the events.
    transaction_document: Callable[[str, Sequence[int]], Document] | None = None
    # For updates: the document updated (``_id`` from the seminar id) and how.
    update: Callable[[int], Document] | None = None

    def index_models(self) -> list[IndexModel]:
        return [
            IndexModel([(key, ASCENDING) for key in keys], unique=keys in self.unique)
            for keys in self.indexes
        ]


@dataclass(frozen=True)
class Write:
    """``count`` documents of ``collection`` inserted, updated or deleted per event or
    per transaction; ``in_transaction=False``: after the commit, on its own."""

    collection: str
    op: Op
    per: Per
    count: int = 1
    in_transaction: bool = True


@dataclass(frozen=True)
class ServiceModel:
    service: str
    collections: tuple[Collection, ...]
    writes: tuple[Write, ...]
    # Events per transaction when the pipeline's own were not measured: the consumers'
    # batch limit (KAFKA_MAX_BATCH_RECORDS), which a bulk of queued events fills.
    events_per_transaction: int = 500
    # How the pipeline phase counts this service's transactions: the statements of
    # one write that happens once per transaction (``top``'s per-collection counters).
    transactions_counted_by: tuple[str, str] = ("outbox", "insert")

    def collection(self, name: str) -> Collection:
        return next(c for c in self.collections if c.name == name)


# --- the table --------------------------------------------------------------------------

_NOW = datetime(2026, 12, 7, tzinfo=UTC)
# One registration.confirmed.v1 envelope as the outbox keeps it (its JSON, ~700 bytes).
_EVENT_VALUE = b'{"specversion":"1.0","type":"registration.confirmed.v1"' + b" " * 640 + b"}"


def _registration(seminar_id: str, n: int) -> Document:
    pid = f"model-{n:07d}"
    return {
        "_id": f"reg-{uuid.uuid4().hex[:24]}",
        "seminar_id": seminar_id,
        "participant_id": pid,
        "status": "confirmed",
        "version": 1,
        "country": "FR",
        "school_id": f"school-{n % 977}",
        "display_name": f"Teacher {n}",
        "email": f"{pid}@school.example",
        "source": "/platform/bench-portal",
        "request_id": str(uuid.uuid4()),
        "requested_at": _NOW,
        "decided_at": _NOW,
        "updated_at": _NOW,
    }


def _outbox_record(seminar_id: str, n: int) -> Document:
    return {
        "id": str(uuid.uuid4()),
        "topic": "registration.events",
        "key": seminar_id,
        "value": _EVENT_VALUE,
    }


def _outbox_document(seminar_id: str, numbers: Sequence[int]) -> Document:
    """The events of one transaction as ONE outbox document (seminarops_shared.outbox)."""
    return {
        "_id": str(uuid.uuid4()),
        "owner": "model",
        "seq": time.time_ns(),
        "created_at": _NOW,
        "count": len(numbers),
        "records": [_outbox_record(seminar_id, n) for n in numbers],
    }


def _person_document(seminar_id: str, n: int) -> Document:
    """One person at one seminar (metrics projection format 3): the registration and
    the participation folded into one document keyed by seminar and pseudonym."""
    return {
        "_id": f"{seminar_id}\x1fpseudonym-{n:07d}",
        "seminar_id": seminar_id,
        "person": f"pseudonym-{n:07d}",
        "registration": {
            "registration_id": f"reg-{uuid.uuid4().hex[:24]}",
            "status": "confirmed",
            "version": 1,
            "country": "FR",
            "school_id": f"school-{n % 977}",
            "ever_confirmed": True,
            "ever_waitlisted": False,
            "ever_promoted": False,
            "ever_cancelled": False,
            "ever_rejected": False,
            "steps": [[1, "confirmed"]],
        },
        "participation": {
            "attended": False,
            "kind": None,
            "programme": None,
            "year": None,
            "country": "FR",
            "school_id": f"school-{n % 977}",
        },
    }


REGISTRATION = ServiceModel(
    service="registration",
    collections=(
        Collection(
            "registrations",
            indexes=(
                ("participant_id", "seminar_id"),
                ("seminar_id", "status", "waitlist_seq"),
            ),
            document=_registration,
        ),
        Collection(
            "seminars",
            # The claim ($inc claims) and the save (the counters) of the seat book.
            update=lambda events: {
                "$inc": {"claims": 1, "confirmed_count": events},
                "$set": {"updated_at": _NOW},
            },
        ),
        Collection(
            "outbox",
            indexes=(("owner", "seq"), ("created_at",)),
            transaction_document=_outbox_document,
        ),
    ),
    writes=(
        Write("seminars", "updates", "transaction", count=2),
        Write("registrations", "inserts", "event"),
        Write("outbox", "inserts", "transaction"),
        Write("outbox", "deletes", "transaction", in_transaction=False),
    ),
    transactions_counted_by=("outbox", "insert"),
)

METRICS = ServiceModel(
    service="metrics",
    collections=(
        # Format 3: no secondary index (read by `_id` only); attendees alone are copied
        # into `participations`, so a registration event writes nothing there.
        Collection("registrations", document=_person_document),
        Collection(
            "tallies",
            update=lambda events: {
                "$inc": {"requested": events, "confirmed": events, "status:confirmed": events}
            },
        ),
    ),
    writes=(
        Write("registrations", "inserts", "event"),
        Write("tallies", "updates", "transaction"),
    ),
    transactions_counted_by=("registrations", "insert"),
)

MODEL: tuple[ServiceModel, ...] = (REGISTRATION, METRICS)


# --- checking the table against a census ------------------------------------------------


def compare(census: Mapping[str, Any]) -> list[str]:
    """Differences between ``MODEL`` and a census (``write_census.Census.as_json()``):
    writes per collection and operation (expected from the census's own events and
    transactions), indexes, and collections written that the table does not know."""
    problems: list[str] = []
    events = int(census["events"])
    measured = census["collections"]
    known: set[str] = set()
    for model in MODEL:
        transactions = int(census["transactions"].get(model.service, 0))
        for collection in model.collections:
            name = f"{model.service}.{collection.name}"
            known.add(name)
            found = measured.get(name)
            if found is None:
                problems.append(f"{name}: in the model, not written by the services")
                continue
            want = {tuple(keys) for keys in collection.indexes}
            have = {tuple(keys) for keys in found.get("index_keys", []) if tuple(keys) != ("_id",)}
            if want != have:
                problems.append(
                    f"{name}: indexes {sorted(have)} in the database, {sorted(want)} in the model"
                )
            for op in ("inserts", "updates", "deletes"):
                expected = sum(
                    w.count * (events if w.per == "event" else transactions)
                    for w in model.writes
                    if w.collection == collection.name and w.op == op
                )
                got = int(found.get(op, 0))
                # A tally's first write of a seminar is an insert (an upsert), later
                # ones updates: allow one either way per collection and op.
                if abs(got - expected) > max(1, round(0.05 * expected)):
                    problems.append(
                        f"{name}: {got} {op} measured, {expected} in the model "
                        f"({events} events, {transactions} transactions)"
                    )
    for name, found in measured.items():
        written = sum(int(found.get(op, 0)) for op in ("inserts", "updates", "deletes"))
        # One write in a whole census (a tally created, say) is not a per-event cost.
        if name not in known and written > 1:
            problems.append(f"{name}: {written} writes measured, not in the model")
    return problems


# --- the loop -------------------------------------------------------------------------------


async def _transaction(
    client: AsyncMongoClient[Document],
    db: Any,
    model: ServiceModel,
    seminar_id: str,
    numbers: Sequence[int],
) -> list[tuple[str, list[Any]]]:
    """One transaction of ``model`` for events ``numbers``; returns what to delete after
    the commit (collection, ids)."""
    inserted: dict[str, list[Any]] = {}
    async with client.start_session() as session, await session.start_transaction():
        for write in model.writes:
            if not write.in_transaction:
                continue
            collection = model.collection(write.collection)
            target = db[collection.name]
            if write.op == "inserts":
                docs = _documents(collection, write, seminar_id, numbers)
                await target.insert_many(docs, session=session)
                inserted.setdefault(collection.name, []).extend(d["_id"] for d in docs)
            elif write.op == "updates":
                assert collection.update is not None, collection.name
                for _ in range(write.count * (len(numbers) if write.per == "event" else 1)):
                    await target.update_one(
                        {"_id": seminar_id}, collection.update(len(numbers)), session=session
                    )
            else:
                raise ValueError(f"{collection.name}: deletes in a transaction are not modelled")
    return [
        (w.collection, inserted.get(w.collection, []))
        for w in model.writes
        if not w.in_transaction and w.op == "deletes"
    ]


def _documents(
    collection: Collection, write: Write, seminar_id: str, numbers: Sequence[int]
) -> list[Document]:
    if write.per == "transaction":
        assert collection.transaction_document is not None, collection.name
        return [collection.transaction_document(seminar_id, numbers) for _ in range(write.count)]
    assert collection.document is not None, collection.name
    return [collection.document(seminar_id, n) for n in numbers for _ in range(write.count)]


async def run_model(
    mongodb_uri: str,
    *,
    events: int,
    events_per_transaction: Mapping[str, int],
    cpu_seconds: Callable[[], float | None],
    keep_databases: bool = False,
) -> dict[str, Any]:
    """Write the model for ``events`` events; returns events/s and the database's CPU
    per event (``cpu_seconds``: the database process's CPU so far, None if unknown).
    ``keep_databases``: leave ``<prefix>_<service>`` behind (to count what is in them)."""
    prefix = f"bm{uuid.uuid4().hex[:8]}"
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_uri, w="majority")
    seminar_id = f"sem-model-{uuid.uuid4().hex[:8]}"
    databases = {m.service: client[f"{prefix}_{m.service}"] for m in MODEL}
    try:
        for model in MODEL:
            db = databases[model.service]
            for collection in model.collections:
                await db.create_collection(collection.name)
                if collection.indexes:
                    await db[collection.name].create_indexes(collection.index_models())
                if collection.update is not None:
                    await db[collection.name].insert_one({"_id": seminar_id})
        sizes = {
            m.service: max(1, int(events_per_transaction.get(m.service, m.events_per_transaction)))
            for m in MODEL
        }
        registration, metrics = MODEL
        decided: asyncio.Queue[list[int] | None] = asyncio.Queue()
        transactions = dict.fromkeys(sizes, 0)

        async def decide() -> None:
            for first in range(0, events, sizes[registration.service]):
                numbers = list(range(first, min(events, first + sizes[registration.service])))
                after = await _transaction(
                    client, databases[registration.service], registration, seminar_id, numbers
                )
                transactions[registration.service] += 1
                await decided.put(numbers)
                for name, ids in after:  # the relay, after publishing
                    await databases[registration.service][name].delete_many({"_id": {"$in": ids}})
            await decided.put(None)

        async def project() -> None:
            pending: list[int] = []
            finished = False
            while not finished:
                numbers = await decided.get()
                if numbers is None:
                    finished = True
                else:
                    pending.extend(numbers)
                while pending and (finished or len(pending) >= sizes[metrics.service]):
                    batch, pending = (
                        pending[: sizes[metrics.service]],
                        pending[sizes[metrics.service] :],
                    )
                    await _transaction(
                        client, databases[metrics.service], metrics, seminar_id, batch
                    )
                    transactions[metrics.service] += 1

        cpu_before = cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(decide(), project())
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds()
    finally:
        if not keep_databases:
            for db in databases.values():
                await client.drop_database(db.name)
        await client.close()
    cpu = (
        round(cpu_after - cpu_before, 2)
        if cpu_before is not None and cpu_after is not None
        else None
    )
    return {
        "prefix": prefix,
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1),
        "events_per_transaction": sizes,
        "transactions": transactions,
        "database_cpu_s": cpu,
        "database_cpu_us_per_event": round(cpu / events * 1e6) if cpu is not None else None,
        "database_busy_pct": round(cpu / seconds * 100, 1) if cpu is not None else None,
    }
