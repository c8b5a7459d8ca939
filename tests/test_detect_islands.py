"""Flagged windows into episodes: hysteresis, closing and merging on literal frames."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer.detect.islands import islands


def flags(scope: str, marks: str) -> pl.DataFrame:
    """'O' opens, 's' stays, '.' normal; one character per window starting at index 0."""
    return pl.DataFrame(
        {
            "scope": [scope] * len(marks),
            "idx": list(range(len(marks))),
            "open": [m == "O" for m in marks],
            "stay": [m in "Os" for m in marks],
        }
    )


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        pytest.param("....", [], id="calm"),
        pytest.param("..sss..", [], id="stay-never-opens"),
        pytest.param("..sOs...", [(2, 4)], id="onset-at-first-stay"),
        pytest.param(".O..s.....", [(1, 4)], id="two-normal-windows-do-not-close"),
        pytest.param(".O...s.....", [(1, 1)], id="three-normal-windows-close"),
        pytest.param("O...O", [(0, 4)], id="merge-within-gap"),
        pytest.param("O....O", [(0, 0), (5, 5)], id="apart"),
    ],
)
def test_islands(marks: str, expected: list[tuple[int, int]]) -> None:
    got = islands(flags("global", marks), close_after=3, merge_gap=3)
    want = pl.DataFrame(
        {
            "scope": ["global"] * len(expected),
            "start_idx": [a for a, _ in expected],
            "end_idx": [b for _, b in expected],
        },
        schema=got.schema,
    )
    assert_frame_equal(got, want)


def test_islands_are_per_scope() -> None:
    got = islands(pl.concat([flags("b", "O.O"), flags("a", "..O")]), close_after=1, merge_gap=0)
    assert got.rows() == [("a", 2, 2), ("b", 0, 0), ("b", 2, 2)]
