"""HTTP cancellations and the consumer's batches take turns on a seminar's seat book.

The soak (``benchmarks/soak.py``) found the Kafka path of registration falling minutes
behind at 60 requests/s while the HTTP path kept up: a cancellation over HTTP wrote
the seat book in a transaction of its own, outside the seminar's turn and without
claiming the book first. A consumer batch claims the books of every seminar it holds
(twenty in the soak) as its first statement; one cancellation in flight on any of them
made the claim fail, the batch let go of all its turns, queued for all of them again
behind the HTTP groups, and tried again, for the claim's whole patience and then for
the write-conflict policy's minute: requests sent on Kafka were decided minutes late.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from registration.domain import registration_id
from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import KafkaProbe, Namespace, running
from seminarops_shared import keyed
from seminarops_shared.clock import utc_now
from seminarops_shared.events import envelope_for
from seminarops_shared.events.topics import REGISTRATION_REQUESTS

from ..conftest import http_body, new_id, requested
from .conftest import registration_app, schedule, statuses

pytestmark = pytest.mark.integration

SEMINARS = 8
CHURNED_PER_SEMINAR = 4  # registered over HTTP, then cancelled and registered again
KAFKA_PER_SEMINAR = 30
# Far above what it takes (a few seconds) on a loaded machine; minutes before the fix.
DECIDED_WITHIN_S = 60.0


@pytest.fixture
def claim_conflicts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time a consumer batch's claim met another writer (the pipeline retries
    those quietly: only this shows them)."""
    met: list[str] = []
    original = keyed.ClaimConflict.__init__

    def noting(self: keyed.ClaimConflict, error: object) -> None:
        met.append(repr(error)[:120])
        original(self, error)  # type: ignore[arg-type]

    monkeypatch.setattr(keyed.ClaimConflict, "__init__", noting)
    return met


async def _churn(
    client: httpx.AsyncClient, seminar: str, participants: list[str], stop: asyncio.Event
) -> int:
    """Cancel and register again, over and over: one seat-book write after another."""
    cancelled = 0
    while not stop.is_set():
        for pid in participants:
            answer = await client.delete(f"/v1/registrations/{registration_id(seminar, pid)}")
            assert answer.status_code == 200, answer.text
            cancelled += 1
            again = await client.post("/v1/registrations", json=http_body(seminar, pid))
            assert again.status_code in {200, 201}, again.text
    return cancelled


async def test_http_cancellations_never_hold_back_the_consumers_claim(
    namespace: Namespace, kafka: KafkaProbe, claim_conflicts: list[str]
) -> None:
    seminars = [new_id("sem") for _ in range(SEMINARS)]
    churned = [f"churn{i}" for i in range(CHURNED_PER_SEMINAR)]
    app = registration_app(namespace)
    async with running(app) as client:
        for seminar in seminars:
            await schedule(app, kafka, seminar, capacity=1000)
            for pid in churned:
                answer = await client.post("/v1/registrations", json=http_body(seminar, pid))
                assert answer.status_code == 201, answer.text
        stop = asyncio.Event()
        churn = [
            asyncio.create_task(_churn(client, seminar, churned, stop)) for seminar in seminars
        ]
        started = time.monotonic()
        try:
            for k in range(KAFKA_PER_SEMINAR):
                for seminar in seminars:  # every batch spans every seminar
                    envelope = envelope_for(
                        requested(seminar, f"kafka{k}"),
                        source="/platform/teacher-portal",
                        time=utc_now(),
                    )
                    await kafka.send_envelope(envelope, topic=REGISTRATION_REQUESTS, key=seminar)

            async def decided() -> int:
                counts = [await statuses(app, s) for s in seminars]
                return sum(c.total() for c in counts) - SEMINARS * CHURNED_PER_SEMINAR

            await eventually(
                decided,
                until=lambda n: n == SEMINARS * KAFKA_PER_SEMINAR,
                timeout_s=DECIDED_WITHIN_S,
                what="every request sent on Kafka decided",
            )
            took = time.monotonic() - started
        finally:
            stop.set()
            cancellations = await asyncio.gather(*churn)
    # The churn went on all along (each seminar's people cancelled at least once each).
    assert all(n >= CHURNED_PER_SEMINAR for n in cancellations)
    # In one process the turns keep every writer of a seat book apart: the consumer's
    # claim never meets one. Before the cancellations took their seminar's turn, 67 of
    # these 240 requests were decided after 120 s.
    assert claim_conflicts == [], f"{len(claim_conflicts)} claim conflicts: {claim_conflicts[:3]}"
    assert took < DECIDED_WITHIN_S
