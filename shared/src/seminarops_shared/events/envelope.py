"""The CloudEvents 1.0 envelope (structured mode, JSON) that every record carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


class Envelope(BaseModel):
    """A CloudEvents 1.0 structured-mode envelope.

    Tolerant reader: unknown extension attributes are kept, never rejected.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    time: AwareDatetime
    subject: str | None = Field(default=None, max_length=200)
    datacontenttype: str | None = "application/json"
    traceparent: str | None = Field(default=None, max_length=200)
    data: dict[str, Any]

    @field_serializer("time")
    def _time_as_utc(self, value: datetime) -> str:
        # RFC 3339 in UTC, as the contract says: "2026-05-01T09:00:00.123456Z".
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)
