"""HTTP entry points: the reports (public: counts only, no personal data), their CSV
form, the consumer lag, and the dashboard page."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from seminarops_shared.errors import Busy, Invalid, NotFound
from seminarops_shared.events.vocabulary import Kind
from seminarops_shared.events.vocabulary import Year as VocabularyYear
from seminarops_shared.service import service_state

from .handlers import ProjectionService
from .reports import (
    CertificatesReport,
    CountriesReport,
    FunnelReport,
    ParticipationReport,
    SatisfactionReport,
    SchoolsReport,
    SeminarsReport,
    SeriesReport,
    certificates_csv,
    countries_csv,
    funnel_csv,
    participation_csv,
    satisfaction_csv,
    schools_csv,
    seminars_csv,
    series_csv,
    year_to_open,
)

router = APIRouter()

MAX_SERIES_YEARS = 50
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
R = TypeVar("R", bound=BaseModel)


async def metrics_service(request: Request) -> ProjectionService:
    # async: FastAPI would run a plain ``def`` dependency in its thread pool (a thread
    # hand-off on every request).
    return service_state(request, ProjectionService)


Service = Annotated[ProjectionService, Depends(metrics_service)]
# The bounds are the vocabulary's (the events' own), so a year an event may carry is one
# a report may be asked for.
Year = Annotated[VocabularyYear, Query(description="The calendar year a seminar starts in.")]
Format = Annotated[
    Literal["json", "csv"],
    Query(alias="format", description="`csv` for a spreadsheet; the same as the `.csv` path."),
]
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The report (JSON, or CSV on request)."}
}


def _csv_response(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _answer(report: R, fmt: str, to_csv: Callable[[R], str], filename: str) -> R | Response:
    return _csv_response(to_csv(report), filename) if fmt == "csv" else report


# ---- contract reports ----------------------------------------------------------------


@router.get(
    "/v1/reports/participation",
    response_model=ParticipationReport,
    responses=_CSV,
    tags=["reports"],
    summary="Participants per kind and programme, with growth over the previous year",
)
async def participation(service: Service, year: Year, fmt: Format = "json") -> Any:
    report = await service.participation(year)
    return _answer(report, fmt, participation_csv, f"participation-{year}.csv")


@router.get(
    "/v1/reports/participation.csv", tags=["reports"], response_class=Response, responses=_CSV
)
async def participation_as_csv(service: Service, year: Year) -> Response:
    return cast(Response, await participation(service, year, "csv"))


@router.get(
    "/v1/reports/satisfaction",
    response_model=SatisfactionReport,
    responses=_CSV,
    tags=["reports"],
    summary="Responses, response rate and ratings per kind and programme",
)
async def satisfaction(service: Service, year: Year, fmt: Format = "json") -> Any:
    report = await service.satisfaction(year)
    return _answer(report, fmt, satisfaction_csv, f"satisfaction-{year}.csv")


@router.get(
    "/v1/reports/satisfaction.csv", tags=["reports"], response_class=Response, responses=_CSV
)
async def satisfaction_as_csv(service: Service, year: Year) -> Response:
    return cast(Response, await satisfaction(service, year, "csv"))


# ---- beyond the contract -------------------------------------------------------------


@router.get(
    "/v1/reports/funnel",
    response_model=FunnelReport,
    responses=_CSV,
    tags=["reports"],
    summary="Registrations funnel per seminar and kind",
)
async def funnel(
    service: Service, year: Year, kind: Kind | None = None, fmt: Format = "json"
) -> Any:
    report = await service.funnel(year, kind)
    return _answer(report, fmt, funnel_csv, f"funnel-{year}.csv")


@router.get("/v1/reports/funnel.csv", tags=["reports"], response_class=Response, responses=_CSV)
async def funnel_as_csv(service: Service, year: Year, kind: Kind | None = None) -> Response:
    return cast(Response, await funnel(service, year, kind, "csv"))


@router.get(
    "/v1/reports/countries",
    response_model=CountriesReport,
    responses=_CSV,
    tags=["reports"],
    summary="Participants and distinct teachers per country",
)
async def countries(service: Service, year: Year, fmt: Format = "json") -> Any:
    report = await service.countries(year)
    return _answer(report, fmt, countries_csv, f"countries-{year}.csv")


@router.get("/v1/reports/countries.csv", tags=["reports"], response_class=Response, responses=_CSV)
async def countries_as_csv(service: Service, year: Year) -> Response:
    return cast(Response, await countries(service, year, "csv"))


@router.get(
    "/v1/reports/schools",
    response_model=SchoolsReport,
    responses=_CSV,
    tags=["reports"],
    summary="School engagement: teachers taking part, events hosted open to other schools",
)
async def schools(service: Service, year: Year, fmt: Format = "json") -> Any:
    report = await service.schools(year)
    return _answer(report, fmt, schools_csv, f"schools-{year}.csv")


@router.get("/v1/reports/schools.csv", tags=["reports"], response_class=Response, responses=_CSV)
async def schools_as_csv(service: Service, year: Year) -> Response:
    return cast(Response, await schools(service, year, "csv"))


def _series_range(from_year: int, to_year: int) -> None:
    if from_year > to_year:
        raise Invalid(f"`from` ({from_year}) must not be after `to` ({to_year})")
    if to_year - from_year + 1 > MAX_SERIES_YEARS:
        raise Invalid(f"a series spans at most {MAX_SERIES_YEARS} years")


FromYear = Annotated[VocabularyYear, Query(alias="from", description="First year.")]
ToYear = Annotated[VocabularyYear, Query(description="Last year (inclusive).")]


@router.get(
    "/v1/reports/series",
    response_model=SeriesReport,
    responses=_CSV,
    tags=["reports"],
    summary="Participation and satisfaction over several years",
)
async def series(service: Service, from_year: FromYear, to: ToYear, fmt: Format = "json") -> Any:
    _series_range(from_year, to)
    report = await service.series(from_year, to)
    return _answer(report, fmt, series_csv, f"series-{from_year}-{to}.csv")


@router.get("/v1/reports/series.csv", tags=["reports"], response_class=Response, responses=_CSV)
async def series_as_csv(service: Service, from_year: FromYear, to: ToYear) -> Response:
    return cast(Response, await series(service, from_year, to, "csv"))


@router.get(
    "/v1/reports/seminars",
    response_model=SeminarsReport,
    responses=_CSV,
    tags=["reports"],
    summary="Seminars of the year: fill rate, waiting list, attendance and response rate",
)
async def seminars(
    service: Service, year: Year, kind: Kind | None = None, fmt: Format = "json"
) -> Any:
    report = await service.seminars(year, kind)
    return _answer(report, fmt, seminars_csv, f"seminars-{year}.csv")


@router.get("/v1/reports/seminars.csv", tags=["reports"], response_class=Response, responses=_CSV)
async def seminars_as_csv(service: Service, year: Year, kind: Kind | None = None) -> Response:
    return cast(Response, await seminars(service, year, kind, "csv"))


@router.get(
    "/v1/reports/certificates",
    response_model=CertificatesReport,
    responses=_CSV,
    tags=["reports"],
    summary="Certificates of attendance per kind and programme: issued, revoked, valid",
)
async def certificates(service: Service, year: Year, fmt: Format = "json") -> Any:
    report = await service.certificates(year)
    return _answer(report, fmt, certificates_csv, f"certificates-{year}.csv")


@router.get(
    "/v1/reports/certificates.csv", tags=["reports"], response_class=Response, responses=_CSV
)
async def certificates_as_csv(service: Service, year: Year) -> Response:
    return cast(Response, await certificates(service, year, "csv"))


class Years(BaseModel):
    years: list[int] = Field(description="Years with seminars or participants, ascending.")
    with_participants: list[int] = Field(description="Years in which someone attended.")
    latest_with_data: int | None = Field(
        description="The year to open a dashboard on: the latest with participants, "
        "else the latest with seminars; null when nothing is known yet."
    )


@router.get("/v1/reports/years", response_model=Years, tags=["reports"])
async def years(service: Service) -> Years:
    """The years that have seminars or participants (for pickers and the dashboard)."""
    every, with_participants = await service.years()
    return Years(
        years=every,
        with_participants=with_participants,
        latest_with_data=year_to_open(every, with_participants),
    )


# ---- status --------------------------------------------------------------------------


class PartitionLag(BaseModel):
    topic: str
    partition: int
    lag: int


class LagStatus(BaseModel):
    service: str
    group: str
    partitions: list[PartitionLag]
    total: int


@router.get("/v1/status/lag", response_model=LagStatus, tags=["status"])
async def lag(request: Request) -> LagStatus:
    """This replica's consumer lag per partition, as the ``seminarops_consumer_lag``
    gauge holds it (updated with every batch the consumer takes)."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise Busy("the service is starting", retry_after_s=1)
    metrics = runtime.metrics
    # The shared pipeline labels the gauge with the logical group (the service name)
    # and the physical topic; the answer names logical topics.
    group = runtime.settings.service_name
    prefix = runtime.settings.kafka.topic_prefix
    partitions: list[PartitionLag] = []
    for family in metrics.consumer_lag.collect():
        for sample in family.samples:
            if sample.labels.get("group") != group:
                continue
            topic = sample.labels["topic"]
            partitions.append(
                PartitionLag(
                    topic=topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic,
                    partition=int(sample.labels["partition"]),
                    lag=int(sample.value),
                )
            )
    partitions.sort(key=lambda p: (p.topic, p.partition))
    return LagStatus(
        service=metrics.service,
        group=group,
        partitions=partitions,
        total=sum(p.lag for p in partitions),
    )


class ProjectionStatus(BaseModel):
    active_set: str
    activated_at: str | None
    rebuilt_events: int | None


@router.get("/v1/status/projections", response_model=ProjectionStatus, tags=["status"])
async def projections(service: Service) -> ProjectionStatus:
    """Which projection set answers the reports (``""`` until the first rebuild)."""
    state = await service.pointer.state()
    activated = state.get("activated_at")
    return ProjectionStatus(
        active_set=str(state.get("suffix", "")),
        activated_at=activated.isoformat() if activated else None,
        rebuilt_events=state.get("events_applied"),
    )


# ---- dashboard -----------------------------------------------------------------------

_STATIC = resources.files("metrics") / "static"
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# The page loads nothing from elsewhere: same-origin scripts, styles and fetches only.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@router.get("/", include_in_schema=False)
async def dashboard() -> Response:
    return Response(
        (_STATIC / "dashboard.html").read_text(encoding="utf-8"),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


# Third-party files, unmodified, under a path that names their version: a new version
# is a new path, so browsers may keep a copy for a year without asking again.
CHART_JS = "chart.js-4.6.2"
_VENDORED = {
    f"{CHART_JS}/chart.umd.min.js": "text/javascript; charset=utf-8",
    f"{CHART_JS}/LICENSE.md": "text/plain; charset=utf-8",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@router.get("/dashboard/vendor/{package}/{asset}", include_in_schema=False)
async def vendored_asset(package: str, asset: str) -> Response:
    media_type = _VENDORED.get(f"{package}/{asset}")
    if media_type is None:
        raise NotFound("no such asset")
    return Response(
        (_STATIC / "vendor" / package / asset).read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": IMMUTABLE},
    )


@router.get("/dashboard/{asset}", include_in_schema=False)
async def dashboard_asset(asset: str) -> Response:
    media_type = _ASSETS.get(asset)
    if media_type is None:
        raise NotFound("no such asset")
    return Response(
        (_STATIC / asset).read_text(encoding="utf-8"),
        media_type=media_type,
        headers={"Cache-Control": "no-cache"},
    )
