"""In-memory fakes of the registration service's repositories, scheduler and unit of
work, for handler tests without a database."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from registration.domain import Seats
from registration.handlers import RegistrationService
from seminarops_shared.events import Event
from seminarops_shared.mongo import ConcurrentChange
from seminarops_shared.privacy import pseudonym

Doc = dict[str, Any]


class FakeSeminars:
    def __init__(self) -> None:
        self.books: dict[str, Seats] = {}

    async def claim(self, uow: object, ids: Iterable[str]) -> dict[str, Seats]:
        return {i: self.books[i] for i in ids if i in self.books}

    async def get(self, seminar_id: str, *, uow: object = None) -> Seats | None:
        return self.books.get(seminar_id)

    async def get_many(self, ids: Iterable[str], *, uow: object = None) -> dict[str, Seats]:
        return await self.claim(uow, ids)

    async def save(
        self, seminar_id: str, *, old: Seats | None, new: Seats, now: datetime, uow: object
    ) -> None:
        if self.books.get(seminar_id) != old:
            raise ConcurrentChange(seminar_id)
        assert new.confirmed <= max(new.capacity, old.confirmed if old else 0)
        self.books[seminar_id] = new


class FakeRegistrations:
    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    async def get(self, reg_id: str, *, session: object = None) -> Doc | None:
        return copy.deepcopy(self.docs.get(reg_id))

    async def get_many(self, ids: Iterable[str], *, session: object = None) -> dict[str, Doc]:
        return {i: copy.deepcopy(self.docs[i]) for i in ids if i in self.docs}

    async def insert_many(self, docs: Sequence[Doc], *, session: object) -> None:
        for doc in docs:
            assert doc["_id"] not in self.docs
            assert not any(
                (d["seminar_id"], d["participant_id"]) == (doc["seminar_id"], doc["participant_id"])
                for d in self.docs.values()
            )
            self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def update_many_versions(
        self,
        changes: Sequence[tuple[str, int, Mapping[str, Any]]],
        *,
        session: object,
        unset: Sequence[str] = (),
    ) -> None:
        for reg_id, version, fields in changes:
            doc = self.docs[reg_id]
            if doc["version"] != version:
                raise ConcurrentChange(reg_id)
            doc.update(fields)
            doc["version"] = version + 1
            for name in unset:
                doc.pop(name, None)

    async def set_quietly(
        self, changes: Sequence[tuple[str, int, Mapping[str, Any]]], *, session: object
    ) -> None:
        for reg_id, version, fields in changes:
            doc = self.docs[reg_id]
            if doc["version"] != version:
                raise ConcurrentChange(reg_id)
            doc.update(copy.deepcopy(dict(fields)))

    async def waitlist_head(self, seminar_id: str, *, limit: int, session: object) -> list[Doc]:
        waiting = [
            d
            for d in self.docs.values()
            if d["seminar_id"] == seminar_id and d["status"] == "waitlisted"
        ]
        return copy.deepcopy(sorted(waiting, key=lambda d: d["waitlist_seq"])[:limit])

    async def active_of_seminar(self, seminar_id: str, *, session: object) -> list[Doc]:
        return copy.deepcopy(
            [
                d
                for d in self.docs.values()
                if d["seminar_id"] == seminar_id and d["status"] in {"confirmed", "waitlisted"}
            ]
        )

    async def anonymise(
        self, participant_id: str, *, pseudonym: str, now: datetime, session: object
    ) -> list[Doc]:
        mine = [d for d in self.docs.values() if d["participant_id"] == participant_id]
        before = copy.deepcopy(mine)
        for doc in mine:
            doc.update(participant_id=pseudonym, erased_at=now, version=doc["version"] + 1)
            doc.pop("email", None)
            doc.pop("display_name", None)
        return before

    def of(self, seminar_id: str) -> dict[str, Doc]:
        return {d["participant_id"]: d for d in self.docs.values() if d["seminar_id"] == seminar_id}


class FakeParked:
    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    async def get_many(self, ids: Iterable[str], *, session: object = None) -> dict[str, Doc]:
        return {i: copy.deepcopy(self.docs[i]) for i in ids if i in self.docs}

    async def insert_many(self, docs: Sequence[Doc], *, session: object) -> None:
        for doc in docs:
            assert doc["_id"] not in self.docs
            self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def of_seminar(self, seminar_id: str, *, session: object) -> list[Doc]:
        mine = [d for d in self.docs.values() if d["seminar_id"] == seminar_id]
        return copy.deepcopy(sorted(mine, key=lambda d: d["seq"]))

    async def delete(self, ids: Sequence[str], *, session: object) -> None:
        for i in ids:
            self.docs.pop(i, None)

    async def delete_of_participant(self, participant_id: str, *, session: object) -> int:
        mine = [i for i, d in self.docs.items() if d["participant"]["id"] == participant_id]
        await self.delete(mine, session=session)
        return len(mine)


class FakeCancellations:
    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    async def get_many(self, ids: Iterable[str], *, session: object = None) -> dict[str, Doc]:
        return {i: copy.deepcopy(self.docs[i]) for i in ids if i in self.docs}

    async def put(self, doc: Doc, *, replacing: Doc | None, session: object) -> None:
        current = self.docs.get(doc["_id"])
        if (current is None) != (replacing is None) or (
            current is not None
            and replacing is not None
            and current["event_id"] != replacing["event_id"]
        ):
            raise ConcurrentChange(doc["_id"])
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def delete(self, ids: Sequence[str], *, session: object) -> int:
        return sum(self.docs.pop(i, None) is not None for i in ids)

    async def delete_of_seminar(self, seminar_id: str, *, session: object) -> int:
        mine = [i for i, d in self.docs.items() if d["seminar_id"] == seminar_id]
        return await self.delete(mine, session=session)

    async def delete_of_participant(self, participant_id: str, *, session: object) -> list[str]:
        mine = [i for i, d in self.docs.items() if d["participant_id"] == participant_id]
        await self.delete(mine, session=session)
        return mine


@dataclass
class FakeScheduler:
    jobs: dict[str, Doc] = field(default_factory=dict)

    async def schedule(
        self,
        uow: object,
        *,
        job_id: str,
        kind: str,
        group: str,
        due_at: datetime,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        self.jobs[job_id] = {
            "kind": kind,
            "group": group,
            "due_at": due_at,
            "payload": dict(payload or {}),
        }

    async def cancel(self, uow: object, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.jobs.pop(job_id, None)

    async def cancel_group(self, uow: object, group: str, *, kind: str | None = None) -> None:
        for job_id in [
            j
            for j, d in self.jobs.items()
            if d["group"] == group and (kind is None or d["kind"] == kind)
        ]:
            del self.jobs[job_id]


class FakeUnitOfWork:
    def __init__(self, now: datetime) -> None:
        self.session = None
        self.now = now
        self.emitted: list[Event] = []

    def emit(self, data: Event) -> None:
        self.emitted.append(data)


@dataclass
class World:
    seminars: FakeSeminars
    registrations: FakeRegistrations
    parked: FakeParked
    cancellations: FakeCancellations
    scheduler: FakeScheduler
    service: RegistrationService
    now: datetime

    def uow(self, *, later: timedelta = timedelta()) -> Any:
        return FakeUnitOfWork(self.now + later)


@pytest.fixture
def world() -> World:
    return make_world()


def make_world() -> World:
    seminars, registrations, parked = FakeSeminars(), FakeRegistrations(), FakeParked()
    cancellations = FakeCancellations()
    scheduler = FakeScheduler()
    service = RegistrationService(
        seminars=seminars,  # type: ignore[arg-type]
        registrations=registrations,  # type: ignore[arg-type]
        parked=parked,  # type: ignore[arg-type]
        cancellations=cancellations,  # type: ignore[arg-type]
        scheduler=scheduler,  # type: ignore[arg-type]
        park_timeout=timedelta(hours=1),
        cancellation_lifetime=timedelta(days=7),
        pseudonym=lambda pid: pseudonym(pid, key=b"unit-test-pseudonym-key"),
    )
    return World(
        seminars,
        registrations,
        parked,
        cancellations,
        scheduler,
        service,
        datetime(2026, 3, 1, tzinfo=UTC),
    )
