"""Settings of the seminar service (``SEMINAR_*``; broker and database: ``KAFKA_*``, ``MONGODB_*``).

| variable | default | meaning |
| --- | --- | --- |
| ``SEMINAR_REMINDER_OFFSETS_MINUTES`` | ``[1440, 60]`` | reminders before each session, in minutes (``1440,60`` works too) |
| ``SEMINAR_IMPORT_MAX_ROWS`` | ``5000`` | rows a season file may have |
| ``SEMINAR_IMPORT_MAX_BYTES`` | ``5242880`` | size a season file may have |
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from seminarops_shared.settings import ServiceSettings

MAX_REMINDER_OFFSET_MINUTES = 60 * 24 * 30


class SeminarSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SEMINAR_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "seminar"
    port: int = 8002
    # Reminders go out this many minutes before each session starts.
    reminder_offsets_minutes: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1440, 60]
    )
    import_max_rows: int = Field(default=5000, ge=1)
    import_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1)

    @field_validator("reminder_offsets_minutes", mode="before")
    @classmethod
    def _offsets_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("reminder_offsets_minutes")
    @classmethod
    def _offsets_valid(cls, value: list[int]) -> list[int]:
        if any(not 0 < offset <= MAX_REMINDER_OFFSET_MINUTES for offset in value):
            raise ValueError(
                f"reminder offsets are minutes between 1 and {MAX_REMINDER_OFFSET_MINUTES}"
            )
        return sorted(set(value), reverse=True)
