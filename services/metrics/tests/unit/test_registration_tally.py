"""The registration gauge counts every registration once, then re-counts only the
seminars that changed (each twice), and everything again after ``full_every_s``."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from metrics.gauges import RegistrationTally


class FakeCounts:
    """Registrations per seminar and status, and which seminars each query asked for."""

    def __init__(self) -> None:
        self.per_seminar: dict[str, dict[str, int]] = {}
        self.kinds: dict[str, str] = {}
        self.asked: list[set[str] | None] = []

    async def registrations_by_seminar(
        self, seminar_ids: Collection[str] | None
    ) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
        self.asked.append(None if seminar_ids is None else set(seminar_ids))
        wanted = set(self.per_seminar) if seminar_ids is None else set(seminar_ids)
        counts = {s: dict(c) for s, c in self.per_seminar.items() if s in wanted}
        return counts, {s: self.kinds.get(s, "unknown") for s in wanted}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_only_changed_seminars_are_counted_again_until_a_full_count_is_due() -> None:
    db, clock = FakeCounts(), Clock()
    db.per_seminar = {"s1": {"confirmed": 2}, "s2": {"waitlisted": 1}}
    db.kinds = {"s1": "online_seminar"}
    tally = RegistrationTally(full_every_s=120, clock=clock)

    assert await tally.counts(db) == {
        ("confirmed", "online_seminar"): 2,
        ("waitlisted", "unknown"): 1,
    }
    assert db.asked == [None]

    # s2 gets a registration and becomes known; s1 changes in the database too, but
    # nobody here said so: it stays as counted until the next full count.
    db.per_seminar = {"s1": {"confirmed": 5}, "s2": {"waitlisted": 1, "confirmed": 1}}
    db.kinds["s2"] = "pd_workshop"
    tally.changed(["s2"])
    clock.now += timedelta(seconds=10)
    assert await tally.counts(db) == {
        ("confirmed", "online_seminar"): 2,
        ("confirmed", "pd_workshop"): 1,
        ("waitlisted", "pd_workshop"): 1,
    }
    # Counted again once more (its transaction may have committed after the count).
    clock.now += timedelta(seconds=10)
    await tally.counts(db)
    clock.now += timedelta(seconds=10)
    await tally.counts(db)
    assert db.asked[1:] == [{"s2"}, {"s2"}, set()]

    clock.now += timedelta(seconds=120)
    assert await tally.counts(db) == {
        ("confirmed", "online_seminar"): 5,
        ("confirmed", "pd_workshop"): 1,
        ("waitlisted", "pd_workshop"): 1,
    }
    assert db.asked[-1] is None
