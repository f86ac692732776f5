"""``OffsetGaps``: a poll is cut where a partition's offsets jump, that partition is
fetched again from the offset that did not come, and a hole that stays is accepted."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from seminarops_devtools.testing.records import consumer_record
from seminarops_shared.offset_gaps import OffsetGaps

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def records(tp: TopicPartition, *offsets: int) -> list[ConsumerRecord[Any, Any]]:
    return [consumer_record(tp.topic, tp.partition, offset) for offset in offsets]


def offsets(polled: list[ConsumerRecord[Any, Any]]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in polled]


def test_consecutive_polls_pass_whole() -> None:
    gaps = OffsetGaps(patience_s=2.0)
    assert offsets(gaps.cut(records(P0, 5, 6, 7)).records) == [(0, 5), (0, 6), (0, 7)]
    cut = gaps.cut(records(P0, 8, 9) + records(P1, 40))
    assert offsets(cut.records) == [(0, 8), (0, 9), (1, 40)]
    assert cut.rewind == {}
    assert cut.accepted == {}


def test_a_jump_cuts_that_partition_and_rewinds_it_to_the_missing_offset() -> None:
    gaps = OffsetGaps(patience_s=2.0)
    gaps.cut(records(P0, 0, 1, 2) + records(P1, 10))
    cut = gaps.cut(records(P0, 3, 4, 13, 14) + records(P1, 11, 12))
    # What came before the hole is applied; nothing after it (order within a partition).
    assert offsets(cut.records) == [(0, 3), (0, 4), (1, 11), (1, 12)]
    assert cut.rewind == {P0: 5}
    # Fetched again: the skipped records arrive, then the rest.
    cut = gaps.cut(records(P0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14))
    assert [o for _, o in offsets(cut.records)] == list(range(5, 15))
    assert cut.rewind == {}


def test_a_jump_in_the_first_poll_after_an_assignment_is_not_seen() -> None:
    # The group's committed offset is where the first poll starts: not known here.
    gaps = OffsetGaps(patience_s=2.0)
    gaps.cut(records(P0, 0, 1))
    gaps.forget()
    cut = gaps.cut(records(P0, 7, 8))
    assert offsets(cut.records) == [(0, 7), (0, 8)]
    assert cut.rewind == {}


def test_a_hole_that_stays_past_the_patience_is_accepted_and_reported() -> None:
    clock = Clock()
    gaps = OffsetGaps(patience_s=2.0, clock=clock)
    gaps.cut(records(P0, 0))
    assert gaps.cut(records(P0, 3, 4)).rewind == {P0: 1}
    clock.now += 1.9
    assert gaps.cut(records(P0, 3, 4)).rewind == {P0: 1}, "still within the patience"
    clock.now += 0.2
    cut = gaps.cut(records(P0, 3, 4))
    assert offsets(cut.records) == [(0, 3), (0, 4)]
    assert cut.accepted == {P0: (1, 3)}
    # The next hole waits its own patience.
    assert gaps.cut(records(P0, 9)).rewind == {P0: 5}


def test_a_hole_filled_before_the_patience_starts_the_next_one_afresh() -> None:
    clock = Clock()
    gaps = OffsetGaps(patience_s=2.0, clock=clock)
    gaps.cut(records(P0, 0))
    assert gaps.cut(records(P0, 2)).rewind == {P0: 1}
    clock.now += 1.5
    assert gaps.cut(records(P0, 1, 2)).rewind == {}
    clock.now += 1.5
    assert gaps.cut(records(P0, 5)).rewind == {P0: 3}, "a new hole, not the old one's clock"


def test_no_patience_means_no_check() -> None:
    gaps = OffsetGaps(patience_s=0)
    gaps.cut(records(P0, 0))
    cut = gaps.cut(records(P0, 9))
    assert offsets(cut.records) == [(0, 9)]
    assert cut.rewind == {}
