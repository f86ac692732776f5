"""The bench's pure parts: the season's expected outcome, the summary's keys and
targets, the profile's top frames, the phase list."""

from __future__ import annotations

import argparse
import random

import pytest
from profile_summary import module_of, parse, summarize
from run import PHASES, _phase_list, summary
from season_open import ELIGIBLE, country, plan_season


def test_the_season_plan_knows_every_seminars_outcome() -> None:
    plans = plan_season(4_000, 200, rng=random.Random(7))

    assert sum(len(p.requesters) for p in plans) == 4_000
    for plan in plans:
        expected = plan.expected()
        assert len(set(plan.requesters)) == len(plan.requesters)
        assert expected["confirmed"] <= plan.capacity
        assert (
            sum(expected[k] for k in ("confirmed", "waitlisted", "rejected", "cancelled"))
            == (expected["requested"])
        )
        assert set(plan.cancelling) <= set(plan.kafka)
        assert all(plan.eligible(n) for n in plan.cancelling)
        if not plan.restricted:
            assert expected["rejected"] == 0
    restricted = [p for p in plans if p.restricted]
    assert restricted
    assert sum(p.expected()["rejected"] for p in restricted) == sum(
        1 for p in restricted for n in p.requesters if country(n) not in ELIGIBLE
    )
    assert sum(p.expected()["waitlisted"] for p in plans) > 0


def test_the_summary_names_every_figure_and_judges_the_targets() -> None:
    results = {
        "baseline": {"events_per_s": 10_000.0, "database_cpu_us_per_event": 40},
        "pipeline": {
            "events_per_s": 2_000.0,
            "database_cpu_us_per_event": 200,
            "database_busy_pct": 90.0,
            "events": 10_000,
        },
        "model": {"events_per_s": 2_500.0, "database_cpu_us_per_event": 180},
        "latency": {"p50_ms": 40.0, "p99_ms": 120.0},
        "latency_400": {"p50_ms": 90.0, "p99_ms": 200.0},
        "rush": {
            "total_s": 12.0,
            "confirmed": 500,
            "capacity": 500,
            "decided_after_last_sent_s": 0,
        },
        "rush_one_replica": {"total_s": 24.0},
        "season": {"total_s": 300.0, "ok": True},
        "census": {"model_mismatches": ["metrics.tallies: 9 updates measured, 3 in the model"]},
    }

    out = summary(results, {})

    assert out["ratio"] == 0.2
    assert out["model_ratio"] == 0.8
    assert out["database_cpu_per_event_ratio"] == 5.0
    assert out["scaling"] == out["scaling_two_over_one"] == 2.0
    assert out["p99_ms_at_400"] == 200.0
    assert out["season_open_seconds"] == 300.0
    assert out["model_table_current"] is False
    assert out["targets"] == {
        "database_cpu_per_event_ratio_le_6": True,
        "ratio_ge_0.15": True,
        "model_ratio_ge_0.6": True,
        "database_busy_pct_ge_85": True,
        "p99_le_100ms": False,
        "p99_at_400_le_250ms": True,
        "rush_le_15s_exact_capacity": True,
        "scaling_ge_1.8": True,
        "season_exact_counts": True,
    }


def test_a_phase_that_did_not_run_leaves_its_figures_and_targets_empty() -> None:
    out = summary({"baseline": {"events_per_s": 10.0, "database_cpu_us_per_event": 1}}, {})

    assert out["pipeline_events_per_s"] is None
    assert out["model_ratio"] is None
    assert out["model_table_current"] is None
    assert set(out["targets"].values()) == {None}


def test_phases_are_chosen_by_name() -> None:
    assert _phase_list("model, pipeline") == ("model", "pipeline")
    assert set(PHASES) >= {"census", "model", "pipeline", "latency_400", "season"}
    with pytest.raises(argparse.ArgumentTypeError, match="pipe"):
        _phase_list("pipe")


def test_top_frames_sum_samples_by_leaf_and_by_module() -> None:
    raw = [
        "main (/x/lib/python3.11/site-packages/secantus/server.py:10);"
        "insert (/x/lib/python3.11/site-packages/secantus/storage.py:5) 30",
        "main (/x/lib/python3.11/site-packages/secantus/server.py:10);"
        "insert (/x/lib/python3.11/site-packages/secantus/storage.py:9) 10",
        "main (/x/lib/python3.11/site-packages/secantus/server.py:10);"
        "decode (/x/lib/python3.11/site-packages/bson/__init__.py:1) 60",
        "not a stack line",
    ]

    text = summarize(parse(raw), title="database")

    assert text.startswith("database: 100 samples")
    assert "  60.0 %       60  decode (bson)" in text
    # Two lines of one function sum up under the function.
    assert "  40.0 %       40  insert (secantus.storage)" in text
    assert "  40.0 %       40  secantus.storage" in text
    assert module_of("/w/services/metrics/src/metrics/handlers.py") == "metrics.handlers"
    assert module_of("<frozen importlib._bootstrap>") == "<frozen importlib._bootstrap>"
