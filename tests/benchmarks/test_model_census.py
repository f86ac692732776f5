"""The model baseline written into a database that keeps an oplog, counted by the
census: the census must find exactly the table's writes, transactions and indexes
(the check ``make bench`` runs against the services' census), and name a difference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from model_baseline import MODEL, compare, run_model
from pymongo import AsyncMongoClient
from write_census import database_with_oplog, oplog_marker, take_census, top_counts

from seminarops_devtools.processes import EmbeddedServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def oplog_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with database_with_oplog(Path(tmp_path_factory.mktemp("census"))) as server:
        yield server


async def _census_of_model(uri: str, *, events: int, sizes: dict[str, int]) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        since = await oplog_marker(client)
        top_before = await top_counts(client)
        result = await run_model(
            uri,
            events=events,
            events_per_transaction=sizes,
            cpu_seconds=lambda: None,
            keep_databases=True,
        )
        census = await take_census(
            client,
            databases={m.service: f"{result['prefix']}_{m.service}" for m in MODEL},
            events=events,
            since=since,
            top_before=top_before,
        )
        for model in MODEL:
            await client.drop_database(f"{result['prefix']}_{model.service}")
        return {"result": result, "census": census}
    finally:
        await client.close()


async def test_the_census_counts_exactly_what_the_model_writes(
    oplog_database: EmbeddedServer,
) -> None:
    found = await _census_of_model(
        oplog_database.address, events=60, sizes={"registration": 25, "metrics": 20}
    )
    census, result = found["census"], found["result"]

    assert result["transactions"] == {"registration": 3, "metrics": 3}
    assert census.transactions == {"registration": 3, "metrics": 3}
    assert census.events_per_transaction == {"registration": 20.0, "metrics": 20.0}
    assert census.per_event("registration", "registrations", "inserts") == 1.0
    assert census.per_event("metrics", "registrations", "inserts") == 1.0
    # Projection format 3: one person document per event and no secondary index.
    assert census.collections[("metrics", "registrations")].index_entries == 60
    outbox = census.collections[("registration", "outbox")]
    # One outbox document per transaction, deleted after it (outside the transaction).
    assert outbox.writes == {"inserts": 3, "deletes": 3}
    assert outbox.in_transactions == {"inserts": 3}
    # Two secondary indexes and _id: three entries per inserted registration; the seat
    # book (no secondary index) updated twice per transaction touches none.
    assert census.collections[("registration", "registrations")].index_entries == 180
    # (and the seat book made once, before the loop)
    assert census.collections[("registration", "seminars")].writes == {"inserts": 1, "updates": 6}
    assert census.collections[("registration", "seminars")].index_entries == 1  # its _id
    assert compare(census.as_json()) == []
    assert "registration.registrations" in census.table()


def test_compare_names_an_index_and_a_collection_the_table_does_not_know() -> None:
    census = {
        "events": 100,
        "transactions": {"registration": 1, "metrics": 1},
        "collections": {
            "registration.registrations": {
                "index_keys": [["_id"], ["participant_id", "seminar_id"]],
                "inserts": 100,
            },
            "registration.seminars": {"index_keys": [["_id"]], "updates": 2},
            "registration.outbox": {
                "index_keys": [["_id"], ["owner", "seq"], ["created_at"]],
                "inserts": 1,
                "deletes": 1,
            },
            "registration.processed_events": {"index_keys": [["_id"]], "inserts": 100},
            "metrics.registrations": {"index_keys": [["_id"]], "inserts": 50},
            "metrics.tallies": {"index_keys": [["_id"]], "updates": 1},
        },
    }

    problems = compare(census)

    assert len(problems) == 3, problems
    assert any(
        p.startswith("registration.registrations: indexes") and "waitlist_seq" in p
        for p in problems
    )
    assert any(p.startswith("registration.processed_events: 100 writes") for p in problems)
    assert any(p.startswith("metrics.registrations: 50 inserts measured, 100") for p in problems)
