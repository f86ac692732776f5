"""The common shape of a service app: one FastAPI app whose lifespan opens the
database, the broker, the consumers and the outbox relay, and closes them in reverse.

A service's ``create_app(settings)`` calls ``create_service_app`` with its routers and a
``setup`` coroutine that builds its repositories and handlers from the ``Runtime`` and
registers its consumers. Nothing connects before the lifespan starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pymongo.errors import ConnectionFailure, OperationFailure
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import health
from .api_docs import install_api_docs
from .auth import Authenticator
from .clock import Clock, utc_now
from .errors import install_error_handlers
from .events.topics import ALL_TOPICS, EVENT_TOPICS, REGISTRATION_REQUESTS, SUBSCRIPTIONS
from .http_idempotency import StoredAnswers
from .idempotency import ProcessedEvents
from .kafka import (
    DeadLetters,
    EventConsumer,
    build_broker,
    subscribe,
)
from .kafka_clients import client_options
from .mongo import Mongo, is_transient_database_error
from .observability import ServiceMetrics
from .outbox import Outbox, OutboxRelay
from .publishing import RecordPublisher
from .scheduler import Scheduler
from .settings import ServiceSettings, development_warnings
from .subscriptions import Subscription
from .task_dump import log_all_tasks
from .topics_admin import create_topics
from .unit_of_work import UnitOfWorkFactory, current_traceparent

T = TypeVar("T")
_log = structlog.get_logger(__name__)

# Internal topics accept only their owner's events; the inbound topic only platform systems.
INBOUND_SOURCE_PREFIXES: tuple[str, ...] = ("/platform/",)


def service_source(name: str) -> str:
    return f"/services/{name}"


def default_allowed_sources() -> dict[str, Sequence[str]]:
    owners: dict[str, Sequence[str]] = {
        topic: (service_source(topic.split(".")[0]),) for topic in EVENT_TOPICS
    }
    owners[REGISTRATION_REQUESTS] = INBOUND_SOURCE_PREFIXES
    return owners


class Doors:
    """Where work enters a service from outside: its HTTP API and the inbound topic.

    ``close`` (SIGUSR1; ``make down`` sends it before SIGTERM) shuts both while
    everything inside keeps going: the consumers of the services' own topics, the
    outbox relay, the scheduler. The HTTP API then answers 503 with Retry-After (health
    and ``/metrics`` stay open), and the inbound topic's partitions are paused, so
    what platform systems publish meanwhile waits on the broker for the next start.
    The pause is applied again every ``_PAUSE_INTERVAL_S`` because a rebalance hands a
    consumer fresh, unpaused partitions.
    """

    _PAUSE_INTERVAL_S = 0.2

    def __init__(self) -> None:
        self.closed = False
        self._inbound: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    def watch_inbound(self, subscriber: Any) -> None:
        """``subscriber`` reads the inbound topic (among others, maybe)."""
        self._inbound.append(subscriber)

    def close(self, inbound_topic: str) -> None:
        if self.closed:
            return
        self.closed = True
        _log.info("doors closed: HTTP answers 503, inbound consumption paused")
        self._task = asyncio.get_running_loop().create_task(self._keep_paused(inbound_topic))

    async def _keep_paused(self, inbound_topic: str) -> None:
        while True:
            for subscriber in self._inbound:
                consumer = getattr(subscriber, "consumer", None)
                if consumer is None:
                    continue
                inbound = [tp for tp in consumer.assignment() if tp.topic == inbound_topic]
                if inbound:
                    consumer.pause(*inbound)
            await asyncio.sleep(self._PAUSE_INTERVAL_S)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Runtime:
    """What a running service has: handed to its ``setup`` and kept on ``app.state``."""

    settings: ServiceSettings
    metrics: ServiceMetrics
    clock: Clock
    mongo: Mongo
    broker: KafkaBroker
    publisher: RecordPublisher
    outbox: Outbox
    relay: OutboxRelay
    uow: UnitOfWorkFactory
    scheduler: Scheduler
    # The answers of requests made with an Idempotency-Key (``http_idempotency``).
    stored_answers: StoredAnswers
    consumers: list[EventConsumer] = field(default_factory=list)
    subscribers: list[Any] = field(default_factory=list)
    doors: Doors = field(default_factory=Doors)

    @property
    def source(self) -> str:
        return service_source(self.settings.service_name)

    async def ensure_indexes(self) -> None:
        """The shared library's own collections (a service's ``setup`` adds its own)."""
        await self.outbox.ensure_indexes()
        await self.scheduler.ensure_indexes()
        await self.stored_answers.ensure_indexes()
        await ProcessedEvents(self.mongo.db).ensure_collection()

    def consume(self, subscription: Subscription, *, group: str | None = None) -> EventConsumer:
        """Subscribe this service (consumer group = service name) as ``subscription``
        declares: its topics, a handler per event type (see ``subscriptions``)."""
        name = group or self.settings.service_name
        topics = subscription.topics
        declared = SUBSCRIPTIONS.get(name)
        if declared is not None and not set(topics) <= set(declared):
            # The AsyncAPI document and the deployment (lag scaling, ACLs) are generated
            # from SUBSCRIPTIONS: a subscription it does not list would be invisible there.
            raise ValueError(f"{name} may consume only {declared}, not {tuple(topics)}")
        consumer = EventConsumer(
            group=name,
            subscription=subscription,
            uow=self.uow,
            dead_letters=DeadLetters(self.publisher, group=name, metrics=self.metrics),
            metrics=self.metrics,
            kafka=self.settings.kafka,
            allowed_sources=default_allowed_sources(),
        )
        self.consumers.append(consumer)
        subscriber = subscribe(self.broker, consumer, self.settings.kafka)
        self.subscribers.append(subscriber)
        if REGISTRATION_REQUESTS in topics:
            self.doors.watch_inbound(subscriber)
        return consumer


ServiceSetup = Callable[[Runtime], Awaitable[object]]


async def create_missing_topics(settings: ServiceSettings) -> None:
    """Create the system's topics when missing (local runs, tests). In production the
    platform declares them (deploy/kubernetes), and this finds them all there."""
    kafka = settings.kafka
    # Another service may create them at the same moment: that is fine; any other
    # refusal (replication factor, policy) stops the start with the broker's reason.
    await create_topics(
        kafka.bootstrap_servers,
        [kafka.topic(t) for t in ALL_TOPICS],
        partitions=kafka.partitions,
        replication_factor=kafka.replication_factor,
        options=client_options(kafka),
    )


def service_state(request: Request, cls: type[T]) -> T:
    """The service object ``setup`` returned, typed; for route dependencies."""
    service = request.app.state.service
    if not isinstance(service, cls):
        raise TypeError(f"app.state.service is {type(service).__name__}, not {cls.__name__}")
    return service


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    setup: ServiceSetup,
    clock: Clock = utc_now,
    version: str = "1.0.0",
) -> FastAPI:
    metrics = ServiceMetrics(settings.service_name)
    doors = Doors()
    authenticator = Authenticator(settings.auth)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before anything connects: a configuration that cannot protect the API (or a
        # JWKS that cannot be read) stops the start with its reason.
        await authenticator.start()
        for warning in development_warnings(settings.auth, settings.privacy):
            _log.warning(warning, service=settings.service_name)
        mongo = Mongo(settings.mongo, settings.database_name)
        broker = build_broker(settings.kafka, client_id=settings.service_name)
        publisher = RecordPublisher(broker)
        outbox = Outbox(mongo.db)
        processed = ProcessedEvents(mongo.db)
        uow = UnitOfWorkFactory(
            mongo=mongo,
            outbox=outbox,
            processed=processed,
            source=service_source(settings.service_name),
            clock=clock,
            max_concurrent=settings.mongo.max_concurrent_transactions,
        )
        runtime = Runtime(
            settings=settings,
            metrics=metrics,
            clock=clock,
            mongo=mongo,
            broker=broker,
            publisher=publisher,
            outbox=outbox,
            relay=OutboxRelay(
                outbox,
                publisher,
                kafka=settings.kafka,
                clock=clock,
                metrics=metrics,
                poll_interval_s=settings.outbox_poll_interval_s,
                takeover_after_s=settings.outbox_takeover_after_s,
            ),
            uow=uow,
            scheduler=Scheduler(
                mongo.db, uow=uow, clock=clock, poll_interval_s=settings.scheduler_poll_interval_s
            ),
            stored_answers=StoredAnswers(mongo.db, service=settings.service_name, clock=clock),
            doors=doors,
        )
        try:
            await create_missing_topics(settings)
            await runtime.ensure_indexes()
            app.state.service = await setup(runtime)
            app.state.runtime = runtime
            await broker.start()
            runtime.relay.start()
            runtime.scheduler.start()
            app.state.readiness_checks = _readiness_checks(runtime)
            app.state.drain_status = _drain_status(runtime)
            _handle_operator_signals(
                close_doors=functools.partial(
                    runtime.doors.close, settings.kafka.topic(REGISTRATION_REQUESTS)
                )
            )
            _log.info("service started", service=settings.service_name, port=settings.port)
            yield
        finally:
            _release_operator_signals()
            # Consumers first (what their lanes hold is applied and its offsets
            # committed; later polls are left to the next start), then the relay
            # drains what they wrote, then the database goes. Each step is bounded.
            lanes_s = settings.kafka.graceful_timeout_s
            await _shutdown_step("doors", runtime.doors.stop())
            await _shutdown_step("scheduler", runtime.scheduler.stop())
            for consumer in runtime.consumers:
                closing = consumer.close(lanes_s, commit_timeout_s=SHUTDOWN_STEP_S)
                await _shutdown_step("consumer", closing, timeout_s=lanes_s + 2 * SHUTDOWN_STEP_S)
            await _shutdown_step("broker", broker.stop())
            relay_s = SHUTDOWN_STEP_S
            await _shutdown_step("relay", runtime.relay.stop(relay_s), timeout_s=2 * relay_s)
            await _shutdown_step("database", mongo.close())
            _log.info("service stopped", service=settings.service_name)

    app = _documented_app(title=title, description=description, version=version, lifespan=lifespan)
    app.state.auth_settings = settings.auth
    app.state.authenticator = authenticator
    app.state.metrics = metrics
    app.state.readiness_checks = {}
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    _install_observability(app, metrics)
    app.add_middleware(
        _Admission, max_in_flight=settings.http_max_in_flight, shed=metrics.http_requests_shed
    )
    # Outermost: a closed door answers before anything else runs.
    app.add_middleware(_DoorsGate, doors=doors)
    return app


_OPERATOR_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


# The longest one shutdown step may take beyond its own work's bound (the lanes'
# KAFKA_GRACEFUL_TIMEOUT_S): a broker or database that stops answering must not keep
# a stopping process alive past its orchestrator's grace period (45 s in Kubernetes).
SHUTDOWN_STEP_S = 5.0


async def _shutdown_step(
    name: str, stopping: Awaitable[object], *, timeout_s: float = SHUTDOWN_STEP_S
) -> None:
    """Await one step of the shutdown for at most ``timeout_s``. What an abandoned step
    left undone is safe: offsets not committed mean records redelivered and absorbed,
    outbox entries not published are read back by the next start."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(stopping, timeout_s)
    except TimeoutError:
        _log.warning("shutdown step abandoned", step=name, after_s=timeout_s)
        return
    seconds = round(time.perf_counter() - started, 3)
    # Slow steps are what an operator looks for when a stop takes long.
    log = _log.info if seconds >= 1.0 else _log.debug
    log("shutdown step done", step=name, seconds=seconds)


def _handle_operator_signals(*, close_doors: Callable[[], object]) -> None:
    """SIGUSR1 closes the doors (``make down``); SIGUSR2 logs what every task waits on.
    Only the main thread of a process may own signals; an app run elsewhere (a test
    harness thread) simply has no such handles."""
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, close_doors)
        loop.add_signal_handler(signal.SIGUSR2, log_all_tasks)


def _release_operator_signals() -> None:
    with contextlib.suppress(ValueError, RuntimeError):
        for number in _OPERATOR_SIGNALS:
            asyncio.get_running_loop().remove_signal_handler(number)


def _documented_app(
    *, title: str, description: str, version: str, lifespan: Callable[[FastAPI], Any]
) -> FastAPI:
    """The app with its API documentation pages. FastAPI's own ``/docs`` and ``/redoc``
    load their scripts from CDNs; these are served by the service itself."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_api_docs(app)
    return app


def _drain_status(runtime: Runtime) -> health.DrainStatus:
    async def status() -> dict[str, Any]:
        return {
            "doors": "closed" if runtime.doors.closed else "open",
            "outbox_backlog": await runtime.outbox.backlog(),
        }

    return status


class _DoorsGate:
    """Once the doors are closed (``Doors``), every HTTP request but health and
    ``/metrics`` answers 503 with Retry-After: the service is on its way down and
    another replica (or the next start) takes the request."""

    _ALWAYS_OPEN = ("/health/", "/metrics")

    def __init__(self, app: ASGIApp, doors: Doors) -> None:
        self._app = app
        self._doors = doors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self._doors.closed
            or str(scope.get("path", "")).startswith(self._ALWAYS_OPEN)
        ):
            await self._app(scope, receive, send)
            return
        response = JSONResponse(
            {"detail": "the service is shutting down; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
        await response(scope, receive, send)


class _Admission:
    """At most ``max_in_flight`` API requests at once (health and ``/metrics`` aside);
    one more is answered 503 with Retry-After at once instead of queueing. A flood then
    holds a bounded number of requests in memory, and those admitted are decided as
    fast as ever rather than all of them slowly. A counter, not a semaphore: nothing
    waits, so there is nothing to bound."""

    _ALWAYS_OPEN = ("/health/", "/metrics")

    def __init__(self, app: ASGIApp, max_in_flight: int, shed: Counter) -> None:
        self._app = app
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._shed = shed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self._ALWAYS_OPEN):
            await self._app(scope, receive, send)
            return
        if self._in_flight >= self._max_in_flight:
            self._shed.inc()
            response = JSONResponse(
                {"detail": "too many requests in flight; try again shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        self._in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_flight -= 1


def _readiness_checks(runtime: Runtime) -> dict[str, health.ReadinessCheck]:
    async def database() -> bool:
        await runtime.mongo.ping()
        return True

    async def broker() -> bool:
        return bool(await runtime.broker.ping(timeout=2.0))

    async def consumers() -> bool:
        return all(getattr(s, "running", True) for s in runtime.subscribers)

    async def outbox_relay() -> bool:
        return runtime.relay.running

    async def scheduler() -> bool:
        return runtime.scheduler.running

    return {
        "database": database,
        "broker": broker,
        "consumers": consumers,
        "outbox_relay": outbox_relay,
        "scheduler": scheduler,
    }


class _Observe:
    """Per HTTP request: a request id and the caller's trace context for the logs and
    the events emitted, and the HTTP metrics. A plain ASGI middleware: Starlette's
    ``@app.middleware("http")`` costs a task group and memory streams per request."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        structlog.contextvars.bind_contextvars(request_id=uuid.uuid4().hex)
        traceparent = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"traceparent"),
            None,
        )
        token = current_traceparent.set(traceparent)
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            current_traceparent.reset(token)
            metrics = self._metrics
            method = str(scope.get("method", ""))
            template = cast(str, getattr(scope.get("route"), "path", "unmatched"))
            metrics.http_requests.labels(metrics.service, method, template, str(status)).inc()
            metrics.http_request_seconds.labels(metrics.service, method, template).observe(
                time.perf_counter() - started
            )
            structlog.contextvars.unbind_contextvars("request_id")


def _install_observability(app: FastAPI, metrics: ServiceMetrics) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Observe, metrics=metrics)
    # The shared error vocabulary (NotFound, Conflict, Invalid, Refused, Busy): one mapping.
    install_error_handlers(app)

    @app.exception_handler(ConnectionFailure)
    async def database_unavailable(_request: Request, error: ConnectionFailure) -> JSONResponse:
        _log.warning("database unavailable", error=repr(error))
        return JSONResponse(
            {"detail": "database unavailable, try again shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(OperationFailure)
    async def database_busy(request: Request, error: OperationFailure) -> JSONResponse:
        if not is_transient_database_error(error):
            return await unexpected(request, error)
        # Write conflicts that outlasted the use case's own retries: the same request
        # will very likely pass a moment later.
        _log.info("database busy", error=repr(error))
        return JSONResponse(
            {"detail": "too many writers for this data right now, try again shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex
        _log.exception("unhandled error", error_id=error_id)
        # No stack trace or internals in the response: the id finds it in the logs.
        return JSONResponse({"detail": "internal error", "error_id": error_id}, status_code=500)


def run_service(settings: ServiceSettings, create_app: Callable[[Any], FastAPI]) -> None:
    """``python -m <service>``: logging, then uvicorn serving ``create_app(settings)``."""
    import uvicorn

    from .logging import configure_logging

    configure_logging(
        service=settings.service_name, level=settings.log_level, json=settings.log_json
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the structlog configuration
        timeout_graceful_shutdown=20,
    )
