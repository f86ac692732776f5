"""Report arithmetic and shapes (CONTRACT.md "HTTP": participation and satisfaction),
plus the reports beyond the contract (funnel, countries, schools, multi-year series)
and their CSV form.

Pure: counts in, reports out. Percentages are exact: computed from integers and rounded
half up (away from zero on a tie, ``decimal.ROUND_HALF_UP``) to one decimal, so a
figure always follows from the counts beside it. No personal data: rows are groups.

Choices where the contract is silent:
- ``growth_pct`` is ``null`` when the previous year had no participants;
- ``response_rate_pct`` is ``null`` when there are no participants (a rate of nothing);
- ``excellent_or_very_good_pct`` is ``null`` when there are no responses.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from seminarops_shared.csv_cells import safe_cell
from seminarops_shared.events.vocabulary import Kind, Programme, Rating

from .domain import STATUS_TALLY_PREFIX

# (year, kind, programme) -> number of participants (attended registrants)
ParticipantCounts = Mapping[tuple[int, Kind, Programme], int]
# (year, kind, programme, rating) -> number of responses
RatingCounts = Mapping[tuple[int, Kind, Programme, Rating], int]

_TENTH = Decimal("0.1")


# ---- arithmetic ----------------------------------------------------------------------


def percent(part: int, whole: int) -> Decimal | None:
    """``part / whole * 100`` rounded half up to one decimal, exactly; ``None`` when
    ``whole`` is 0.

    Exact: the integer quotient truncated to hundredths decides the rounding the same
    way the true rational does (only the hundredths digit matters for half up at
    tenths), so no binary floating point is involved: 1/8 is 12.5, 1/80 is 1.3 and
    -1/80 is -1.3.
    """
    if whole == 0:
        return None
    negative = (part < 0) != (whole < 0)
    hundredths = abs(part) * 10_000 // abs(whole)
    value = (Decimal(hundredths) / 100).quantize(_TENTH, rounding=ROUND_HALF_UP)
    if value == 0:
        return Decimal("0.0")
    return -value if negative else value


def growth_pct(current: int, previous: int) -> Decimal | None:
    """Year-on-year change in percent, one decimal; ``None`` when the previous year had
    none (no base to grow from)."""
    if previous == 0:
        return None
    return percent(current - previous, previous)


def as_number(value: Decimal | None) -> float | None:
    """A rounded percentage as the JSON number it is served as (``60.6``)."""
    return None if value is None else float(value)


def _pct(part: int, whole: int) -> float | None:
    return as_number(percent(part, whole))


def _growth(current: int, previous: int) -> float | None:
    return as_number(growth_pct(current, previous))


# ---- contract shapes -----------------------------------------------------------------


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class ParticipationRow(_Shape):
    kind: Kind
    programme: Programme
    participants: int
    previous_year_participants: int
    growth_pct: float | None


class ParticipationReport(_Shape):
    year: int
    rows: list[ParticipationRow]
    total_participants: int


class Ratings(_Shape):
    excellent: int = 0
    very_good: int = 0
    good: int = 0
    fair: int = 0
    poor: int = 0

    @property
    def responses(self) -> int:
        return self.excellent + self.very_good + self.good + self.fair + self.poor

    @property
    def excellent_or_very_good(self) -> int:
        return self.excellent + self.very_good


class SatisfactionRow(_Shape):
    kind: Kind
    programme: Programme
    participants: int
    responses: int
    response_rate_pct: float | None
    ratings: Ratings
    excellent_or_very_good_pct: float | None


class SatisfactionTotal(_Shape):
    participants: int
    responses: int
    response_rate_pct: float | None
    excellent_or_very_good_pct: float | None


class SatisfactionReport(_Shape):
    year: int
    rows: list[SatisfactionRow]
    total: SatisfactionTotal


def _groups(*keys: Iterable[tuple[Kind, Programme]]) -> list[tuple[Kind, Programme]]:
    return sorted({k for group in keys for k in group}, key=lambda k: (k[0].value, k[1].value))


def _in_year(counts: Mapping[tuple[Any, ...], int], year: int) -> dict[tuple[Any, ...], int]:
    out: dict[tuple[Any, ...], int] = defaultdict(int)
    for key, count in counts.items():
        if key[0] == year:
            out[key[1:]] += count
    return out


def _ratings_by_group(ratings: RatingCounts, year: int) -> dict[tuple[Kind, Programme], Ratings]:
    grouped: dict[tuple[Kind, Programme], dict[str, int]] = defaultdict(dict)
    for (y, kind, programme, rating), count in ratings.items():
        if y == year and count:
            values = grouped[(kind, programme)]
            values[rating.value] = values.get(rating.value, 0) + count
    return {group: Ratings(**values) for group, values in grouped.items()}


def participation_report(year: int, participants: ParticipantCounts) -> ParticipationReport:
    """CONTRACT.md participation report for ``year``.

    Rows: every (kind, programme) with participants in ``year`` or the year before,
    sorted by kind then programme. ``total_participants`` is the sum of the rows.
    """
    current = _in_year(participants, year)
    previous = _in_year(participants, year - 1)
    rows = [
        ParticipationRow(
            kind=kind,
            programme=programme,
            participants=current.get((kind, programme), 0),
            previous_year_participants=previous.get((kind, programme), 0),
            growth_pct=_growth(
                current.get((kind, programme), 0), previous.get((kind, programme), 0)
            ),
        )
        for kind, programme in _groups(
            (k for k, n in current.items() if n), (k for k, n in previous.items() if n)
        )
    ]
    return ParticipationReport(
        year=year, rows=rows, total_participants=sum(r.participants for r in rows)
    )


def satisfaction_report(
    year: int, participants: ParticipantCounts, ratings: RatingCounts
) -> SatisfactionReport:
    """CONTRACT.md satisfaction report for ``year``.

    Rows: every (kind, programme) with participants or responses in ``year``; the total
    is computed from the summed counts (never an average of row percentages).
    """
    current = _in_year(participants, year)
    by_group = _ratings_by_group(ratings, year)
    rows: list[SatisfactionRow] = []
    for kind, programme in _groups((k for k, n in current.items() if n), by_group):
        people = current.get((kind, programme), 0)
        answers = by_group.get((kind, programme), Ratings())
        rows.append(
            SatisfactionRow(
                kind=kind,
                programme=programme,
                participants=people,
                responses=answers.responses,
                response_rate_pct=_pct(answers.responses, people),
                ratings=answers,
                excellent_or_very_good_pct=_pct(answers.excellent_or_very_good, answers.responses),
            )
        )
    people = sum(r.participants for r in rows)
    responses = sum(r.responses for r in rows)
    top = sum(r.ratings.excellent_or_very_good for r in rows)
    return SatisfactionReport(
        year=year,
        rows=rows,
        total=SatisfactionTotal(
            participants=people,
            responses=responses,
            response_rate_pct=_pct(responses, people),
            excellent_or_very_good_pct=_pct(top, responses),
        ),
    )


# ---- multi-year series ---------------------------------------------------------------


class SeriesMetrics(_Shape):
    participants: int
    previous_year_participants: int
    growth_pct: float | None
    responses: int
    response_rate_pct: float | None
    excellent_or_very_good_pct: float | None
    ratings: Ratings


class SeriesRow(SeriesMetrics):
    kind: Kind
    programme: Programme


class SeriesKindRow(SeriesMetrics):
    kind: Kind


class SeriesYear(_Shape):
    year: int
    rows: list[SeriesRow]
    by_kind: list[SeriesKindRow]
    total: SeriesMetrics


class SeriesReport(_Shape):
    from_year: int = Field(alias="from")
    to_year: int = Field(alias="to")
    years: list[SeriesYear]


def _metrics(current: int, previous: int, answers: Ratings) -> dict[str, Any]:
    return {
        "participants": current,
        "previous_year_participants": previous,
        "growth_pct": _growth(current, previous),
        "responses": answers.responses,
        "response_rate_pct": _pct(answers.responses, current),
        "excellent_or_very_good_pct": _pct(answers.excellent_or_very_good, answers.responses),
        "ratings": answers,
    }


def _sum_ratings(values: Iterable[Ratings]) -> Ratings:
    totals = {r.value: 0 for r in Rating}
    for value in values:
        for rating in Rating:
            totals[rating.value] += getattr(value, rating.value)
    return Ratings(**totals)


def series_report(
    from_year: int, to_year: int, participants: ParticipantCounts, ratings: RatingCounts
) -> SeriesReport:
    """Participation and satisfaction for each year of ``from_year..to_year``, per
    (kind, programme), per kind (programmes summed) and in total, with growth against
    the year before. ``participants`` must include ``from_year - 1``."""
    years: list[SeriesYear] = []
    for year in range(from_year, to_year + 1):
        current = _in_year(participants, year)
        previous = _in_year(participants, year - 1)
        answers = _ratings_by_group(ratings, year)
        groups = _groups(
            (k for k, n in current.items() if n), (k for k, n in previous.items() if n), answers
        )
        rows = [
            SeriesRow(
                kind=kind,
                programme=programme,
                **_metrics(
                    current.get((kind, programme), 0),
                    previous.get((kind, programme), 0),
                    answers.get((kind, programme), Ratings()),
                ),
            )
            for kind, programme in groups
        ]
        kinds = sorted({r.kind for r in rows}, key=lambda k: k.value)
        by_kind = [
            SeriesKindRow(
                kind=kind,
                **_metrics(
                    sum(r.participants for r in rows if r.kind == kind),
                    sum(r.previous_year_participants for r in rows if r.kind == kind),
                    _sum_ratings(r.ratings for r in rows if r.kind == kind),
                ),
            )
            for kind in kinds
        ]
        total = SeriesMetrics(
            **_metrics(
                sum(r.participants for r in rows),
                sum(r.previous_year_participants for r in rows),
                _sum_ratings(r.ratings for r in rows),
            )
        )
        years.append(SeriesYear(year=year, rows=rows, by_kind=by_kind, total=total))
    return SeriesReport(from_year=from_year, to_year=to_year, years=years)


# ---- registrations funnel ------------------------------------------------------------

FUNNEL_STAGES = (
    "requested",
    "confirmed",
    "waitlisted",
    "promoted",
    "cancelled",
    "rejected",
    "attended",
    "evaluated",
    "registered_again",
    "offers_made",
    "offers_accepted",
    "offers_declined",
    "offers_expired",
    "not_eligible",
)


class FunnelCounts(_Shape):
    """``requested``: registrations received (any outcome; one per person and seminar,
    however often they registered); ``confirmed``: ever held a seat (directly, by
    promotion or by an accepted offer; once per registration); ``waitlisted`` /
    ``promoted``: ever went through that stage; ``cancelled`` / ``rejected``: their
    status now; ``attended``: participants; ``evaluated``: responses;
    ``registered_again``: requests that registered a cancelled registration anew;
    ``offers_made`` / ``offers_accepted`` / ``offers_declined`` / ``offers_expired``:
    seat offers and their answers; ``not_eligible``: requests rejected because the
    participant's country is not eligible."""

    requested: int = 0
    confirmed: int = 0
    waitlisted: int = 0
    promoted: int = 0
    cancelled: int = 0
    rejected: int = 0
    attended: int = 0
    evaluated: int = 0
    registered_again: int = 0
    offers_made: int = 0
    offers_accepted: int = 0
    offers_declined: int = 0
    offers_expired: int = 0
    not_eligible: int = 0


class FunnelSeminar(FunnelCounts):
    seminar_id: str
    title: str | None
    kind: Kind | None
    programme: Programme | None


class FunnelKind(FunnelCounts):
    kind: Kind | None
    seminars: int


class FunnelReport(_Shape):
    year: int
    kind: Kind | None
    seminars: list[FunnelSeminar]
    by_kind: list[FunnelKind]
    total: FunnelCounts


@dataclass(frozen=True, slots=True)
class SeminarFunnelInput:
    seminar_id: str
    title: str | None
    kind: Kind | None
    programme: Programme | None
    counts: Mapping[str, int] = field(default_factory=dict)


def _add(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(FUNNEL_STAGES, 0)
    for c in counts:
        for stage in FUNNEL_STAGES:
            total[stage] += int(c.get(stage, 0))
    return total


def funnel_report(
    year: int, kind: Kind | None, seminars: Sequence[SeminarFunnelInput]
) -> FunnelReport:
    """Per seminar (sorted by kind, programme, seminar id), per kind, and in total."""
    ordered = sorted(
        seminars,
        key=lambda s: (
            s.kind.value if s.kind else "~",
            s.programme.value if s.programme else "~",
            s.seminar_id,
        ),
    )
    rows = [
        FunnelSeminar(
            seminar_id=s.seminar_id,
            title=s.title,
            kind=s.kind,
            programme=s.programme,
            **_add([s.counts]),
        )
        for s in ordered
    ]
    kinds: list[Kind | None] = sorted(
        {s.kind for s in ordered}, key=lambda k: k.value if k else "~"
    )
    by_kind = [
        FunnelKind(
            kind=k,
            seminars=sum(1 for s in ordered if s.kind == k),
            **_add(s.counts for s in ordered if s.kind == k),
        )
        for k in kinds
    ]
    return FunnelReport(
        year=year,
        kind=kind,
        seminars=rows,
        by_kind=by_kind,
        total=FunnelCounts(**_add(s.counts for s in ordered)),
    )


# ---- certificates of attendance -------------------------------------------------------

# (kind, programme) -> (certificates issued, of which revoked)
CertificateCounts = Mapping[tuple[Kind, Programme], tuple[int, int]]


class CertificateTotals(_Shape):
    """``issued``: certificates issued for seminars of the year; ``revoked``: of them,
    revoked since (erasure); ``valid``: issued minus revoked."""

    issued: int
    revoked: int
    valid: int


class CertificateRow(CertificateTotals):
    kind: Kind
    programme: Programme


class CertificatesReport(_Shape):
    year: int
    rows: list[CertificateRow]
    total: CertificateTotals


def certificates_report(year: int, counts: CertificateCounts) -> CertificatesReport:
    """Per kind and programme (in vocabulary order, groups with certificates only), and
    in total."""
    order = {k: i for i, k in enumerate(Kind)}, {p: i for i, p in enumerate(Programme)}
    rows = [
        CertificateRow(kind=k, programme=p, issued=issued, revoked=revoked, valid=issued - revoked)
        for (k, p), (issued, revoked) in sorted(
            counts.items(), key=lambda item: (order[0][item[0][0]], order[1][item[0][1]])
        )
    ]
    issued = sum(r.issued for r in rows)
    revoked = sum(r.revoked for r in rows)
    return CertificatesReport(
        year=year,
        rows=rows,
        total=CertificateTotals(issued=issued, revoked=revoked, valid=issued - revoked),
    )


def certificates_csv(report: CertificatesReport) -> str:
    """One line per kind and programme, then the total."""
    header = ("year", "kind", "programme", "issued", "revoked", "valid")
    rows: list[Sequence[object]] = [
        (report.year, r.kind.value, r.programme.value, r.issued, r.revoked, r.valid)
        for r in report.rows
    ]
    t = report.total
    rows.append((report.year, "total", None, t.issued, t.revoked, t.valid))
    return _csv(header, rows)


# ---- seminars table and the year to open on -----------------------------------------


class SeminarRow(_Shape):
    """One seminar of the year as the table shows it. ``confirmed`` / ``waitlisted``:
    registrations with that status now; ``fill_rate_pct``: confirmed of capacity;
    ``attended``: participants; ``evaluated``: responses; ``response_rate_pct``:
    responses of participants."""

    seminar_id: str
    title: str | None
    kind: Kind | None
    programme: Programme | None
    status: str
    capacity: int | None
    confirmed: int
    waitlisted: int
    fill_rate_pct: float | None
    attended: int
    evaluated: int
    response_rate_pct: float | None


class SeminarsReport(_Shape):
    year: int
    rows: list[SeminarRow]


@dataclass(frozen=True, slots=True)
class SeminarTableInput:
    seminar_id: str
    title: str | None
    kind: Kind | None
    programme: Programme | None
    status: str
    capacity: int | None
    counts: Mapping[str, int] = field(default_factory=dict)


def seminars_report(year: int, seminars: Sequence[SeminarTableInput]) -> SeminarsReport:
    """``counts``: the seminar's tally (``status:<status>`` for registrations by status
    now, ``attended``, ``evaluated``). Rows sorted by kind, programme, title, id; the
    fill rate is ``null`` while the capacity is unknown (a seminar only heard of
    through registrations)."""
    rows = []
    for s in sorted(
        seminars,
        key=lambda s: (
            s.kind.value if s.kind else "~",
            s.programme.value if s.programme else "~",
            s.title or "",
            s.seminar_id,
        ),
    ):
        confirmed = int(s.counts.get(f"{STATUS_TALLY_PREFIX}confirmed", 0))
        attended = int(s.counts.get("attended", 0))
        evaluated = int(s.counts.get("evaluated", 0))
        rows.append(
            SeminarRow(
                seminar_id=s.seminar_id,
                title=s.title,
                kind=s.kind,
                programme=s.programme,
                status=s.status,
                capacity=s.capacity,
                confirmed=confirmed,
                waitlisted=int(s.counts.get(f"{STATUS_TALLY_PREFIX}waitlisted", 0)),
                fill_rate_pct=_pct(confirmed, s.capacity) if s.capacity else None,
                attended=attended,
                evaluated=evaluated,
                response_rate_pct=_pct(evaluated, attended),
            )
        )
    return SeminarsReport(year=year, rows=rows)


def year_to_open(seminar_years: Iterable[int], participant_years: Iterable[int]) -> int | None:
    """The year a dashboard opens on: the latest with participants; without any, the
    latest with seminars (a season being prepared); ``None`` when nothing is known.
    Not simply the latest year with seminars: a season scheduled ahead has none yet."""
    with_participants = max(participant_years, default=None)
    if with_participants is not None:
        return with_participants
    return max(seminar_years, default=None)


# ---- countries and schools -----------------------------------------------------------


class CountryRow(_Shape):
    """``participants``: participations (one person at two seminars counts twice);
    ``teachers``: distinct people."""

    country: str | None
    participants: int
    teachers: int


class CountriesReport(_Shape):
    year: int
    rows: list[CountryRow]
    total_participants: int


def countries_report(year: int, counts: Mapping[str | None, tuple[int, int]]) -> CountriesReport:
    """``counts``: country (``None`` when unknown) -> (participants, teachers). Rows
    sorted by country, the unknown last."""
    rows = [
        CountryRow(country=country, participants=participants, teachers=teachers)
        for country, (participants, teachers) in sorted(
            counts.items(), key=lambda item: (item[0] is None, item[0] or "")
        )
        if participants
    ]
    return CountriesReport(
        year=year, rows=rows, total_participants=sum(r.participants for r in rows)
    )


class SchoolRow(_Shape):
    """``teachers``: distinct teachers of the school who took part in the year;
    ``participants``: their participations; ``hosted_events``: seminars of the year
    the school hosted; ``hosted_open_events``: those open to other schools."""

    school_id: str
    teachers: int
    participants: int
    hosted_events: int
    hosted_open_events: int


class SchoolsReport(_Shape):
    year: int
    rows: list[SchoolRow]


def schools_report(
    year: int,
    *,
    taking_part: Mapping[str, tuple[int, int]],
    hosted: Mapping[str, tuple[int, int]],
) -> SchoolsReport:
    """``taking_part``: school -> (participants, teachers); ``hosted``: school ->
    (hosted events, of which open to other schools). Rows sorted by school id."""
    rows = [
        SchoolRow(
            school_id=school,
            participants=taking_part.get(school, (0, 0))[0],
            teachers=taking_part.get(school, (0, 0))[1],
            hosted_events=hosted.get(school, (0, 0))[0],
            hosted_open_events=hosted.get(school, (0, 0))[1],
        )
        for school in sorted(set(taking_part) | set(hosted))
    ]
    return SchoolsReport(year=year, rows=rows)


# ---- CSV -----------------------------------------------------------------------------


def _cell(value: object) -> object:
    """Empty for ``None``; free text (a seminar title) that a spreadsheet would run as
    a formula is quoted with a leading apostrophe (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return safe_cell(value)
    return value


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


_RATINGS = tuple(r.value for r in Rating)


def participation_csv(report: ParticipationReport) -> str:
    """One line per row, then a ``total`` line (programme empty)."""
    header = (
        "year",
        "kind",
        "programme",
        "participants",
        "previous_year_participants",
        "growth_pct",
    )
    rows: list[Sequence[object]] = [
        (
            report.year,
            r.kind.value,
            r.programme.value,
            r.participants,
            r.previous_year_participants,
            r.growth_pct,
        )
        for r in report.rows
    ]
    rows.append((report.year, "total", None, report.total_participants, None, None))
    return _csv(header, rows)


def satisfaction_csv(report: SatisfactionReport) -> str:
    header = (
        "year",
        "kind",
        "programme",
        "participants",
        "responses",
        "response_rate_pct",
        *_RATINGS,
        "excellent_or_very_good_pct",
    )
    rows: list[Sequence[object]] = [
        (
            report.year,
            r.kind.value,
            r.programme.value,
            r.participants,
            r.responses,
            r.response_rate_pct,
            *(getattr(r.ratings, n) for n in _RATINGS),
            r.excellent_or_very_good_pct,
        )
        for r in report.rows
    ]
    t = report.total
    totals = [sum(getattr(r.ratings, n) for r in report.rows) for n in _RATINGS]
    rows.append(
        (
            report.year,
            "total",
            None,
            t.participants,
            t.responses,
            t.response_rate_pct,
            *totals,
            t.excellent_or_very_good_pct,
        )
    )
    return _csv(header, rows)


_SERIES_FIELDS = (
    "participants",
    "previous_year_participants",
    "growth_pct",
    "responses",
    "response_rate_pct",
    "excellent_or_very_good_pct",
)


def series_csv(report: SeriesReport) -> str:
    """Per year: one line per (kind, programme), one per kind (programme ``all``), one
    ``total``."""
    header = ("year", "kind", "programme", *_SERIES_FIELDS, *_RATINGS)

    def line(year: int, kind: str, programme: str | None, m: SeriesMetrics) -> list[object]:
        return [
            year,
            kind,
            programme,
            *(getattr(m, f) for f in _SERIES_FIELDS),
            *(getattr(m.ratings, n) for n in _RATINGS),
        ]

    rows: list[Sequence[object]] = []
    for y in report.years:
        rows += [line(y.year, r.kind.value, r.programme.value, r) for r in y.rows]
        rows += [line(y.year, r.kind.value, "all", r) for r in y.by_kind]
        rows.append(line(y.year, "total", None, y.total))
    return _csv(header, rows)


def funnel_csv(report: FunnelReport) -> str:
    """One line per seminar."""
    header = ("year", "seminar_id", "title", "kind", "programme", *FUNNEL_STAGES)
    return _csv(
        header,
        (
            (
                report.year,
                s.seminar_id,
                s.title,
                s.kind.value if s.kind else None,
                s.programme.value if s.programme else None,
                *(getattr(s, stage) for stage in FUNNEL_STAGES),
            )
            for s in report.seminars
        ),
    )


def seminars_csv(report: SeminarsReport) -> str:
    header = (
        "year",
        "seminar_id",
        "title",
        "kind",
        "programme",
        "status",
        "capacity",
        "confirmed",
        "waitlisted",
        "fill_rate_pct",
        "attended",
        "evaluated",
        "response_rate_pct",
    )
    return _csv(
        header,
        (
            (
                report.year,
                r.seminar_id,
                r.title,
                r.kind.value if r.kind else None,
                r.programme.value if r.programme else None,
                r.status,
                r.capacity,
                r.confirmed,
                r.waitlisted,
                r.fill_rate_pct,
                r.attended,
                r.evaluated,
                r.response_rate_pct,
            )
            for r in report.rows
        ),
    )


def countries_csv(report: CountriesReport) -> str:
    return _csv(
        ("year", "country", "participants", "teachers"),
        ((report.year, r.country, r.participants, r.teachers) for r in report.rows),
    )


def schools_csv(report: SchoolsReport) -> str:
    return _csv(
        ("year", "school_id", "teachers", "participants", "hosted_events", "hosted_open_events"),
        (
            (
                report.year,
                r.school_id,
                r.teachers,
                r.participants,
                r.hosted_events,
                r.hosted_open_events,
            )
            for r in report.rows
        ),
    )
