"""Settings of the feedback service (``FEEDBACK_*``; broker and database: ``KAFKA_*``, ``MONGODB_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from seminarops_shared.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="FEEDBACK_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "feedback"
    port: int = 8003
    # FEEDBACK_WINDOW_DAYS: how long a seminar's evaluation stays open after completion.
    window_days: float = Field(default=14, gt=0, le=366)
    # FEEDBACK_REMINDER_BEFORE_CLOSE_HOURS: when non-respondents are reminded; 0 = never.
    reminder_before_close_hours: float = Field(default=48, ge=0)
    # FEEDBACK_CLOSE_GRACE_SECONDS: the window-closed event is computed this long after
    # closing, so submissions accepted just before the close are in its count.
    close_grace_seconds: float = Field(default=60, ge=0, le=3600)

    @property
    def reminder_before_close(self) -> timedelta:
        return timedelta(hours=self.reminder_before_close_hours)

    @property
    def close_grace(self) -> timedelta:
        return timedelta(seconds=self.close_grace_seconds)
