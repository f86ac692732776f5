"""Kafka entry points: the three internal topics, every projected type to the projector."""

from __future__ import annotations

from seminarops_shared.events.topics import FEEDBACK_EVENTS, REGISTRATION_EVENTS, SEMINAR_EVENTS
from seminarops_shared.kafka import EventConsumer
from seminarops_shared.service import Runtime
from seminarops_shared.subscriptions import Subscription

from .handlers import IDEMPOTENT_TYPES, PROJECTED_TYPES, ProjectionService

TOPICS = (SEMINAR_EVENTS, REGISTRATION_EVENTS, FEEDBACK_EVENTS)


def subscribe(runtime: Runtime, service: ProjectionService) -> EventConsumer:
    """One consumer group (``metrics``) over the three topics; other event types on
    them (reminders, invitations, windows) are skipped by the pipeline. A batch is
    folded in one transaction with a handful of round trips (``project_batch``).

    Registration and feedback events need no processed-event marker: their folds
    converge whatever the order and however often an event comes (a registration
    follows its highest version, stages are only ever set, an evaluation is keyed by
    its id). Seminar events keep theirs: their grouping fields come from the newest
    event, so a late repeat of an old one (an outbox entry published again by another
    replica) must not be applied again."""
    return runtime.consume(subscription(service))


def subscription(service: ProjectionService) -> Subscription:
    """Every projected type to the projector's batch handler."""
    return Subscription.batched(
        TOPICS, service.project_batch, types=PROJECTED_TYPES, idempotent=IDEMPOTENT_TYPES
    )
