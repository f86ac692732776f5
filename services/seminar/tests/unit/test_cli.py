"""``python -m seminar import``: sends the file, prints the rejected rows and a summary."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import httpx
import pytest

from seminar.__main__ import import_file, main
from seminar.importing import parse_season


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


HEADER = "id,title,kind,programme,starts_at,ends_at,timezone,capacity,language,notes\n"
ROW = "{id},Title {id},online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,Europe/Brussels,{capacity},en,x\n"
# Seven rows, two rejected (capacity), a quoted line break in row 2.
LONG_SEASON = HEADER + "".join(
    ROW.format(id=f"s-{n}", capacity=-1 if n in {3, 6} else 10).replace("Title s-2", '"Title\ns-2"')
    for n in range(1, 8)
)


def _service_like(seen: list[bytes]) -> httpx.MockTransport:
    """Answers as the import endpoint does, from the real parser: a report per row."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        season = parse_season(request.content, max_rows=5000)
        rows = [
            {
                "row": row.row,
                "line": row.line,
                "status": "rejected" if row.errors else "created",
                "id": row.seminar_id,
                "reasons": row.errors,
            }
            for row in season.rows
        ]
        rejected = sum(r["status"] == "rejected" for r in rows)
        return httpx.Response(
            200,
            json={
                "dry_run": False,
                "created": len(rows) - rejected,
                "unchanged": 0,
                "rejected": rejected,
                "ignored_columns": season.ignored_columns,
                "rows": rows,
            },
        )

    return httpx.MockTransport(answer)


def test_a_long_file_goes_in_parts_and_is_reported_as_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    season = tmp_path / "season.csv"
    season.write_text(LONG_SEASON)
    seen: list[bytes] = []
    code = import_file(
        season,
        url="http://seminar",
        token=None,
        dry_run=False,
        transport=_service_like(seen),
        rows_per_request=3,
    )
    assert code == 1
    assert len(seen) == 3
    assert all(part.decode().startswith(HEADER) for part in seen)
    out = capsys.readouterr()
    # Numbered as in the file (row 2 spans lines 3-4), as one request for it all would be.
    assert [line.split(":")[0] for line in out.out.splitlines()] == [
        "ignored columns",
        "row 3 (line 5)",
        "row 6 (line 8)",
        "5 created, 0 unchanged, 2 rejected",
    ]
    assert out.err == ""  # no progress bar: stderr is not a terminal here


def test_the_ignored_columns_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    season = tmp_path / "season.csv"
    season.write_text(HEADER.replace("notes", "notes,colour") + "s-1,T,online_seminar\n")
    import_file(season, url="http://x", token=None, dry_run=True, transport=_service_like([]))
    assert "ignored columns: notes, colour\n" in capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    season = tmp_path / "season.csv"
    season.write_text(LONG_SEASON)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    import_file(
        season,
        url="http://seminar",
        token=None,
        dry_run=False,
        transport=_service_like([]),
        rows_per_request=2,
    )
    assert "importing" in terminal.getvalue()


def test_a_refusal_midway_says_what_was_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    season = tmp_path / "season.csv"
    season.write_text(LONG_SEASON)
    seen: list[bytes] = []
    service = _service_like(seen)

    def answer(request: httpx.Request) -> httpx.Response:
        if seen:
            return httpx.Response(503, text='{"detail": "database unavailable"}')
        return service.handle_request(request)

    code = import_file(
        season,
        url="http://seminar",
        token=None,
        dry_run=False,
        transport=httpx.MockTransport(answer),
        rows_per_request=3,
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "import refused (503)" in err
    assert "rows 1-3 were imported before row 4; sending the file again is safe" in err
