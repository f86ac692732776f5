"""CSV cells that a spreadsheet cannot run (CSV injection), for every CSV export.

A spreadsheet treats a cell starting with ``= + - @`` as a formula, and tab or CR can
hide such a start; free text (a comment, a seminar title) must not execute anything when
the export is opened. Such a cell gets a leading ``'``, which spreadsheets show as text.
Pure: text in, text out.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """``value``, with a leading ``'`` when it starts like a formula; never returns a
    string that starts with one of ``FORMULA_STARTS``."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
