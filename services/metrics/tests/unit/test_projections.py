"""Projections with the in-memory store: idempotent, order-tolerant, erasure-safe."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from metrics.domain import (
    RegistrationView,
    SeminarStatus,
    registration_after,
    seminar_after,
)
from metrics.handlers import Projector
from metrics.store import MemoryProjectionStore
from seminarops_shared.events.registration import (
    RegistrationCancelled,
    RegistrationConfirmed,
    RegistrationPromoted,
    RegistrationStatus,
    RegistrationWaitlisted,
)
from seminarops_shared.events.seminar import SeminarCompleted, SeminarWentLive
from seminarops_shared.events.vocabulary import Kind, Programme
from seminarops_shared.privacy import is_pseudonym, pseudonym

PSEUDONYM_KEY = b"metrics-unit-test-pseudonym-key"


async def _project(events: list[Any]) -> MemoryProjectionStore:
    store = MemoryProjectionStore()
    projector = Projector(pseudonym_key=PSEUDONYM_KEY)
    for sent in events:
        await projector.apply(sent.data, store)
    return store


def _state(store: MemoryProjectionStore) -> tuple[Any, ...]:
    return (
        store.seminars,
        store.registrations,
        store.participations_by_key,
        store.evaluations,
        set(store.erasures),
    )


def _participants(store: MemoryProjectionStore) -> Counter[tuple[int | None, str, str]]:
    return Counter(
        (v.year, v.kind.value if v.kind else "", v.programme.value if v.programme else "")
        for v in store.participations_by_key.values()
        if v.attended
    )


def _partition_key(sent: Any) -> tuple[str, str]:
    return (sent.data.topic, sent.data.key)


def _interleaving(events: list[Any], seed: int) -> list[Any]:
    """Another order Kafka may deliver in: each partition (topic, key) keeps its own
    order, partitions interleave at random."""
    rng = random.Random(seed)
    queues: dict[tuple[str, str], list[Any]] = {}
    for sent in events:
        queues.setdefault(_partition_key(sent), []).append(sent)
    out: list[Any] = []
    while queues:
        key = rng.choice(sorted(queues))
        out.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    return out


async def test_history_yields_the_expected_participants(two_year_history: Any) -> None:
    store = await _project(two_year_history.events)
    assert _participants(store) == {
        (2024, "online_seminar", "etwinning"): 4,
        (2024, "learning_event", "etwinning_plus"): 3,
        (2025, "online_seminar", "etwinning"): 7,
        (2025, "learning_event", "etwinning_plus"): 2,
        (2025, "pd_workshop", "etwinning_plus"): 4,
    }
    assert store.seminars["s6"].year == 2025  # rescheduled into the next year
    assert store.seminars["s3"].status == SeminarStatus.CANCELLED
    by_id = {v.registration_id: v for v in store.registrations.values()}
    assert by_id["reg-s1-p5"].status == RegistrationStatus.CANCELLED
    assert by_id["reg-s1-p6"].status == RegistrationStatus.CONFIRMED


async def test_every_event_twice_changes_nothing(two_year_history: Any) -> None:
    once = await _project(two_year_history.events)
    twice = await _project([s for s in two_year_history.events for _ in range(2)])
    assert _state(twice) == _state(once)


@pytest.mark.parametrize("seed", range(8))
async def test_any_partition_interleaving_gives_the_same_projections(
    two_year_history: Any, seed: int
) -> None:
    in_order = await _project(two_year_history.events)
    shuffled = await _project(_interleaving(two_year_history.events, seed))
    assert _state(shuffled) == _state(in_order)


async def test_topics_one_after_another_in_either_order(two_year_history: Any) -> None:
    in_order = await _project(two_year_history.events)
    for topics in (
        ("feedback.events", "registration.events", "seminar.events"),
        ("registration.events", "seminar.events", "feedback.events"),
    ):
        events = [s for t in topics for s in two_year_history.events if s.data.topic == t]
        assert _state(await _project(events)) == _state(in_order)


async def test_replays_under_new_ids_change_nothing(two_year_history: Any, replays_of: Any) -> None:
    once = await _project(two_year_history.events)
    again = await _project(two_year_history.events + replays_of(two_year_history))
    assert _state(again) == _state(once)


async def test_an_erased_person_is_nowhere_and_still_counted(two_year_history: Any) -> None:
    store = await _project(two_year_history.events)
    ids = (
        [v.participant_id for v in store.registrations.values()]
        + [v.participant_id for v in store.participations_by_key.values()]
        + [v.participant_id for v in store.evaluations.values()]
    )
    assert "b2" not in ids
    anonymous = pseudonym("b2", key=PSEUDONYM_KEY)
    assert is_pseudonym(anonymous)
    assert ids.count(anonymous) == 3  # registration, participation, evaluation
    # Registrations and participations never hold a participant id, erased or not.
    assert all(
        is_pseudonym(v.participant_id)
        for v in [*store.registrations.values(), *store.participations_by_key.values()]
    )
    assert store.participations_by_key[("s5", anonymous)].attended
    assert set(store.erasures) == {anonymous}


async def test_erasure_before_anything_else_about_the_person(two_year_history: Any) -> None:
    erasure = [s for s in two_year_history.events if s.data.event_type == "participant.erased.v1"]
    rest = [s for s in two_year_history.events if s not in erasure]
    first = await _project(erasure + rest)
    last = await _project(rest + erasure)
    assert _state(first) == _state(last)


def _registration(event_type: type[Any], version: int, **extra: Any) -> Any:
    return event_type(
        registration_id="r1",
        seminar_id="s1",
        participant_id="p1",
        version=version,
        **extra,
    )


def test_registration_status_follows_the_highest_version_whatever_the_order() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    events = [
        _registration(RegistrationWaitlisted, 1, requested_at=at, position=3),
        _registration(RegistrationPromoted, 2),
        _registration(
            RegistrationCancelled,
            3,
            previous_status=RegistrationStatus.CONFIRMED,
            reason="participant_request",
        ),
    ]
    results = set()
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]):
        view: RegistrationView | None = None
        for i in order:
            view = registration_after(view, events[i], participant_id="p1")
        assert view is not None
        results.add(view)
    [final] = results
    assert (final.status, final.version) == (RegistrationStatus.CANCELLED, 3)
    assert (final.ever_waitlisted, final.ever_promoted, final.ever_confirmed) == (True, True, True)
    assert final.ever_cancelled


def test_a_repeated_registration_event_is_a_no_op() -> None:
    event = _registration(RegistrationConfirmed, 1, requested_at=datetime(2025, 1, 1, tzinfo=UTC))
    view = registration_after(None, event, participant_id="p1")
    assert registration_after(view, event, participant_id="p1") == view


def test_a_seminar_status_never_moves_backwards() -> None:
    completed = SeminarCompleted(
        seminar_id="s1",
        kind=Kind.ONLINE_SEMINAR,
        programme=Programme.ETWINNING,
        year=2025,
        attendee_ids=[],
    )
    view = seminar_after(None, completed)
    assert seminar_after(view, SeminarWentLive(seminar_id="s1")).status == SeminarStatus.COMPLETED
