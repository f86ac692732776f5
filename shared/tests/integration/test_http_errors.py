"""How the shared HTTP layer answers database trouble that reaches it: a write conflict
that outlasted the use case's retries is 503 with Retry-After (the request will very
likely pass a moment later); any other database error is a 500 without internals."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from pymongo.errors import OperationFailure

from seminarops_devtools.testing.stack import Namespace, running
from seminarops_shared.service import Runtime, create_service_app

from .probe_service import ProbeSettings

pytestmark = pytest.mark.integration

WRITE_CONFLICT = 112


async def test_a_lasting_write_conflict_is_503_and_other_database_errors_500(
    namespace: Namespace,
) -> None:
    router = APIRouter()

    @router.get("/conflict")
    async def conflict() -> None:
        raise OperationFailure("WriteConflict", code=WRITE_CONFLICT)

    @router.get("/broken")
    async def broken() -> None:
        raise OperationFailure("BadValue: something internal", code=2)

    async def setup(runtime: Runtime) -> Runtime:
        return runtime

    app = create_service_app(
        namespace.settings(ProbeSettings),
        title="errors probe",
        description="database errors over HTTP",
        routers=[router],
        setup=setup,
    )
    async with running(app) as client:
        busy = await client.get("/conflict")
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        broken = await client.get("/broken")
        assert broken.status_code == 500
        assert "something internal" not in broken.text
        assert set(broken.json()) == {"detail", "error_id"}
