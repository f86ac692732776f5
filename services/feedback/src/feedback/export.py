"""CSV of responses for the programme's reporting (pure formatting, no I/O).

One row per response; fixed columns first, then one ``answer.<question id>`` column per
question id found in the forms involved (forms are reused across seminars, so the same
id means the same question). Multiple choices are joined with ``"; "``. Cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) get a leading
``'`` so that free text cannot execute anything.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from seminarops_shared.csv_cells import safe_cell

from .domain import AnswerValue, FormVersion, Response

FIXED_COLUMNS = (
    "evaluation_id",
    "seminar_id",
    "kind",
    "programme",
    "year",
    "form_id",
    "form_version",
    "anonymous",
    "participant_id",
    "submitted_at",
    "overall",
    "comments",
)
ANSWER_PREFIX = "answer."


def answer_columns(forms: Sequence[FormVersion]) -> list[str]:
    """Question ids in order of first appearance across ``forms``."""
    seen: dict[str, None] = {}
    for form in forms:
        for question in form.questions:
            seen.setdefault(question.id, None)
    return list(seen)


def header(question_ids: Sequence[str]) -> str:
    return _line([*FIXED_COLUMNS, *(ANSWER_PREFIX + q for q in question_ids)])


def row(response: Response, question_ids: Sequence[str]) -> str:
    submitted = (
        response.submitted_at.date().isoformat()
        if response.anonymous
        else response.submitted_at.isoformat()
    )
    cells = [
        response.evaluation_id,
        response.seminar_id,
        response.kind.value,
        response.programme.value,
        str(response.year),
        response.form_id,
        str(response.form_version),
        "true" if response.anonymous else "false",
        "" if response.anonymous else (response.participant_id or ""),
        submitted,
        response.overall.value,
        response.comments or "",
        *(_answer(response.answers.get(q)) for q in question_ids),
    ]
    return _line(cells)


def _answer(value: AnswerValue | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(value)
    return str(value)


def _line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(c) for c in cells])
    return buffer.getvalue()
