"""The seminar table's arithmetic and the year a dashboard opens on (pure)."""

from __future__ import annotations

import pytest

from metrics.reports import SeminarTableInput, seminars_csv, seminars_report, year_to_open
from seminarops_shared.events.vocabulary import Kind, Programme


def _seminar(seminar_id: str, **counts: int) -> SeminarTableInput:
    capacity = counts.pop("capacity", 20)
    return SeminarTableInput(
        seminar_id=seminar_id,
        title=f"Seminar {seminar_id}",
        kind=Kind.ONLINE_SEMINAR,
        programme=Programme.ETWINNING,
        status="completed",
        capacity=capacity or None,
        counts={key.replace("_", ":", 1) if key.startswith("status_") else key: n
                for key, n in counts.items()},
    )  # fmt: skip


def test_fill_rate_waiting_list_and_response_rate_come_from_the_tally() -> None:
    report = seminars_report(
        2025,
        [
            _seminar(
                "s1",
                status_confirmed=15,
                status_waitlisted=4,
                status_cancelled=2,
                confirmed=17,
                attended=12,
                evaluated=7,
            )
        ],
    )
    [row] = report.rows
    # Seats held now (not ever): 15 of 20; 7 answers from 12 participants.
    assert (row.confirmed, row.waitlisted, row.fill_rate_pct) == (15, 4, 75.0)
    assert (row.attended, row.evaluated, row.response_rate_pct) == (12, 7, 58.3)


def test_a_seminar_without_registrations_or_capacity_has_no_rates() -> None:
    [empty, unknown] = seminars_report(
        2025, [_seminar("a"), _seminar("b", capacity=0, status_confirmed=3)]
    ).rows
    assert (empty.confirmed, empty.fill_rate_pct, empty.response_rate_pct) == (0, 0.0, None)
    assert (unknown.capacity, unknown.fill_rate_pct) == (None, None)


def test_rows_are_sorted_by_kind_programme_then_title() -> None:
    seminars = [
        SeminarTableInput("z", "Zebra", Kind.PD_WORKSHOP, Programme.ETWINNING, "scheduled", 10),
        SeminarTableInput("y", "Beta", Kind.LEARNING_EVENT, Programme.ETWINNING, "scheduled", 10),
        SeminarTableInput("x", "Alpha", Kind.LEARNING_EVENT, Programme.ETWINNING, "scheduled", 10),
        SeminarTableInput("w", None, None, None, "scheduled", None),
    ]
    assert [r.seminar_id for r in seminars_report(2025, seminars).rows] == ["x", "y", "z", "w"]


def test_csv_has_one_line_per_seminar_and_quotes_formula_titles() -> None:
    seminar = SeminarTableInput(
        "s1", "=HYPERLINK(1)", Kind.ONLINE_SEMINAR, Programme.ETWINNING, "live", 4,
        {"status:confirmed": 4, "status:waitlisted": 2},
    )  # fmt: skip
    lines = seminars_csv(seminars_report(2024, [seminar])).splitlines()
    assert lines == [
        "year,seminar_id,title,kind,programme,status,capacity,confirmed,waitlisted,"
        "fill_rate_pct,attended,evaluated,response_rate_pct",
        "2024,s1,'=HYPERLINK(1),online_seminar,etwinning,live,4,4,2,100.0,0,0,",
    ]


@pytest.mark.parametrize(
    ("seminar_years", "participant_years", "expected"),
    [
        # A season scheduled ahead (2027) does not pull the dashboard into an empty year.
        ([2024, 2025, 2027], [2024, 2025], 2025),
        ([2026], [], 2026),  # nobody attended yet: the season being prepared
        ([], [], None),
    ],
)
def test_the_year_to_open_on_is_the_latest_with_participants(
    seminar_years: list[int], participant_years: list[int], expected: int | None
) -> None:
    assert year_to_open(seminar_years, participant_years) == expected
