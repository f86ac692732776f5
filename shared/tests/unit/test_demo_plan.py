"""``make demo``'s season plan (pure): the same on every run, and rich enough for every
view of the dashboard."""

from __future__ import annotations

from collections import Counter
from datetime import date

from seminarops_devtools.demo import KINDS, PROGRAMMES, event_id, plan_season
from seminarops_shared.events.inbound import Participant

TODAY = date(2026, 12, 6)


def test_the_plan_is_the_same_on_every_run() -> None:
    assert plan_season(TODAY) == plan_season(TODAY)
    assert event_id("request", "demo-2025-01", "demo-t0001") == event_id(
        "request", "demo-2025-01", "demo-t0001"
    )
    assert event_id("request", "a", "b") != event_id("cancel", "a", "b")


def test_every_season_has_every_kind_and_programme_and_the_next_one_is_open() -> None:
    plans = plan_season(TODAY)
    seasons = Counter(int(p.id.split("-")[1]) for p in plans)
    assert sorted(seasons) == [2023, 2024, 2025, 2026, 2027]
    for year in (2023, 2024, 2025, 2026):
        pairs = {
            (p.kind, p.body["programme"]) for p in plans if p.body["starts_at"][:4] == str(year)
        }
        assert pairs == {(k, pr) for k in KINDS for pr in PROGRAMMES}, year
    ahead = [p for p in plans if not p.held]
    assert ahead
    assert all(p.body["starts_at"] > TODAY.isoformat() for p in ahead)
    assert all(p.held for p in plans if p.body["starts_at"] < TODAY.isoformat())


def test_the_season_has_waiting_lists_cancellations_hosts_and_answers() -> None:
    plans = plan_season(TODAY)
    assert sum(len(p.registrants) > p.body["capacity"] for p in plans) >= 5  # waiting lists
    assert sum(len(p.cancelling) for p in plans) >= 20
    assert sum(1 for p in plans if p.body["host_school_id"]) >= 10
    assert {r for p in plans for r in p.answers.values() if r} == {
        "excellent", "very_good", "good", "fair", "poor"
    }  # fmt: skip
    for plan in plans:
        ids = [t.id for t in plan.registrants]
        assert len(ids) == len(set(ids)), plan.id
        assert set(plan.cancelling) <= set(ids)
        assert plan.attends <= set(ids)
        # Valid as the registration service will validate them (country codes, e-mails).
        for teacher in plan.registrants:
            Participant.model_validate(teacher.participant().model_dump())
