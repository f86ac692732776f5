"""The seminar rules: validation, time zones (DST), lifecycle, attendance, reminders."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from seminar import domain
from seminar.domain import (
    AttendanceLimitExceeded,
    IllegalTransition,
    InvalidSeminar,
    NotYet,
    RosterStatus,
    SeminarStatus,
    Session,
)
from seminarops_shared.events.vocabulary import Kind, Programme, Promotion

BRUSSELS = ZoneInfo("Europe/Brussels")
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
# When the default seminar's (one) session starts: 10 March 2026, 17:00 in Brussels.
STARTS = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)


def define(**overrides: object) -> domain.SeminarDefinition:
    values: dict[str, object] = {
        "title": "Coding in the classroom",
        "kind": Kind.ONLINE_SEMINAR,
        "programme": Programme.ETWINNING,
        "theme": "STEM",
        "language": "en",
        "timezone": "Europe/Brussels",
        "sessions": [
            (datetime(2026, 3, 10, 16, 0, tzinfo=UTC), datetime(2026, 3, 10, 17, 30, tzinfo=UTC))
        ],
        "capacity": 100,
    }
    values.update(overrides)
    return domain.define_seminar(**values)  # type: ignore[arg-type]


def seminar(**overrides: object) -> domain.Seminar:
    return domain.schedule(seminar_id="sem-1", definition=define(**overrides), now=NOW)


# ---- validation --------------------------------------------------------------------------


def test_a_valid_definition_is_normalised() -> None:
    definition = define(title="  Coding  ", language="PT_br", theme="  ")
    assert definition.title == "Coding"
    assert definition.language == "pt-BR"
    assert definition.theme is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"timezone": ""}, "unknown time zone"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": -5}, "capacity"),
        ({"capacity": domain.MAX_CAPACITY + 1}, "capacity"),
        ({"language": "English"}, "language"),
        ({"title": "   "}, "title"),
        ({"sessions": []}, "at least one session"),
        (
            {
                "sessions": [
                    (datetime(2026, 3, 10, 17, tzinfo=UTC), datetime(2026, 3, 10, 16, tzinfo=UTC))
                ]
            },
            "ends_at must be after starts_at",
        ),
        (
            {
                "sessions": [
                    (datetime(2026, 3, 10, 16, tzinfo=UTC), datetime(2026, 3, 10, 16, tzinfo=UTC))
                ]
            },
            "ends_at must be after starts_at",
        ),
        (
            {
                "sessions": [
                    (datetime(2026, 3, 10, 16, tzinfo=UTC), datetime(2026, 3, 10, 17, tzinfo=UTC)),
                    (datetime(2026, 3, 11, 16, tzinfo=UTC), datetime(2026, 3, 11, 17, tzinfo=UTC)),
                ]
            },
            "exactly one session",
        ),
        (
            {
                "kind": Kind.LEARNING_EVENT,
                "sessions": [
                    (datetime(2026, 3, 10, 16, tzinfo=UTC), datetime(2026, 3, 10, 18, tzinfo=UTC)),
                    (datetime(2026, 3, 10, 17, tzinfo=UTC), datetime(2026, 3, 10, 19, tzinfo=UTC)),
                ],
            },
            "overlap",
        ),
    ],
)
def test_invalid_definitions_are_refused_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidSeminar, match=message):
        define(**overrides)


def test_learning_event_sessions_are_sorted() -> None:
    later = (datetime(2026, 3, 17, 16, tzinfo=UTC), datetime(2026, 3, 17, 18, tzinfo=UTC))
    earlier = (datetime(2026, 3, 10, 16, tzinfo=UTC), datetime(2026, 3, 10, 18, tzinfo=UTC))
    definition = define(kind=Kind.LEARNING_EVENT, sessions=[later, earlier])
    assert [s.starts_at for s in definition.sessions] == [earlier[0], later[0]]


def test_fingerprint_is_the_same_for_the_same_seminar_written_differently() -> None:
    utc = define()
    local_wall_clock = define(
        sessions=[(datetime(2026, 3, 10, 17, 0), datetime(2026, 3, 10, 18, 30))]  # noqa: DTZ001
    )
    assert utc.fingerprint() == local_wall_clock.fingerprint()
    assert utc.fingerprint() != define(capacity=101).fingerprint()


# ---- time zones --------------------------------------------------------------------------


def test_naive_times_are_wall_clock_time_in_the_seminar_zone_across_dst() -> None:
    # Brussels: CET (+01:00) until the last Sunday of March 2026 (29th) 02:00, then CEST.
    before = domain.to_utc(datetime(2026, 3, 28, 10, 0), BRUSSELS)  # noqa: DTZ001
    after = domain.to_utc(datetime(2026, 3, 29, 10, 0), BRUSSELS)  # noqa: DTZ001
    assert before == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    assert after == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    # Weekly sessions at 10:00 local stay at 10:00 local: 23 hours apart in UTC.
    assert after - before == timedelta(hours=23)


def test_a_session_across_the_spring_dst_change_lasts_its_real_length() -> None:
    # 01:30 -> 03:30 local on 29 March 2026 is one hour: 02:00-03:00 does not exist.
    definition = define(
        sessions=[(datetime(2026, 3, 29, 1, 30), datetime(2026, 3, 29, 3, 30))]  # noqa: DTZ001
    )
    [session] = definition.sessions
    assert session.ends_at - session.starts_at == timedelta(hours=1)


def test_a_session_across_the_autumn_dst_change_lasts_its_real_length() -> None:
    # Last Sunday of October 2026 (25th): 03:00 CEST becomes 02:00 CET.
    definition = define(
        sessions=[
            (
                datetime(2026, 10, 25, 1, 30, tzinfo=BRUSSELS),
                datetime(2026, 10, 25, 3, 30, tzinfo=BRUSSELS),
            )
        ]
    )
    [session] = definition.sessions
    assert session.ends_at - session.starts_at == timedelta(hours=3)


def test_a_wall_clock_time_skipped_by_dst_is_refused() -> None:
    with pytest.raises(InvalidSeminar, match="does not exist in Europe/Brussels"):
        domain.to_utc(datetime(2026, 3, 29, 2, 30), BRUSSELS)  # noqa: DTZ001


def test_a_wall_clock_time_repeated_by_dst_is_refused_unless_an_offset_is_given() -> None:
    with pytest.raises(InvalidSeminar, match="happens twice"):
        domain.to_utc(datetime(2026, 10, 25, 2, 30), BRUSSELS)  # noqa: DTZ001
    cest = datetime.fromisoformat("2026-10-25T02:30:00+02:00")
    cet = datetime.fromisoformat("2026-10-25T02:30:00+01:00")
    assert domain.to_utc(cet, BRUSSELS) - domain.to_utc(cest, BRUSSELS) == timedelta(hours=1)


def test_aware_times_keep_their_instant_and_lose_sub_seconds() -> None:
    moment = datetime(2026, 5, 1, 9, 0, 0, 123456, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert domain.to_utc(moment, BRUSSELS) == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def test_year_is_taken_in_the_seminar_zone_near_new_year() -> None:
    # 31 Dec 2025 23:30 UTC is already 1 Jan 2026 in Brussels, still 2025 in New York.
    starts = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    sessions = [(starts, starts + timedelta(hours=1))]
    assert seminar(sessions=sessions).year == 2026
    assert seminar(sessions=sessions, timezone="America/New_York").year == 2025
    assert seminar(sessions=sessions, timezone="UTC").year == 2025


def test_year_of_a_learning_event_is_that_of_its_first_session() -> None:
    first = datetime(2025, 12, 15, 16, tzinfo=UTC)
    second = datetime(2026, 1, 12, 16, tzinfo=UTC)
    sessions = [(first, first + timedelta(hours=2)), (second, second + timedelta(hours=2))]
    assert seminar(kind=Kind.LEARNING_EVENT, sessions=sessions).year == 2025


# ---- lifecycle ---------------------------------------------------------------------------


def test_lifecycle_scheduled_live_completed() -> None:
    scheduled = seminar()
    assert scheduled.status is SeminarStatus.SCHEDULED
    assert scheduled.version == 1
    live = domain.go_live(scheduled, now=STARTS)
    assert live is not None
    assert live.status is SeminarStatus.LIVE
    assert live.version == 2
    assert domain.go_live(live, now=STARTS) is None  # idempotent
    completed = domain.complete(live, now=STARTS)
    assert completed is not None
    assert completed.status is SeminarStatus.COMPLETED
    assert completed.completed_at == STARTS
    assert domain.complete(completed, now=STARTS) is None  # idempotent


@pytest.mark.parametrize(
    "action",
    [
        lambda s: domain.go_live(s, now=STARTS),
        lambda s: domain.cancel(s, reason=None, now=STARTS),
        lambda s: domain.reschedule(s, sessions=None, capacity=5, now=STARTS),
    ],
)
def test_completed_is_terminal(action: object) -> None:
    live = domain.go_live(seminar(), now=STARTS)
    assert live is not None
    completed = domain.complete(live, now=STARTS)
    with pytest.raises(IllegalTransition):
        action(completed)  # type: ignore[operator]


@pytest.mark.parametrize(
    "action",
    [
        lambda s: domain.go_live(s, now=STARTS),
        lambda s: domain.complete(s, now=STARTS),
        lambda s: domain.reschedule(s, sessions=None, capacity=5, now=NOW),
    ],
)
def test_cancelled_is_terminal(action: object) -> None:
    cancelled = domain.cancel(seminar(), reason="moderator ill", now=NOW)
    assert cancelled is not None
    assert cancelled.cancel_reason == "moderator ill"
    assert domain.cancel(cancelled, reason=None, now=NOW) is None  # idempotent
    with pytest.raises(IllegalTransition):
        action(cancelled)  # type: ignore[operator]


def test_a_seminar_goes_live_at_most_an_hour_before_its_first_session() -> None:
    future = seminar()  # 10 March 2026 17:00 in Brussels, NOW is 15 January
    with pytest.raises(NotYet, match=r"cannot start before 2026-03-10T16:00:00\+01:00"):
        domain.go_live(future, now=NOW)
    with pytest.raises(NotYet):
        domain.go_live(future, now=STARTS - domain.GO_LIVE_LEAD - timedelta(seconds=1))
    live = domain.go_live(future, now=STARTS - domain.GO_LIVE_LEAD)
    assert live is not None
    assert live.status is SeminarStatus.LIVE


def test_a_seminar_completes_only_once_its_last_session_has_started() -> None:
    future = seminar()
    with pytest.raises(NotYet, match="last session starts at 2026-03-10T17:00:00"):
        domain.complete(future, now=NOW)
    assert domain.complete(future, now=STARTS) is not None
    second = datetime(2026, 3, 17, 16, tzinfo=UTC)
    two_sessions = seminar(
        kind=Kind.LEARNING_EVENT,
        sessions=[(STARTS, STARTS + timedelta(hours=2)), (second, second + timedelta(hours=2))],
    )
    live = domain.go_live(two_sessions, now=STARTS)
    assert live is not None
    with pytest.raises(NotYet, match="2026-03-17T17:00:00"):
        domain.complete(live, now=second - timedelta(seconds=1))
    assert domain.complete(live, now=second) is not None


def test_a_past_season_is_attended_and_completed_at_once() -> None:
    last_year = seminar(sessions=[(STARTS - timedelta(days=365), STARTS - timedelta(days=364))])
    domain.check_attendance_open(last_year, now=NOW)
    completed = domain.complete(last_year, now=NOW)
    assert completed is not None
    assert completed.year == 2025


def test_reschedule_changes_times_and_capacity_and_is_idempotent() -> None:
    original = seminar()
    new_start = datetime(2026, 3, 12, 16, tzinfo=UTC)
    moved = domain.reschedule(
        original, sessions=[(new_start, new_start + timedelta(hours=1))], capacity=80, now=NOW
    )
    assert moved is not None
    assert moved.sessions == (Session(new_start, new_start + timedelta(hours=1)),)
    assert moved.capacity == 80
    assert moved.status is SeminarStatus.SCHEDULED
    assert moved.fingerprint == original.fingerprint  # the creation definition's
    assert domain.reschedule(moved, sessions=None, capacity=80, now=NOW) is None


def test_reschedule_validates_like_scheduling() -> None:
    with pytest.raises(InvalidSeminar, match="capacity"):
        domain.reschedule(seminar(), sessions=None, capacity=0, now=NOW)
    start = datetime(2026, 3, 12, 16, tzinfo=UTC)
    with pytest.raises(InvalidSeminar, match="after"):
        domain.reschedule(seminar(), sessions=[(start, start)], capacity=None, now=NOW)


def test_a_live_learning_event_can_move_a_later_session() -> None:
    first = datetime(2026, 1, 12, 16, tzinfo=UTC)
    second = datetime(2026, 1, 19, 16, tzinfo=UTC)
    sessions = [(first, first + timedelta(hours=2)), (second, second + timedelta(hours=2))]
    live = domain.go_live(seminar(kind=Kind.LEARNING_EVENT, sessions=sessions), now=NOW)
    assert live is not None
    moved = domain.reschedule(
        live,
        sessions=[sessions[0], (second + timedelta(days=1), second + timedelta(days=1, hours=2))],
        capacity=None,
        now=NOW,
    )
    assert moved is not None
    assert moved.status is SeminarStatus.LIVE


# ---- attendance --------------------------------------------------------------------------


def test_attendance_is_open_only_once_the_first_session_started() -> None:
    future = seminar()
    with pytest.raises(NotYet, match="before the seminar starts"):
        domain.check_attendance_open(future, now=NOW)
    domain.check_attendance_open(future, now=future.starts_at)
    live = domain.go_live(future, now=STARTS - domain.GO_LIVE_LEAD)
    assert live is not None
    # Live in the room an hour early: nobody has attended a session yet.
    with pytest.raises(NotYet):
        domain.check_attendance_open(live, now=STARTS - timedelta(minutes=1))
    domain.check_attendance_open(live, now=STARTS)
    completed = domain.complete(live, now=STARTS)
    assert completed is not None
    with pytest.raises(IllegalTransition, match="completed"):
        domain.check_attendance_open(completed, now=STARTS)
    cancelled = domain.cancel(future, reason=None, now=NOW)
    assert cancelled is not None
    with pytest.raises(IllegalTransition, match="cancelled"):
        domain.check_attendance_open(cancelled, now=STARTS)


def test_only_confirmed_registrants_become_attendees_and_nobody_twice() -> None:
    decision = domain.decide_attendance(
        requested=["a", "b", "a", "c", "d", "e", "b"],
        roster={
            "a": RosterStatus.CONFIRMED,
            "b": RosterStatus.CONFIRMED,
            "c": RosterStatus.WAITLISTED,
            "d": RosterStatus.CANCELLED,
        },
        already_recorded={"b"},
        attendee_count=1,
    )
    assert decision.recorded == ["a"]
    assert decision.already_recorded == ["b"]
    assert decision.rejected == {"c": "waitlisted", "d": "cancelled", "e": "not_registered"}


def test_attendance_beyond_the_limit_is_refused_whole() -> None:
    with pytest.raises(AttendanceLimitExceeded):
        domain.decide_attendance(
            requested=["a", "b"],
            roster={"a": RosterStatus.CONFIRMED, "b": RosterStatus.CONFIRMED},
            already_recorded=set(),
            attendee_count=domain.MAX_ATTENDEES - 1,
        )


def test_chunked_splits_into_pieces_of_at_most_the_size() -> None:
    ids = [f"p{i}" for i in range(2500)]
    pieces = domain.chunked(ids)
    assert [len(p) for p in pieces] == [1000, 1000, 500]
    assert [i for piece in pieces for i in piece] == ids
    assert domain.chunked([]) == []


# ---- rosters and erasure -----------------------------------------------------------------


def test_only_newer_registration_versions_apply() -> None:
    assert domain.supersedes(1, None)
    assert domain.supersedes(3, 2)
    assert not domain.supersedes(2, 2)
    assert not domain.supersedes(1, 2)


# ---- reminders ---------------------------------------------------------------------------


def test_reminders_per_session_and_offset_skip_those_already_due() -> None:
    first = datetime(2026, 1, 16, 10, tzinfo=UTC)  # NOW + 22 h
    second = datetime(2026, 1, 23, 10, tzinfo=UTC)
    learning = seminar(
        kind=Kind.LEARNING_EVENT,
        sessions=[(first, first + timedelta(hours=2)), (second, second + timedelta(hours=2))],
    )
    reminders = domain.reminders_for(learning, offsets_minutes=[60, 1440], now=NOW)
    assert [(r.session_index, r.offset_minutes) for r in reminders] == [(0, 60), (1, 1440), (1, 60)]
    assert reminders[0].job_id == "reminder:sem-1:0:60"
    assert reminders[0].due_at == first - timedelta(hours=1)


def test_past_seminars_and_finished_ones_get_no_reminders() -> None:
    past = datetime(2024, 3, 10, 16, tzinfo=UTC)
    assert (
        domain.reminders_for(
            seminar(sessions=[(past, past + timedelta(hours=1))]), offsets_minutes=[60], now=NOW
        )
        == []
    )
    cancelled = domain.cancel(seminar(), reason=None, now=NOW)
    assert cancelled is not None
    assert domain.reminders_for(cancelled, offsets_minutes=[60], now=NOW) == []


def test_a_session_inside_its_lead_time_gets_one_reminder_at_once() -> None:
    soon = NOW + timedelta(minutes=30, seconds=59)
    later = NOW + timedelta(hours=3)
    learning = seminar(
        kind=Kind.LEARNING_EVENT,
        sessions=[
            (NOW - timedelta(hours=1), NOW - timedelta(minutes=30)),  # started: nothing
            (soon, soon + timedelta(hours=1)),  # both offsets passed: one, now
            (later, later + timedelta(hours=1)),  # the 60 still ahead: that one only
        ],
    )
    reminders = domain.reminders_for(learning, offsets_minutes=[1440, 60], now=NOW)
    assert [(r.job_id, r.offset_minutes, r.due_at) for r in reminders] == [
        ("reminder:sem-1:1:60", 30, NOW),
        ("reminder:sem-1:2:60", 60, later - timedelta(hours=1)),
    ]
    # Planned again (a reschedule) after it went out: not twice for the same start...
    assert domain.reminders_for(
        learning, offsets_minutes=[1440, 60], now=NOW, sent={(1, soon)}
    ) == [reminders[1]]
    # ... but a session moved to another time inside the lead gets one for its new time.
    assert (
        domain.reminders_for(
            learning, offsets_minutes=[1440, 60], now=NOW, sent={(1, soon - timedelta(minutes=5))}
        )
        == reminders
    )
    one_minute = seminar(sessions=[(NOW + timedelta(seconds=20), NOW + timedelta(hours=1))])
    [last_moment] = domain.reminders_for(one_minute, offsets_minutes=[60], now=NOW)
    assert last_moment.offset_minutes == 1


def test_a_reminder_fires_only_for_the_session_it_was_planned_for() -> None:
    planned = seminar()
    start = planned.starts_at
    assert domain.reminder_still_due(planned, session_index=0, session_starts_at=start, now=NOW)
    moved = replace(
        planned, sessions=(Session(start + timedelta(days=1), start + timedelta(days=2)),)
    )
    assert not domain.reminder_still_due(moved, session_index=0, session_starts_at=start, now=NOW)
    assert not domain.reminder_still_due(planned, session_index=1, session_starts_at=start, now=NOW)
    assert not domain.reminder_still_due(
        planned, session_index=0, session_starts_at=start, now=start
    )
    cancelled = domain.cancel(planned, reason=None, now=NOW)
    assert cancelled is not None
    assert not domain.reminder_still_due(
        cancelled, session_index=0, session_starts_at=start, now=NOW
    )


# ---- the participant journey's settings ------------------------------------------------


def test_offer_hours_default_with_an_offer_and_are_refused_without_one() -> None:
    assert define(promotion=Promotion.OFFER).offer_hours == domain.DEFAULT_OFFER_HOURS == 48
    assert define(promotion=Promotion.OFFER, offer_hours=6).offer_hours == 6
    assert define().offer_hours is None
    with pytest.raises(InvalidSeminar, match="only with promotion 'offer'"):
        define(offer_hours=6)
    with pytest.raises(InvalidSeminar, match="between 1 and 168"):
        define(promotion=Promotion.OFFER, offer_hours=169)


def test_eligible_countries_are_upper_case_and_each_once() -> None:
    definition = define(eligible_countries=["ua", "MD", "Ua", "ge"])
    assert definition.eligible_countries == ("UA", "MD", "GE")
    assert define().eligible_countries is None
    with pytest.raises(InvalidSeminar, match="at least one country"):
        define(eligible_countries=[])


def test_a_definition_without_journey_settings_keeps_its_earlier_fingerprint() -> None:
    plain = define()
    # The digest of this definition before the journey's fields existed.
    assert plain.fingerprint() == (
        "7bc393a3dbd897fda6f7ec5303a7dd781537ebbe1b8f46dced23197c3cfcce77"
    )
    assert define(promotion=Promotion.OFFER).fingerprint() != plain.fingerprint()
    assert define(eligible_countries=["UA"]).fingerprint() != plain.fingerprint()
