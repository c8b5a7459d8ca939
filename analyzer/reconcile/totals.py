"""A provider's usage export against the gateway: per UTC day and model, requests and tokens on both sides.

The export (OpenAI's usage export, preset `openai_usage`) counts what the provider served and bills:
its buckets are summed per day and model and set beside the gateway's answered (2xx) requests of that
day and model. Only the days the gateway logs cover are compared (an export usually spans a month).
A day and model where any of the four totals differ is a mismatch: the gateway lost lines, the
provider counted what the gateway never saw, or one side names the model differently.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from analyzer.schema import CACHED_TOKENS, COMPLETION_TOKENS, MODEL, PROMPT_TOKENS, REQUESTS, STATUS, TS

DAY: Final = "day"
GATEWAY_PREFIX: Final = "gateway_"
EXPORT_PREFIX: Final = "export_"
MATCH: Final = "match"
TOTALS: Final = (REQUESTS, PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS)
# Columns of the result, in order: day, model, gateway_<total> and export_<total> for each total, match.
COLUMNS: Final = (
    DAY,
    MODEL,
    *(f"{side}{t}" for t in TOTALS for side in (GATEWAY_PREFIX, EXPORT_PREFIX)),
    MATCH,
)


def _count(names: list[str], column: str) -> pl.Expr:
    return pl.col(column).fill_null(0) if column in names else pl.lit(0, pl.Int64)


def usage_totals(gateway: pl.LazyFrame, export: pl.LazyFrame) -> pl.DataFrame:
    """One row per UTC day (of the gateway's) and model: the four totals on each side, and whether they match."""
    names = gateway.collect_schema().names()
    day = pl.col(TS).dt.truncate("1d").alias(DAY)
    answered = gateway.filter(pl.col(STATUS).is_between(200, 299))
    ours = answered.group_by(day, MODEL).agg(
        pl.len().cast(pl.Int64).alias(GATEWAY_PREFIX + REQUESTS),
        *(_count(names, c).sum().alias(GATEWAY_PREFIX + c) for c in TOTALS[1:]),
    )
    theirs = export.group_by(day, MODEL).agg(
        pl.col(c).fill_null(0).sum().alias(EXPORT_PREFIX + c) for c in TOTALS
    )
    days = gateway.select(day.unique())
    both = (
        ours.join(theirs, on=[DAY, MODEL], how="full", coalesce=True, nulls_equal=True)
        .join(days, on=DAY, how="semi")
        .with_columns(
            pl.col(f"{side}{t}").fill_null(0) for t in TOTALS for side in (GATEWAY_PREFIX, EXPORT_PREFIX)
        )
    )
    same = pl.all_horizontal(pl.col(GATEWAY_PREFIX + t) == pl.col(EXPORT_PREFIX + t) for t in TOTALS)
    return both.with_columns(same.alias(MATCH)).select(COLUMNS).sort(DAY, MODEL, nulls_last=True).collect()
