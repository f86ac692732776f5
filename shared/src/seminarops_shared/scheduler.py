"""Durable timers: jobs kept in the service's own database and run once each when due.

Reminders, evaluation windows and parked requests all need "do this at that time, once,
even if the service restarts in between". A job has a stable id (scheduling it again
moves it), a ``group`` (e.g. the seminar id, so all of a seminar's jobs can be
cancelled at once), a ``kind`` naming its handler, and a payload.

Running a job: a replica leases it (an atomic conditional update), then runs the
handler and deletes the job in ONE transaction, the delete conditional on its own lease;
so the job's effect and its disappearance commit together, and a job whose lease
expired and was taken over by another replica cannot take effect twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from .clock import Clock
from .mongo import Document
from .unit_of_work import UnitOfWork, UnitOfWorkFactory

SCHEDULED_JOBS = "scheduled_jobs"
_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    group: str
    due_at: datetime
    payload: Mapping[str, Any]


JobHandler = Callable[[Job, UnitOfWork], Awaitable[None]]


def _free_and_due(now: datetime) -> dict[str, Any]:
    """Jobs due by ``now`` that no replica holds a live lease on."""
    return {
        "due_at": {"$lte": now},
        "$or": [{"lease_until": {"$exists": False}}, {"lease_until": {"$lte": now}}],
    }


class LeaseLost(Exception):
    """Another replica took the job over while this one was running it."""


class Scheduler:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        poll_interval_s: float = 1.0,
        lease_s: float = 60.0,
        batch: int = 200,
    ) -> None:
        self._jobs = db[SCHEDULED_JOBS]
        self._uow = uow
        self._clock = clock
        self._handlers: dict[str, JobHandler] = {}
        self._poll_interval_s = poll_interval_s
        self._lease = timedelta(seconds=lease_s)
        self._batch = batch
        self._owner = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    def on(self, kind: str, handler: JobHandler) -> None:
        self._handlers[kind] = handler

    async def ensure_indexes(self) -> None:
        await self._jobs.create_indexes([IndexModel([("due_at", ASCENDING)]), IndexModel("group")])

    # ---- inside a unit of work ----------------------------------------------------------

    async def schedule(
        self,
        uow: UnitOfWork,
        *,
        job_id: str,
        kind: str,
        group: str,
        due_at: datetime,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the job, or move it if it exists (idempotent per ``job_id``)."""
        await self.schedule_many(
            uow, [Job(id=job_id, kind=kind, group=group, due_at=due_at, payload=payload or {})]
        )

    async def schedule_many(self, uow: UnitOfWork, jobs: Iterable[Job]) -> None:
        """Create or move each job (idempotent per job id), in one round trip however
        many there are. Scheduling a job again clears its lease: it is a new plan."""
        writes = [
            UpdateOne(
                {"_id": job.id},
                {
                    "$set": {
                        "kind": job.kind,
                        "group": job.group,
                        "due_at": job.due_at,
                        "payload": dict(job.payload),
                    },
                    "$unset": {"lease_owner": "", "lease_until": ""},
                },
                upsert=True,
            )
            for job in jobs
        ]
        if not writes:
            return
        await self._jobs.bulk_write(writes, session=uow.session)
        self._wakeup.set()

    async def cancel(self, uow: UnitOfWork, job_ids: Iterable[str]) -> None:
        await self._jobs.delete_many({"_id": {"$in": list(job_ids)}}, session=uow.session)

    async def cancel_group(self, uow: UnitOfWork, group: str, *, kind: str | None = None) -> None:
        query: dict[str, Any] = {"group": group}
        if kind is not None:
            query["kind"] = kind
        await self._jobs.delete_many(query, session=uow.session)

    async def pending(self, group: str) -> list[Job]:
        return [
            _job(doc) async for doc in self._jobs.find({"group": group}).sort("due_at", ASCENDING)
        ]

    # ---- running ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run_due(self) -> int:
        """Run every job due now; returns how many took effect here."""
        ran = 0
        while True:
            now = self._clock()
            # Leased jobs (failing ones wait out their lease) are left out by the query
            # itself: a full batch of them must not hide the free jobs due after them.
            due = (
                await self._jobs.find(_free_and_due(now), {"_id": 1})
                .sort("due_at", ASCENDING)
                .limit(self._batch)
                .to_list()
            )
            for doc in due:
                ran += await self._run_one(doc["_id"], now)
            if len(due) < self._batch:
                return ran

    async def _run_one(self, job_id: str, now: datetime) -> int:
        leased = await self._jobs.find_one_and_update(
            {"_id": job_id, **_free_and_due(now)},
            {"$set": {"lease_owner": self._owner, "lease_until": now + self._lease}},
            return_document=True,
        )
        if leased is None:
            return 0  # another replica has it, or it moved
        job = _job(leased)
        handler = self._handlers.get(job.kind)

        async def work(uow: UnitOfWork) -> None:
            if handler is not None:
                await handler(job, uow)
            else:
                _log.error(
                    "no handler for scheduled job; dropping it", kind=job.kind, job_id=job.id
                )
            deleted = await self._jobs.delete_one(
                {"_id": job.id, "lease_owner": self._owner}, session=uow.session
            )
            if deleted.deleted_count != 1:
                raise LeaseLost(job.id)

        try:
            await self._uow.run(work)
        except LeaseLost:
            return 0
        except Exception:
            # Left leased: it is retried when the lease runs out, not in a hot loop.
            _log.exception("scheduled job failed; will retry after its lease", job_id=job.id)
            return 0
        return 1

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
            self._wakeup.clear()
            try:
                await self.run_due()
            except Exception as error:
                _log.warning("scheduler poll failed", error=repr(error))


def _job(doc: Document) -> Job:
    return Job(
        id=doc["_id"],
        kind=doc["kind"],
        group=doc["group"],
        due_at=doc["due_at"],
        payload=doc.get("payload", {}),
    )
