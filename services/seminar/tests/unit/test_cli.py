"""``python -m seminar import``: sends the file, prints the rejected rows and a summary."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from seminar.__main__ import import_file, main


def _report(rejected: int) -> dict[str, object]:
    rows = [{"row": 1, "line": 2, "status": "created", "id": "sem-1", "reasons": []}]
    rows += [
        {"row": 2, "line": 3, "status": "rejected", "id": None, "reasons": ["capacity: bad"]}
    ] * rejected
    return {
        "dry_run": True,
        "created": 1,
        "unchanged": 0,
        "rejected": rejected,
        "ignored_columns": [],
        "rows": rows,
    }


@pytest.mark.parametrize(("rejected", "status"), [(0, 0), (1, 1)])
def test_import_sends_the_file_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rejected: int, status: int
) -> None:
    season = tmp_path / "season.csv"
    season.write_text("title\nx\n")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_report(rejected))

    code = import_file(
        season,
        url="http://seminar:8002/",
        token="tok",
        dry_run=True,
        transport=httpx.MockTransport(answer),
    )
    [request] = seen
    assert code == status
    assert str(request.url) == "http://seminar:8002/v1/seminars/import?dry_run=true"
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["content-type"] == "text/csv"
    assert request.content == b"title\nx\n"
    out = capsys.readouterr().out
    assert "1 would be created, 0 unchanged" in out
    assert ("row 2 (line 3): capacity: bad" in out) == bool(rejected)


def test_a_refused_import_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    season = tmp_path / "season.csv"
    season.write_text("nothing")
    transport = httpx.MockTransport(
        lambda _request: httpx.Response(422, text=json.dumps({"detail": "missing column(s)"}))
    )
    assert import_file(season, url="http://x", token=None, dry_run=False, transport=transport) == 2
    assert "missing column(s)" in capsys.readouterr().err


def test_an_unreachable_service_exits_2(tmp_path: Path) -> None:
    season = tmp_path / "season.csv"
    season.write_text("title\n")
    assert main(["import", str(season), "--url", "http://127.0.0.1:9"]) == 2
