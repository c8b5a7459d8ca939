"""SLA credits per account: the availability it saw in the window against the credit table.

    availability = (requests - failed) / requests      failed: 5xx, plus the 429s the rate-limit
                                                       audit found wrong (when it ran)
    credit_percent = the percent of the lowest threshold the availability is below ("below" is strict:
                     exactly 99.9% is not below 99.9%), 0 when it is below none
    credit = spend in the window x credit_percent / 100, rounded down to whole tokens / micro-dollars

The decision is made in integers: availability < p/q exactly when (requests - failed) x q < p x requests,
with p/q the threshold's exact decimal. The spend is the account's ledger deductions in the window; in
USD each deduction's prompt part (up to the request's prompt tokens) is priced as input and the rest as
output, at the model's price card, in integer micro-dollars (a price per million tokens is micro-dollars
per token). `availability` itself is a float for reading only; nothing is decided on it.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

import polars as pl

from analyzer.config import ModelPrice, SlaSettings, SlaWindow
from analyzer.schema import ACCOUNT_ID, KIND, LEDGER_DEDUCT, MODEL, PROMPT_TOKENS, REQUEST_ID, STATUS, TOKENS
from analyzer.schema import TS as TS_COL

REQUESTS: Final = "requests"
FAILED: Final = "failed"
AVAILABILITY: Final = "availability"
CREDIT_PERCENT: Final = "credit_percent"
SPEND_TOKENS: Final = "spend_tokens"
SPEND_USD_MICROS: Final = "spend_usd_micros"
CREDIT_TOKENS: Final = "credit_tokens"
CREDIT_USD_MICROS: Final = "credit_usd_micros"
WRONG_429: Final = "wrong_429"  # wrong 429s per account in the window
COLUMNS: Final = (
    ACCOUNT_ID,
    REQUESTS,
    FAILED,
    AVAILABILITY,
    CREDIT_PERCENT,
    SPEND_TOKENS,
    SPEND_USD_MICROS,
    CREDIT_TOKENS,
    CREDIT_USD_MICROS,
)

_PIN, _POUT = "_price_in", "_price_out"


@dataclass(frozen=True)
class SlaCredits:
    """Per SLA account (COLUMNS, largest credit first) and the table and window that decided it."""

    accounts: pl.DataFrame
    settings: SlaSettings
    start: datetime | None  # the window, half-open; None: unbounded on that side
    end: datetime | None
    counts_wrong_429: bool  # the audit's wrong 429s were counted as failed
    credit_tokens_total: int
    credit_usd_micros_total: int | None  # None without a price card
    unpriced_tokens: int  # spend of deductions with no price for their model (not in USD)


def sla_window(
    window: SlaWindow, first_symptom: datetime | None, last_symptom: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The measurement window: the incident, its calendar month (UTC), or everything analyzed (None, None)."""
    if window is SlaWindow.REPORT or first_symptom is None:
        return None, None
    if window is SlaWindow.INCIDENT:
        return first_symptom, last_symptom
    start = first_symptom.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=monthrange(start.year, start.month)[1])


def percent_of(
    availability_ok: pl.Expr, requests: pl.Expr, credits: tuple[tuple[Decimal, int], ...]
) -> pl.Expr:
    """The credit percent of `ok` successes out of `requests`, in exact integer arithmetic (Int64)."""
    earned = [pl.lit(0, pl.Int64)]
    for below, pct in credits:
        p, q = below.as_integer_ratio()
        under = (requests > 0) & (availability_ok * pl.lit(q, pl.Int64) < pl.lit(p, pl.Int64) * requests)
        earned.append(pl.when(under).then(pl.lit(pct, pl.Int64)).otherwise(pl.lit(0, pl.Int64)))
    return pl.max_horizontal(earned)


def _inside(start: datetime | None, end: datetime | None) -> pl.Expr:
    ts = pl.col(TS_COL)
    return (pl.lit(True) if start is None else ts >= start) & (pl.lit(True) if end is None else ts < end)


def _scaled_prices(prices: Mapping[str, ModelPrice]) -> tuple[pl.DataFrame, int]:
    """Per model, input and output prices as integers over 10**scale (exact)."""
    values = [d for p in prices.values() for d in (p.input_per_million, p.output_per_million)]
    exponents = [d.as_tuple().exponent for d in values]
    scale = max([-e for e in exponents if isinstance(e, int) and e < 0] + [0])
    frame = pl.DataFrame(
        {
            MODEL: list(prices),
            _PIN: [int(p.input_per_million.scaleb(scale)) for p in prices.values()],
            _POUT: [int(p.output_per_million.scaleb(scale)) for p in prices.values()],
        },
        schema={MODEL: pl.String(), _PIN: pl.Int64(), _POUT: pl.Int64()},
    )
    return frame, scale


def sla_credits(
    gateway: pl.LazyFrame,
    ledger: pl.LazyFrame,
    accounts: pl.DataFrame,
    settings: SlaSettings,
    prices: Mapping[str, ModelPrice],
    window: tuple[datetime | None, datetime | None],
    wrong_429: pl.DataFrame | None = None,
) -> SlaCredits:
    """The credit of every account in `accounts` (account_id) for the window; `wrong_429` (account_id,
    ts: one row per 429 the rate-limit audit found wrong), when given, adds those in the window to the
    failed requests."""
    start, end = window
    ids = accounts.select(pl.col(ACCOUNT_ID).cast(pl.String)).unique()
    ids_lf = ids.lazy()
    traffic = (
        gateway.filter(_inside(start, end))
        .join(ids_lf, on=ACCOUNT_ID, how="semi")
        .group_by(ACCOUNT_ID)
        .agg(
            pl.len().cast(pl.Int64).alias(REQUESTS),
            ((pl.col(STATUS) >= 500) & (pl.col(STATUS) < 600)).sum().cast(pl.Int64).alias(FAILED),
        )
    )
    deductions = (
        ledger.filter(_inside(start, end), pl.col(KIND) == LEDGER_DEDUCT)
        .join(ids_lf, on=ACCOUNT_ID, how="semi")
        .select(ACCOUNT_ID, REQUEST_ID, TOKENS)
    )
    served = (
        gateway.select(REQUEST_ID, MODEL, PROMPT_TOKENS)
        .join(deductions.select(REQUEST_ID).unique(), on=REQUEST_ID, how="semi")
        .unique(REQUEST_ID, keep="first", maintain_order=True)
    )
    spend_plan = deductions.join(served, on=REQUEST_ID, how="left")
    price_frame, scale = _scaled_prices(prices)
    priced = spend_plan.join(price_frame.lazy(), on=MODEL, how="left")
    prompt_part = pl.min_horizontal(pl.col(TOKENS), pl.col(PROMPT_TOKENS).fill_null(0)).clip(lower_bound=0)
    scaled = prompt_part * pl.col(_PIN) + (pl.col(TOKENS) - prompt_part) * pl.col(_POUT)
    spend = priced.group_by(ACCOUNT_ID).agg(
        pl.col(TOKENS).sum().alias(SPEND_TOKENS),
        scaled.filter(pl.col(_PIN).is_not_null()).sum().alias("_scaled"),
        pl.col(TOKENS).filter(pl.col(_PIN).is_null()).sum().alias("_unpriced"),
    )
    traffic_df, spend_df = pl.collect_all([traffic, spend])
    out = ids.join(traffic_df, on=ACCOUNT_ID, how="left").join(spend_df, on=ACCOUNT_ID, how="left")
    counted_429 = wrong_429 is not None and settings.wrong_429
    if counted_429:
        assert wrong_429 is not None
        extra = (
            wrong_429.lazy()
            .filter(_inside(start, end))
            .group_by(pl.col(ACCOUNT_ID).cast(pl.String))
            .agg(pl.len().cast(pl.Int64).alias(WRONG_429))
            .collect()
        )
        out = out.join(extra, on=ACCOUNT_ID, how="left")
    else:
        out = out.with_columns(pl.lit(0, pl.Int64).alias(WRONG_429))
    zero = [REQUESTS, FAILED, SPEND_TOKENS, "_unpriced", WRONG_429, "_scaled"]
    out = out.with_columns(pl.col(zero).fill_null(0).cast(pl.Int64)).with_columns(
        (pl.col(FAILED) + pl.col(WRONG_429)).alias(FAILED)
    )
    ok, requests = pl.col(REQUESTS) - pl.col(FAILED), pl.col(REQUESTS)
    micros = pl.col("_scaled") // pl.lit(10**scale, pl.Int64) if prices else pl.lit(None, pl.Int64)
    out = (
        out.with_columns(
            pl.when(requests > 0).then(ok / requests).otherwise(None).alias(AVAILABILITY),
            percent_of(ok, requests, settings.credits).alias(CREDIT_PERCENT),
            micros.alias(SPEND_USD_MICROS),
        )
        .with_columns(
            (pl.col(SPEND_TOKENS) * pl.col(CREDIT_PERCENT) // 100).alias(CREDIT_TOKENS),
            (pl.col(SPEND_USD_MICROS) * pl.col(CREDIT_PERCENT) // 100).alias(CREDIT_USD_MICROS),
        )
        .sort([CREDIT_TOKENS, ACCOUNT_ID], descending=[True, False])
    )
    return SlaCredits(
        accounts=out.select(list(COLUMNS)),
        settings=settings,
        start=start,
        end=end,
        counts_wrong_429=counted_429,
        credit_tokens_total=int(out[CREDIT_TOKENS].sum()),
        credit_usd_micros_total=int(out[CREDIT_USD_MICROS].sum()) if prices else None,
        unpriced_tokens=int(out["_unpriced"].sum()),
    )
