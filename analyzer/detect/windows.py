"""The one streaming pass over the gateway frame: a small (window x slice x size) table.

Every detector works on these tables, never on the rows. The pass groups requests by window, size
bucket (log2 of prompt tokens) and the values of every slice column at once: a few rows per window
whatever the traffic. The per-scope table (global and each slice value, by model and size) is rolled
up from it by sums, so counts and log-latency moments of any scope are exact without a second pass.
Per-window latency quantiles are only kept for the global series, from a second scan of three
columns: exact on small inputs, `approx_quantile` (which streams in bounded memory) above a row count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from analyzer import schema as s
from analyzer.config import Settings, polars_every
from analyzer.findings import SERIES_ERRORS, SERIES_P95, SERIES_P99, SERIES_REQUESTS, SERIES_WINDOW

WINDOW = SERIES_WINDOW
IDX = "idx"  # window start as an integer count of windows since the epoch
COLUMN = "column"  # slice column, or "global"
VALUE = "value"
SCOPE = "scope"
BUCKET = "bucket"  # floor(log2(prompt tokens)), UNKNOWN_SIZE without them
CLASS = "class"  # the model of the requests: latency is expected per (model, size bucket)
REQUESTS = SERIES_REQUESTS
ERRORS = SERIES_ERRORS  # statuses of settings.bursts.statuses
SERVER_ERRORS = "server_errors"  # any 5xx, for the SLO
OK = "ok"  # 2xx with a latency
# The requests latency is judged on: successful, with a latency logged.
OK_LATENCY = pl.col(s.STATUS).is_between(200, 299) & pl.col(s.LATENCY_MS).is_not_null()
# Over the `ok` requests: sums of l = ln(latency ms), of o = ln(completion tokens + 1) (decoding time
# grows with the output, so latency is expected from a slope on it), and of l², o², l·o. In fixed point
# (Int64, units of LOG_UNIT for sums and LOG_SQ_UNIT for products) so that they add up to the same
# value whatever the order of the rows; from them a least-squares fit per class is exact.
LOG_SUM, LOG_SQ = "log_sum", "log_sq"
OUT_SUM, OUT_SQ, CROSS = "out_sum", "out_sq", "log_out"
LOG_UNIT, LOG_SQ_UNIT = 1e-6, 1e-4
MOMENTS = (LOG_SUM, LOG_SQ, OUT_SUM, OUT_SQ, CROSS)
P95, P99 = SERIES_P95, SERIES_P99
FIRST_TS, LAST_TS = "first_ts", "last_ts"

UNKNOWN_SIZE = -2  # bucket of requests without prompt_tokens
GLOBAL_COLUMN = "global"
_MIN_LATENCY_MS = 0.01  # a logged 0 ms still has a logarithm


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


@dataclass(frozen=True)
class Aggregates:
    """What the one pass over the gateway gives every detector."""

    # One row per (scope, class, bucket, window) with requests: WINDOW, IDX, COLUMN, VALUE, SCOPE, CLASS,
    # BUCKET, REQUESTS, ERRORS, SERVER_ERRORS, status_<code>..., OK, the log moments, FIRST_TS, LAST_TS.
    table: pl.DataFrame
    # One row per window with requests: WINDOW, P95, P99 of the successful requests' latency.
    quantiles: pl.DataFrame
    rows: int
    approximate: bool


def _key_columns(settings: Settings) -> list[str]:
    return list(dict.fromkeys([s.MODEL, *settings.bursts.slices]))


def _row_values(settings: Settings) -> list[pl.Expr]:
    """Per request, the Int64 values whose sums make a cell (computed before the group-by, so that it
    only sums plain columns: the streaming engine's fastest aggregation)."""
    ok = OK_LATENCY
    log_latency = pl.col(s.LATENCY_MS).clip(_MIN_LATENCY_MS, None).log()
    log_out = (pl.col(s.COMPLETION_TOKENS).fill_null(0).clip(0, None) + 1).cast(pl.Float64).log()

    def flag(condition: pl.Expr, name: str) -> pl.Expr:
        return condition.cast(pl.Int64).alias(name)

    def fixed(value: pl.Expr, unit: float, name: str) -> pl.Expr:
        return pl.when(ok).then((value / unit).round().cast(pl.Int64)).otherwise(0).alias(name)

    return [
        flag(pl.col(s.STATUS).is_in(list(settings.bursts.statuses)), ERRORS),
        flag(pl.col(s.STATUS).is_between(500, 599), SERVER_ERRORS),
        *[flag(pl.col(s.STATUS) == code, status_column(code)) for code in counted_statuses(settings)],
        flag(ok, OK),
        fixed(log_latency, LOG_UNIT, LOG_SUM),
        fixed(log_latency * log_latency, LOG_SQ_UNIT, LOG_SQ),
        fixed(log_out, LOG_UNIT, OUT_SUM),
        fixed(log_out * log_out, LOG_SQ_UNIT, OUT_SQ),
        fixed(log_latency * log_out, LOG_SQ_UNIT, CROSS),
    ]


def _cell_sums(settings: Settings) -> list[pl.Expr]:
    """The aggregations of a group of requests: sums roll up from cells to scopes, so do min and max."""
    values = [
        ERRORS,
        SERVER_ERRORS,
        *[status_column(code) for code in counted_statuses(settings)],
        OK,
        *MOMENTS,
    ]
    return [
        pl.len().cast(pl.Int64).alias(REQUESTS),
        *[pl.col(c).sum() for c in values],
        pl.col(s.TS).min().alias(FIRST_TS),
        pl.col(s.TS).max().alias(LAST_TS),
    ]


def _sum_columns(table: pl.DataFrame) -> list[str]:
    return [
        c
        for c in table.columns
        if c in (REQUESTS, ERRORS, SERVER_ERRORS, OK, *MOMENTS) or c.startswith("status_")
    ]


def aggregate(gateway: pl.LazyFrame, settings: Settings) -> Aggregates:
    """The per-scope table from one grouped pass over `gateway`, and the global per-window quantiles."""
    every = polars_every(settings.bursts.window)
    keys = _key_columns(settings)
    rows = gateway.select(pl.len()).collect().item()
    approximate = settings.latency.approximate_quantiles or rows > settings.latency.exact_quantile_max_rows
    size = (
        pl.col(s.PROMPT_TOKENS).clip(1).cast(pl.Float64).log(2).floor().cast(pl.Int32).fill_null(UNKNOWN_SIZE)
    )
    base = gateway.select(
        pl.col(s.TS).dt.truncate(every).alias(WINDOW),
        pl.col(s.TS),
        pl.col(s.STATUS),
        pl.col(s.LATENCY_MS),
        pl.col(s.COMPLETION_TOKENS),
        size.alias(BUCKET),
        *[pl.col(c).cast(pl.String) for c in keys],
    )
    ok_latency = pl.col(s.LATENCY_MS).filter(OK_LATENCY)
    quantiles = [
        (
            ok_latency.approx_quantile(q) if approximate else ok_latency.quantile(q, interpolation="linear")
        ).alias(name)
        for q, name in ((0.95, P95), (0.99, P99))
    ]
    cells_q = (
        base.with_columns(_row_values(settings)).group_by(WINDOW, BUCKET, *keys).agg(_cell_sums(settings))
    )
    quantiles_q = base.select(WINDOW, s.STATUS, s.LATENCY_MS).group_by(WINDOW).agg(quantiles)
    # Two collects, not collect_all: sharing `base` between them caches it whole (2.5x the peak memory
    # at 10M rows), while the second scan reads three columns of an already parsed input.
    cells, q = cells_q.collect(), quantiles_q.collect()
    return Aggregates(
        table=_scopes(cells, settings), quantiles=q.sort(WINDOW), rows=int(rows), approximate=approximate
    )


def _scopes(cells: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Roll the cells up into one row per (scope, class, bucket, window): global and each slice value."""
    sums = [pl.col(c).sum() for c in _sum_columns(cells)]
    extremes = [pl.col(FIRST_TS).min(), pl.col(LAST_TS).max()]
    parts = []
    for col in (None, *settings.bursts.slices):
        keys = list(dict.fromkeys([WINDOW, *([col] if col else []), s.MODEL, BUCKET]))
        rows = cells if col is None else cells.filter(pl.col(col).is_not_null())
        parts.append(
            rows.group_by(keys)
            .agg(*sums, *extremes)
            .select(
                pl.lit(col or GLOBAL_COLUMN).alias(COLUMN),
                (pl.col(col) if col else pl.lit("")).alias(VALUE),
                pl.col(s.MODEL).fill_null("").alias(CLASS),
                pl.all().exclude(*keys[1:]),
                pl.col(BUCKET),
            )
        )
    table = pl.concat(parts, how="vertical")
    return table.with_columns(
        pl.when(pl.col(COLUMN) == GLOBAL_COLUMN)
        .then(pl.lit(GLOBAL_COLUMN))
        .otherwise(pl.col(COLUMN) + "=" + pl.col(VALUE))
        .alias(SCOPE),
        window_index(settings.bursts.window),
    ).sort(COLUMN, VALUE, CLASS, BUCKET, WINDOW, nulls_last=True)


def all_sizes(table: pl.DataFrame) -> pl.DataFrame:
    """Rows counting every request of their scope and window (one per scope and window)."""
    return (
        table.group_by(WINDOW, IDX, COLUMN, VALUE, SCOPE)
        .agg(*[pl.col(c).sum() for c in _sum_columns(table)], pl.col(FIRST_TS).min(), pl.col(LAST_TS).max())
        .sort(SCOPE, WINDOW)
    )


def smoothed(column: str, count: pl.Expr, need: int, single: pl.Expr) -> pl.Expr:
    """`column` summed over 1, 3 or 5 centred windows of its scope: as few as give `count` x k >= `need`.

    Rows must be sorted by scope and window. `single` forces one window (e.g. for the global scope).
    """
    by = [pl.col(column).rolling_sum(k, center=True, min_samples=1).over(SCOPE) for k in (3, 5)]
    return (
        pl.when(single | (count >= need))
        .then(pl.col(column))
        .when(3 * count >= need)
        .then(by[0])
        .otherwise(by[1])
    )
