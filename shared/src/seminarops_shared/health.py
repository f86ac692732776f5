"""``/health/live`` (the process answers), ``/health/ready`` (broker and database
reachable, consumers and outbox relay running) and ``/health/drain`` (whether the doors
are closed and what the outbox still holds: ``make down`` waits on it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[], Awaitable[bool]]
DrainStatus = Callable[[], Awaitable[dict[str, Any]]]

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_S = 2.0


@router.get("/health/live", summary="The process is alive")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Ready to take traffic: database, broker, consumers and outbox relay",
    responses={503: {"description": "Not ready; the body says which check failed"}},
)
async def ready(request: Request) -> JSONResponse:
    checks: dict[str, ReadinessCheck] = getattr(request.app.state, "readiness_checks", {})
    results: dict[str, Any] = {}
    for name, check in checks.items():
        try:
            results[name] = bool(await asyncio.wait_for(check(), _CHECK_TIMEOUT_S))
        except Exception:
            results[name] = False
    ok = bool(checks) and all(results.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": results},
        status_code=200 if ok else 503,
    )


@router.get(
    "/health/drain",
    summary="Shutdown progress: whether the doors are closed, what the outbox still holds",
    responses={
        503: {"description": "The service has not started yet, or its database is unreachable"}
    },
)
async def drain(request: Request) -> JSONResponse:
    status: DrainStatus | None = getattr(request.app.state, "drain_status", None)
    if status is None:
        return JSONResponse({"detail": "not started"}, status_code=503)
    try:
        body = await asyncio.wait_for(status(), _CHECK_TIMEOUT_S)
    except Exception as error:
        return JSONResponse({"detail": f"unknown: {type(error).__name__}"}, status_code=503)
    return JSONResponse(body)
