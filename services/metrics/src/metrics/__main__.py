"""``python -m metrics``: serve (the default), or ``python -m metrics rebuild``.

Settings come from the environment (``METRICS_*``, ``KAFKA_*``, ``MONGODB_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from seminarops_shared.logging import configure_logging
from seminarops_shared.service import run_service

from .app import create_app
from .repository import RebuildRunning
from .settings import MetricsSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metrics", description="seminar-ops metrics service"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve the HTTP API and consume events (the default)")
    rebuild = commands.add_parser(
        "rebuild",
        help="rebuild the projections from the topics into fresh collections and switch to them",
    )
    rebuild.add_argument(
        "--keep-previous",
        action="store_true",
        help="keep the previous projection set's collections (default: drop them)",
    )
    rebuild.add_argument(
        "--force",
        action="store_true",
        help="take the rebuild lock even if held (only after a crashed rebuild)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = MetricsSettings()
    if args.command == "rebuild":
        from .rebuild import rebuild

        configure_logging(
            service=f"{settings.service_name}-rebuild",
            level=settings.log_level,
            json=settings.log_json,
        )
        try:
            result = asyncio.run(
                rebuild(settings, keep_previous=args.keep_previous, force=args.force)
            )
        except RebuildRunning as error:
            print(f"rebuild refused: {error}", file=sys.stderr)  # noqa: T201
            return 2
        print(json.dumps(result.as_dict(), indent=2))  # noqa: T201 - the command's output
        return 0
    run_service(settings, create_app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
