"""Confirmed plus offered never exceeds capacity: random interleavings of requests,
cancellations, capacity changes, accepts, declines and offer expiries, run
concurrently on two replicas against the real database (hypothesis drives them).

The replicas share one database and one clock that a step may move past the offers'
expiry; each runs the use cases as its HTTP API and its consumer do, so writers of
one seminar meet in the database's conditional updates and transactions (the
in-process turns are per replica). After every step the seat book must agree with
the registrations, and no more seats than the capacity may be confirmed or on offer
(where a capacity decrease left more confirmed than seats, no offer is outstanding).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from registration.domain import SeatTerms, registration_id
from registration.handlers import RegistrationRequest, RegistrationsOverHttp
from seminarops_devtools.testing.stack import Namespace, running
from seminarops_shared.clock import utc_now
from seminarops_shared.errors import DomainError
from seminarops_shared.events.vocabulary import Promotion
from seminarops_shared.service import Runtime
from seminarops_shared.unit_of_work import UnitOfWork

from ..conftest import participant
from .conftest import database, registration_app

pytestmark = pytest.mark.integration

PEOPLE = 6
OFFER_HOURS = 1
KINDS = ["request", "request", "cancel", "accept", "decline", "capacity", "expire"]


class ShiftableClock:
    def __init__(self) -> None:
        self.shift = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.shift


Replicas = tuple[list[FastAPI], ShiftableClock]


@pytest.fixture
async def replicas(namespace: Namespace) -> AsyncIterator[Replicas]:
    clock = ShiftableClock()
    apps = [registration_app(namespace, clock=clock) for _ in range(2)]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(running(app))
        yield apps, clock


def _http(app: FastAPI) -> RegistrationsOverHttp:
    service: RegistrationsOverHttp = app.state.service
    return service


def _runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def _operation(
    app: FastAPI, clock: ShiftableClock, seminar: str, kind: str, n: int
) -> Callable[[], Awaitable[object]]:
    http, runtime = _http(app), _runtime(app)
    use_cases = http.registrations
    reg_id = registration_id(seminar, f"p{n}")

    def on_registration(
        work: Callable[[UnitOfWork], Awaitable[object]],
    ) -> Callable[[], Awaitable[object]]:
        return lambda: http.run(work)

    if kind == "request":
        return lambda: http.request(
            RegistrationRequest(
                seminar_id=seminar,
                participant=participant(f"p{n}"),
                source="/platform/portal",
                request_id=f"req-{uuid.uuid4()}",
                requested_at=clock(),
            )
        )
    if kind == "cancel":
        return on_registration(lambda uow: use_cases.cancelling.cancel(uow, registration_id=reg_id))
    if kind == "accept":
        return on_registration(lambda uow: use_cases.offers.accept(uow, registration_id=reg_id))
    if kind == "decline":
        return on_registration(lambda uow: use_cases.offers.decline(uow, registration_id=reg_id))
    if kind == "capacity":
        return lambda: runtime.uow.run(
            lambda uow: use_cases.seminar_changes.on_capacity_changed(
                uow, seminar_id=seminar, capacity=_capacity(n)
            )
        )
    return runtime.scheduler.run_due  # "expire": the clock was moved past the offers


def _capacity(n: int) -> int:
    return 1 + n % 4


async def _check(app: FastAPI, seminar: str, *, bound: int) -> tuple[int, int]:
    """Check the seminar after a step; ``bound``: the most seats confirmed or offered may
    fill (the largest capacity the seminar had during the step, or what was taken
    before it). Returns the seats taken and the capacity now."""
    db = database(app)
    # One snapshot: both replicas' schedulers keep running due jobs in the background
    # (an offer expiring, the next in line offered), and three reads one after another
    # could see the seat book before such a job and the registrations after it.
    async with _runtime(app).mongo.transaction() as session:
        book = await db["seminars"].find_one({"_id": seminar}, session=session)
        docs = await db["registrations"].find({"seminar_id": seminar}, session=session).to_list()
        jobs = await db["scheduled_jobs"].find({"group": seminar}, session=session).to_list()
    assert book is not None
    counts = Counter(d["status"] for d in docs)
    capacity, confirmed, offered = book["capacity"], counts["confirmed"], counts["offered"]
    assert (book["confirmed_count"], book.get("offered_count", 0), book["waitlisted_count"]) == (
        confirmed,
        offered,
        counts["waitlisted"],
    )
    assert confirmed + offered <= max(capacity, bound), docs
    assert offered <= max(0, capacity - confirmed)
    # Nobody waits while a seat is free, and every outstanding offer has its timer.
    assert counts["waitlisted"] == 0 or confirmed + offered >= capacity
    offer_timers = {j["payload"]["registration_id"] for j in jobs if "offer" in j["_id"]}
    assert offer_timers == {d["_id"] for d in docs if d["status"] == "offered"}
    seqs = [d["waitlist_seq"] for d in docs if d["status"] in {"waitlisted", "offered"}]
    assert len(seqs) == len(set(seqs))
    return int(confirmed + offered), int(capacity)


_steps = st.lists(
    st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(min_value=0, max_value=PEOPLE - 1)),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=_steps, capacity=st.integers(min_value=1, max_value=3))
async def test_confirmed_plus_offered_never_exceeds_capacity(
    replicas: Replicas, steps: list[list[tuple[str, int]]], capacity: int
) -> None:
    apps, clock = replicas
    note(f"capacity={capacity} steps={steps}")
    seminar = f"sem-{uuid.uuid4().hex[:10]}"
    offers = SeatTerms(promotion=Promotion.OFFER, offer_hours=OFFER_HOURS)

    async def open_seminar(uow: UnitOfWork) -> None:
        await _http(apps[0]).registrations.seminar_changes.on_seminar_scheduled(
            uow, seminar_id=seminar, capacity=capacity, terms=offers
        )

    await _runtime(apps[0]).uow.run(open_seminar)
    taken, current = 0, capacity
    # Everyone asks first, on both replicas at once: a queue for the freed seats.
    everyone = [("request", n) for n in range(PEOPLE)]
    for step in [everyone, *steps]:
        if any(kind == "expire" for kind, _ in step):
            clock.shift += timedelta(hours=OFFER_HOURS, seconds=1)
        operations = [
            _operation(apps[i % 2], clock, seminar, kind, n)() for i, (kind, n) in enumerate(step)
        ]
        results: list[Any] = await asyncio.gather(*operations, return_exceptions=True)
        for result in results:
            # Refusals (no open offer, unknown registration) are answers, not failures.
            if isinstance(result, BaseException) and not isinstance(result, DomainError):
                raise result
        capacities = [_capacity(n) for kind, n in step if kind == "capacity"]
        taken, current = await _check(apps[0], seminar, bound=max([taken, current, *capacities]))
