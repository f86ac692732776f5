from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from seminarops_shared.privacy import (
    DEVELOPMENT_PSEUDONYM_KEY,
    PrivacySettings,
    is_pseudonym,
    pseudonym,
)
from seminarops_shared.settings import ServiceSettings

KEY = b"k" * 32
ids = st.text(min_size=1, max_size=128)


def test_pseudonym_is_an_hmac_of_the_id_under_the_key() -> None:
    expected = hmac.new(KEY, b"teacher-42", hashlib.sha256).hexdigest()[:24]
    assert pseudonym("teacher-42", key=KEY) == f"erased-{expected}"
    # Not the plain hash: knowing an id is not enough to find the person's records.
    plain = hashlib.sha256(b"teacher-42").hexdigest()
    assert plain[:24] not in pseudonym("teacher-42", key=KEY)


@given(ids)
def test_pseudonym_is_deterministic_shaped_and_idempotent(participant_id: str) -> None:
    alias = pseudonym(participant_id, key=KEY)
    assert alias == pseudonym(participant_id, key=KEY)
    assert is_pseudonym(alias)
    assert len(alias) == len("erased-") + 24
    assert pseudonym(alias, key=KEY) == alias


@given(ids, ids)
def test_different_ids_get_different_pseudonyms(first: str, second: str) -> None:
    if first != second and not (is_pseudonym(first) or is_pseudonym(second)):
        assert pseudonym(first, key=KEY) != pseudonym(second, key=KEY)


def test_another_key_gives_another_pseudonym() -> None:
    assert pseudonym("p-1", key=KEY) != pseudonym("p-1", key=b"x" * 32)


def test_only_the_exact_shape_counts_as_a_pseudonym() -> None:
    # An id that merely starts with the prefix is a person's id, and is pseudonymised.
    assert not is_pseudonym("erased-by-choice")
    assert pseudonym("erased-by-choice", key=KEY) != "erased-by-choice"
    assert not is_pseudonym(None)
    with pytest.raises(ValueError, match="empty"):
        pseudonym("p", key=b"")


def test_settings_read_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVACY_PSEUDONYM_KEY", "a-real-secret-of-enough-length")
    settings = ServiceSettings(service_name="x", port=1)
    assert not settings.privacy.development_key
    assert settings.privacy.key == b"a-real-secret-of-enough-length"
    assert settings.privacy.pseudonym("p") == pseudonym("p", key=settings.privacy.key)
    assert "a-real-secret" not in repr(settings)


def test_settings_default_to_the_development_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIVACY_PSEUDONYM_KEY", raising=False)
    settings = PrivacySettings()
    assert settings.development_key
    assert settings.key == DEVELOPMENT_PSEUDONYM_KEY.encode()


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 bytes"):
        PrivacySettings(pseudonym_key=SecretStr("short"))
