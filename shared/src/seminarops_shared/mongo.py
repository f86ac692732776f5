"""MongoDB through PyMongo's async API: client lifecycle, transactions, repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from .settings import MongoSettings

Document = dict[str, Any]

# Server error codes that mean "another writer got there first; try again".
_WRITE_CONFLICT = 112


class ConcurrentChange(OperationFailure):
    """Another writer changed what this transaction read: run it again.

    Raised by repositories whose conditional write found the document moved. Carries
    the server's WriteConflict code, so every retry policy and the HTTP layer treat it
    exactly like the server's own write conflicts."""

    def __init__(self, what: str) -> None:
        super().__init__(f"concurrent change: {what}", code=_WRITE_CONFLICT)


def is_transient_database_error(error: BaseException) -> bool:
    """Errors that go away by themselves: the server is unreachable, a primary is being
    elected, or a concurrent transaction touched the same document."""
    if isinstance(error, ConnectionFailure):
        return True
    if isinstance(error, PyMongoError) and (
        error.has_error_label("TransientTransactionError")
        or error.has_error_label("UnknownTransactionCommitResult")
    ):
        return True
    return isinstance(error, OperationFailure) and error.code == _WRITE_CONFLICT


class Mongo:
    """One client per service process, opened and closed by the app's lifespan."""

    def __init__(self, settings: MongoSettings, database_name: str) -> None:
        self._settings = settings
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.uri.get_secret_value(),
            serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
            tz_aware=True,
            connect=False,
            appname=database_name,
            # Acknowledged means on a majority of the replica set (and journaled), whatever
            # the URI in the deployment's secret says: a write the primary alone has seen
            # can be rolled back when it fails over. Keyword options win over the URI.
            w="majority",
        )
        self.db: AsyncDatabase[Document] = self.client[database_name]

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncClientSession]:
        """A multi-document transaction: everything inside commits together or not at all."""
        async with self.client.start_session() as session, await session.start_transaction():
            yield session


# Ids per ``$in`` query: the embedded database matches every document found against the
# whole list (cost ~ found x listed, 3,000 ids: ~8 s), so a few lists of 100 beat one
# long one by far; on MongoDB the split costs a round trip per 100.
IN_QUERY_LIMIT = 100


async def find_by_ids(
    collection: AsyncCollection[Document],
    ids: Iterable[Any],
    *,
    session: AsyncClientSession | None = None,
) -> list[Document]:
    """The documents with these ``_id`` values: one ``$in`` query per ``IN_QUERY_LIMIT``
    ids (one query for a usual batch)."""
    wanted = sorted(set(ids))
    found: list[Document] = []
    for start in range(0, len(wanted), IN_QUERY_LIMIT):
        chunk = wanted[start : start + IN_QUERY_LIMIT]
        found.extend(await collection.find({"_id": {"$in": chunk}}, session=session).to_list())
    return found


async def drop_indexes_named(collection: AsyncCollection[Document], names: Iterable[str]) -> None:
    """Drop those of the named indexes that exist (indexes a newer version retired)."""
    existing = {index["name"] async for index in await collection.list_indexes()}
    for name in set(names) & existing:
        await collection.drop_index(name)


class Repository:
    """Base of a repository: one aggregate, its own collections, an index behind every query."""

    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {}
    # Index names an earlier version created and this one replaced: dropped by
    # ``ensure_indexes`` (an index changed in place needs a new name).
    retired_indexes: ClassVar[dict[str, Sequence[str]]] = {}

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    def collection(self, name: str) -> AsyncCollection[Document]:
        return self.db[name]

    async def ensure_indexes(self) -> None:
        for collection_name, names in self.retired_indexes.items():
            await drop_indexes_named(self.db[collection_name], names)
        for collection_name, indexes in self.indexes.items():
            if indexes:
                await self.db[collection_name].create_indexes(list(indexes))
