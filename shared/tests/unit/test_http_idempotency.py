"""What makes two requests "the same" for an Idempotency-Key (pure: no database)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.types import Message

from seminarops_shared.http_idempotency import (
    IDEMPOTENT,
    IdempotentRequest,
    request_fingerprint,
)


def request(
    body: bytes, *, content_type: str = "application/json", query: str = "", path: str = "/v1/x"
) -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"content-type", content_type.encode())],
    }
    return Request(scope, receive)


async def test_json_bodies_are_compared_as_json() -> None:
    compact = await request_fingerprint(request(b'{"a":1,"b":[1,2]}'))
    spaced = await request_fingerprint(request(b'{ "b": [1, 2],\n  "a": 1 }'))
    other = await request_fingerprint(request(b'{"a":2,"b":[1,2]}'))
    assert compact == spaced
    assert compact != other


async def test_the_query_and_the_path_are_part_of_the_request() -> None:
    plain = await request_fingerprint(request(b"id,title\n", content_type="text/csv"))
    dry_run = await request_fingerprint(
        request(b"id,title\n", content_type="text/csv", query="dry_run=true")
    )
    elsewhere = await request_fingerprint(
        request(b"id,title\n", content_type="text/csv", path="/v1/y")
    )
    assert len({plain, dry_run, elsewhere}) == 3


async def test_a_multipart_body_is_the_same_whatever_boundary_the_client_picked() -> None:
    def upload(boundary: str, content: bytes) -> Request:
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="s.csv"\r\n\r\n'
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return request(body, content_type=f"multipart/form-data; boundary={boundary}")

    first = await request_fingerprint(upload("aaa111", b"id,title\n"))
    second = await request_fingerprint(upload("bbb222", b"id,title\n"))
    changed = await request_fingerprint(upload("bbb222", b"id,name\n"))
    assert first == second
    assert first != changed


def test_a_resource_id_is_the_keys_own() -> None:
    held = IdempotentRequest(key_id="ab" * 32, token="t")
    assert held.resource_id("sem") == "sem-" + "ab" * 16
    assert held.resource_id("form", length=24) == "form-" + "ab" * 12


async def test_a_route_without_the_route_class_is_refused_at_its_first_keyed_request() -> None:
    router = APIRouter()

    @router.post("/things", dependencies=[IDEMPOTENT])
    async def create() -> dict[str, str]:
        return {"id": "t-1"}

    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        unkeyed = await client.post("/things")
        with pytest.raises(TypeError, match="IdempotentRoute"):
            await client.post("/things", headers={"Idempotency-Key": "k"})
    assert unkeyed.status_code == 200
