"""Topic creation reports what the broker refused (the embedded broker refuses nothing,
so its answer is stood in for here) and asks only for the topics that are missing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiokafka.admin
import pytest
from aiokafka.errors import TopicAlreadyExistsError

from seminarops_shared.topics_admin import StartupError, create_topics


class _Admin:
    """What ``create_topics`` uses of ``AIOKafkaAdminClient``; ``refuse`` maps a topic
    to the error code the broker answers for it; ``asked`` records each creation request."""

    def __init__(
        self, *, existing: set[str], refuse: dict[str, int], asked: list[list[str]], **_: Any
    ) -> None:
        self._existing, self._refuse, self._asked = existing, refuse, asked

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_topics(self) -> list[str]:
        return sorted(self._existing)

    async def create_topics(self, new_topics: list[Any]) -> Any:
        names = [t.name for t in new_topics]
        self._asked.append(names)
        return SimpleNamespace(
            topic_errors=[
                (n, self._refuse.get(n, 0), "refused" if n in self._refuse else None) for n in names
            ]
        )


def _admin(
    monkeypatch: pytest.MonkeyPatch, *, existing: set[str], refuse: dict[str, int]
) -> list[list[str]]:
    asked: list[list[str]] = []
    monkeypatch.setattr(
        aiokafka.admin,
        "AIOKafkaAdminClient",
        lambda **options: _Admin(existing=existing, refuse=refuse, asked=asked, **options),
    )
    return asked


async def test_only_missing_topics_are_asked_for_and_a_race_is_fine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _admin(monkeypatch, existing={"a"}, refuse={"b": TopicAlreadyExistsError.errno})
    created = await create_topics(
        "k:9092", ["a", "b", "c"], partitions=6, replication_factor=1, options={}
    )
    assert asked == [["b", "c"]]
    assert created == ["c"]


async def test_nothing_is_asked_for_when_every_topic_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _admin(monkeypatch, existing={"a", "b"}, refuse={})
    assert (
        await create_topics("k:9092", ["a", "b"], partitions=6, replication_factor=3, options={})
        == []
    )
    assert asked == []


async def test_a_refused_topic_stops_the_start_with_the_broker_s_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _admin(monkeypatch, existing=set(), refuse={"b": 38})  # INVALID_REPLICATION_FACTOR
    with pytest.raises(StartupError, match="b: error 38 refused"):
        await create_topics("k:9092", ["a", "b"], partitions=6, replication_factor=3, options={})
