"""Season files: a CSV of seminars, one per row, read into ``ImportRow``s.

Format (UTF-8, a header row, comma-separated, fields quoted as usual in CSV):

- required columns: ``title``, ``kind``, ``programme``, ``timezone``, ``capacity``,
  ``language``, and either ``starts_at`` + ``ends_at`` or ``sessions``;
- optional: ``id``, ``theme``, ``moderator``, ``host_school_id``, ``open_to_other_schools``
  (true/false), ``promotion`` (automatic/offer), ``offer_hours``, ``eligible_countries``
  (ISO 3166-1 alpha-2 codes separated by ``;``: ``AM;GE;UA``);
- ``sessions``: ``start/end`` pairs separated by ``;``
  (``2025-10-06T16:00/2025-10-06T17:30;2025-10-13T16:00/2025-10-13T17:30``);
- times in ISO 8601; without a UTC offset they are wall-clock times in the row's
  ``timezone``.

Other columns are ignored (and reported). A file-level problem (not UTF-8, no header,
a required column missing, too many rows) is ``InvalidSeasonFile``; a row-level one
rejects that row only.

``split_season`` cuts a long file between rows into parts that each carry the header,
for a client that sends it a part at a time (``python -m seminar import``); every row
and line number the service reports for a part maps back to the file.
"""

from __future__ import annotations

import csv
import email.parser
import email.policy
import io
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from seminarops_shared.errors import Invalid

from .commands import SeminarIn
from .handlers import ImportRow

REQUIRED_COLUMNS = ("title", "kind", "programme", "timezone", "capacity", "language")
OPTIONAL_COLUMNS = (
    "id",
    "starts_at",
    "ends_at",
    "sessions",
    "theme",
    "moderator",
    "host_school_id",
    "open_to_other_schools",
    "promotion",
    "offer_hours",
    "eligible_countries",
)
KNOWN_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)


class InvalidSeasonFile(Invalid):
    """The file as a whole cannot be read as a season (nothing stored)."""


@dataclass(frozen=True, slots=True)
class SeasonFile:
    rows: list[ImportRow]
    ignored_columns: list[str]


@dataclass(frozen=True, slots=True)
class SeasonPart:
    """Consecutive rows of a season file, with its header: a season file itself.

    Row ``r`` of the part is row ``rows_before + r`` of the file; line ``n`` of the part
    (past its header) is line ``n + line_offset`` of the file."""

    data: bytes
    rows: int
    rows_before: int
    line_offset: int


def split_season(data: bytes, *, rows_per_part: int) -> list[SeasonPart]:
    """``data`` cut between rows into parts of at most ``rows_per_part`` rows, each
    starting with the file's header, every other byte as in the file (quoted line
    breaks, blank lines). A file that cannot be read as CSV here (not UTF-8, a CSV
    error, no header) stays whole, one part: ``parse_season`` then says what is wrong."""
    whole = [SeasonPart(data=data, rows=0, rows_before=0, line_offset=0)]
    try:
        lines = io.StringIO(data.decode("utf-8-sig"), newline="").readlines()
        ends = _record_ends(lines)
    except (UnicodeDecodeError, csv.Error):
        return whole
    if not ends:
        return whole
    header_lines, row_ends = ends[0], ends[1:]
    header = "".join(lines[:header_lines])
    parts: list[SeasonPart] = []
    start = header_lines  # the first line (index) of the next part
    for first in range(0, len(row_ends), rows_per_part):
        end = row_ends[min(first + rows_per_part, len(row_ends)) - 1]
        if first + rows_per_part >= len(row_ends):
            end = len(lines)  # blank lines after the last row stay with it
        text = header + "".join(lines[start:end])
        rows = min(rows_per_part, len(row_ends) - first)
        parts.append(
            SeasonPart(
                data=text.encode(),
                rows=rows,
                rows_before=first,
                line_offset=start - header_lines,
            )
        )
        start = end
    return parts or whole


def _record_ends(lines: list[str]) -> list[int]:
    """After which line each non-blank CSV record ends (the header first), counting as
    ``csv`` does: a quoted field may span lines; blank lines are no record."""
    reader = csv.reader(iter(lines))
    return [reader.line_num for record in reader if record]


def csv_from_upload(body: bytes, content_type: str) -> bytes:
    """The CSV bytes of a request: the body itself (``text/csv``), or the first file
    part of a ``multipart/form-data`` upload."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise InvalidSeasonFile("malformed multipart/form-data body")
    parts = list(message.iter_parts())
    chosen = next((p for p in parts if p.get_filename()), None) or next(
        (p for p in parts if p.get_param("name", header="content-disposition") == "file"), None
    )
    if chosen is None:
        raise InvalidSeasonFile("no file in the multipart/form-data body (field 'file')")
    payload = chosen.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _sessions(value: str) -> list[dict[str, str]]:
    sessions = []
    for pair in filter(None, (p.strip() for p in value.split(";"))):
        start, separator, end = pair.partition("/")
        if not separator:
            raise ValueError(f"session {pair!r} is not 'start/end'")
        sessions.append({"starts_at": start.strip(), "ends_at": end.strip()})
    return sessions


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return problems


def parse_season(data: bytes, *, max_rows: int) -> SeasonFile:
    """Read a season file. Never raises for a bad row (it is rejected with reasons);
    raises ``InvalidSeasonFile`` for a file that cannot be read at all."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidSeasonFile(
            f"the file is not UTF-8 ({error.reason} at byte {error.start})"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise InvalidSeasonFile("the file is empty: a header row is needed")
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if "sessions" not in header and not {"starts_at", "ends_at"} <= set(header):
        missing.append("starts_at and ends_at (or sessions)")
    if missing:
        raise InvalidSeasonFile(f"missing column(s): {', '.join(missing)}")
    ignored = [c for c in header if c not in KNOWN_COLUMNS]
    rows: list[ImportRow] = []
    try:
        for number, record in enumerate(reader, start=1):
            if number > max_rows:
                raise InvalidSeasonFile(f"more than {max_rows} rows: split the file")
            rows.append(_row(record, number=number, line=reader.line_num))
    except csv.Error as error:
        raise InvalidSeasonFile(f"line {reader.line_num}: {error}") from None
    return SeasonFile(rows=rows, ignored_columns=ignored)


def _row(record: dict[str | Any, Any], *, number: int, line: int) -> ImportRow:
    if None in record:
        return ImportRow(
            row=number,
            line=line,
            seminar_id=None,
            definition=None,
            errors=["more fields than columns"],
        )
    values: dict[str, Any] = {
        key: value.strip()
        for key, value in record.items()
        if key in KNOWN_COLUMNS and isinstance(value, str) and value.strip()
    }
    seminar_id = values.get("id")
    try:
        if "sessions" in values:
            values["sessions"] = _sessions(values["sessions"])
        if "eligible_countries" in values:
            values["eligible_countries"] = [
                code.strip() for code in values["eligible_countries"].split(";") if code.strip()
            ]
        seminar = SeminarIn.model_validate(values)
    except ValidationError as error:
        return ImportRow(
            row=number, line=line, seminar_id=seminar_id, definition=None, errors=_problems(error)
        )
    except ValueError as error:
        return ImportRow(
            row=number, line=line, seminar_id=seminar_id, definition=None, errors=[str(error)]
        )
    return ImportRow(row=number, line=line, seminar_id=seminar.id, definition=seminar.definition())
