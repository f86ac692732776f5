"""Indexes of a projection set: those no query uses any more are dropped from a set an
earlier version built; the ones the queries need are created."""

from __future__ import annotations

import pytest
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from metrics.repository import Projections, ProjectionSet
from seminarops_devtools.testing.stack import Namespace
from seminarops_shared.mongo import Document, Mongo

pytestmark = pytest.mark.integration


async def test_retired_indexes_are_dropped_and_the_needed_ones_created(
    namespace: Namespace,
) -> None:
    mongo = Mongo(namespace.mongo(), f"{namespace.prefix}_metrics_indexes")
    try:
        projections = Projections.of(mongo.db, ProjectionSet())
        # As earlier versions left them: a seminar index on registrations and
        # evaluations (format 1), the participant indexes and the participations'
        # (seminar, participant) key (format 2).
        for collection in (projections.registrations, projections.evaluations):
            await collection.collection.create_index([("seminar_id", ASCENDING)])
        for collection in (projections.registrations, projections.participations):
            await collection.collection.create_index([("participant_id", ASCENDING)])
        await projections.participations.collection.create_index(
            [("seminar_id", ASCENDING), ("participant_id", ASCENDING)], unique=True
        )

        await projections.ensure_indexes()
        await projections.ensure_indexes()  # and again: nothing left to drop

        async def names(collection: AsyncCollection[Document]) -> set[str]:
            return {i["name"] async for i in await collection.list_indexes()}

        # Registrations: one document per person and seminar, read by `_id` only.
        assert await names(projections.registrations.collection) == {"_id_"}
        # Participations: attendees only, aggregated by year, regrouped by seminar.
        assert await names(projections.participations.collection) == {
            "_id_",
            "year_1_kind_1_programme_1",
            "seminar_id_1",
        }
        # Evaluations: the erasure still rewrites their participant id.
        evaluations = await names(projections.evaluations.collection)
        assert "seminar_id_1" not in evaluations
        assert "participant_id_1" in evaluations
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()
