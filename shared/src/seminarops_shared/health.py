"""``/health/live`` (the process answers) and ``/health/ready`` (broker and database
reachable, consumers and outbox relay running)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[], Awaitable[bool]]

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
