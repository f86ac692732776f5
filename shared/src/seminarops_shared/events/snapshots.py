"""JSON-schema snapshots of every event, checked in under ``shared/schemas/events``.

A test compares them with the models and fails on an unannounced change. To announce
one (an added optional field): ``python -m seminarops_shared.events.snapshots --write``
and commit the diff; anything incompatible is a new ``.vN`` type instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .base import REGISTRY

SNAPSHOT_DIR = Path(__file__).resolve().parents[3] / "schemas" / "events"


def current_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in REGISTRY.models().items()}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = SNAPSHOT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in current_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(render(schema))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the snapshots")
    args = parser.parse_args()
    if args.write:
        for path in write():
            print(path)  # noqa: T201 - a command-line tool


if __name__ == "__main__":
    main()
