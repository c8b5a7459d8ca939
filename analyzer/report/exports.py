"""Tables the report writes beside itself (refunds per account, findings): CSV or Parquet by suffix."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import polars.selectors as cs

from analyzer.errors import OutputError

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = r"^[=+\-@\t\r]"


def check_table_path(path: Path) -> None:
    """An OutputError unless `path` names a table this module writes (.csv or .parquet)."""
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise OutputError("a table is written as .csv or .parquet", path=str(path))


def write_table(df: pl.DataFrame, path: Path) -> None:
    """Write `df` as .csv (formula-like text cells neutralized) or .parquet, by the path's suffix."""
    check_table_path(path)
    try:
        if path.suffix.lower() == ".csv":
            _neutralized(df).write_csv(path)
        else:
            df.write_parquet(path)
    except OSError as e:
        raise OutputError(f"cannot write: {e.strerror or e}", path=str(path)) from None
    except pl.exceptions.PolarsError as e:
        raise OutputError(f"cannot write: {e}", path=str(path)) from None


def _neutralized(df: pl.DataFrame) -> pl.DataFrame:
    # A leading single quote makes a spreadsheet show the text instead of running it.
    text = cs.string()
    return df.with_columns(
        pl.when(text.str.contains(_FORMULA_START)).then(pl.lit("'") + text).otherwise(text).name.keep()
    )
