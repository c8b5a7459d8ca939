"""Flagged windows merged into episodes: gaps-and-islands with hysteresis."""

from __future__ import annotations

import polars as pl

from analyzer.detect.windows import COLUMN, IDX, SCOPE, VALUE, WINDOW

# The scored windows `islands` reads: a window that opens an episode, and one that keeps it open.
OPEN = "open"
STAY = "stay"
START_IDX = "start_idx"
END_IDX = "end_idx"  # last flagged window, inclusive


def islands(scored: pl.DataFrame, *, close_after: int, merge_gap: int) -> pl.DataFrame:
    """Episodes per scope from boolean `open` and `stay` columns: (scope, start_idx, end_idx).

    An episode is a run of `stay` windows holding at least one `open` window; the run closes after
    `close_after` windows that are neither, and episodes `merge_gap` windows apart or closer merge.
    """
    flagged = scored.filter(pl.col(STAY) | pl.col(OPEN)).sort(SCOPE, IDX)
    runs = (
        flagged.with_columns(
            ((pl.col(IDX) - pl.col(IDX).shift(1)).over(SCOPE) > close_after)
            .fill_null(True)
            .cum_sum()
            .over(SCOPE)
            .alias("_run")
        )
        .group_by(SCOPE, "_run")
        .agg(
            pl.col(IDX).min().alias(START_IDX),
            pl.col(IDX).max().alias(END_IDX),
            pl.col(OPEN).any().alias("_opened"),
        )
        # Only a run holding an open window is an episode; its stay windows before the first open one
        # are its onset (at a low rate the first windows of an incident rarely reach the open score).
        .filter(pl.col("_opened"))
        .drop("_opened")
        .sort(SCOPE, START_IDX)
    )
    return (
        runs.with_columns(
            ((pl.col(START_IDX) - pl.col(END_IDX).shift(1)).over(SCOPE) - 1 > merge_gap)
            .fill_null(True)
            .cum_sum()
            .over(SCOPE)
            .alias("_ep")
        )
        .group_by(SCOPE, "_ep")
        .agg(pl.col(START_IDX).min(), pl.col(END_IDX).max())
        .drop("_ep")
        .sort(SCOPE, START_IDX)
    )


def episode_windows(scored: pl.DataFrame, episodes: pl.DataFrame, peak: str) -> pl.DataFrame:
    """`scored` windows inside each episode, the peak (highest `peak`, earliest) first in each group.

    Group by (scope, start_idx) keeping order; `first()` is then the peak window.
    """
    return (
        scored.join(episodes, on=SCOPE)
        .filter(pl.col(IDX).is_between(START_IDX, END_IDX))
        .sort(SCOPE, START_IDX, pl.col(peak), IDX, descending=[False, False, True, False])
    )


def episode_summary(peak: str) -> list[pl.Expr]:
    """Aggregations every episode shares: its scope's column and value, first and last window, peak."""
    return [
        pl.col(COLUMN).first(),
        pl.col(VALUE).first(),
        pl.col(END_IDX).first(),
        pl.col(WINDOW).min().alias("start"),
        pl.col(WINDOW).max().alias("last"),
        pl.col(WINDOW).first().alias("peak_at"),
        pl.col(IDX).first().alias("peak_idx"),
        pl.col(peak).first().alias("peak"),
    ]
