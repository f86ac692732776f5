"""Business gauges from a summary, and the rebuild's record decoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from metrics.gauges import BusinessCollector, summarise
from metrics.rebuild import decode
from seminarops_shared.events import envelope_for
from seminarops_shared.events.feedback import EvaluationSubmitted
from seminarops_shared.events.vocabulary import Kind, Programme, Rating
from seminarops_shared.settings import KafkaSettings

AT = datetime(2025, 6, 1, tzinfo=UTC)
ONLINE, WORKSHOP = Kind.ONLINE_SEMINAR, Kind.PD_WORKSHOP
ETW, PLUS = Programme.ETWINNING, Programme.ETWINNING_PLUS


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_gauges_show_the_summary_and_nothing_personal() -> None:
    summary = summarise(
        computed_at=AT,
        registrations={("confirmed", "online_seminar"): 7, ("waitlisted", "unknown"): 1},
        participants={(2025, ONLINE, ETW): 4, (2025, ONLINE, PLUS): 3, (2025, WORKSHOP, ETW): 2},
        ratings={
            (2025, ONLINE, ETW, Rating.EXCELLENT): 2,
            (2025, ONLINE, PLUS, Rating.POOR): 1,
        },
    )
    registry = CollectorRegistry()
    registry.register(BusinessCollector(lambda: summary))
    samples = _samples(registry)
    assert (
        samples[("seminarops_registrations", (("kind", "online_seminar"), ("status", "confirmed")))]
        == 7
    )
    assert samples[("seminarops_participants", (("kind", "online_seminar"), ("programme", "etwinning_plus"), ("year", "2025")))] == 3  # fmt: skip
    assert (
        samples[("seminarops_evaluations", (("kind", "online_seminar"), ("rating", "poor")))] == 1
    )
    # online 2025: 3 responses from 7 participants (42.86); workshop: none answered
    assert (
        samples[("seminarops_response_rate_pct", (("kind", "online_seminar"), ("year", "2025")))]
        == 42.9
    )
    assert (
        samples[("seminarops_response_rate_pct", (("kind", "pd_workshop"), ("year", "2025")))]
        == 0.0
    )
    assert samples[("seminarops_business_gauges_computed_timestamp_seconds", ())] == AT.timestamp()
    label_names = {name for _, labels in samples for name, _ in labels}
    assert label_names <= {"status", "kind", "programme", "year", "rating"}


def test_no_summary_yet_exposes_empty_families() -> None:
    registry = CollectorRegistry()
    registry.register(BusinessCollector(lambda: None))
    assert "# TYPE seminarops_participants gauge" in generate_latest(registry).decode()
    assert not _samples(registry)


def _record(topic: str, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=b"s1",
        value=value,
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=len(value or b""),
        headers=(),
    )


def test_rebuild_decodes_like_the_pipeline() -> None:
    kafka = KafkaSettings(topic_prefix="t1.")
    data = EvaluationSubmitted(
        seminar_id="s1",
        evaluation_id="e1",
        kind=ONLINE,
        programme=ETW,
        year=2025,
        overall=Rating.GOOD,
        form_id="f",
        form_version=1,
    )
    good = envelope_for(data, source="/services/feedback", time=AT).to_json_bytes()
    decoded = decode(_record("t1.feedback.events", good), kafka)
    assert decoded is not None
    assert decoded.data == data
    forged = envelope_for(data, source="/platform/x", time=AT).to_json_bytes()
    assert decode(_record("t1.feedback.events", forged), kafka) is None  # forbidden source
    assert decode(_record("t1.seminar.events", good), kafka) is None  # wrong topic
    assert decode(_record("t1.feedback.events", b"{not json"), kafka) is None
    assert decode(_record("t1.feedback.events", None), kafka) is None
    broken = json.loads(good)
    broken["data"]["overall"] = "superb"
    assert decode(_record("t1.feedback.events", json.dumps(broken).encode()), kafka) is None


async def test_refresher_recomputes_after_a_change_and_once_more_after_it() -> None:
    from metrics.gauges import BusinessSummary, GaugeRefresher
    from seminarops_devtools.testing.polling import eventually

    calls: list[int] = []

    async def compute() -> BusinessSummary:
        calls.append(1)
        return BusinessSummary(computed_at=datetime.now(UTC))

    refresher = GaugeRefresher(
        compute, interval_s=0.01, max_age_s=3600, clock=lambda: datetime.now(UTC)
    )
    refresher.start()
    try:
        # First: the initial computation, then its follow-up.
        await eventually(lambda: _count(calls), until=lambda n: n >= 2, timeout_s=5)
        settled = len(calls)
        refresher.mark_dirty()
        await eventually(lambda: _count(calls), until=lambda n: n >= settled + 2, timeout_s=5)
        assert refresher.summary is not None
    finally:
        await refresher.stop()


async def _count(calls: list[int]) -> int:
    return len(calls)
