"""``make demo``: a realistic multi-year season loaded into a running stack through its
public doors only: the seminar, registration and feedback HTTP APIs, and the inbound
``registration.requests`` topic, exactly as operators and platform systems use them.

Three past seasons and the current one: seminars of every kind and programme (some
hosted by schools, most of those open to other schools), registrations half over Kafka
and half over HTTP, oversubscribed seminars with waiting lists, cancellations that
promote the next in line, attendance, completion and evaluations; a few seminars of
next year are open for registration only.

Idempotent: everything has a deterministic id (seminar ids, CloudEvent ids of the
Kafka requests, ``Idempotency-Key`` headers of the HTTP calls), a seminar already
completed with its evaluations in is skipped, and registrants already known are not
sent again. A second run adds nothing.

Auth: with ``AUTH_TOKENS`` set (the services' own variable) it uses the operator token
(and the platform token for what a platform system does, when there is one); without,
the local stack runs open and so does the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from seminarops_shared import retry
from seminarops_shared.events import envelope_for
from seminarops_shared.events.inbound import (
    Participant,
    RegistrationCancellationRequested,
    RegistrationRequested,
)
from seminarops_shared.events.topics import REGISTRATION_REQUESTS
from seminarops_shared.settings import AuthSettings, Role

from .devstack import StackConfig

T = TypeVar("T")

SOURCE = "/platform/demo-portal"
KINDS = ("learning_event", "online_seminar", "pd_workshop")
PROGRAMMES = ("etwinning", "etwinning_plus")
# eTwinning: EU and partner countries; eTwinning Plus: the neighbourhood countries.
ETWINNING_COUNTRIES = (
    "FR", "DE", "IT", "ES", "PL", "PT", "RO", "GR", "BE", "NL", "AT", "CZ", "SE", "FI",
    "IE", "HR", "SK", "SI", "LT", "TR",
)  # fmt: skip
PLUS_COUNTRIES = ("UA", "GE", "AM", "AZ", "MD", "TN", "JO")
FIRST_NAMES = (
    "Ana", "Ben", "Chiara", "Dimitri", "Eva", "Filip", "Greta", "Hugo", "Ines", "Jonas",
    "Katarzyna", "Luca", "Marta", "Nikos", "Olga", "Pau", "Rasa", "Sofia", "Tomas", "Zeynep",
)  # fmt: skip
LAST_NAMES = (
    "Almeida", "Berger", "Costa", "Dumitru", "Eriksson", "Fischer", "Garcia", "Horvat",
    "Ionescu", "Janssen", "Kowalska", "Lombardi", "Moreau", "Novak", "Papadopoulou",
)  # fmt: skip
THEMES = (
    "Artificial intelligence in class", "Media literacy", "Inclusive classrooms",
    "Climate and sustainability", "Project-based learning across borders",
    "Coding for beginners", "Wellbeing at school", "Languages through drama",
)  # fmt: skip
RATINGS = ("excellent", "very_good", "good", "fair", "poor")
# How evaluations tend to come out, per kind (weights of RATINGS).
RATING_WEIGHTS = {
    "learning_event": (45, 35, 12, 6, 2),
    "online_seminar": (30, 38, 20, 8, 4),
    "pd_workshop": (50, 30, 12, 5, 3),
}
SEMINARS_PER_SEASON = (6, 8, 10, 10)  # three seasons ago .. this one: the programme grows
TEACHERS = 420
WAIT_S = 180.0


# ---- the plan: pure, deterministic -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Teacher:
    id: str
    name: str
    country: str
    school_id: str

    def participant(self) -> Participant:
        local = self.name.lower().replace(" ", ".")
        return Participant(
            id=self.id,
            display_name=self.name,
            email=f"{local}@{self.school_id}.example",
            country=self.country,
            school_id=self.school_id,
        )


@dataclass(frozen=True, slots=True)
class SeminarPlan:
    id: str
    body: dict[str, Any]
    registrants: tuple[Teacher, ...]
    cancelling: tuple[str, ...]  # participant ids who cancel after registering
    # Of the registrants: who comes (if confirmed) and what they answer (None: nothing).
    attends: frozenset[str]
    answers: dict[str, str | None] = field(default_factory=dict)
    held: bool = True  # False: still to come (registrations only)

    @property
    def kind(self) -> str:
        return str(self.body["kind"])


def _teachers() -> list[Teacher]:
    rng = random.Random("seminar-ops demo teachers")  # noqa: S311 - seeded: the same every run
    out = []
    for n in range(1, TEACHERS + 1):
        plus = n % 3 == 0  # one teacher in three from an eTwinning Plus country
        country = rng.choice(PLUS_COUNTRIES if plus else ETWINNING_COUNTRIES)
        school = f"demo-sch-{country.lower()}-{rng.randint(1, 4)}"
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        out.append(Teacher(id=f"demo-t{n:04d}", name=name, country=country, school_id=school))
    return out


def plan_season(today: date) -> list[SeminarPlan]:
    """Every seminar of the demo, the same on every run of the same year: three past
    seasons and this one (held up to yesterday), plus two of next year still to come."""
    teachers = _teachers()
    schools = sorted({t.school_id for t in teachers})
    first = today.year - 3
    plans = [
        _seminar(first + season, index, teachers, schools, today)
        for season, count in enumerate(SEMINARS_PER_SEASON)
        for index in range(count)
    ]
    plans += [_seminar(today.year + 1, index, teachers, schools, today) for index in range(2)]
    return plans


def _seminar(
    year: int, index: int, teachers: Sequence[Teacher], schools: Sequence[str], today: date
) -> SeminarPlan:
    seminar_id = f"demo-{year}-{index + 1:02d}"
    rng = random.Random(seminar_id)  # noqa: S311 - seeded: the same seminar every run
    # Every kind and programme in every season: the index walks through the six pairs.
    kind = KINDS[index % 3]
    programme = PROGRAMMES[(index // 3) % 2]
    month = 1 + (index * 11) // max(1, SEMINARS_PER_SEASON[-1])
    starts = datetime(year, month, 3 + rng.randint(0, 20), 15, 0, tzinfo=UTC)
    held = starts.date() < today
    capacity = rng.choice((12, 15, 20, 25, 30, 40))
    theme = THEMES[(index + year) % len(THEMES)]
    hosted = rng.random() < 0.6
    body: dict[str, Any] = {
        "id": seminar_id,
        "title": f"{theme}: {KIND_TITLES[kind]} {year}",
        "kind": kind,
        "programme": programme,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2 if kind != "learning_event" else 6)).isoformat(),
        "timezone": "Europe/Brussels",
        "capacity": capacity,
        "language": rng.choice(("en", "en", "fr", "de", "es")),
        "theme": theme,
        "host_school_id": rng.choice(schools) if hosted else None,
        "open_to_other_schools": (not hosted) or rng.random() < 0.75,
    }
    pool = [t for t in teachers if (t.country in PLUS_COUNTRIES) == (programme == "etwinning_plus")]
    # Teachers from the other group join too (eTwinning Plus seminars are open to all).
    pool += rng.sample([t for t in teachers if t not in pool], k=40)
    # Some seminars are oversubscribed (a waiting list), some half empty.
    demand = rng.uniform(0.55, 1.35)
    registrants = tuple(rng.sample(pool, k=min(len(pool), max(4, round(capacity * demand)))))
    cancelling = tuple(t.id for t in registrants if rng.random() < 0.08)
    attends = frozenset(t.id for t in registrants if held and rng.random() < 0.85)
    answer_rate = rng.uniform(0.4, 0.8)
    answers = {
        t.id: rng.choices(RATINGS, weights=RATING_WEIGHTS[kind])[0]
        if rng.random() < answer_rate
        else None
        for t in registrants
        if t.id in attends
    }
    return SeminarPlan(
        id=seminar_id,
        body=body,
        registrants=registrants,
        cancelling=cancelling,
        attends=attends,
        answers=answers,
        held=held,
    )


KIND_TITLES = {
    "learning_event": "learning event",
    "online_seminar": "online seminar",
    "pd_workshop": "professional development workshop",
}


def event_id(*parts: str) -> str:
    """A CloudEvent id that is the same on every run for the same request."""
    return "demo-" + hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


# ---- talking to the stack --------------------------------------------------------------


class DemoError(RuntimeError):
    pass


class Unavailable(RuntimeError):
    """503 (busy, starting) or no answer: worth another try."""


def _unavailable(error: BaseException) -> bool:
    return isinstance(error, Unavailable | httpx.TransportError)


# A stack just started (or busy with the rest of the demo) may answer 503 for a while.
PATIENT = retry.OUTAGE.retrying(_unavailable).within(WAIT_S)


@dataclass
class Counts:
    seminars_created: int = 0
    seminars_known: int = 0
    registrations_sent: int = 0
    cancellations_sent: int = 0
    attendances: int = 0
    evaluations: int = 0


class Stack:
    """The four services (one HTTP client each, its base URL set) and a producer on the
    inbound topic, as a platform system sees them."""

    def __init__(
        self,
        clients: Mapping[str, httpx.AsyncClient],
        *,
        producer: AIOKafkaProducer,
        topic: str,
        auth: AuthSettings,
    ) -> None:
        self.clients = clients
        self.topic = topic
        self.producer = producer
        operator = _token(auth, Role.OPERATOR)
        self.operator = _bearer(operator)
        self.platform = _bearer(_token(auth, Role.PLATFORM) or operator)

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        ok: Sequence[int] = (200, 201, 202),
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        async def attempt() -> httpx.Response:
            response = await self.clients[service].request(
                method, path, headers=headers or self.operator, **kwargs
            )
            if response.status_code == 503:
                raise Unavailable(f"{service} {path}: 503")
            return response

        response = await retry.run(PATIENT, attempt, on_retry=lambda *_: None)
        if response.status_code not in ok:
            raise DemoError(
                f"{method} {service}{path} answered {response.status_code}: {response.text[:300]}"
            )
        return response

    async def send(self, key: str, data: Any, *, event_key: str) -> None:
        envelope = envelope_for(data, source=SOURCE, time=datetime.now(UTC), event_id=event_key)
        await self.producer.send_and_wait(self.topic, envelope.to_json_bytes(), key=key.encode())

    async def statuses(self, seminar_id: str) -> dict[str, str]:
        response = await self.call(
            "GET", "registration", f"/v1/seminars/{seminar_id}/registrations", ok=(200, 404)
        )
        if response.status_code == 404:
            return {}
        return {r["participant_id"]: r["status"] for r in response.json()["registrations"]}

    async def roster(self, seminar_id: str) -> dict[str, str]:
        response = await self.call("GET", "seminar", f"/v1/seminars/{seminar_id}/roster")
        return {e["participant_id"]: e["status"] for e in response.json()["entries"]}

    async def response_rate(self, seminar_id: str) -> dict[str, Any]:
        response = await self.call(
            "GET", "feedback", f"/v1/seminars/{seminar_id}/response-rate", ok=(200, 404)
        )
        return dict(response.json()) if response.status_code == 200 else {}


def _token(auth: AuthSettings, role: Role) -> str | None:
    tokens = auth.tokens.get(role) or []
    return tokens[0].get_secret_value() if tokens else None


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def wait_for(probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], what: str) -> T:
    """Poll until the stack has caught up (it is eventually consistent), paced by the
    shared backoff, for at most ``WAIT_S``."""
    backoff = retry.Backoff(retry.OUTAGE)
    deadline = time.monotonic() + WAIT_S
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"{what}: not reached within {WAIT_S:.0f}s (last: {value!r})")
        await backoff.pause()


# ---- one seminar, start to end -------------------------------------------------------------


async def load_seminar(stack: Stack, plan: SeminarPlan, counts: Counts) -> None:
    # No Idempotency-Key: the plan's own id already makes the call idempotent (200 for
    # the same definition), and the answer must be the seminar as it is now (completed
    # by an earlier run), not a replay of the first run's 201 "scheduled".
    created = await stack.call(
        "POST", "seminar", "/v1/seminars", json=plan.body, headers=stack.operator
    )
    if created.status_code == 201:
        counts.seminars_created += 1
    else:
        counts.seminars_known += 1
    if created.json()["status"] != "completed":  # else: loaded by an earlier run
        await _register(stack, plan, counts)
        if not plan.held:
            return
        await _attend_and_complete(stack, plan, counts)
    await _evaluate(stack, plan, counts)


async def _register(stack: Stack, plan: SeminarPlan, counts: Counts) -> None:
    known = await stack.statuses(plan.id)
    for n, teacher in enumerate(plan.registrants):
        if teacher.id in known:
            continue
        person = teacher.participant()
        if n % 2 == 0:  # a platform system, over Kafka
            await stack.send(
                plan.id,
                RegistrationRequested(seminar_id=plan.id, participant=person),
                event_key=event_id("request", plan.id, teacher.id),
            )
        else:  # a portal, over HTTP
            await stack.call(
                "POST",
                "registration",
                "/v1/registrations",
                json={"seminar_id": plan.id, "participant": person.model_dump(mode="json")},
                headers={
                    **stack.platform,
                    "Idempotency-Key": event_id("http", plan.id, teacher.id),
                },
            )
        counts.registrations_sent += 1
    everyone = {t.id for t in plan.registrants}
    await wait_for(
        lambda: stack.statuses(plan.id),
        lambda s: everyone <= set(s),
        f"{plan.id}: every registration decided",
    )
    decided = await stack.statuses(plan.id)
    for participant_id in plan.cancelling:
        if decided.get(participant_id) == "cancelled":
            continue  # an earlier run's
        await stack.send(
            plan.id,
            RegistrationCancellationRequested(seminar_id=plan.id, participant_id=participant_id),
            event_key=event_id("cancel", plan.id, participant_id),
        )
        counts.cancellations_sent += 1
    await wait_for(
        lambda: stack.statuses(plan.id),
        lambda s: all(s.get(p) == "cancelled" for p in plan.cancelling),
        f"{plan.id}: cancellations applied",
    )


async def _attend_and_complete(stack: Stack, plan: SeminarPlan, counts: Counts) -> None:
    statuses = await stack.statuses(plan.id)
    confirmed = {p for p, s in statuses.items() if s == "confirmed"}
    # The seminar service learns the roster from the registration service's events.
    await wait_for(
        lambda: stack.roster(plan.id),
        lambda r: {p for p, s in r.items() if s == "confirmed"} == confirmed,
        f"{plan.id}: roster caught up",
    )
    present = sorted(confirmed & plan.attends)
    if present:
        recorded = await stack.call(
            "POST",
            "seminar",
            f"/v1/seminars/{plan.id}/attendance",
            json={"participant_ids": present},
            headers={**stack.operator, "Idempotency-Key": f"demo-attendance-{plan.id}"},
        )
        counts.attendances += len(recorded.json()["recorded"])
    await stack.call(
        "POST",
        "seminar",
        f"/v1/seminars/{plan.id}/complete",
        headers={**stack.operator, "Idempotency-Key": f"demo-complete-{plan.id}"},
    )


async def _evaluate(stack: Stack, plan: SeminarPlan, counts: Counts) -> None:
    # Only attendees answer: planned to come and given a seat (the order the requests
    # were decided in, and the cancellations, chose who got one).
    statuses = await stack.statuses(plan.id)
    present = {p for p, s in statuses.items() if s == "confirmed"} & plan.attends
    answers = {p: r for p, r in plan.answers.items() if r and p in present}
    if not answers:
        return
    rate = await wait_for(
        lambda: stack.response_rate(plan.id),
        # Closed: a run long after the first; the evaluations stay as they were.
        lambda r: (
            r.get("window_state") in {"open", "closed"} and r.get("attendees", 0) >= len(present)
        ),
        f"{plan.id}: evaluation window open",
    )
    if rate["window_state"] != "open" or rate.get("responses", 0) >= len(answers):
        return  # answered on an earlier run
    for participant_id, rating in sorted(answers.items()):
        response = await stack.call(
            "POST",
            "feedback",
            "/v1/evaluations",
            ok=(201, 403, 409),  # 409: answered on an earlier run; 403: not an attendee
            json={
                "seminar_id": plan.id,
                "participant_id": participant_id,
                "overall": rating,
                "comments": None,
                "answers": {},
            },
            headers={
                **stack.platform,
                "Idempotency-Key": event_id("eval", plan.id, participant_id),
            },
        )
        if response.status_code == 201:
            counts.evaluations += 1


# ---- the command ---------------------------------------------------------------------------


async def load(config: StackConfig, auth: AuthSettings, today: date, console: Console) -> Counts:
    """The demo season into the stack ``config`` describes (``make up``'s)."""
    kafka = config.kafka_settings()
    # As the services produce: acks=all; idempotence as configured (off against the
    # embedded broker, README "KAFKA_ENABLE_IDEMPOTENCE").
    producer = AIOKafkaProducer(
        **config.kafka_client_options(),
        acks="all" if kafka.acks == "all" else int(kafka.acks),
        enable_idempotence=kafka.enable_idempotence,
    )
    await producer.start()
    async with contextlib.AsyncExitStack() as exits:
        exits.push_async_callback(producer.stop)
        clients = {
            spec.name: await exits.enter_async_context(
                httpx.AsyncClient(base_url=spec.base_url, timeout=30.0)
            )
            for spec in config.services
        }
        stack = Stack(
            clients,
            producer=producer,
            topic=config.topic_prefix + REGISTRATION_REQUESTS,
            auth=auth,
        )
        return await load_plans(stack, plan_season(today), console)


async def load_plans(stack: Stack, plans: Sequence[SeminarPlan], console: Console) -> Counts:
    """Every seminar of ``plans``, a few at a time (the services are busy with the
    others' events meanwhile), with a progress bar."""
    await _ready(stack)
    counts = Counts()
    gate = asyncio.Semaphore(6)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("seminars", total=len(plans))

        async def one(plan: SeminarPlan) -> None:
            async with gate:
                await load_seminar(stack, plan, counts)
                progress.advance(task)

        await asyncio.gather(*(one(plan) for plan in plans))
    return counts


async def _ready(stack: Stack) -> None:
    for service, client in stack.clients.items():
        try:
            response = await client.get("/health/ready")
        except httpx.TransportError:
            raise DemoError(
                f"{service} does not answer at {client.base_url}: run `make up` first"
            ) from None
        if response.status_code != 200:
            raise DemoError(f"{service} is not ready ({response.status_code})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seminarops_devtools.demo", description=__doc__.split("\n\n")[0]
    )
    parser.parse_args(argv)
    console = Console()
    config = StackConfig.from_env()
    today = datetime.now(UTC).date()
    started = time.monotonic()
    try:
        counts = asyncio.run(load(config, AuthSettings(), today, console))
    except DemoError as exc:
        console.print(f"[red]make demo: {exc}")
        return 1
    metrics = next(spec.base_url for spec in config.services if spec.name == "metrics")
    seminar = next(spec.base_url for spec in config.services if spec.name == "seminar")
    year = today.year
    added = counts.seminars_created or counts.registrations_sent or counts.evaluations
    console.print(
        f"demo season loaded in {time.monotonic() - started:.0f}s: "
        f"{counts.seminars_created} seminars created ({counts.seminars_known} already there), "
        f"{counts.registrations_sent} registrations and {counts.cancellations_sent} "
        f"cancellations sent, {counts.attendances} attendances, "
        f"{counts.evaluations} evaluations" + ("" if added else " (nothing new: already loaded)")
    )
    console.print(
        "Look at it (reports converge within seconds):\n"
        f"  dashboard      {metrics}/\n"
        f"  participation  {metrics}/v1/reports/participation?year={year}\n"
        f"  satisfaction   {metrics}/v1/reports/satisfaction?year={year}\n"
        f"  seminars       {seminar}/v1/seminars?year={year}\n"
        f"  API docs       {metrics}/docs (and :8001-8003/docs)\n"
        "  Grafana        http://127.0.0.1:3000/ when the stack runs from docker-compose.yml"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
