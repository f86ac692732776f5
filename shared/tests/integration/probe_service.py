"""A minimal service built on the shared plumbing, to test the plumbing itself."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from fastapi import FastAPI
from pymongo.errors import AutoReconnect

from seminarops_shared.events import ReceivedEvent
from seminarops_shared.events.inbound import RegistrationRequested
from seminarops_shared.events.registration import RegistrationConfirmed
from seminarops_shared.events.topics import REGISTRATION_REQUESTS
from seminarops_shared.kafka import PermanentError
from seminarops_shared.keyed import KeyedWrites
from seminarops_shared.service import Runtime, create_service_app
from seminarops_shared.settings import ServiceSettings
from seminarops_shared.subscriptions import Subscription
from seminarops_shared.unit_of_work import UnitOfWork


class ProbeSettings(ServiceSettings):
    service_name: str = "probe"
    port: int = 1


class Behaviour:
    """How the probe's handler misbehaves, by participant id prefix."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._applied: dict[str, asyncio.Event] = {}
        self._released: dict[str, asyncio.Event] = {}

    def applied(self, participant_id: str) -> asyncio.Event:
        """Set once the handler applied this participant's request (not yet committed)."""
        return self._applied.setdefault(participant_id, asyncio.Event())

    def release(self, name: str) -> asyncio.Event:
        """Set by a test to let ``held:<name>`` be applied."""
        return self._released.setdefault(name, asyncio.Event())

    async def wait_turn(self, participant_id: str) -> None:
        """``after:<other>``: applied only once ``<other>`` was, by another transaction
        (one that could not run beside this one would never come: a bug).
        ``held:<name>``: applied once the test releases ``name``."""
        if participant_id.startswith("after:"):
            other = participant_id.removeprefix("after:")
            await asyncio.wait_for(self.applied(other).wait(), timeout=10)
        if participant_id.startswith("held:"):
            name = participant_id.removeprefix("held:")
            await asyncio.wait_for(self.release(name).wait(), timeout=10)

    def before_effect(self, participant_id: str) -> None:
        self.calls[participant_id] += 1
        calls = self.calls[participant_id]
        if participant_id.startswith("rule-breaker"):
            raise PermanentError("participant breaks a rule")
        if participant_id.startswith("flaky-db") and calls <= 2:
            raise AutoReconnect("database stepped down")
        if participant_id.startswith("flaky-bug") and calls == 1:
            raise RuntimeError("a passing bug")
        if participant_id.startswith("always-bug"):
            raise RuntimeError("a bug that never goes away")


def _seminars_of(events: Sequence[ReceivedEvent]) -> set[str]:
    return {e.data.seminar_id for e in events if isinstance(e.data, RegistrationRequested)}


def probe_app(
    settings: ProbeSettings, behaviour: Behaviour | None = None, *, keyed: bool = False
) -> FastAPI:
    """``keyed``: the writes contend per seminar (``KeyedWrites``, claiming a document
    per seminar first), as the registration service's seat books do."""
    behaviour = behaviour or Behaviour()

    async def setup(runtime: Runtime) -> Runtime:
        effects = runtime.mongo.db["effects"]
        # Created up front, as a service's ``ensure_indexes`` creates its collections:
        # two transactions that both create a collection on their first write conflict.
        existing = set(await runtime.mongo.db.list_collection_names())
        for name in {"effects", "claims"} - existing:
            await runtime.mongo.db.create_collection(name)

        async def on_requested(event: ReceivedEvent, uow: UnitOfWork) -> None:
            data = event.data
            assert isinstance(data, RegistrationRequested)
            behaviour.before_effect(data.participant.id)
            await behaviour.wait_turn(data.participant.id)
            await effects.update_one(
                {"_id": data.seminar_id},
                {"$inc": {"applied": 1}, "$push": {"participants": data.participant.id}},
                upsert=True,
                session=uow.session,
            )
            behaviour.applied(data.participant.id).set()
            uow.emit(
                RegistrationConfirmed(
                    registration_id=f"{data.seminar_id}:{data.participant.id}",
                    seminar_id=data.seminar_id,
                    participant_id=data.participant.id,
                    version=1,
                    requested_at=event.envelope.time,
                )
            )

        async def claim(uow: UnitOfWork, seminar_ids: Collection[str]) -> None:
            for seminar_id in sorted(seminar_ids):
                await runtime.mongo.db["claims"].update_one(
                    {"_id": seminar_id}, {"$inc": {"claims": 1}}, upsert=True, session=uow.session
                )

        runtime.consume(
            Subscription(
                topics=(REGISTRATION_REQUESTS,),
                handlers={RegistrationRequested: on_requested},
                keyed=KeyedWrites(keys_of=_seminars_of, claim=claim) if keyed else None,
            )
        )
        return runtime

    return create_service_app(
        settings, title="probe", description="plumbing probe", routers=[], setup=setup
    )


async def effect(app: FastAPI, seminar_id: str) -> dict[str, Any] | None:
    runtime: Runtime = app.state.runtime
    return await runtime.mongo.db["effects"].find_one({"_id": seminar_id})
