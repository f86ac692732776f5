"""``python -m seminar``: settings from the environment, then serve.

``python -m seminar import SEASON.csv [--url URL] [--token TOKEN] [--dry-run]`` sends a
season file to a running service's import endpoint and prints the ignored columns, the
rejected rows and a summary (exit status 1 if any row was rejected). A long file goes
in parts of ``ROWS_PER_REQUEST`` rows, with a progress bar when stderr is a terminal.
The token defaults to ``SEMINAR_OPERATOR_TOKEN``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress

from seminarops_shared.service import run_service

from .app import create_app
from .importing import SeasonPart, split_season
from .settings import SeminarSettings

# Rows per request: a long file is sent in parts, so that progress can be shown and no
# request nears the service's row and byte limits.
ROWS_PER_REQUEST = 250


def import_file(
    path: Path,
    *,
    url: str,
    token: str | None,
    dry_run: bool,
    transport: httpx.BaseTransport | None = None,
    rows_per_request: int = ROWS_PER_REQUEST,
) -> int:
    """Send ``path`` to the import endpoint, ``rows_per_request`` rows at a time; print
    the ignored columns, the rejected rows (numbered as in the file) and a summary.
    Progress goes to stderr when it is a terminal. Exit status: 0 all rows fine, 1 some
    rejected, 2 the import was refused (or the service unreachable)."""
    headers = {"Content-Type": "text/csv"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        parts = split_season(path.read_bytes(), rows_per_part=rows_per_request)
    except OSError as error:
        sys.stderr.write(f"import failed: {error}\n")
        return 2
    report = _Report(dry_run=dry_run)
    with (
        httpx.Client(transport=transport, timeout=300) as client,
        _progress(sum(part.rows for part in parts)) as advance,
    ):
        for part in parts:
            try:
                response = client.post(
                    f"{url.rstrip('/')}/v1/seminars/import",
                    content=part.data,
                    headers=headers,
                    params={"dry_run": str(dry_run).lower()},
                )
            except httpx.HTTPError as error:
                sys.stderr.write(f"import failed: {error}\n")
                return report.interrupted(part)
            if response.status_code != 200:
                sys.stderr.write(f"import refused ({response.status_code}): {response.text}\n")
                return report.interrupted(part)
            report.add(response.json(), part)
            advance(part.rows)
    return report.print()


class _Report:
    """The reports of a file's parts, as one report of the file."""

    def __init__(self, *, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.counts = {"created": 0, "unchanged": 0, "rejected": 0}
        self.ignored_columns: list[str] = []
        self.rejected: list[str] = []
        self.rows_done = 0

    def add(self, report: dict[str, Any], part: SeasonPart) -> None:
        for outcome in self.counts:
            self.counts[outcome] += report[outcome]
        self.ignored_columns = report["ignored_columns"]
        self.rejected += [
            f"row {row['row'] + part.rows_before} (line {row['line'] + part.line_offset}): "
            f"{'; '.join(row['reasons'])}\n"
            for row in report["rows"]
            if row["status"] == "rejected"
        ]
        self.rows_done += part.rows

    def interrupted(self, part: SeasonPart) -> int:
        if self.rows_done and not self.dry_run:
            sys.stderr.write(
                f"rows 1-{self.rows_done} were imported before row {part.rows_before + 1}; "
                "sending the file again is safe (they come back unchanged)\n"
            )
        return 2

    def print(self) -> int:
        if self.ignored_columns:
            sys.stdout.write(f"ignored columns: {', '.join(self.ignored_columns)}\n")
        sys.stdout.writelines(self.rejected)
        verb = "would be created" if self.dry_run else "created"
        sys.stdout.write(
            f"{self.counts['created']} {verb}, {self.counts['unchanged']} unchanged, "
            f"{self.counts['rejected']} rejected\n"
        )
        return 1 if self.counts["rejected"] else 0


@contextlib.contextmanager
def _progress(rows: int) -> Iterator[Callable[[int], None]]:
    """A progress bar of rows sent on stderr, when stderr is a terminal (rich); else
    nothing, so that logs and pipes get only the report."""
    console = Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task("importing", total=rows)
        yield lambda done: bar.advance(task, done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seminar", description="the seminar service")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve HTTP and consume events (the default)")
    importer = commands.add_parser(
        "import",
        help="import a season file (CSV)",
        description="Send a season file to a running seminar service, "
        f"{ROWS_PER_REQUEST} rows per request, and print the ignored columns, the "
        "rejected rows (numbered as in the file) and a summary. A progress bar shows on "
        "a terminal. Exit status: 0 every row fine, 1 some rejected, 2 refused.",
    )
    importer.add_argument("file", type=Path, help="the season file (CSV, UTF-8)")
    importer.add_argument(
        "--url", default="http://127.0.0.1:8002", help="the seminar service (%(default)s)"
    )
    importer.add_argument(
        "--token",
        default=os.environ.get("SEMINAR_OPERATOR_TOKEN"),
        help="an operator token (default: $SEMINAR_OPERATOR_TOKEN)",
    )
    importer.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would happen, store nothing (each part is checked against what "
        "is stored: an id repeated in two parts is reported only by a real import)",
    )
    args = parser.parse_args(argv)
    if args.command == "import":
        return import_file(args.file, url=args.url, token=args.token, dry_run=args.dry_run)
    run_service(SeminarSettings(), create_app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
