"""Settings of the registration service (``REGISTRATION_*``; broker and database: ``KAFKA_*``, ``MONGODB_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field
from pydantic_settings import SettingsConfigDict

from seminarops_shared.settings import ServiceSettings


class RegistrationSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="REGISTRATION_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "registration"
    port: int = 8001
    # How long a request for a seminar nobody has heard of stays parked before it is
    # rejected with reason `seminar_unknown` (REGISTRATION_PARK_TIMEOUT_S).
    park_timeout_s: float = Field(default=86_400.0, gt=0)
    # How long a cancellation that arrived before the registration it cancels is kept
    # waiting for that registration's request (REGISTRATION_PENDING_CANCELLATION_LIFETIME_S;
    # default a week). Dropped earlier when the seminar is completed or cancelled.
    pending_cancellation_lifetime_s: float = Field(default=7 * 86_400.0, gt=0)
    # HTTP requests for one seminar arriving together are decided in one transaction,
    # at most this many at a time.
    http_group_max: int = Field(default=500, ge=1)
    # How long an HTTP request keeps trying through write conflicts (other writers of
    # the same seminar) before it answers 503.
    http_patience_s: float = Field(default=20.0, gt=0)
    # A Unicode TrueType font for the certificates' PDFs (REGISTRATION_CERTIFICATE_FONT):
    # names in every European script. Missing file: the PDF core font (Latin-1 only).
    certificate_font: Path | None = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    # Where the public verifies certificates (REGISTRATION_CERTIFICATE_VERIFY_BASE_URL,
    # e.g. https://seminars.example.org): the PDF prints `<base>/v1/certificates/<code>`
    # and its QR code holds it. Unset: the address the PDF was requested at, which behind
    # a proxy may be an internal one, and a paper certificate outlives it.
    certificate_verify_base_url: AnyHttpUrl | None = None
