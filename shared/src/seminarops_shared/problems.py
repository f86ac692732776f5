"""The error answers of every service, as their OpenAPI documents declare them.

Every error a service gives has one body, ``Problem``: ``{"detail": ...}`` (a message,
or for invalid input the list of what is wrong, field by field, in the shape of
FastAPI's own validation errors), ``code`` when the error has a machine code, and
``error_id`` for an internal error. ``errors.install_error_handlers``, the bearer-token
check, the closed doors and the database handlers all answer in it.

``declare_problems(app)`` makes the document say so, once for every operation, from
what the document already says of it: one that needs a bearer token answers 401 and
403, one that takes input (parameters, a body) 422, one with a body 400 (it cannot be
parsed), one with a path parameter 404 (it
names something that may not exist), one that writes (POST, PUT, PATCH, DELETE) 409
(the state does not allow it, or a concurrent request holds its Idempotency-Key), and
every one 503 (the doors are closed, the database is unreachable or too busy). A
route declares what else it gives itself (``responses={413: ...}``), and which implied
answer it can never give (``openapi_extra=never_answers(404)``: a list that is empty
rather than missing); this fills in the body schema of every error response.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Problem", "ValidationIssue", "declare_problems", "never_answers"]


class ValidationIssue(BaseModel):
    """One thing wrong with the input."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="where: body / query / path / header, then the field")
    msg: str
    type: str


class Problem(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="allow")

    detail: str | list[ValidationIssue] = Field(
        description="what went wrong, for a person; for invalid input each problem by field"
    )
    code: str | None = Field(
        default=None, description="a short stable token for a program, when there is one"
    )
    error_id: str | None = Field(
        default=None, description="an internal error's id: it finds the error in the logs"
    )


_DESCRIPTIONS = {
    400: "The body cannot be parsed (not JSON, or broken form data)",
    401: "Missing or unknown bearer token",
    403: "The token's role (or a rule) does not allow this",
    404: "Not found",
    409: "The current state does not allow this, or a request with this Idempotency-Key "
    "is still being processed",
    413: "Too large",
    422: "Invalid input; each problem listed",
    503: "Unavailable for a moment (shutting down, database unreachable or busy): "
    "try again after Retry-After seconds",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "required": False}},
    503: {
        "Retry-After": {
            "description": "seconds to wait",
            "schema": {"type": "string"},
            "required": False,
        }
    },
}
_WRITES = {"post", "put", "patch", "delete"}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Health answers are the container platform's: their own shapes, documented by them.
_OWN_SHAPES = ("/health/",)


# Consumed by ``_declare``: never seen in a published document.
_NEVER = "x-seminarops-never-answers"


def never_answers(*statuses: int) -> dict[str, Any]:
    """``openapi_extra`` of a route that cannot give these implied answers."""
    return {_NEVER: list(statuses)}


def _answers(operation: dict[str, Any], method: str) -> set[int]:
    """What the operation answers besides what it declares, read off the document."""
    parameters = operation.get("parameters", [])
    found = {503}
    if operation.get("security"):
        found |= {401, 403}
    if parameters or operation.get("requestBody"):
        found.add(422)
    if operation.get("requestBody"):
        found.add(400)  # a body that cannot be parsed at all (not JSON, broken multipart)
    if any(p.get("in") == "path" for p in parameters):
        found.add(404)
    if method in _WRITES:
        found.add(409)
    return found - set(operation.pop(_NEVER, ()))


def _declare(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if path.startswith(_OWN_SHAPES) or not isinstance(operation, dict):
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for implied in _answers(operation, method):
                responses.setdefault(str(implied), {})
            for code, response in responses.items():
                status = int(code) if code.isdigit() else 0
                if status < 400:
                    continue
                response.setdefault("description", _DESCRIPTIONS.get(status, "Error"))
                response["content"] = {"application/json": {"schema": dict(_PROBLEM_REF)}}
                if status in _HEADERS:
                    response.setdefault("headers", _HEADERS[status])
    # FastAPI's own validation-error schemas are no longer referenced: every 422 is a
    # Problem (an input error of a use case has a message, not a field list).
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def declare_problems(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare every error answer (module docstring)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        _declare(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
