"""Settings of the metrics service (``METRICS_*``; broker and database: ``KAFKA_*``, ``MONGODB_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from seminarops_shared.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="METRICS_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "metrics"
    port: int = 8004
    # Business gauges (/metrics): how often the background task looks whether the
    # projections changed, and how old the summary may get even if nothing changed
    # here (another replica or a rebuild may have changed them).
    # Each refresh reads the per-seminar tallies and aggregates participations and
    # ratings by year.
    gauges_refresh_interval_s: float = Field(default=10.0, gt=0)
    gauges_max_age_s: float = Field(default=120.0, gt=0)
    # Rebuild (`python -m metrics rebuild`): documents per insert, and events per
    # transaction in the catch-up pass after the switch.
    rebuild_insert_batch: int = Field(default=5000, ge=1)
    rebuild_catch_up_batch: int = Field(default=200, ge=1)
