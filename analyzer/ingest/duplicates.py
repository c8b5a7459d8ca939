"""Lines a log shipper delivered twice: found by a hash of the raw line, counted, kept once.

Only an exact copy of a whole record with a request id is a duplicate (same bytes, so the same request
id and content); two different records with one request id are both kept, since reconciliation must
see them. Without a request id nothing is dropped: two identical nginx lines (same client, second and
status, as in a 502 burst) may well be two requests. Each
row's raw line is hashed twice (two seeds, 128 bits) as its file is read; after every file is read, the
first copy in path and line order is kept and every later one is counted as a `duplicate_line` reject
of its own file, so rows read = analyzed + rejected still holds per file. Memory is bounded: a hash of
each row's request id is kept (8 bytes a row), the search for repeated ids goes through them in slices
of about PASS_ROWS rows, then only the rows whose id occurs twice are held with their line hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import polars as pl

from analyzer.findings import InputReport
from analyzer.ingest.sources import RAW
from analyzer.schema import (
    REJECT_FILE,
    REJECT_LINE,
    REJECT_RAW,
    REJECT_REASON_COLUMN,
    REQUEST_ID,
    SOURCE_FILE,
    SOURCE_LINE,
)

DUPLICATE: Final = "duplicate_line"
HASHES: Final = ("_hash1", "_hash2")
PASS_ROWS: Final = 2_000_000  # rows' keys grouped at once when looking for repeats (~60 MB each)
_ID: Final = "_id_hash"
_KEY: Final = pl.col(REQUEST_ID).hash(seed=7).alias(_ID)


def line_hashes(cells: Sequence[str] = ()) -> list[pl.Expr]:
    """The two hash columns of a row's raw line, and of its `cells` when the raw text is rebuilt."""
    key = pl.struct(RAW, *cells) if cells else pl.col(RAW)
    return [key.hash(seed=seed).alias(name) for seed, name in enumerate(HASHES)]


def find(goods: Sequence[pl.LazyFrame], order: Sequence[str], rows: int) -> pl.DataFrame:
    """`_file`, `_line` of every analyzed row with a request id that repeats an earlier one.

    `goods` are the analyzed rows of the files (with their line hashes), taken in `order`; `rows`
    (analyzed rows in all) sizes the passes.
    """
    if not goods:  # no input has an analyzed row
        return pl.DataFrame(schema={SOURCE_FILE: pl.String(), SOURCE_LINE: pl.Int64()})
    good = (pl.concat(goods, how="vertical_relaxed") if len(goods) > 1 else goods[0]).filter(
        pl.col(REQUEST_ID).is_not_null()
    )
    h1, h2 = HASHES
    # A copy of a record has its request id: only rows whose id repeats can be copies. This pass reads
    # that one column (8 bytes a row kept), not the hashes, so that a Parquet input read in place is
    # not read whole; the search for repeats goes through the key space one slice at a time so that
    # memory is bounded. Real duplicates are few, so what follows is small.
    keys = good.select(_KEY).collect()
    slices = max(1, -(-rows // PASS_ROWS))
    repeated = pl.concat(
        [
            keys.lazy()
            .filter(pl.col(_ID) % slices == part)
            .group_by(_ID)
            .agg(pl.len())
            .filter(pl.col("len") > 1)
            .select(_ID)
            .collect()
            for part in range(slices)
        ]
    )
    if repeated.is_empty():
        return pl.DataFrame(schema={SOURCE_FILE: pl.String(), SOURCE_LINE: pl.Int64()})
    candidates = (
        good.with_columns(_KEY)
        .join(repeated.lazy(), on=_ID, how="semi")
        .select(SOURCE_FILE, SOURCE_LINE, h1, h2)
        .collect()
        .with_columns(_rank(SOURCE_FILE, order).alias("_rank"))
        .sort("_rank", SOURCE_LINE)
    )
    return candidates.filter(~pl.struct(h1, h2).is_first_distinct()).select(SOURCE_FILE, SOURCE_LINE)


def drop(frame: pl.LazyFrame, duplicates: pl.DataFrame) -> pl.LazyFrame:
    """`frame` without the duplicate rows."""
    if duplicates.is_empty():
        return frame
    return frame.join(duplicates.lazy(), on=[SOURCE_FILE, SOURCE_LINE], how="anti", maintain_order="left")


def _rank(column: str, order: Sequence[str]) -> pl.Expr:
    # Position of the file in path order: the order inputs are read in, not the names' sort order.
    return pl.col(column).replace_strict(list(order), range(len(order)), return_dtype=pl.Int64)


def with_rejects(
    rejects: pl.DataFrame, duplicates: pl.DataFrame, order: Sequence[str], *, reason: str = DUPLICATE
) -> pl.DataFrame:
    """The rejects table plus a `reason` row per `_file`, `_line` of `duplicates`, in path and line order.

    A duplicate's raw text is the kept copy's, which is not repeated here: its `raw` is null (as is
    that of the other rows rejected after staging, which keeps raw text only for its own rejects).
    """
    if duplicates.is_empty():
        return rejects
    extra = duplicates.select(
        pl.col(SOURCE_FILE).alias(REJECT_FILE),
        pl.col(SOURCE_LINE).alias(REJECT_LINE),
        pl.lit(reason).alias(REJECT_REASON_COLUMN),
        pl.lit(None, pl.String).alias(REJECT_RAW),
    )
    merged = pl.concat([rejects, extra])
    return merged.sort(_rank(REJECT_FILE, order), REJECT_LINE)


def counted(
    inputs: Sequence[InputReport], duplicates: pl.DataFrame, *, reason: str = DUPLICATE
) -> tuple[InputReport, ...]:
    """Each report with its rows in `duplicates` (`_file`, `_line`) added to its rejects as `reason`,
    so its rows still add up."""
    per_file = dict(duplicates.group_by(SOURCE_FILE).agg(pl.len()).iter_rows())
    out = []
    for report in inputs:
        n = int(per_file.get(report.path, 0))
        if n:
            reasons = dict(sorted({**report.rejects_by_reason, reason: n}.items()))
            report = replace(report, rows_rejected=report.rows_rejected + n, rejects_by_reason=reasons)
        out.append(report)
    return tuple(out)
