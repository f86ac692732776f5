"""What one insert costs the database, by the indexes of its collection.

The cost model behind the benchmark's reading (README, Benchmarks): the embedded
SecantusDB maintains every secondary index in Python, so a document costs roughly a
fixed amount plus a share per index, more for a unique one. Inserts go in transactions
of 500, as the services write a batch.

    .venv/bin/python benchmarks/database_costs.py [--documents N]

Against ``MONGODB_URI`` when set, otherwise an embedded SecantusDB started for the run
(its CPU time per document is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel

from seminarops_devtools.processes import free_port, start_mongo

BATCH = 500
BY_PARTICIPANT = [("participant_id", ASCENDING), ("seminar_id", ASCENDING)]
WAITLIST = [("seminar_id", ASCENDING), ("status", ASCENDING), ("waitlist_seq", ASCENDING)]
VARIANTS: dict[str, list[IndexModel]] = {
    "_id only": [],
    "1 index": [IndexModel(BY_PARTICIPANT)],
    "1 unique index": [IndexModel(BY_PARTICIPANT, unique=True)],
    "2 indexes": [IndexModel(BY_PARTICIPANT), IndexModel(WAITLIST)],
    "2 indexes, 1 unique": [IndexModel(BY_PARTICIPANT, unique=True), IndexModel(WAITLIST)],
}


def document(n: int) -> dict[str, Any]:
    """About the shape of a registration."""
    return {
        "_id": f"reg-{n:08d}",
        "seminar_id": "sem-costs",
        "participant_id": f"teacher-{n:08d}",
        "status": "confirmed",
        "waitlist_seq": None,
        "version": 1,
        "country": "FR",
        "school_id": f"school-{n % 977}",
        "display_name": f"Teacher {n}",
        "email": f"teacher-{n}@school.example",
    }


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(uri: str, pid: int | None, documents: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, w="majority")
    db = client[f"costs_{os.getpid()}"]
    try:
        print(f"{'collection':<22} {'wall µs/doc':>12} {'database CPU µs/doc':>20}")
        for name, indexes in VARIANTS.items():
            await db.drop_collection("docs")
            await db.create_collection("docs")
            if indexes:
                await db["docs"].create_indexes(indexes)
            cpu_before = cpu_seconds(pid)
            started = time.perf_counter()
            for first in range(0, documents, BATCH):
                batch = [document(n) for n in range(first, min(documents, first + BATCH))]
                async with client.start_session() as session, await session.start_transaction():
                    await db["docs"].insert_many(batch, session=session)
            wall = (time.perf_counter() - started) / documents * 1e6
            cpu_after = cpu_seconds(pid)
            cpu = (
                f"{(cpu_after - cpu_before) / documents * 1e6:20.0f}"
                if cpu_before is not None and cpu_after is not None
                else f"{'-':>20}"
            )
            print(f"{name:<22} {wall:12.0f} {cpu}")
    finally:
        await client.drop_database(db.name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=5_000)
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI")
    if uri:
        asyncio.run(measure(uri, None, args.documents))
        return
    with tempfile.TemporaryDirectory(prefix="seminarops-costs-") as workdir:
        server = start_mongo(
            port=free_port(),
            storage_path=Path(workdir) / "data",
            log_path=Path(workdir) / "mongodb.log",
            detached=False,
        )
        with server:
            asyncio.run(measure(server.address, server.pid, args.documents))


if __name__ == "__main__":
    main()
