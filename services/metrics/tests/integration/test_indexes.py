"""Indexes of a projection set: those no query uses any more are dropped from a set an
earlier version built; the erasure's participant index stays."""

from __future__ import annotations

import pytest
from pymongo import ASCENDING

from metrics.repository import Projections, ProjectionSet
from seminarops_devtools.testing.stack import Namespace
from seminarops_shared.mongo import Mongo

pytestmark = pytest.mark.integration


async def test_retired_seminar_indexes_are_dropped_and_the_needed_ones_created(
    namespace: Namespace,
) -> None:
    mongo = Mongo(namespace.mongo(), f"{namespace.prefix}_metrics_indexes")
    try:
        projections = Projections.of(mongo.db, ProjectionSet())
        # As an earlier version left them: a seminar index on both collections.
        for collection in (projections.registrations, projections.evaluations):
            await collection.collection.create_index([("seminar_id", ASCENDING)])

        await projections.ensure_indexes()
        await projections.ensure_indexes()  # and again: nothing left to drop

        for collection in (projections.registrations, projections.evaluations):
            names = {i["name"] async for i in await collection.collection.list_indexes()}
            assert "seminar_id_1" not in names
            assert "participant_id_1" in names
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()
