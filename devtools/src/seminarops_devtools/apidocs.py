"""The API documents, generated from the code and committed under ``docs/``:
``docs/asyncapi.json`` (every topic and event, from the event registry, through
FastStream's AsyncAPI generator) and ``docs/openapi/<service>.json`` (each service's
FastAPI app). ``python -m seminarops_devtools.apidocs write`` regenerates them; a test
fails when the committed ones differ from the code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import create_model

from seminarops_shared.events import REGISTRY, Envelope
from seminarops_shared.events.topics import EVENT_TOPICS, OWNERS, SUBSCRIPTIONS, dead_letter_topic

SERVICES = ("registration", "seminar", "feedback", "metrics")
DOCS_DIR = Path(__file__).resolve().parents[3] / "docs"


def _envelope_models(topic: str) -> list[type[Envelope]]:
    models: list[type[Envelope]] = []
    for event_type, data_model in REGISTRY.models().items():
        if data_model.topic != topic:
            continue
        models.append(
            create_model(
                f"{data_model.__name__}Event",
                __base__=Envelope,
                __doc__=(data_model.__doc__ or event_type).strip(),
                type=(Literal[event_type], ...),  # type: ignore[arg-type]
                data=(data_model, ...),
            )
        )
    return models


def asyncapi_document() -> dict[str, Any]:
    broker = KafkaBroker("kafka:9092", description="Apache Kafka (KRaft); Tansu locally")
    for topic in EVENT_TOPICS:
        models = _envelope_models(topic)
        schema: Any = models[0] if len(models) == 1 else _union(models)
        broker.publisher(
            topic,
            schema=schema,
            title=f"{topic}:publish",
            description=(
                f"Published by {OWNERS[topic]}. CloudEvents 1.0 structured JSON, record key = "
                "seminar id (participant id for events about a person). Records that cannot "
                f"be processed go to {dead_letter_topic(topic)} with header x-dlq-reason."
            ),
        )
        for group, topics in SUBSCRIPTIONS.items():
            if topic in topics:
                subscriber = broker.subscriber(
                    topic,
                    group_id=group,
                    title=f"{topic}:{group}",
                    description=f"Consumed by the {group} service (consumer group {group!r}).",
                )
                subscriber(_documented_handler(schema))
    specification = AsyncAPI(
        broker,
        title="seminar-ops events",
        version="1.0.0",
        description="Topics and events of the seminar-ops services (see CONTRACT.md).",
        schema_version="3.0.0",
    ).to_specification()
    document: dict[str, Any] = json.loads(specification.to_json())
    return document


def _union(models: list[type[Envelope]]) -> Any:
    from typing import Union

    return Union[tuple(models)]  # noqa: UP007 - built at run time from a list


def _documented_handler(schema: Any) -> Any:
    async def handler(body: schema) -> None:
        """Documentation only: the services consume through seminarops_shared.kafka."""

    return handler


def openapi_document(service: str) -> dict[str, Any]:
    app_module = importlib.import_module(f"{service}.app")
    settings_module = importlib.import_module(f"{service}.settings")
    settings_class = next(
        value
        for name, value in vars(settings_module).items()
        if name.endswith("Settings")
        and getattr(value, "__module__", "") == settings_module.__name__
    )
    app = app_module.create_app(settings_class())
    document: dict[str, Any] = app.openapi()
    return document


def documents() -> dict[Path, dict[str, Any]]:
    docs = {DOCS_DIR / "asyncapi.json": asyncapi_document()}
    for service in SERVICES:
        docs[DOCS_DIR / "openapi" / f"{service}.json"] = openapi_document(service)
    return docs


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["write", "check"])
    args = parser.parse_args()
    stale = []
    for path, document in documents().items():
        text = render(document)
        if args.action == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(str(path))
    if stale:
        sys.stderr.write("stale API documents (run: make docs): " + ", ".join(stale) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
