"""An accounts file: one account a row, `account_id` and optionally its `tier` (CSV with a header).

    account_id,tier
    acct-00001,enterprise

The SLA's accounts are read from it. A missing column, an empty account_id or an account listed twice
is an InputError naming the file and line: the file is small and hand-kept, so nothing is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from analyzer.errors import InputError
from analyzer.schema import ACCOUNT_ID

TIER: Final = "tier"


def read_accounts(path: Path) -> pl.DataFrame:
    """account_id (String, unique) and tier (String, null when the file has no tier column)."""
    try:
        raw = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise InputError(f"cannot read the accounts file: {str(e).splitlines()[0]}", path=str(path)) from None
    if ACCOUNT_ID not in raw.columns:
        raise InputError(
            f"no {ACCOUNT_ID} column (columns: {', '.join(raw.columns)})", path=str(path), line=1
        )
    tier = pl.col(TIER).str.strip_chars() if TIER in raw.columns else pl.lit(None, pl.String)
    frame = raw.select(pl.col(ACCOUNT_ID).str.strip_chars(), tier.alias(TIER)).with_row_index(
        "_line", offset=2
    )
    empty = frame.filter(pl.col(ACCOUNT_ID).fill_null("") == "")
    if empty.height:
        raise InputError("empty account_id", path=str(path), line=int(empty["_line"][0]), field=ACCOUNT_ID)
    twice = frame.filter(~pl.col(ACCOUNT_ID).is_first_distinct())
    if twice.height:
        first = twice.row(0, named=True)
        raise InputError(
            f"account {first[ACCOUNT_ID]} is listed twice",
            path=str(path),
            line=int(first["_line"]),
            field=ACCOUNT_ID,
        )
    return frame.drop("_line")
