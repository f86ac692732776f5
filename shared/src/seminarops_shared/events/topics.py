"""Logical topic names. Each topic is owned by one service; ``<topic>.dlq`` beside it."""

from __future__ import annotations

from typing import Final

REGISTRATION_REQUESTS: Final = "registration.requests"  # inbound, external contract
SEMINAR_EVENTS: Final = "seminar.events"
REGISTRATION_EVENTS: Final = "registration.events"
FEEDBACK_EVENTS: Final = "feedback.events"

EVENT_TOPICS: Final = (REGISTRATION_REQUESTS, SEMINAR_EVENTS, REGISTRATION_EVENTS, FEEDBACK_EVENTS)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


ALL_TOPICS: Final = EVENT_TOPICS + tuple(dead_letter_topic(t) for t in EVENT_TOPICS)


# Which consumer group (= service) reads which topics. The services subscribe to
# exactly these (checked at start-up), and the AsyncAPI document and the deployment
# checks are generated from it.
SUBSCRIPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "registration": (REGISTRATION_REQUESTS, SEMINAR_EVENTS),
    "seminar": (REGISTRATION_EVENTS,),
    "feedback": (SEMINAR_EVENTS, REGISTRATION_EVENTS),
    "metrics": (SEMINAR_EVENTS, REGISTRATION_EVENTS, FEEDBACK_EVENTS),
}

# Who publishes each topic (the envelope `source` consumers accept on it).
OWNERS: Final[dict[str, str]] = {
    REGISTRATION_REQUESTS: "platform systems (/platform/...)",
    SEMINAR_EVENTS: "seminar",
    REGISTRATION_EVENTS: "registration",
    FEEDBACK_EVENTS: "feedback",
}
