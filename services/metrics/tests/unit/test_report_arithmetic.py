"""Report arithmetic: rounding to one decimal, growth, zero cases, contract shapes."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics.reports import (
    SeminarFunnelInput,
    countries_csv,
    countries_report,
    funnel_csv,
    funnel_report,
    growth_pct,
    participation_csv,
    participation_report,
    percent,
    satisfaction_csv,
    satisfaction_report,
    schools_report,
    series_report,
)
from seminarops_shared.events.vocabulary import Kind, Programme, Rating

ONLINE, LEARNING, WORKSHOP = Kind.ONLINE_SEMINAR, Kind.LEARNING_EVENT, Kind.PD_WORKSHOP
ETW, PLUS = Programme.ETWINNING, Programme.ETWINNING_PLUS


@pytest.mark.parametrize(
    ("part", "whole", "expected"),
    [
        (12, 120, "10.0"),
        (80, 132, "60.6"),  # 60.606...
        (72, 80, "90.0"),
        (1, 8, "12.5"),  # exact, no rounding
        (1, 80, "1.3"),  # 1.25: a tie, half up (Python's round(1.25, 1) gives 1.2)
        (3, 16, "18.8"),  # 18.75: a tie
        (1, 16, "6.3"),  # 6.25: a tie
        (1, 400, "0.3"),  # 0.25: a tie
        (1, 2000, "0.1"),  # 0.05: a tie at the smallest step
        (1, 2001, "0.0"),  # 0.04997...: just under the tie
        (1, 3, "33.3"),
        (2, 3, "66.7"),
        (1, 6, "16.7"),
        (7, 7, "100.0"),
        (0, 5, "0.0"),
        (-1, 80, "-1.3"),  # ties round away from zero on the negative side too
        (-1, 3, "-33.3"),
        (-1, 3000, "0.0"),  # never "-0.0"
        (3, 2, "150.0"),
    ],
)
def test_percent_rounds_half_up_to_one_decimal(part: int, whole: int, expected: str) -> None:
    value = percent(part, whole)
    assert value is not None
    assert str(value) == expected


def test_percent_of_nothing_is_none() -> None:
    assert percent(0, 0) is None
    assert percent(5, 0) is None


def _reference(part: int, whole: int) -> Decimal:
    """Half up (away from zero) at tenths on the exact rational, independently."""
    exact = Fraction(part * 100, whole)
    tenths = abs(exact) * 10
    rounded = int(tenths) + (1 if tenths - int(tenths) >= Fraction(1, 2) else 0)
    value = Decimal(rounded) / 10
    return Decimal("0.0") if rounded == 0 else (value if exact >= 0 else -value)


@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=1, max_value=10**9))
def test_percent_matches_exact_rational_rounding(part: int, whole: int) -> None:
    assert percent(part, whole) == _reference(part, whole)


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (132, 120, 10.0),
        (7, 4, 75.0),
        (2, 3, -33.3),
        (0, 10, -100.0),
        (9, 8, 12.5),
        (81, 80, 1.3),  # 1.25: half up
        (5, 5, 0.0),
        (5, 0, None),  # no previous year: null, not infinity
        (0, 0, None),
    ],
)
def test_growth(current: int, previous: int, expected: float | None) -> None:
    value = growth_pct(current, previous)
    assert (None if value is None else float(value)) == expected


def test_participation_report_has_the_contract_shape() -> None:
    report = participation_report(2017, {(2017, ONLINE, ETW): 132, (2016, ONLINE, ETW): 120})
    assert report.model_dump(mode="json", by_alias=True) == {
        "year": 2017,
        "rows": [
            {
                "kind": "online_seminar",
                "programme": "etwinning",
                "participants": 132,
                "previous_year_participants": 120,
                "growth_pct": 10.0,
            }
        ],
        "total_participants": 132,
    }


def test_participation_rows_from_either_year_sorted_by_kind_then_programme() -> None:
    counts = {
        (2025, ONLINE, PLUS): 3,
        (2025, LEARNING, ETW): 2,
        (2024, WORKSHOP, ETW): 4,  # only last year: a row with 0 and -100 %
        (2024, ONLINE, PLUS): 2,
        (2023, LEARNING, PLUS): 9,  # two years back: not a row
    }
    report = participation_report(2025, counts)
    assert [
        (r.kind, r.programme, r.participants, r.previous_year_participants, r.growth_pct)
        for r in report.rows
    ] == [
        (LEARNING, ETW, 2, 0, None),
        (ONLINE, PLUS, 3, 2, 50.0),
        (WORKSHOP, ETW, 0, 4, -100.0),
    ]
    assert report.total_participants == 5


def test_participation_of_an_empty_year() -> None:
    report = participation_report(2030, {})
    assert report.rows == []
    assert report.total_participants == 0


def test_satisfaction_report_has_the_contract_shape() -> None:
    ratings = {
        (2017, ONLINE, ETW, Rating.EXCELLENT): 50,
        (2017, ONLINE, ETW, Rating.VERY_GOOD): 22,
        (2017, ONLINE, ETW, Rating.GOOD): 5,
        (2017, ONLINE, ETW, Rating.FAIR): 2,
        (2017, ONLINE, ETW, Rating.POOR): 1,
    }
    report = satisfaction_report(2017, {(2017, ONLINE, ETW): 132}, ratings)
    assert report.model_dump(mode="json", by_alias=True) == {
        "year": 2017,
        "rows": [
            {
                "kind": "online_seminar",
                "programme": "etwinning",
                "participants": 132,
                "responses": 80,
                "response_rate_pct": 60.6,
                "ratings": {"excellent": 50, "very_good": 22, "good": 5, "fair": 2, "poor": 1},
                "excellent_or_very_good_pct": 90.0,
            }
        ],
        "total": {
            "participants": 132,
            "responses": 80,
            "response_rate_pct": 60.6,
            "excellent_or_very_good_pct": 90.0,
        },
    }


def test_satisfaction_with_zero_responses_and_zero_participants() -> None:
    participants = {(2025, WORKSHOP, PLUS): 4, (2025, ONLINE, ETW): 1}
    # A response without participants (an anonymous form counted before attendance).
    ratings = {(2025, LEARNING, ETW, Rating.GOOD): 1, (2025, ONLINE, ETW, Rating.POOR): 1}
    report = satisfaction_report(2025, participants, ratings)
    rows = {(r.kind, r.programme): r for r in report.rows}
    none_answered = rows[(WORKSHOP, PLUS)]
    assert none_answered.responses == 0
    assert none_answered.response_rate_pct == 0.0
    assert none_answered.excellent_or_very_good_pct is None
    nobody_attended = rows[(LEARNING, ETW)]
    assert nobody_attended.participants == 0
    assert nobody_attended.response_rate_pct is None
    assert nobody_attended.excellent_or_very_good_pct == 0.0


def test_satisfaction_total_is_computed_from_summed_counts_not_averaged() -> None:
    participants = {(2025, ONLINE, ETW): 3, (2025, LEARNING, ETW): 1}
    ratings = {(2025, ONLINE, ETW, Rating.EXCELLENT): 1, (2025, LEARNING, ETW, Rating.POOR): 1}
    report = satisfaction_report(2025, participants, ratings)
    # Rows: 33.3 % and 100.0 % answered; the total is 2 of 4, not their mean (66.7).
    assert report.total.response_rate_pct == 50.0
    assert report.total.excellent_or_very_good_pct == 50.0


def test_satisfaction_of_an_empty_year() -> None:
    report = satisfaction_report(2030, {}, {})
    assert report.rows == []
    assert report.total.model_dump() == {
        "participants": 0,
        "responses": 0,
        "response_rate_pct": None,
        "excellent_or_very_good_pct": None,
    }


def test_series_by_kind_and_total_follow_from_the_rows() -> None:
    participants = {
        (2023, ONLINE, ETW): 4,
        (2024, ONLINE, ETW): 6,
        (2024, ONLINE, PLUS): 2,
        (2024, LEARNING, ETW): 3,
        (2025, ONLINE, ETW): 3,
    }
    ratings = {(2024, ONLINE, ETW, Rating.EXCELLENT): 3, (2024, ONLINE, PLUS, Rating.FAIR): 1}
    report = series_report(2024, 2025, participants, ratings)
    dumped = report.model_dump(mode="json", by_alias=True)
    assert (dumped["from"], dumped["to"]) == (2024, 2025)
    y2024, y2025 = report.years
    online = next(r for r in y2024.by_kind if r.kind == ONLINE)
    assert (online.participants, online.previous_year_participants, online.growth_pct) == (
        8,
        4,
        100.0,
    )
    assert (online.responses, online.response_rate_pct, online.excellent_or_very_good_pct) == (
        4,
        50.0,
        75.0,
    )
    assert (y2024.total.participants, y2024.total.previous_year_participants) == (11, 4)
    assert y2024.total.growth_pct == 175.0
    assert (y2025.total.participants, y2025.total.growth_pct) == (3, -72.7)  # 3 vs 11
    assert [(r.kind, r.programme) for r in y2025.rows] == [
        (LEARNING, ETW),
        (ONLINE, ETW),
        (ONLINE, PLUS),
    ]


def test_funnel_sums_per_kind_and_total() -> None:
    report = funnel_report(
        2025,
        None,
        [
            SeminarFunnelInput(
                "s2", "B", ONLINE, ETW, {"requested": 3, "confirmed": 2, "attended": 2}
            ),
            SeminarFunnelInput(
                "s1", "A", ONLINE, ETW, {"requested": 5, "confirmed": 5, "evaluated": 1}
            ),
            SeminarFunnelInput("s3", None, None, None, {"requested": 1, "rejected": 1}),
        ],
    )
    assert [s.seminar_id for s in report.seminars] == ["s1", "s2", "s3"]
    online = report.by_kind[0]
    assert (online.kind, online.seminars, online.requested, online.confirmed) == (ONLINE, 2, 8, 7)
    assert report.total.requested == 9
    assert report.total.rejected == 1
    assert report.total.evaluated == 1


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_exports_carry_the_report_rows_and_a_total() -> None:
    participation = participation_report(2025, {(2025, ONLINE, ETW): 7, (2024, ONLINE, ETW): 4})
    assert _rows(participation_csv(participation)) == [
        ["year", "kind", "programme", "participants", "previous_year_participants", "growth_pct"],
        ["2025", "online_seminar", "etwinning", "7", "4", "75.0"],
        ["2025", "total", "", "7", "", ""],
    ]
    satisfaction = satisfaction_report(2025, {(2025, ONLINE, ETW): 7}, {})
    lines = _rows(satisfaction_csv(satisfaction))
    assert lines[0][:6] == [
        "year",
        "kind",
        "programme",
        "participants",
        "responses",
        "response_rate_pct",
    ]
    assert lines[1] == [
        "2025",
        "online_seminar",
        "etwinning",
        "7",
        "0",
        "0.0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "",
    ]
    countries = countries_report(2025, {"FR": (3, 2), None: (1, 1)})
    assert _rows(countries_csv(countries))[1:] == [["2025", "FR", "3", "2"], ["2025", "", "1", "1"]]


def test_csv_quotes_text_a_spreadsheet_would_run_as_a_formula() -> None:
    report = funnel_report(
        2025, None, [SeminarFunnelInput("s1", '=HYPERLINK("http://x")', ONLINE, ETW, {})]
    )
    assert _rows(funnel_csv(report))[1][2] == '\'=HYPERLINK("http://x")'


def test_schools_report_joins_taking_part_and_hosting() -> None:
    report = schools_report(2025, taking_part={"a": (3, 2)}, hosted={"a": (2, 1), "b": (1, 0)})
    assert [r.model_dump() for r in report.rows] == [
        {
            "school_id": "a",
            "teachers": 2,
            "participants": 3,
            "hosted_events": 2,
            "hosted_open_events": 1,
        },
        {
            "school_id": "b",
            "teachers": 0,
            "participants": 0,
            "hosted_events": 1,
            "hosted_open_events": 0,
        },
    ]
