"""``python -m seminar``: settings from the environment, then serve.

``python -m seminar import SEASON.csv [--url URL] [--token TOKEN] [--dry-run]`` sends a
season file to a running service's import endpoint and prints the per-row report
(exit status 1 if any row was rejected). The token defaults to ``SEMINAR_OPERATOR_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

from seminarops_shared.service import run_service

from .app import create_app
from .settings import SeminarSettings


def import_file(
    path: Path,
    *,
    url: str,
    token: str | None,
    dry_run: bool,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Send ``path`` to the import endpoint; print rejected rows and a summary.
    Exit status: 0 all rows fine, 1 some rejected, 2 the import was refused."""
    headers = {"Content-Type": "text/csv"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(transport=transport, timeout=300) as client:
            response = client.post(
                f"{url.rstrip('/')}/v1/seminars/import",
                content=path.read_bytes(),
                headers=headers,
                params={"dry_run": str(dry_run).lower()},
            )
    except (OSError, httpx.HTTPError) as error:
        sys.stderr.write(f"import failed: {error}\n")
        return 2
    if response.status_code != 200:
        sys.stderr.write(f"import refused ({response.status_code}): {response.text}\n")
        return 2
    report = response.json()
    for row in report["rows"]:
        if row["status"] == "rejected":
            sys.stdout.write(
                f"row {row['row']} (line {row['line']}): {'; '.join(row['reasons'])}\n"
            )
    verb = "would be created" if report["dry_run"] else "created"
    sys.stdout.write(
        f"{report['created']} {verb}, {report['unchanged']} unchanged, "
        f"{report['rejected']} rejected\n"
    )
    return 1 if report["rejected"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seminar", description="the seminar service")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve HTTP and consume events (the default)")
    importer = commands.add_parser("import", help="import a season file (CSV)")
    importer.add_argument("file", type=Path)
    importer.add_argument("--url", default="http://127.0.0.1:8002")
    importer.add_argument("--token", default=os.environ.get("SEMINAR_OPERATOR_TOKEN"))
    importer.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "import":
        return import_file(args.file, url=args.url, token=args.token, dry_run=args.dry_run)
    run_service(SeminarSettings(), create_app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
