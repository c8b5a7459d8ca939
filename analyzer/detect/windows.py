"""The one streaming pass over the gateway frame: a small (window x slice x size bucket) table.

Every detector works on this table, never on the rows. Each request is counted once under the global
scope and once under each slice column it has a value for, once in its log2(prompt tokens) size bucket
and once under `ALL_SIZES`, so per-slice quantiles exist without a second pass.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from analyzer import schema as s
from analyzer.config import Settings, polars_every

WINDOW = "window"
IDX = "idx"  # window start as an integer count of windows since the epoch
COLUMN = "column"  # slice column, or "global"
VALUE = "value"
SCOPE = "scope"
BUCKET = "bucket"
REQUESTS = "requests"
ERRORS = "errors"  # statuses of settings.bursts.statuses
SERVER_ERRORS = "server_errors"  # any 5xx, for the SLO
OK = "ok"  # 2xx with a latency
P50, P95, P99 = "p50_ms", "p95_ms", "p99_ms"
FIRST_TS, LAST_TS = "first_ts", "last_ts"

ALL_SIZES = -1  # bucket of every request whatever its size
UNKNOWN_SIZE = -2  # bucket of requests without prompt_tokens
GLOBAL_COLUMN = "global"
_ALL = "_all_sizes"


def status_column(code: int) -> str:
    """Name of the per-window count column of one status code."""
    return f"status_{code}"


def counted_statuses(settings: Settings) -> tuple[int, ...]:
    """Status codes counted on their own: the configured error statuses and 502."""
    return tuple(sorted({*settings.bursts.statuses, 502}))


def window_index(window: timedelta) -> pl.Expr:
    """The integer window number of the `window` column."""
    us = int(window / timedelta(microseconds=1))
    return (pl.col(WINDOW).dt.epoch("us") // us).alias(IDX)


def aggregate(gateway: pl.LazyFrame, settings: Settings) -> pl.DataFrame:
    """Collect the (window, slice, bucket) table in one pass over `gateway`."""
    b = settings.bursts
    every = polars_every(b.window)
    slices = list(b.slices)
    ok_latency = pl.col(s.LATENCY_MS).filter(
        pl.col(s.STATUS).is_between(200, 299) & pl.col(s.LATENCY_MS).is_not_null()
    )
    qs = (0.5, 0.95, 0.99)
    quantiles = (
        [ok_latency.approx_quantile(q) for q in qs]
        if settings.latency.approximate_quantiles
        else [ok_latency.quantile(q, interpolation="linear") for q in qs]
    )
    size = (
        pl.col(s.PROMPT_TOKENS).clip(1).cast(pl.Float64).log(2).floor().cast(pl.Int32).fill_null(UNKNOWN_SIZE)
    )
    rows = gateway.select(
        pl.col(s.TS).dt.truncate(every).alias(WINDOW),
        pl.col(s.TS),
        pl.col(s.STATUS),
        pl.col(s.LATENCY_MS),
        size.alias(BUCKET),
        pl.lit("").alias(GLOBAL_COLUMN),
        pl.lit("").alias(_ALL),
        *[pl.col(c).cast(pl.String) for c in slices],
    )
    table = (
        rows.unpivot(
            on=[GLOBAL_COLUMN, _ALL, *slices],
            index=[WINDOW, s.TS, s.STATUS, s.LATENCY_MS, BUCKET],
            variable_name=COLUMN,
            value_name=VALUE,
        )
        .filter(pl.col(VALUE).is_not_null())
        # The _all_sizes copy is the global scope with every size in one bucket.
        .with_columns(
            pl.when(pl.col(COLUMN) == _ALL).then(pl.lit(ALL_SIZES, pl.Int32)).otherwise(BUCKET).alias(BUCKET),
            pl.when(pl.col(COLUMN) == _ALL).then(pl.lit(GLOBAL_COLUMN)).otherwise(COLUMN).alias(COLUMN),
        )
        .group_by(WINDOW, COLUMN, VALUE, BUCKET)
        .agg(
            pl.len().cast(pl.Int64).alias(REQUESTS),
            pl.col(s.STATUS).is_in(list(b.statuses)).sum().cast(pl.Int64).alias(ERRORS),
            pl.col(s.STATUS).is_between(500, 599).sum().cast(pl.Int64).alias(SERVER_ERRORS),
            *[
                (pl.col(s.STATUS) == code).sum().cast(pl.Int64).alias(status_column(code))
                for code in counted_statuses(settings)
            ],
            ok_latency.len().cast(pl.Int64).alias(OK),
            *[q.alias(name) for q, name in zip(quantiles, (P50, P95, P99), strict=True)],
            pl.col(s.TS).min().alias(FIRST_TS),
            pl.col(s.TS).max().alias(LAST_TS),
        )
        .collect()
    )
    return table.with_columns(
        pl.when(pl.col(COLUMN) == GLOBAL_COLUMN)
        .then(pl.lit(GLOBAL_COLUMN))
        .otherwise(pl.col(COLUMN) + "=" + pl.col(VALUE))
        .alias(SCOPE),
        window_index(b.window),
    ).sort(COLUMN, VALUE, BUCKET, WINDOW)


def all_sizes(table: pl.DataFrame) -> pl.DataFrame:
    """Rows counting every request of their scope and window (one per scope and window)."""
    global_rows = (pl.col(COLUMN) == GLOBAL_COLUMN) & (pl.col(BUCKET) == ALL_SIZES)
    slice_rows = pl.col(COLUMN) != GLOBAL_COLUMN
    # Slices carry only per-size rows: sum them; quantiles of a slice over all sizes are not kept.
    slices = (
        table.filter(slice_rows)
        .group_by(WINDOW, IDX, COLUMN, VALUE, SCOPE)
        .agg(
            pl.col(REQUESTS, ERRORS, SERVER_ERRORS, OK).sum(),
            *[pl.col(c).sum() for c in table.columns if c.startswith("status_")],
        )
    )
    glob = table.filter(global_rows).select(slices.columns)
    return pl.concat([glob, slices]).sort(SCOPE, WINDOW)


def smoothed(column: str, typical: pl.Expr, need: int, single: pl.Expr) -> pl.Expr:
    """`column` summed over 1, 3 or 5 centred windows of its scope: as few as give `typical` x k >= `need`.

    Rows must be sorted by scope and window. `single` forces one window (e.g. for the global scope).
    """
    by = [pl.col(column).rolling_sum(k, center=True, min_samples=1).over(SCOPE) for k in (3, 5)]
    return (
        pl.when(single | (typical >= need))
        .then(pl.col(column))
        .when(3 * typical >= need)
        .then(by[0])
        .otherwise(by[1])
    )
