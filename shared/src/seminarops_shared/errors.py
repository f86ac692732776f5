"""One error vocabulary for every service, and the one place it becomes HTTP.

Use cases (and the rules under them) raise these; routes do not catch them, and no
error here knows a route or a status. ``install_error_handlers`` (called by
``create_service_app``) answers them:

=============  ======  ==================================================
``NotFound``   404     ``{"detail": message}``
``Conflict``   409     ``{"detail": message}``
``Refused``    403     ``{"detail": message}``
``Invalid``    422     ``{"detail": [{"loc", "msg", "type"}, ...]}`` when the error
                       names fields (the shape of FastAPI's own validation errors),
                       else ``{"detail": message}``
``Busy``       503     ``{"detail": message}`` and ``Retry-After``
=============  ======  ==================================================

The body also has ``"code"`` when the error carries a machine code. An error that is
two of these (a service's own class deriving from two) is answered as the first one in
its method resolution order. This module imports nothing but the standard library at
import time, so domain modules may raise its errors and stay free of the web framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "Busy",
    "Conflict",
    "DomainError",
    "FieldProblem",
    "HttpAnswer",
    "Invalid",
    "NotFound",
    "Refused",
    "http_answer",
    "install_error_handlers",
]


class DomainError(Exception):
    """A use case's refusal, said for a person (``message``) and, optionally, for a
    program (``code``: a short stable token such as ``"form_exists"``).

    Raise one of the subclasses: a bare ``DomainError`` has no answer and surfaces as an
    internal error."""

    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(DomainError, LookupError):
    """What was asked for does not exist (here, yet)."""


class Conflict(DomainError):
    """The request contradicts the current state: an id taken, a repeat that may not
    repeat, a concurrent change (try again), a state that does not allow it."""


class Refused(DomainError):
    """A rule forbids this caller this action (not a question of input or state)."""


class Busy(DomainError):
    """Nothing is wrong with the request; try again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


InputPart = Literal["body", "query", "path", "header"]


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with the input: where (a path into it; ``()`` = the input as a
    whole), what (for a person) and which kind of problem (for a program)."""

    field: tuple[str | int, ...]
    message: str
    kind: str = "value_error"


class Invalid(DomainError, ValueError):
    """Input that can never succeed as given. ``fields``: each problem, by field;
    ``part``: whether those fields are a command's body, a query's parameters, the
    path or a header.

    A ``ValueError`` too, so a pydantic validator may raise it (and pydantic reports
    it as its own validation error)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: Sequence[FieldProblem] = (),
        part: InputPart = "body",
        code: str | None = None,
    ) -> None:
        if message is None:
            message = "; ".join(p.message for p in fields) or "invalid input"
        super().__init__(message, code=code)
        self.fields = tuple(fields)
        self.part: InputPart = part


# ---- the one HTTP mapping -------------------------------------------------------------

_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    Refused: 403,
    Invalid: 422,
    Busy: 503,
}


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def http_status(error: DomainError) -> int | None:
    """The status ``error`` is answered with: that of the first class of the vocabulary
    in its method resolution order; ``None`` for a bare ``DomainError``."""
    for cls in type(error).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return None


def http_answer(error: DomainError) -> HttpAnswer | None:
    """Status, JSON body and headers for ``error`` (``None``: it has no answer)."""
    status = http_status(error)
    if status is None:
        return None
    detail: Any = error.message
    headers: dict[str, str] = {}
    if isinstance(error, Invalid) and error.fields and status == 422:
        detail = [
            {"loc": [error.part, *p.field], "msg": p.message, "type": p.kind} for p in error.fields
        ]
    if isinstance(error, Busy) and status == 503:
        headers["Retry-After"] = str(error.retry_after_s)
    body: dict[str, Any] = {"detail": detail}
    if error.code is not None:
        body["code"] = error.code
    return HttpAnswer(status=status, body=body, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of the vocabulary raised in ``app``'s routes and dependencies
    (see the module docstring), and declare those answers (``problems``) in its OpenAPI
    document. Anything else keeps the app's other handlers."""
    from starlette.responses import JSONResponse

    from .problems import declare_problems

    declare_problems(app)

    async def answer(_request: Request, error: Exception) -> Response:
        found = http_answer(error) if isinstance(error, DomainError) else None
        if found is None:  # pragma: no cover - registered for the vocabulary only
            raise error
        return JSONResponse(found.body, status_code=found.status, headers=found.headers or None)

    for cls in _STATUS:
        app.add_exception_handler(cls, answer)

    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError

    async def invalid_request(_request: Request, error: Exception) -> Response:
        # FastAPI's own answer, but an error a validator raised is given as its message:
        # encoded as it is, an ``Invalid`` would show its attributes.
        issues = error.errors() if isinstance(error, RequestValidationError) else []
        return JSONResponse(
            {"detail": jsonable_encoder([_readable(issue) for issue in issues])}, status_code=422
        )

    app.add_exception_handler(RequestValidationError, invalid_request)


def _readable(issue: Any) -> Any:
    context = issue.get("ctx") if isinstance(issue, dict) else None
    if isinstance(context, dict) and isinstance(context.get("error"), BaseException):
        return {**issue, "ctx": {**context, "error": str(context["error"])}}
    return issue
