"""The registration service's collections: seat books, registrations, parked requests,
pending cancellations.

Every write that can race is conditional: a seat book changes only if it still holds
the values it was read with (one atomic update, so two writers cannot both take the
last seat), a registration only if it still has the version it was read with. A lost
race raises the shared ``ConcurrentChange``, a write conflict (code 112) that the
retry policies retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from seminarops_shared.events.registration import RegistrationStatus
from seminarops_shared.events.vocabulary import Promotion
from seminarops_shared.mongo import ConcurrentChange, Document, Repository, find_by_ids
from seminarops_shared.unit_of_work import TransactionCache, UnitOfWork

from .domain import Seats, SeatTerms, SeminarStatus

SEMINARS = "seminars"
REGISTRATIONS = "registrations"
PARKED = "parked_requests"
PENDING_CANCELLATIONS = "pending_cancellations"

_SEAT_FIELDS: Mapping[str, str] = {
    "confirmed": "confirmed_count",
    "offered": "offered_count",
    "waitlisted": "waitlisted_count",
    "next_waitlist_seq": "next_waitlist_seq",
    "parked": "parked_count",
    "next_park_seq": "next_park_seq",
    "park_round": "park_round",
    "pending_cancellations": "pending_cancellations_count",
}


def _seats(doc: Document) -> Seats:
    return Seats(
        status=SeminarStatus(doc["status"]),
        capacity=int(doc["capacity"]),
        terms=_terms(doc),
        **{name: int(doc.get(field, 0)) for name, field in _SEAT_FIELDS.items()},
    )


def _terms(doc: Document) -> SeatTerms:
    # Books written before the journey's terms existed have none: automatic, everyone.
    countries = doc.get("eligible_countries")
    return SeatTerms(
        promotion=Promotion(doc.get("promotion", Promotion.AUTOMATIC.value)),
        offer_hours=doc.get("offer_hours"),
        eligible_countries=frozenset(countries) if countries is not None else None,
    )


def _terms_fields(terms: SeatTerms) -> Document:
    countries = terms.eligible_countries
    return {
        "promotion": terms.promotion.value,
        "offer_hours": terms.offer_hours,
        "eligible_countries": sorted(countries) if countries is not None else None,
    }


class SeminarRepository(Repository):
    """Seat books, one per seminar (``_id`` = seminar id), with what this service knows
    of the seminar: its status, capacity and terms (promotion, offer hours, eligible
    countries)."""

    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {SEMINARS: []}

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db)
        # Seat books claimed in a transaction, as the transaction last wrote them: a
        # claimed book is the transaction's until it ends (a concurrent writer fails
        # with a write conflict), so a second claim or read needs no second round trip.
        # The unit of work holds them (nothing to flush: every save is written at once).
        self._claimed: TransactionCache[dict[str, Seats]] = TransactionCache(dict)

    async def get(self, seminar_id: str, *, uow: UnitOfWork | None = None) -> Seats | None:
        """The seat book; inside a transaction that claimed it, as the transaction holds
        it (no second round trip: the consumer claims every book of its batch first).
        Without ``uow``: as committed, outside any transaction."""
        if uow is not None and seminar_id in (held := uow.cache(self._claimed)):
            return held[seminar_id]
        doc = await self.collection(SEMINARS).find_one(
            {"_id": seminar_id}, session=uow.session if uow is not None else None
        )
        return _seats(doc) if doc else None

    async def get_many(self, seminar_ids: Iterable[str], *, uow: UnitOfWork) -> dict[str, Seats]:
        ids = list(dict.fromkeys(seminar_ids))
        if len(ids) == 1:
            one = await self.get(ids[0], uow=uow)
            return {ids[0]: one} if one else {}
        cursor = self.collection(SEMINARS).find({"_id": {"$in": ids}}, session=uow.session)
        return {doc["_id"]: _seats(doc) async for doc in cursor}

    async def claim(self, uow: UnitOfWork, seminar_ids: Iterable[str]) -> dict[str, Seats]:
        """Read seat books for writing, in a transaction: each is written at once (a
        ``claims`` counter), so a concurrent writer of the same book fails at its
        first statement with a write conflict instead of after all its work. Books
        that do not exist yet are simply absent. The seat books' ``KeyedWrites.claim``:
        the pipeline calls it first in every batch transaction."""
        held = uow.cache(self._claimed)
        books: dict[str, Seats] = {}
        for seminar_id in sorted(set(seminar_ids)):
            if seminar_id in held:
                books[seminar_id] = held[seminar_id]
                continue
            doc = await self.collection(SEMINARS).find_one_and_update(
                {"_id": seminar_id},
                {"$inc": {"claims": 1}},
                return_document=ReturnDocument.AFTER,
                session=uow.session,
            )
            if doc is not None:
                books[seminar_id] = held[seminar_id] = _seats(doc)
        return books

    async def save(
        self,
        seminar_id: str,
        *,
        old: Seats | None,
        new: Seats,
        now: datetime,
        uow: UnitOfWork,
    ) -> None:
        """Write ``new`` if the book still is ``old`` (``None``: does not exist yet).

        One atomic conditional update: every counter pinned to the value it was read
        with, and, when seats are taken, ``confirmed_count <= capacity - taken`` checked
        by the database itself. Raises ``ConcurrentChange`` when the book moved.
        """
        session = uow.session
        if new.confirmed > (old.confirmed if old else 0) and new.confirmed > new.capacity:
            raise ValueError("refusing to overbook")  # domain bug; never written
        if new.taken > (old.taken if old else 0) and new.taken > new.capacity:
            raise ValueError("refusing to offer beyond capacity")  # domain bug; never written
        collection = self.collection(SEMINARS)
        if old is None:
            doc: Document = {
                "_id": seminar_id,
                "status": new.status.value,
                "capacity": new.capacity,
                "updated_at": now,
            }
            doc |= _terms_fields(new.terms)
            doc |= {field: getattr(new, name) for name, field in _SEAT_FIELDS.items()}
            try:
                await collection.insert_one(doc, session=session)
            except DuplicateKeyError:
                raise ConcurrentChange(f"seminar {seminar_id} created concurrently") from None
            self._remember(uow, seminar_id, new)
            return
        query: dict[str, Any] = {
            "_id": seminar_id,
            "status": old.status.value,
            "capacity": old.capacity,
        }
        increments: dict[str, int] = {}
        for name, field in _SEAT_FIELDS.items():
            before, after = getattr(old, name), getattr(new, name)
            # A counter read as 0 may be absent: books written before it existed.
            query[field] = before if before else {"$in": [0, None]}
            if after != before:
                increments[field] = after - before
        taken = new.taken - old.taken
        if taken > 0:
            # The seat is taken by the database's own check, not by trusting the read
            # (offered_count is pinned to old.offered above).
            query["confirmed_count"] = {
                "$eq": old.confirmed,
                "$lte": new.capacity - old.offered - taken,
            }
        update: dict[str, Any] = {
            "$set": {"status": new.status.value, "capacity": new.capacity, "updated_at": now}
        }
        if new.terms != old.terms:
            update["$set"] |= _terms_fields(new.terms)
        if increments:
            update["$inc"] = increments
        result = await collection.update_one(query, update, session=session)
        if result.matched_count != 1:
            raise ConcurrentChange(f"seat book of {seminar_id} moved")
        self._remember(uow, seminar_id, new)

    def _remember(self, uow: UnitOfWork, seminar_id: str, book: Seats) -> None:
        held = uow.cache(self._claimed)
        if seminar_id in held:
            held[seminar_id] = book


class RegistrationRepository(Repository):
    """Registrations (``_id`` = ``registration_id(seminar, participant)``), with the
    participant's personal data (name, e-mail), which never leaves this service."""

    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        REGISTRATIONS: [
            # The per-participant view and erasure (participant id first). Not unique:
            # `_id` is the hash of (seminar, participant), which already makes one
            # registration per pair, and a unique index costs the embedded database a
            # third more per insert (benchmarks/README).
            IndexModel(
                [("participant_id", ASCENDING), ("seminar_id", ASCENDING)],
                name="by_participant_and_seminar",
            ),
            # The queue (head first) and the per-status listings.
            IndexModel(
                [("seminar_id", ASCENDING), ("status", ASCENDING), ("waitlist_seq", ASCENDING)]
            ),
        ]
    }
    retired_indexes: ClassVar[dict[str, Sequence[str]]] = {
        REGISTRATIONS: ["one_registration_per_participant_and_seminar"]
    }

    async def get(
        self, registration_id: str, *, session: AsyncClientSession | None = None
    ) -> Document | None:
        return await self.collection(REGISTRATIONS).find_one(
            {"_id": registration_id}, session=session
        )

    async def get_many(
        self, registration_ids: Iterable[str], *, session: AsyncClientSession
    ) -> dict[str, Document]:
        ids = list(dict.fromkeys(registration_ids))
        if not ids:
            return {}
        if len(ids) == 1:
            one = await self.get(ids[0], session=session)
            return {ids[0]: one} if one else {}
        cursor = self.collection(REGISTRATIONS).find({"_id": {"$in": ids}}, session=session)
        return {doc["_id"]: doc async for doc in cursor}

    async def insert_many(self, docs: Sequence[Document], *, session: AsyncClientSession) -> None:
        if not docs:
            return
        try:
            await self.collection(REGISTRATIONS).insert_many(
                list(docs), ordered=True, session=session
            )
        except DuplicateKeyError:
            raise ConcurrentChange("registration created concurrently") from None

    async def update_many_versions(
        self,
        changes: Sequence[tuple[str, int, Mapping[str, Any]]],
        *,
        session: AsyncClientSession,
        unset: Sequence[str] = (),
    ) -> None:
        """Apply ``(id, expected_version, fields)`` changes, each only if the
        registration still has ``expected_version`` (it becomes ``expected + 1``)."""
        if not changes:
            return
        unset_doc = dict.fromkeys(unset, "")
        operations = [
            UpdateOne(
                {"_id": reg_id, "version": version},
                {"$set": {**fields, "version": version + 1}}
                | ({"$unset": unset_doc} if unset_doc else {}),
            )
            for reg_id, version, fields in changes
        ]
        result = await self.collection(REGISTRATIONS).bulk_write(
            operations, ordered=True, session=session
        )
        if result.matched_count != len(operations):
            raise ConcurrentChange("registration changed concurrently")

    async def set_quietly(
        self,
        changes: Sequence[tuple[str, int, Mapping[str, Any]]],
        *,
        session: AsyncClientSession,
    ) -> None:
        """Set ``(id, expected_version, fields)``, each only if the registration still
        has ``expected_version``, which stays: for what no event announces (the time of
        its latest request, the time of a later cancellation of a cancelled one)."""
        if not changes:
            return
        operations = [
            UpdateOne({"_id": reg_id, "version": version}, {"$set": dict(fields)})
            for reg_id, version, fields in changes
        ]
        result = await self.collection(REGISTRATIONS).bulk_write(
            operations, ordered=True, session=session
        )
        if result.matched_count != len(operations):
            raise ConcurrentChange("registration changed concurrently")

    async def waitlist_head(
        self, seminar_id: str, *, limit: int, session: AsyncClientSession
    ) -> list[Document]:
        if limit <= 0:
            return []
        cursor = (
            self.collection(REGISTRATIONS)
            .find(
                {"seminar_id": seminar_id, "status": RegistrationStatus.WAITLISTED.value},
                session=session,
            )
            .sort("waitlist_seq", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def waitlist_positions(
        self, seminar_id: str, seqs: Iterable[int], *, session: AsyncClientSession | None = None
    ) -> dict[int, int]:
        """The place in the queue (1 = promoted next) of each waitlist sequence number
        in ``seqs``, as the queue stands now: one count of those waiting ahead of the
        first, served by the (seminar_id, status, waitlist_seq) index, and one read of
        the sequence numbers from it to the last (index-only when they are few)."""
        wanted = sorted(set(seqs))
        if not wanted:
            return {}
        waiting = {"seminar_id": seminar_id, "status": RegistrationStatus.WAITLISTED.value}
        collection = self.collection(REGISTRATIONS)
        ahead = await collection.count_documents(
            {**waiting, "waitlist_seq": {"$lt": wanted[0]}}, session=session
        )
        if len(wanted) == 1:
            return {wanted[0]: ahead + 1}
        cursor = collection.find(
            {**waiting, "waitlist_seq": {"$gte": wanted[0], "$lte": wanted[-1]}},
            {"_id": 0, "waitlist_seq": 1},
            session=session,
        ).sort("waitlist_seq", ASCENDING)
        positions: dict[int, int] = {}
        place = ahead
        async for doc in cursor:
            place += 1
            positions[int(doc["waitlist_seq"])] = place
        return {seq: positions[seq] for seq in wanted if seq in positions}

    async def offered_newest_first(
        self, seminar_id: str, *, limit: int, session: AsyncClientSession
    ) -> list[Document]:
        """Outstanding offers, the one furthest back in the queue first (the first to
        go back to it when the capacity shrinks)."""
        if limit <= 0:
            return []
        cursor = (
            self.collection(REGISTRATIONS)
            .find(
                {"seminar_id": seminar_id, "status": RegistrationStatus.OFFERED.value},
                session=session,
            )
            .sort("waitlist_seq", DESCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def active_of_seminar(
        self, seminar_id: str, *, session: AsyncClientSession
    ) -> list[Document]:
        docs: list[Document] = []
        for status in (
            RegistrationStatus.CONFIRMED,
            RegistrationStatus.WAITLISTED,
            RegistrationStatus.OFFERED,
        ):
            cursor = self.collection(REGISTRATIONS).find(
                {"seminar_id": seminar_id, "status": status.value}, session=session
            )
            docs.extend(await cursor.to_list())
        return docs

    async def of_seminar(
        self,
        seminar_id: str,
        *,
        status: RegistrationStatus | None,
        limit: int,
        offset: int,
    ) -> list[Document]:
        query: dict[str, Any] = {"seminar_id": seminar_id}
        if status is not None:
            query["status"] = status.value
        cursor = (
            self.collection(REGISTRATIONS)
            .find(query)
            .sort([("status", ASCENDING), ("waitlist_seq", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return await cursor.to_list()

    async def of_participant(self, participant_id: str, *, limit: int) -> list[Document]:
        cursor = (
            self.collection(REGISTRATIONS).find({"participant_id": participant_id}).limit(limit)
        )
        return await cursor.to_list()

    async def anonymise(
        self, participant_id: str, *, pseudonym: str, now: datetime, session: AsyncClientSession
    ) -> list[Document]:
        """Replace the participant id by its pseudonym and drop name and e-mail, in every
        registration of the person; each changed registration's version goes up by one.
        Returns the registrations as they were. Idempotent: a second call finds none."""
        docs = await (
            self.collection(REGISTRATIONS)
            .find({"participant_id": participant_id}, session=session)
            .to_list()
        )
        await self.update_many_versions(
            [
                (doc["_id"], int(doc["version"]), {"participant_id": pseudonym, "erased_at": now})
                for doc in docs
            ],
            unset=("display_name", "email"),
            session=session,
        )
        return docs


class ParkedRequestRepository(Repository):
    """Requests for seminars not known yet (``_id`` = the registration id they would
    get), in arrival order (``seq`` per seminar)."""

    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        PARKED: [
            IndexModel([("seminar_id", ASCENDING), ("seq", ASCENDING)]),
            IndexModel([("participant.id", ASCENDING)]),
        ]
    }

    async def get_many(
        self, ids: Iterable[str], *, session: AsyncClientSession | None = None
    ) -> dict[str, Document]:
        found = await find_by_ids(self.collection(PARKED), ids, session=session)
        return {doc["_id"]: doc for doc in found}

    async def insert_many(self, docs: Sequence[Document], *, session: AsyncClientSession) -> None:
        if not docs:
            return
        try:
            await self.collection(PARKED).insert_many(list(docs), ordered=True, session=session)
        except DuplicateKeyError:
            raise ConcurrentChange("request parked concurrently") from None

    async def of_seminar(self, seminar_id: str, *, session: AsyncClientSession) -> list[Document]:
        cursor = (
            self.collection(PARKED)
            .find({"seminar_id": seminar_id}, session=session)
            .sort("seq", ASCENDING)
        )
        return await cursor.to_list()

    async def delete(self, ids: Sequence[str], *, session: AsyncClientSession) -> None:
        if ids:
            await self.collection(PARKED).delete_many({"_id": {"$in": list(ids)}}, session=session)

    async def delete_of_participant(
        self, participant_id: str, *, session: AsyncClientSession
    ) -> int:
        result = await self.collection(PARKED).delete_many(
            {"participant.id": participant_id}, session=session
        )
        return result.deleted_count


class PendingCancellationRepository(Repository):
    """Cancellations that arrived before the registration they cancel (``_id`` = the
    registration id), one per registration: the latest by the cancellation's ``time``.

    Lookups by ``_id`` (deciding requests, keeping a cancellation) need no index; the
    two below back the only other queries."""

    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        PENDING_CANCELLATIONS: [
            # delete_of_seminar: a cancelled or completed seminar drops its own.
            IndexModel([("seminar_id", ASCENDING)], name="by_seminar"),
            # delete_of_participant: erasure.
            IndexModel([("participant_id", ASCENDING)], name="by_participant"),
        ]
    }

    async def get_many(
        self, ids: Iterable[str], *, session: AsyncClientSession | None = None
    ) -> dict[str, Document]:
        found = await find_by_ids(self.collection(PENDING_CANCELLATIONS), ids, session=session)
        return {doc["_id"]: doc for doc in found}

    async def put(
        self, doc: Document, *, replacing: Document | None, session: AsyncClientSession
    ) -> None:
        """Keep ``doc``: a new one, or in place of ``replacing`` (as it was read; a
        concurrent change of it is a ``ConcurrentChange``)."""
        collection = self.collection(PENDING_CANCELLATIONS)
        if replacing is None:
            try:
                await collection.insert_one(doc, session=session)
            except DuplicateKeyError:
                raise ConcurrentChange("cancellation kept concurrently") from None
            return
        result = await collection.replace_one(
            {"_id": doc["_id"], "event_id": replacing.get("event_id")}, doc, session=session
        )
        if result.matched_count != 1:
            raise ConcurrentChange("kept cancellation changed concurrently")

    async def delete(self, ids: Sequence[str], *, session: AsyncClientSession) -> int:
        if not ids:
            return 0
        result = await self.collection(PENDING_CANCELLATIONS).delete_many(
            {"_id": {"$in": list(ids)}}, session=session
        )
        return result.deleted_count

    async def delete_of_seminar(self, seminar_id: str, *, session: AsyncClientSession) -> int:
        result = await self.collection(PENDING_CANCELLATIONS).delete_many(
            {"seminar_id": seminar_id}, session=session
        )
        return result.deleted_count

    async def delete_of_participant(
        self, participant_id: str, *, session: AsyncClientSession
    ) -> list[str]:
        """Drop the person's kept cancellations; returns their ids."""
        collection = self.collection(PENDING_CANCELLATIONS)
        ids = [
            doc["_id"]
            async for doc in collection.find(
                {"participant_id": participant_id}, {"_id": 1}, session=session
            )
        ]
        await self.delete(ids, session=session)
        return ids
