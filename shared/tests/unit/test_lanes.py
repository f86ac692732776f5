"""``Lanes`` and ``OffsetCommits``: polls applied behind the fetching, in order per
lane, lanes side by side, bounded; offsets noted only after a piece is applied and
committed for assigned partitions only; a revocation drops what is queued and refuses
what was fetched before it; closing applies what is held. The pipeline on the real
broker and database: ``shared/tests/integration/test_lanes.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.records import consumer_record
from seminarops_shared.lanes import Lanes, OffsetCommits, Piece

DEADLINE_S = 5.0


def record(partition: int, offset: int, topic: str = "t") -> ConsumerRecord[Any, Any]:
    return consumer_record(topic, partition, offset)


def piece(partition: int, offsets: range, epoch: int = 0) -> Piece[int]:
    return Piece(list(offsets), [record(partition, o) for o in offsets], epoch)


class Recorder:
    """An ``apply`` that waits for a go-ahead per call and remembers what it applied."""

    def __init__(self, *, hold: bool = False) -> None:
        self.started: list[list[int]] = []
        self.applied: list[list[int]] = []
        self.noted: list[dict[TopicPartition, int]] = []
        self.go = asyncio.Event()
        if not hold:
            self.go.set()
        self.changed = asyncio.Event()

    async def apply(self, p: Piece[int]) -> None:
        self.started.append(list(p.items))
        self.changed.set()
        await self.go.wait()
        self.applied.append(list(p.items))
        self.changed.set()

    def note(self, p: Piece[int]) -> None:
        self.noted.append(dict(p.ends))
        self.changed.set()

    async def until(self, condition: Any) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), DEADLINE_S)


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` with a deadline."""

    async def check() -> bool:
        return condition()

    await eventually(check, timeout_s=DEADLINE_S, interval_s=0.001)


def lanes_for(recorder: Recorder, *, max_records: int = 10) -> Lanes[int]:
    return Lanes(apply=recorder.apply, applied=recorder.note, max_records=max_records)


async def test_pieces_queued_while_one_applies_are_merged_in_order_into_the_next() -> None:
    recorder = Recorder(hold=True)
    lanes = lanes_for(recorder)
    await lanes.submit([("p0", piece(0, range(3)))])
    await recorder.until(lambda: recorder.started == [[0, 1, 2]])
    # The fetching side goes on while the first piece is applied.
    await lanes.submit([("p0", piece(0, range(3, 5)))])
    await lanes.submit([("p0", piece(0, range(5, 8)))])
    recorder.go.set()
    await recorder.until(lambda: len(recorder.noted) == 2)
    assert recorder.applied == [[0, 1, 2], [3, 4, 5, 6, 7]]
    tp = TopicPartition("t", 0)
    assert recorder.noted == [{tp: 3}, {tp: 8}], "offsets after each applied piece, in order"


async def test_lanes_apply_side_by_side_and_one_lane_waits_for_its_own_piece_only() -> None:
    recorder = Recorder(hold=True)
    lanes = lanes_for(recorder)
    await lanes.submit([("p0", piece(0, range(2))), ("p1", piece(1, range(10, 12)))])
    await recorder.until(lambda: len(recorder.started) == 2)
    assert sorted(recorder.started) == [[0, 1], [10, 11]], "both lanes apply at once"
    assert recorder.applied == []
    recorder.go.set()
    await recorder.until(lambda: len(recorder.noted) == 2)


async def test_a_full_lane_holds_the_fetching_side_back_until_it_has_room() -> None:
    recorder = Recorder(hold=True)
    lanes = lanes_for(recorder, max_records=4)
    await lanes.submit([("p0", piece(0, range(4)))])  # applied now
    await recorder.until(lambda: len(recorder.started) == 1)
    await lanes.submit([("p0", piece(0, range(4, 8)))])  # queued: the lane is full
    blocked = asyncio.create_task(lanes.submit([("p0", piece(0, range(8, 10)))]))
    await until(lambda: lanes.waiting == 1)
    assert not blocked.done(), "no room: the third poll waits"
    recorder.go.set()
    await asyncio.wait_for(blocked, DEADLINE_S)
    await recorder.until(lambda: len(recorder.noted) == 3)
    assert [items[0] for items in recorder.applied] == [0, 4, 8]


async def test_a_revocation_drops_what_is_queued_refuses_older_polls_and_keeps_offsets() -> None:
    recorder = Recorder(hold=True)
    lanes = lanes_for(recorder)
    await lanes.submit([("p0", piece(0, range(2)))])
    await recorder.until(lambda: len(recorder.started) == 1)
    await lanes.submit([("p0", piece(0, range(2, 4)))])
    lanes.revoke()
    await lanes.submit([("p0", piece(0, range(4, 6), epoch=0))])  # fetched before it
    recorder.go.set()
    await recorder.until(lambda: len(recorder.applied) == 1)
    await lanes.close(DEADLINE_S)
    assert recorder.applied == [[0, 1]], "queued and older polls are read again instead"
    assert recorder.noted == [], "the piece in flight does not commit for the new assignment"
    await lanes.submit([("p0", piece(0, range(2), epoch=lanes.epoch))])
    assert recorder.applied == [[0, 1]], "closed: nothing more is taken"


async def test_closing_applies_what_is_queued_and_in_flight_and_refuses_the_rest() -> None:
    recorder = Recorder(hold=True)
    lanes = lanes_for(recorder)
    await lanes.submit([("p0", piece(0, range(2)))])
    await recorder.until(lambda: len(recorder.started) == 1)
    await lanes.submit([("p0", piece(0, range(2, 4)))])
    closing = asyncio.create_task(lanes.close(DEADLINE_S))
    await until(lambda: lanes.closing)
    await lanes.submit([("p0", piece(0, range(4, 6)))])
    recorder.go.set()
    await asyncio.wait_for(closing, DEADLINE_S)
    assert recorder.applied == [[0, 1], [2, 3]]
    assert [ends[TopicPartition("t", 0)] for ends in recorder.noted] == [2, 4]


async def test_a_piece_whose_application_raises_is_tried_again_before_anything_after_it() -> None:
    calls: list[list[int]] = []
    noted: list[dict[TopicPartition, int]] = []
    done = asyncio.Event()

    async def apply(p: Piece[int]) -> None:
        calls.append(list(p.items))
        if len(calls) == 1:
            raise RuntimeError("the dead-letter topic is gone")

    def note(p: Piece[int]) -> None:
        noted.append(dict(p.ends))
        done.set()

    lanes: Lanes[int] = Lanes(apply=apply, applied=note, max_records=10)
    await lanes.submit([("p0", piece(0, range(2)))])
    await asyncio.wait_for(done.wait(), DEADLINE_S)
    assert calls == [[0, 1], [0, 1]]
    assert noted == [{TopicPartition("t", 0): 2}]


class FakeConsumer:
    def __init__(
        self, assigned: set[TopicPartition], *, refuse: bool = False, hang: bool = False
    ) -> None:
        self.assigned = assigned
        self.refuse = refuse
        # A coordinator that never answers (aiokafka retries a retriable error forever).
        self.hang = hang
        self.commits: list[dict[TopicPartition, int]] = []
        self.committed = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.refuse:
            raise CommitFailedError("the group rebalanced")
        if self.hang:
            await asyncio.Event().wait()
        self.commits.append(dict(offsets))
        self.committed.set()


async def test_offsets_are_committed_newest_per_partition_and_only_where_assigned() -> None:
    mine, theirs = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = FakeConsumer({mine})
    commits = OffsetCommits(consumer)
    commits.note({mine: 5, theirs: 7})
    commits.note({mine: 9})
    await asyncio.wait_for(consumer.committed.wait(), DEADLINE_S)
    await commits.stop(DEADLINE_S)
    assert consumer.commits[-1] == {mine: 9}
    assert all(theirs not in c for c in consumer.commits)


async def test_a_commit_the_group_refuses_is_dropped_not_retried_forever() -> None:
    tp = TopicPartition("t", 0)
    consumer = FakeConsumer({tp}, refuse=True)
    commits = OffsetCommits(consumer)
    commits.note({tp: 3})
    await commits.flush()  # refused: the records are redelivered to the new owner
    consumer.refuse = False
    await commits.flush()
    assert consumer.commits == [], "nothing left to commit"
    await commits.stop(DEADLINE_S)


async def test_the_last_commit_is_bounded_when_the_coordinator_does_not_answer() -> None:
    tp = TopicPartition("t", 0)
    consumer = FakeConsumer({tp}, hang=True)
    commits = OffsetCommits(consumer)
    commits.note({tp: 3})
    # Within the deadline although the commit never returns: those records are
    # redelivered to whoever owns the partition next, and absorbed.
    await asyncio.wait_for(commits.stop(0.05), DEADLINE_S)
    assert consumer.commits == []
