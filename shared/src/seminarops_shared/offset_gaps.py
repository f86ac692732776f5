"""Polls read without a hole: a guard against a broker that skips records.

Kafka gives a partition's records consecutive offsets, and our topics have neither
compaction nor transaction markers, so a consumer that receives offset n + 8 right after
n - 1 has skipped eight records. The embedded broker (Tansu) does that: while several
producers write one partition, a fetch at n can be answered with a later batch while the
batch at n, written at the same moment, is not readable yet, and the consumer then
fetches on from past it, for good. Reproduced with four producers writing one partition
and a reader consuming as they write (``benchmarks/offset_gaps.py``): in 3 of 7 runs the
reader missed 8 of 12,001 records that a reader started afterwards saw. The season
benchmark lost one metrics registration this way (two registration replicas publish to
the same partitions).

``OffsetGaps`` keeps each partition's next offset. A poll whose records jump past it is
cut at the jump and the consumer seeks back, so the skipped records are fetched again
once they are readable (and nothing after them is applied first). A hole still there
after ``patience_s`` is a real one (a broker that compacts, or transaction markers from
a producer of the platform's): it is accepted and reported. The first poll of a
partition after an assignment is not checked: it starts at the group's committed offset,
which the consumer does not know without asking.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord


@dataclass
class Cut:
    """A poll after the check."""

    # The records to apply: for each partition, consecutive from its next offset.
    records: list[ConsumerRecord[Any, Any]]
    # Partitions whose records jumped past a hole: fetch them again from this offset.
    rewind: dict[TopicPartition, int] = field(default_factory=dict)
    # Holes given up on: partition -> (the offset expected, the one that came instead).
    accepted: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)


class OffsetGaps:
    """Each partition's next offset, across polls (``patience_s`` 0: no check)."""

    def __init__(self, *, patience_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._patience_s = patience_s
        self._clock = clock
        self._next: dict[TopicPartition, int] = {}
        # The hole each partition waits to see filled: (its first offset, first seen at).
        self._holes: dict[TopicPartition, tuple[int, float]] = {}

    def forget(self) -> None:
        """The assignment changed: the next poll of each partition starts anew."""
        self._next.clear()
        self._holes.clear()

    def cut(self, records: Sequence[ConsumerRecord[Any, Any]]) -> Cut:
        """``records`` (one poll, each partition's in offset order) up to the first
        hole of each partition."""
        if self._patience_s <= 0:
            return Cut(list(records))
        cut = Cut([])
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp in cut.rewind:
                continue
            expected = self._next.get(tp)
            if expected is not None and record.offset > expected:
                if not self._given_up(tp, expected):
                    cut.rewind[tp] = expected
                    continue
                cut.accepted[tp] = (expected, record.offset)
            self._holes.pop(tp, None)
            self._next[tp] = record.offset + 1
            cut.records.append(record)
        return cut

    def _given_up(self, tp: TopicPartition, expected: int) -> bool:
        now = self._clock()
        hole = self._holes.get(tp)
        if hole is None or hole[0] != expected:
            self._holes[tp] = hole = (expected, now)
        return now - hole[1] >= self._patience_s


__all__ = ["Cut", "OffsetGaps"]
