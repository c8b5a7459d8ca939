"""Flagged windows merged into episodes: gaps-and-islands with hysteresis."""

from __future__ import annotations

import polars as pl

from analyzer.detect.windows import IDX, SCOPE

START_IDX = "start_idx"
END_IDX = "end_idx"  # last flagged window, inclusive


def islands(scored: pl.DataFrame, *, close_after: int, merge_gap: int) -> pl.DataFrame:
    """Episodes per scope from boolean `open` and `stay` columns: (scope, start_idx, end_idx).

    An episode is a run of `stay` windows holding at least one `open` window; the run closes after
    `close_after` windows that are neither, and episodes `merge_gap` windows apart or closer merge.
    """
    flagged = scored.filter(pl.col("stay") | pl.col("open")).sort(SCOPE, IDX)
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
            pl.col("open").any().alias("_opened"),
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
