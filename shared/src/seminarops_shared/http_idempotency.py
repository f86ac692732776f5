"""The ``Idempotency-Key`` request header of the POSTs that create something
(CONTRACT.md "HTTP"; IETF httpapi draft "The Idempotency-Key HTTP Header Field").

A route opts in by depending on ``idempotency`` (``dependencies=[IDEMPOTENT]``, or a
parameter ``Annotated[IdempotentRequest | None, IDEMPOTENT]`` when it wants the key's
own resource id) in a router built with ``route_class=IdempotentRoute``. Then:

- no header: nothing changes;
- a key (1-255 printable ASCII characters, else 422 naming the header) seen for the
  first time: the request runs; a 2xx answer (status, headers such as Location, body)
  is stored and every repeat with the same body gets exactly that answer, changing
  nothing; a non-2xx answer or an error is not stored (nothing was created) and
  the key is free to be tried again;
- the same key with another body (method, path, query and body are fingerprinted): 422
  ``idempotency_key_reused``;
- the same key while its first request still runs: 409 ``idempotency_key_in_use``.

A key belongs to one (service, method + route, caller, key): the caller is
``request.state.caller`` when authentication set one (a person's ``sub``), else a
digest of the bearer credential, else ``anonymous`` (an open development API).

Answers live in the service's own database (``idempotency_keys``) for
``IDEMPOTENCY_KEY_TTL`` (24 h), removed by a TTL index; an expired key is new again.

**The crash window, exactly.** The answer is stored in its own write right after the
use case committed (routes build their answer after the transaction, so it cannot join
it). If the process dies between the two, the key stays "in progress" (409) for
``IDEMPOTENCY_LEASE`` (60 s) after the first request began; the next request with the
key then runs the use case again. Every creating use case is idempotent in effect, so
that second run creates nothing twice: the seminar service and the feedback forms give
a resource without an explicit id the id derived from the key
(``IdempotentRequest.resource_id``), a registration is one per (seminar, participant),
an evaluation one per attendee, an imported row is keyed by its id or content. Only the
answer of that second run may differ from the one lost in the crash (200 "exists"
instead of 201; 409 for a form or an evaluation).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

import structlog
from bson import Binary
from fastapi import Depends, Header, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from .clock import Clock
from .errors import Conflict, FieldProblem, Invalid
from .mongo import Document, Repository

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENCY_KEY_TTL",
    "IDEMPOTENT",
    "IdempotentRequest",
    "IdempotentRoute",
    "StoredAnswer",
    "StoredAnswers",
    "idempotency",
    "request_fingerprint",
]

_log = structlog.get_logger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
# How long a request holds its key before a repeat may take it over (see the crash
# window above). Longer than any use case runs: a large import takes seconds.
IDEMPOTENCY_LEASE = timedelta(seconds=60)
MAX_KEY_LENGTH = 255
# Printable ASCII, space included (a quoted structured-field string is printable too,
# and taken as it is: the key is opaque).
KEY_PATTERN = r"^[\x20-\x7e]+$"

_IN_FLIGHT = "in_flight"
_ANSWERED = "answered"


# ---- the stored answers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A response as it was sent: status, raw headers (Location, Content-Type, ...),
    body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def response(self) -> Response:
        response = Response(content=self.body, status_code=self.status)
        response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        return response

    @classmethod
    def of(cls, response: Response) -> StoredAnswer | None:
        """``None`` for a response whose body is not held in memory (a stream)."""
        body = getattr(response, "body", None)
        if not isinstance(body, bytes):
            return None
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
        return cls(status=response.status_code, headers=headers, body=body)


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request holds the key (``token`` proves it) and runs the use case."""

    token: str


@dataclass(frozen=True, slots=True)
class Replay:
    answer: StoredAnswer


@dataclass(frozen=True, slots=True)
class Refusal:
    why: Literal["in_use", "reused"]


Claim = Claimed | Replay | Refusal


class StoredAnswers(Repository):
    """One document per key: ``_id`` = the key's scope digest, ``fingerprint`` of the
    first request, ``state`` (in flight / answered), the holder's ``token`` and
    ``lease_until``, the ``answer`` once given, ``expires_at`` for the TTL index."""

    COLLECTION = "idempotency_keys"
    indexes: ClassVar[dict[str, Sequence[IndexModel]]] = {
        COLLECTION: [IndexModel("expires_at", expireAfterSeconds=0, name="expires_at_ttl")]
    }

    def __init__(self, db: AsyncDatabase[Document], *, service: str, clock: Clock) -> None:
        super().__init__(db)
        self.service = service
        self.clock = clock

    async def claim(self, key_id: str, *, fingerprint: str) -> Claim:
        """Take the key, or say why not. Concurrent claims of one key: one wins (the
        unique ``_id``), the others see it in flight."""
        collection = self.collection(self.COLLECTION)
        now = self.clock()
        for _ in range(3):
            token = secrets.token_hex(16)
            fresh: Document = {
                "_id": key_id,
                "fingerprint": fingerprint,
                "state": _IN_FLIGHT,
                "token": token,
                "lease_until": now + IDEMPOTENCY_LEASE,
                "created_at": now,
                "expires_at": now + IDEMPOTENCY_KEY_TTL,
            }
            try:
                await collection.insert_one(fresh)
            except DuplicateKeyError:
                pass
            else:
                return Claimed(token)
            found = await collection.find_one({"_id": key_id})
            if found is None:
                continue  # expired and removed meanwhile: try again
            if found["expires_at"] <= now:
                # The TTL monitor runs once a minute: an expired key is new already.
                taken = await collection.replace_one(
                    {"_id": key_id, "expires_at": found["expires_at"]}, fresh
                )
            elif found["state"] == _IN_FLIGHT and found["lease_until"] <= now:
                if found["fingerprint"] != fingerprint:
                    return Refusal("reused")
                # Its holder died (or outran its lease) before answering: take it over.
                taken = await collection.update_one(
                    {"_id": key_id, "token": found["token"], "state": _IN_FLIGHT},
                    {"$set": {"token": token, "lease_until": now + IDEMPOTENCY_LEASE}},
                )
            else:
                return _held_by_another(found, fingerprint)
            if taken.matched_count:
                return Claimed(token)
        return Refusal("in_use")

    async def answer(self, key_id: str, token: str, answer: StoredAnswer) -> None:
        """Store the answer, if this request still holds the key."""
        await self.collection(self.COLLECTION).update_one(
            {"_id": key_id, "token": token, "state": _IN_FLIGHT},
            {
                "$set": {
                    "state": _ANSWERED,
                    "answer": {
                        "status": answer.status,
                        "headers": [list(h) for h in answer.headers],
                        "body": Binary(answer.body),
                    },
                },
                "$unset": {"lease_until": ""},
            },
        )

    async def release(self, key_id: str, token: str) -> None:
        """Forget the key (the request created nothing), if this request holds it."""
        await self.collection(self.COLLECTION).delete_one(
            {"_id": key_id, "token": token, "state": _IN_FLIGHT}
        )


def _held_by_another(found: Document, fingerprint: str) -> Replay | Refusal:
    if found["fingerprint"] != fingerprint:
        return Refusal("reused")
    if found["state"] != _ANSWERED:
        return Refusal("in_use")
    answer = found["answer"]
    return Replay(
        StoredAnswer(
            status=int(answer["status"]),
            headers=[(str(k), str(v)) for k, v in answer["headers"]],
            body=bytes(answer["body"]),
        )
    )


# ---- the request side -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A request carrying a key it now holds (the use case runs)."""

    key_id: str
    token: str

    def resource_id(self, prefix: str, *, length: int = 32) -> str:
        """An id for what this request creates, the same for every request with this
        key (so a run after a crash finds what the first one stored)."""
        return f"{prefix}-{self.key_id[:length]}"


# Where the dependency leaves the key it holds for the route class: in the request's own
# scope (``request.state`` may be one dict shared by every request, as a test harness's
# lifespan state is).
_HELD = "seminarops.idempotent_request"
# Set by ``IdempotentRoute`` before the dependencies run: someone will answer or free the key.
_ROUTE_COMPLETES = "seminarops.idempotent_route"


def _held(request: Request) -> IdempotentRequest | None:
    held = request.scope.get(_HELD)
    return held if isinstance(held, IdempotentRequest) else None


class _ReplayAnswer(Exception):
    """Control flow from the dependency to the route class: answer as stored."""

    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("replay")
        self.answer = answer


def _caller(request: Request) -> str:
    caller = getattr(request.state, "caller", None)
    if isinstance(caller, str) and caller:
        return f"caller:{caller}"
    authorization = request.headers.get("authorization")
    if authorization:
        return "credential:" + hashlib.sha256(authorization.encode("latin-1")).hexdigest()
    return "anonymous"


async def request_fingerprint(request: Request) -> str:
    """What makes two requests "the same": method, path, query and body. JSON bodies
    are compared as JSON (key order and spacing do not matter); a multipart body
    without its boundary (each client picks its own)."""
    digest = hashlib.sha256()
    query = sorted(request.query_params.multi_items())
    digest.update(f"{request.method} {request.url.path}?{query!r}\n".encode())
    body = await request.body()
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    media_type = media_type.strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        # Not JSON: compared as bytes (and refused by validation anyway).
        with contextlib.suppress(ValueError):
            body = json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
    elif media_type == "multipart/form-data":
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.lower() == "boundary" and value:
                body = body.replace(value.strip('"').encode("latin-1"), b"")
    digest.update(media_type.encode("latin-1") + b"\n" + body)
    return digest.hexdigest()


async def idempotency(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_KEY_HEADER,
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            pattern=KEY_PATTERN,
            description=(
                "Makes a retry safe: the same key with the same request answers as the "
                "first call did and changes nothing; with another request it is 422, "
                "while the first still runs 409. 1-255 printable ASCII characters "
                "(a UUID is a good key); kept for 24 hours."
            ),
        ),
    ] = None,
) -> IdempotentRequest | None:
    """The dependency that makes a route idempotent per key (see the module docstring).
    Put it after the route's authentication: an unauthenticated request holds nothing."""
    if key is None:
        return None
    if not request.scope.get(_ROUTE_COMPLETES):
        # Held and never answered nor freed, the key would refuse every repeat until
        # its lease ends: a wiring mistake, said at the first request.
        raise TypeError("a route depending on `idempotency` needs route_class=IdempotentRoute")
    answers = _stored_answers(request)
    route = getattr(request.scope.get("route"), "path", request.url.path)
    scope = "\n".join((answers.service, f"{request.method} {route}", _caller(request), key))
    key_id = hashlib.sha256(scope.encode()).hexdigest()
    claim = await answers.claim(key_id, fingerprint=await request_fingerprint(request))
    if isinstance(claim, Replay):
        raise _ReplayAnswer(claim.answer)
    if isinstance(claim, Refusal):
        if claim.why == "reused":
            raise Invalid(
                fields=[
                    FieldProblem(
                        (IDEMPOTENCY_KEY_HEADER,),
                        "this Idempotency-Key was used with a different request; "
                        "use a new key for a new request",
                        "idempotency_key_reused",
                    )
                ],
                part="header",
                code="idempotency_key_reused",
            )
        raise Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            code="idempotency_key_in_use",
        )
    held = IdempotentRequest(key_id=key_id, token=claim.token)
    request.scope[_HELD] = held
    return held


IDEMPOTENT = Depends(idempotency)


def _declares_idempotency(dependant: Dependant) -> bool:
    return any(d.call is idempotency or _declares_idempotency(d) for d in dependant.dependencies)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class IdempotentRoute(APIRoute):
    """A route class that completes ``idempotency``: it replays a stored answer, stores
    a fresh 2xx answer, and frees the key of a request that created nothing. Routes
    without the dependency are served as by ``APIRoute``."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if not _declares_idempotency(self.dependant):
            return handler

        async def answer_once(request: Request) -> Response:
            request.scope[_ROUTE_COMPLETES] = True
            try:
                response = await handler(request)
            except _ReplayAnswer as replay:
                return replay.answer.response()
            except BaseException:
                await _release(request)
                raise
            held: IdempotentRequest | None = _held(request)
            if held is None:
                return response
            stored = StoredAnswer.of(response) if 200 <= response.status_code < 300 else None
            if stored is None:
                await _release(request)
                return response
            try:
                await _stored_answers(request).answer(held.key_id, held.token, stored)
            except PyMongoError as error:
                # The use case's effect is committed: the client gets its answer. A
                # repeat finds the key in flight, then runs again (module docstring).
                _log.warning("idempotent answer not stored", error=repr(error))
            return response

        return answer_once


def _stored_answers(request: Request) -> StoredAnswers:
    answers: StoredAnswers = request.app.state.runtime.stored_answers
    return answers


async def _release(request: Request) -> None:
    held: IdempotentRequest | None = _held(request)
    if held is None:
        return
    try:
        await _stored_answers(request).release(held.key_id, held.token)
    except PyMongoError as error:  # the lease frees the key instead
        _log.warning("idempotency key not released", error=repr(error))
