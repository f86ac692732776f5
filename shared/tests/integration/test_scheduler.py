"""The durable job scheduler against the real database: jobs that keep failing wait
out their lease without holding back the jobs due after them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from seminarops_devtools.testing.stack import Namespace
from seminarops_shared.clock import utc_now
from seminarops_shared.idempotency import ProcessedEvents
from seminarops_shared.mongo import Mongo
from seminarops_shared.outbox import Outbox
from seminarops_shared.scheduler import Job, Scheduler
from seminarops_shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

pytestmark = pytest.mark.integration


async def test_a_batch_of_failing_jobs_does_not_hold_back_the_jobs_due_after_them(
    namespace: Namespace,
) -> None:
    mongo = Mongo(namespace.mongo(), f"{namespace.prefix}_scheduler")
    uow = UnitOfWorkFactory(
        mongo=mongo,
        outbox=Outbox(mongo.db),
        processed=ProcessedEvents(mongo.db),
        source="/services/scheduler-test",
        clock=utc_now,
    )
    scheduler = Scheduler(mongo.db, uow=uow, clock=utc_now, batch=2, lease_s=300)
    ran: list[str] = []

    async def failing(job: Job, _: UnitOfWork) -> None:
        raise RuntimeError(f"{job.id} fails")

    async def working(job: Job, _: UnitOfWork) -> None:
        ran.append(job.id)

    scheduler.on("failing", failing)
    scheduler.on("working", working)
    try:
        await scheduler.ensure_indexes()
        now = utc_now()
        # Two failing jobs fill a whole batch ahead of the one that works.
        jobs = [("f1", "failing", 3), ("f2", "failing", 2), ("w1", "working", 1)]
        async with uow.begin() as unit:
            for job_id, kind, minutes_ago in jobs:
                await scheduler.schedule(
                    unit,
                    job_id=job_id,
                    kind=kind,
                    group="g",
                    due_at=now - timedelta(minutes=minutes_ago),
                )

        assert await scheduler.run_due() == 1
        assert ran == ["w1"]
        # The failing ones stay, leased: not run again before their lease runs out.
        assert await scheduler.run_due() == 0
        remaining = sorted([d["_id"] async for d in mongo.db["scheduled_jobs"].find()])
        assert remaining == ["f1", "f2"]
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()
