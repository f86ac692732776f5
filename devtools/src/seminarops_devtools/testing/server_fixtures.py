"""The session's real broker and database as a pytest fixture (``infrastructure``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .servers import resolve_test_infrastructure

__all__ = ["Infrastructure", "infrastructure"]


@dataclass(frozen=True)
class Infrastructure:
    """Where the session's broker and database are; tests carve their own namespaces."""

    kafka_bootstrap_servers: str
    mongodb_uri: str


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    """One broker and one database for the whole session, started on first use (tests
    that need neither never pay for them) and stopped at the end. Embedded server logs
    stay in pytest's temporary directory (``infrastructure0/``) for a failed run."""
    with resolve_test_infrastructure(tmp_path_factory.mktemp("infrastructure")) as (kafka, mongo):
        yield Infrastructure(kafka_bootstrap_servers=kafka, mongodb_uri=mongo)
