from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seminarops_shared.csv_cells import FORMULA_STARTS, safe_cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("fine", "fine"),
        ("a=b", "a=b"),
        (" =1", " =1"),
        ("'=1", "'=1"),
        ("", ""),
    ],
)
def test_a_cell_that_starts_like_a_formula_gets_a_leading_apostrophe(
    value: str, expected: str
) -> None:
    assert safe_cell(value) == expected


@given(st.text())
def test_no_cell_starts_like_a_formula_and_the_text_is_kept(value: str) -> None:
    cell = safe_cell(value)
    assert not cell.startswith(FORMULA_STARTS)
    # Nothing is lost: at most the apostrophe is added in front.
    assert cell in (value, "'" + value)
