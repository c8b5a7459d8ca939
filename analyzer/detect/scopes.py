"""Each scope's totals over the whole span: requests, 5xx, their rate and the p95 latency of its
successful requests. The report's `slices`, which `analyzer compare` sets side by side for two days.

The counts come from the detection table (sums, no extra pass); the p95s from one query over the
gateway, one group-by per slice column, collected together (exact, or `approx_quantile` when the
per-window quantiles are approximate).
"""

from __future__ import annotations

from typing import Final

import polars as pl

from analyzer import schema as s
from analyzer.config import Settings
from analyzer.detect.windows import ERRORS, GLOBAL_COLUMN, OK_LATENCY, REQUESTS, SCOPE

SLICE_SCOPE: Final = "scope"
SLICE_REQUESTS: Final = "requests"
SLICE_ERRORS: Final = "errors"
SLICE_ERROR_RATE: Final = "error_rate"
SLICE_P95: Final = "p95_ms"
SLICES_SCHEMA: Final[dict[str, pl.DataType]] = {
    SLICE_SCOPE: pl.String(),
    SLICE_REQUESTS: pl.Int64(),
    SLICE_ERRORS: pl.Int64(),
    SLICE_ERROR_RATE: pl.Float64(),
    SLICE_P95: pl.Float64(),
}


def empty_slices() -> pl.DataFrame:
    """No scope at all (no gateway rows)."""
    return pl.DataFrame(schema=SLICES_SCHEMA)


def scope_totals(
    counts: pl.DataFrame, gateway: pl.LazyFrame, settings: Settings, *, approximate: bool
) -> pl.DataFrame:
    """One row per scope of `counts` (global first, then by name): requests, errors, error rate, p95."""
    if counts.is_empty():
        return empty_slices()
    totals = counts.group_by(SCOPE).agg(pl.col(REQUESTS).sum(), pl.col(ERRORS).sum())
    latency = pl.col(s.LATENCY_MS)
    p95 = (latency.approx_quantile(0.95) if approximate else latency.quantile(0.95, "linear")).alias(
        SLICE_P95
    )
    ok = gateway.filter(OK_LATENCY)
    present = ok.collect_schema()
    parts = [ok.select(pl.lit(GLOBAL_COLUMN).alias(SLICE_SCOPE), p95)]
    for col in (c for c in settings.bursts.slices if c in present):
        value = pl.col(col).cast(pl.String)
        parts.append(
            ok.filter(value.is_not_null())
            .group_by(value.alias(col))
            .agg(p95)
            .select((pl.lit(f"{col}=") + pl.col(col)).alias(SLICE_SCOPE), SLICE_P95)
        )
    quantiles = pl.concat(parts).collect()
    return (
        totals.rename({SCOPE: SLICE_SCOPE})
        .join(quantiles, on=SLICE_SCOPE, how="left")
        .with_columns(
            pl.when(pl.col(SLICE_REQUESTS) > 0)
            .then(pl.col(SLICE_ERRORS) / pl.col(SLICE_REQUESTS))
            .otherwise(0.0)
            .alias(SLICE_ERROR_RATE)
        )
        .sort(pl.col(SLICE_SCOPE) != GLOBAL_COLUMN, SLICE_SCOPE)
        .select(list(SLICES_SCHEMA))
        .cast(SLICES_SCHEMA)  # type: ignore[arg-type]
    )
