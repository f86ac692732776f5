"""``split_season``: a long season file cut between rows into parts that are season
files themselves, whose rows and lines map back to the file exactly."""

from __future__ import annotations

import pytest

from seminar.importing import SeasonPart, parse_season, split_season

HEADER = "id,title,kind,programme,starts_at,ends_at,timezone,capacity,language,notes\r\n"
ROW = "{id},{title},online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,Europe/Brussels,{capacity},en,x\r\n"


def _season() -> bytes:
    rows = [
        ROW.format(id="s-1", title="One", capacity=10),
        "\r\n",  # a blank line: no row
        ROW.format(id="s-2", title='"Two,\r\nover two lines"', capacity=10),
        ROW.format(id="s-3", title="Three", capacity=-1),  # rejected: capacity
        ROW.format(id="s-4", title="Four", capacity=10),
        "\r\n",
        ROW.format(id="s-5", title='"Five ""quoted"""', capacity=10),
        ROW.format(id="s-6", title="Six", capacity=0),  # rejected: capacity
        ROW.format(id="s-7", title="Seven", capacity=10),
        "\r\n",
    ]
    return ("\ufeff" + HEADER + "".join(rows)).encode()


def _as_in_file(parts: list[SeasonPart]) -> list[tuple[int, int, str | None, list[str]]]:
    """Every row of every part as the whole file's parse numbers it."""
    found = []
    for part in parts:
        season = parse_season(part.data, max_rows=1000)
        assert len(season.rows) == part.rows
        found += [
            (row.row + part.rows_before, row.line + part.line_offset, row.seminar_id, row.errors)
            for row in season.rows
        ]
    return found


@pytest.mark.parametrize("rows_per_part", [1, 2, 3, 6, 7, 100])
def test_parts_read_as_the_whole_file_does(rows_per_part: int) -> None:
    whole = parse_season(_season(), max_rows=1000)
    parts = split_season(_season(), rows_per_part=rows_per_part)
    assert [part.rows for part in parts][:-1] == [rows_per_part] * (len(parts) - 1)
    assert sum(part.rows for part in parts) == 7
    assert _as_in_file(parts) == [
        (row.row, row.line, row.seminar_id, row.errors) for row in whole.rows
    ]
    # Each part is a season file of its own: the header, then rows as they were.
    for part in parts:
        assert part.data.decode().startswith(HEADER)
        assert parse_season(part.data, max_rows=1000).ignored_columns == ["notes"]
    assert b'"Two,\r\nover two lines"' in b"".join(part.data for part in parts)


def test_a_small_file_is_one_part_as_it_was() -> None:
    data = (HEADER + ROW.format(id="s-1", title="One", capacity=1)).encode()
    [part] = split_season(data, rows_per_part=250)
    assert part == SeasonPart(data=data, rows=1, rows_before=0, line_offset=0)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe not utf-8",  # the service says: not UTF-8
        b"",  # no header
        b'title,kind\n"never closed\n',  # csv reads this as one field; the service decides
        b"title,kind\n",  # a header and no rows
    ],
)
def test_a_file_that_cannot_be_cut_stays_whole_for_the_service_to_judge(data: bytes) -> None:
    [part] = split_season(data, rows_per_part=1)
    assert part.data == data
    assert (part.rows_before, part.line_offset) == (0, 0)
