"""The shared error vocabulary and its one HTTP mapping: status, body, headers."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, field_validator

from seminarops_shared.errors import (
    Busy,
    Conflict,
    DomainError,
    FieldProblem,
    Invalid,
    NotFound,
    Refused,
    http_answer,
    install_error_handlers,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no seminar s-1"), 404),
        (Conflict("seminar s-1 exists with a different definition"), 409),
        (Refused("the evaluation window closed"), 403),
        (Invalid("a series spans at most 30 years"), 422),
    ],
)
def test_each_word_has_its_status_and_the_message_is_the_detail(
    error: DomainError, status: int
) -> None:
    answer = http_answer(error)
    assert answer is not None
    assert (answer.status, answer.body, answer.headers) == (
        status,
        {"detail": error.message},
        {},
    )
    assert str(error) == error.message


def test_busy_is_503_with_retry_after() -> None:
    answer = http_answer(Busy("the service is starting", retry_after_s=3))
    assert answer is not None
    assert answer.status == 503
    assert answer.body == {"detail": "the service is starting"}
    assert answer.headers == {"Retry-After": "3"}


def test_invalid_with_fields_lists_them_as_fastapi_validation_errors_do() -> None:
    error = Invalid(
        fields=[
            FieldProblem(("answers", "q1"), "not one of the options", "invalid_answer"),
            FieldProblem((), "ends_at must be after starts_at"),
        ]
    )
    answer = http_answer(error)
    assert answer is not None
    assert answer.status == 422
    assert answer.body == {
        "detail": [
            {
                "loc": ["body", "answers", "q1"],
                "msg": "not one of the options",
                "type": "invalid_answer",
            },
            {"loc": ["body"], "msg": "ends_at must be after starts_at", "type": "value_error"},
        ]
    }
    assert error.message == "not one of the options; ends_at must be after starts_at"
    query = http_answer(Invalid("bad", fields=[FieldProblem(("cursor",), "bad")], part="query"))
    assert query is not None
    assert query.body["detail"][0]["loc"] == ["query", "cursor"]


def test_a_machine_code_is_in_the_body_only_when_given() -> None:
    answer = http_answer(Conflict("form f exists", code="form_exists"))
    assert answer is not None
    assert answer.body == {"detail": "form f exists", "code": "form_exists"}


def test_a_class_of_two_words_answers_as_the_first_in_its_mro() -> None:
    class SubmissionRefused(DomainError):
        pass

    class WindowClosed(SubmissionRefused, Refused):
        pass

    class AlreadyEvaluated(SubmissionRefused, Conflict):
        pass

    closed, again = http_answer(WindowClosed("closed")), http_answer(AlreadyEvaluated("again"))
    assert closed is not None
    assert again is not None
    assert (closed.status, again.status) == (403, 409)
    assert http_answer(SubmissionRefused("no word of the vocabulary")) is None


def test_python_families_are_kept() -> None:
    # Callers that catch LookupError / ValueError keep working; pydantic validators may
    # raise Invalid.
    assert isinstance(NotFound("x"), LookupError)
    assert isinstance(Invalid("x"), ValueError)

    class Query(BaseModel):
        language: str

        @field_validator("language")
        @classmethod
        def _check(cls, value: str) -> str:
            raise Invalid(f"language {value!r} is not an ISO 639 code")

    with pytest.raises(ValueError, match="is not an ISO 639 code"):
        Query(language="xx-yy")


async def test_installed_handlers_answer_raised_errors_and_leave_the_rest() -> None:
    router = APIRouter()

    @router.get("/missing")
    async def missing() -> None:
        raise NotFound("no registration r-1")

    @router.get("/busy")
    async def busy() -> None:
        raise Busy("try again", retry_after_s=2)

    @router.get("/invalid")
    async def invalid() -> None:
        raise Invalid(fields=[FieldProblem(("id",), "mismatch", "id_mismatch")])

    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/missing")
        assert (response.status_code, response.json()) == (404, {"detail": "no registration r-1"})
        response = await client.get("/busy")
        assert (response.status_code, response.json()) == (503, {"detail": "try again"})
        assert response.headers["retry-after"] == "2"
        response = await client.get("/invalid")
        assert response.status_code == 422
        assert response.json() == {
            "detail": [{"loc": ["body", "id"], "msg": "mismatch", "type": "id_mismatch"}]
        }
        # FastAPI's own answers are untouched.
        assert (await client.get("/nowhere")).json() == {"detail": "Not Found"}


class Zoned(BaseModel):
    zone: str

    @field_validator("zone")
    @classmethod
    def _known(cls, value: str) -> str:
        raise Invalid(f"unknown time zone {value!r}", code="unknown_zone")


async def test_an_invalid_raised_by_a_validator_is_shown_as_its_message() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def create(thing: Zoned) -> Zoned:
        return thing

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.post("/things", json={"zone": "Mars/Olympus"})
    assert response.status_code == 422
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["body", "zone"]
    assert issue["ctx"] == {"error": "unknown time zone 'Mars/Olympus'"}
