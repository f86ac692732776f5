"""What a service consumes, declared in one place: a ``Subscription`` per consumer group,
a table from event type to the handler that applies it.

A handler is either a function of one event (``EventHandler``: the runtime binds the
event's trace context and log fields around the call), or a ``Batch``: one call with a
run of consecutive events whose types share that batch handler, in partition order, in
the batch's transaction (read what the run needs with one query, write with one).

``Batch(..., idempotent=True)``: applying such an event again changes nothing (a
projection fold, a request keyed by its natural key), so it gets no processed-event
marker (one document and one lookup per event, the largest single cost per event on
the embedded database). The handler then reports the events that changed nothing,
which are counted as duplicates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from .events import Event, ReceivedEvent
from .keyed import KeyedWrites
from .unit_of_work import UnitOfWork

EventHandler = Callable[[ReceivedEvent, UnitOfWork], Awaitable[None]]
# A run of fresh events in partition order, in one transaction (a run of one when the
# batch falls back to one event at a time). It may return the ids of events that
# changed nothing: for idempotent types those are counted as duplicates.
BatchHandler = Callable[[Sequence[ReceivedEvent], UnitOfWork], Awaitable[Collection[str] | None]]


@dataclass(frozen=True)
class Batch:
    """A batch handler for the types it is entered under (see the module docstring)."""

    handle: BatchHandler
    idempotent: bool = False


Handler = EventHandler | Batch


@dataclass(frozen=True)
class Subscription:
    """One consumer group: its topics, what it does with each event type (other types
    on the topics are skipped and counted as ``ignored``), and, where its writes contend
    on one document per key, the ``KeyedWrites`` policy the pipeline follows."""

    topics: tuple[str, ...]
    handlers: Mapping[type[Event], Handler]
    keyed: KeyedWrites | None = None
    idempotent: frozenset[type[Event]] = field(init=False)

    def __post_init__(self) -> None:
        if not self.handlers:
            raise ValueError("a subscription needs at least one handler")
        idempotent = frozenset(
            kind for kind, h in self.handlers.items() if isinstance(h, Batch) and h.idempotent
        )
        object.__setattr__(self, "idempotent", idempotent)

    @classmethod
    def batched(
        cls,
        topics: Sequence[str],
        handle: BatchHandler,
        *,
        types: Collection[type[Event]],
        idempotent: Collection[type[Event]] = (),
        keyed: KeyedWrites | None = None,
    ) -> Subscription:
        """Every type in ``types`` to one batch handler (whole batches in one call);
        those in ``idempotent`` without processed-event markers."""
        marked, unmarked = Batch(handle), Batch(handle, idempotent=True)
        return cls(
            topics=tuple(topics),
            handlers={kind: unmarked if kind in idempotent else marked for kind in types},
            keyed=keyed,
        )
