"""Writing tables: CSV with formula-like cells neutralized, Parquet, and errors naming the path."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer.errors import OutputError
from analyzer.report.exports import write_table


def test_csv_neutralizes_formula_cells(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {"a": ["=1+1", "+x", "-2", "@SUM(A1)", "\tz", "\rz", "ok", None], "n": list(range(-4, 4))}
    )
    path = tmp_path / "t.csv"
    write_table(df, path)
    back = pl.read_csv(path)
    assert back["a"].to_list() == ["'=1+1", "'+x", "'-2", "'@SUM(A1)", "'\tz", "'\rz", "ok", None]
    assert back["n"].to_list() == list(range(-4, 4))


def test_parquet_round_trips(tmp_path: Path) -> None:
    df = pl.DataFrame({"a": ["=x"], "n": [1]})
    path = tmp_path / "t.parquet"
    write_table(df, path)
    assert_frame_equal(pl.read_parquet(path), df)


@pytest.mark.parametrize(
    "name", [pytest.param("t.txt", id="bad-suffix"), pytest.param("missing/t.csv", id="no-dir")]
)
def test_errors_name_the_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError) as e:
        write_table(pl.DataFrame({"n": [1]}), tmp_path / name)
    assert str(tmp_path / name) in str(e.value)
