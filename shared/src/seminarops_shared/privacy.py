"""Erasure pseudonyms: what a participant id becomes once the person asked to be forgotten.

Every service maps a person to the SAME pseudonym, so counts, uniqueness (one response
per attendee) and later events about the same id stay right across services and across
replays of the topics. The pseudonym is keyed (HMAC-SHA256 with
``PRIVACY_PSEUDONYM_KEY``): with a plain hash anyone who knows a participant id could
compute its pseudonym and find the erased person's records again. The key is a secret
shared by all services, set by the deployment like the auth tokens; it must never change
once people have been erased (their records would no longer match their later events).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PSEUDONYM_PREFIX = "erased-"
PSEUDONYM_HEX_LENGTH = 24
_PSEUDONYM = re.compile(rf"^{PSEUDONYM_PREFIX}[0-9a-f]{{{PSEUDONYM_HEX_LENGTH}}}$")

# For local development and tests only; a service running with it says so at start-up,
# and docker-compose.yml / deploy/ always set their own key.
DEVELOPMENT_PSEUDONYM_KEY = "seminarops-development-pseudonym-key-not-secret"
MIN_KEY_LENGTH = 16


def pseudonym(participant_id: str, *, key: bytes) -> str:
    """``erased-`` + the first 24 hex digits of HMAC-SHA256(key, participant_id).

    Deterministic (the same person, the same pseudonym, in every service and on every
    replay), one-way without the key, and idempotent: a pseudonym maps to itself, so
    erasing twice, or an event that already carries the pseudonym, changes nothing.
    """
    if not key:
        raise ValueError("the pseudonym key must not be empty")
    if is_pseudonym(participant_id):
        return participant_id
    digest = hmac.new(key, participant_id.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_LENGTH]


def is_pseudonym(value: str | None) -> bool:
    """Whether ``value`` has the exact shape of a pseudonym (not merely the prefix)."""
    return value is not None and _PSEUDONYM.fullmatch(value) is not None


class PrivacySettings(BaseSettings):
    """The erasure pseudonym key (``PRIVACY_PSEUDONYM_KEY``), shared by every service.

    Without it a service uses a development key that anyone can read here, and warns
    about it at start-up, like a service without auth tokens.
    """

    model_config = SettingsConfigDict(env_prefix="PRIVACY_", extra="ignore")

    pseudonym_key: SecretStr = SecretStr(DEVELOPMENT_PSEUDONYM_KEY)

    @field_validator("pseudonym_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_KEY_LENGTH:
            raise ValueError(f"the pseudonym key needs at least {MIN_KEY_LENGTH} bytes")
        return value

    @property
    def development_key(self) -> bool:
        """Whether this is the published development key (never in production)."""
        return self.pseudonym_key.get_secret_value() == DEVELOPMENT_PSEUDONYM_KEY

    @property
    def key(self) -> bytes:
        return self.pseudonym_key.get_secret_value().encode()

    def pseudonym(self, participant_id: str) -> str:
        """``pseudonym(participant_id, key=self.key)``."""
        return pseudonym(participant_id, key=self.key)


__all__ = [
    "DEVELOPMENT_PSEUDONYM_KEY",
    "PSEUDONYM_PREFIX",
    "PrivacySettings",
    "is_pseudonym",
    "pseudonym",
]
