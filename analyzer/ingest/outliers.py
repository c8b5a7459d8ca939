"""Rows whose time is far from the rest of their kind: a clock reset to 1970, a year typed wrong.

One such row stretches the analyzed span over decades, and detection's per-window grid with it (one
1970 line among 50 gateway lines took 22 s and 9 GB). The days that hold rows are grouped into runs
with no empty stretch longer than `outlier_gap` (`[<kind>] outlier_gap`, 30 days by default); the run
with the most rows (the latest of equal ones) is analyzed, and every row of the other runs is a reject
of its own file with the reason `ts_outlier`, counted like any other, so rows read = analyzed +
rejected still holds per file. A file's first and last times are then those of its analyzed rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from analyzer.findings import InputReport
from analyzer.ingest import duplicates
from analyzer.schema import SOURCE_FILE, SOURCE_LINE, TS

OUTLIER: Final = "ts_outlier"
_DAY: Final = "_day"
_RUN: Final = "_run"

Span = tuple[datetime, datetime]  # [first day, day after the last) of the analyzed run


def analyzed_span(frame: pl.LazyFrame, gap: timedelta) -> Span | None:
    """The days kept, or None when all rows are in one run (nothing is an outlier)."""
    days = (
        frame.select(pl.col(TS).dt.truncate("1d").alias(_DAY))
        .drop_nulls()
        .group_by(_DAY)
        .agg(pl.len())
        .sort(_DAY)
        .collect()
        .with_columns((pl.col(_DAY).diff() > gap).fill_null(False).cum_sum().alias(_RUN))
    )
    if days.is_empty() or days[_RUN].max() == 0:
        return None
    runs = days.group_by(_RUN).agg(pl.col("len").sum(), pl.col(_DAY).min().alias("first"), pl.col(_DAY).max())
    best = runs.sort(["len", "first"], descending=True).row(0, named=True)
    return best["first"], best[_DAY] + timedelta(days=1)


def _inside(span: Span) -> pl.Expr:
    # A row without a time (a kind that does not require one) is no outlier.
    return pl.col(TS).is_null() | pl.col(TS).is_between(*span, closed="left")


def outliers(frame: pl.LazyFrame, span: Span) -> pl.DataFrame:
    """`_file`, `_line` of every row outside `span`."""
    return frame.filter(~_inside(span)).select(SOURCE_FILE, SOURCE_LINE).collect()


def drop(frame: pl.LazyFrame, span: Span) -> pl.LazyFrame:
    """`frame` without its rows outside `span`."""
    return frame.filter(_inside(span))


def counted(
    inputs: Sequence[InputReport], rejected: pl.DataFrame, kept: pl.LazyFrame
) -> tuple[InputReport, ...]:
    """Each report with its outliers added to its rejects, and its time range that of the rows kept."""
    affected = set(rejected[SOURCE_FILE].to_list())
    times = {
        path: (first, last)
        for path, first, last in kept.filter(pl.col(SOURCE_FILE).is_in(sorted(affected)))
        .group_by(SOURCE_FILE)
        .agg(pl.col(TS).min(), pl.col(TS).max().alias("last"))
        .collect()
        .iter_rows()
    }
    out = []
    for report in duplicates.counted(inputs, rejected, reason=OUTLIER):
        if report.path in affected:
            first, last = times.get(report.path, (None, None))
            report = replace(report, first_ts=first, last_ts=last)
        out.append(report)
    return tuple(out)
