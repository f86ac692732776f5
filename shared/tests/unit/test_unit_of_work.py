"""The unit of work owns its repositories' per-transaction caches: one per transaction,
made on first use, gone with the transaction (a retried attempt starts afresh), and
those with a flush written at commit, in first-use order, before the outbox document."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from seminarops_shared.events.seminar import SeminarCancelled
from seminarops_shared.outbox import OUTBOX
from seminarops_shared.unit_of_work import TransactionCache, UnitOfWork, UnitOfWorkFactory

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class _OutboxDocuments:
    def __init__(self, written: list[str]) -> None:
        self._written = written

    async def insert_one(self, document: dict[str, Any], *, session: object) -> None:
        self._written.append(f"outbox:{document['count']}")


class _Transactions:
    """Stands in for ``Mongo``: a transaction is a session object, and the outbox
    collection notes what is inserted into it."""

    def __init__(self, written: list[str]) -> None:
        self.sessions: list[object] = []
        self.db = {OUTBOX: _OutboxDocuments(written)}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[object]:
        session = object()
        self.sessions.append(session)
        yield session


class _Outbox:
    owner = "this-process"

    def __init__(self) -> None:
        self.committed_documents: list[dict[str, Any]] = []

    def committed(self, documents: list[dict[str, Any]]) -> None:
        self.committed_documents.extend(documents)

    def uncertain(self) -> None:
        raise AssertionError("every commit here succeeds")


def factory(
    written: list[str], *, mongo: _Transactions | None = None, max_concurrent: int = 2
) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(
        mongo=mongo or _Transactions(written),  # type: ignore[arg-type]
        outbox=_Outbox(),  # type: ignore[arg-type]
        processed=None,  # type: ignore[arg-type]
        source="/services/test",
        clock=lambda: NOW,
        max_concurrent=max_concurrent,
    )


def test_a_cache_is_made_once_per_unit_of_work() -> None:
    books: TransactionCache[dict[str, int]] = TransactionCache(dict)
    first = UnitOfWork(session=object(), source="/services/test", clock=lambda: NOW)  # type: ignore[arg-type]
    second = UnitOfWork(session=object(), source="/services/test", clock=lambda: NOW)  # type: ignore[arg-type]

    first.cache(books)["sem-1"] = 3

    assert first.cache(books) == {"sem-1": 3}
    assert first.cache(books) is first.cache(books)
    assert second.cache(books) == {}


async def test_caches_are_flushed_at_commit_in_first_use_order_before_the_outbox() -> None:
    written: list[str] = []

    async def flush_as(name: str, held: list[str], uow: UnitOfWork) -> None:
        written.append(f"{name}:{','.join(held)}")

    registrations: TransactionCache[list[str]] = TransactionCache(
        list, flush=lambda held, uow: flush_as("registrations", held, uow)
    )
    seminars: TransactionCache[list[str]] = TransactionCache(
        list, flush=lambda held, uow: flush_as("seminars", held, uow)
    )
    unflushed: TransactionCache[list[str]] = TransactionCache(list)

    async with factory(written).begin() as uow:
        uow.cache(seminars).append("sem-1")
        uow.cache(unflushed).append("never written")
        uow.cache(registrations).append("reg-1")
        uow.emit(SeminarCancelled(seminar_id="sem-1", reason="test"))
        uow.emit(SeminarCancelled(seminar_id="sem-2", reason="test"))
        assert written == []

    # The two events in ONE outbox document, written by the unit of work itself.
    assert written == ["seminars:sem-1", "registrations:reg-1", "outbox:2"]


async def test_a_failed_attempt_flushes_nothing_and_the_next_starts_empty() -> None:
    written: list[str] = []

    async def flush(held: list[str], uow: UnitOfWork) -> None:
        written.append(",".join(held))

    documents: TransactionCache[list[str]] = TransactionCache(list, flush=flush)
    uows = factory(written)

    async def failing_attempt() -> None:
        async with uows.begin() as uow:
            uow.cache(documents).append("from the failed attempt")
            raise RuntimeError("conflict")

    with pytest.raises(RuntimeError):
        await failing_attempt()
    async with uows.begin() as uow:
        assert uow.cache(documents) == []
        uow.cache(documents).append("retried")

    assert written == ["retried"]  # nothing emitted: no outbox document


async def test_no_more_transactions_are_open_at_once_than_the_process_allows() -> None:
    transactions = _Transactions([])
    units = factory([], mongo=transactions, max_concurrent=2)
    release = asyncio.Event()
    inside: list[int] = []
    two_inside = asyncio.Event()

    async def writer(number: int) -> None:
        async with units.begin():
            inside.append(number)
            if len(inside) == 2:
                two_inside.set()
            await release.wait()

    writers = [asyncio.create_task(writer(n)) for n in range(3)]
    await two_inside.wait()
    for _ in range(10):  # let the third writer run as far as it can
        await asyncio.sleep(0)

    assert inside == [0, 1]
    assert len(transactions.sessions) == 2

    release.set()
    await asyncio.gather(*writers)

    assert inside == [0, 1, 2]
    assert len(transactions.sessions) == 3
