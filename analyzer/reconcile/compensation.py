"""Compensation: the quota reset's coverage (remedy.py) and the SLA credits (sla.py), per account.

`compensate` runs the SLA part when `[sla] accounts` names the accounts it covers; the remedy part
comes from the reconciliation. The accounts table holds every account still owed after the remedy or
given an SLA credit (the report's `compensation.accounts`, the `--compensation` file).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from analyzer.config import Settings
from analyzer.ingest.accounts import TIER, read_accounts
from analyzer.limits import LimitSource, RateLimits, Verdict
from analyzer.limits.classify import VERDICT
from analyzer.reconcile import remedy as rm
from analyzer.reconcile import sla as sl
from analyzer.reconcile.remedy import Remedy
from analyzer.reconcile.sla import SlaCredits, sla_credits, sla_window
from analyzer.schema import ACCOUNT_ID, LEDGER, TS

# The JSON report's compensation.accounts keys (a contract), in order.
JSON_COLUMNS: Final = (
    ACCOUNT_ID,
    rm.OWED_BEFORE,
    rm.OWED_AFTER,
    rm.RESTORED,
    rm.MADE_WHOLE,
    sl.AVAILABILITY,
    sl.CREDIT_PERCENT,
    sl.CREDIT_TOKENS,
    sl.CREDIT_USD_MICROS,
)
# The --compensation file: those and what explains them.
COLUMNS: Final = (
    *JSON_COLUMNS[:4],
    rm.RESETS,
    rm.NOT_COVERED,
    rm.STILL_OWED,
    rm.BEYOND,
    rm.MADE_WHOLE,
    sl.REQUESTS,
    sl.FAILED,
    *JSON_COLUMNS[5:],
    sl.SPEND_TOKENS,
    sl.SPEND_USD_MICROS,
)


@dataclass(frozen=True)
class Compensation:
    """What the remedy left owed and what the SLA credits, per account (COLUMNS)."""

    remedy: Remedy | None  # None without a ledger
    sla: SlaCredits | None  # None without [sla] accounts
    accounts: pl.DataFrame


def sla_accounts(settings: Settings) -> pl.DataFrame | None:
    """The accounts the SLA covers (account_id): those of [sla] accounts, or with [sla] tiers alone the
    rate-limit audit's accounts file ([limits] accounts), of those tiers; None without either."""
    sla, limits = settings.sla, settings.limits
    if sla.accounts is not None:
        listed = read_accounts(sla.accounts)
    elif sla.tiers and limits is not None and limits.accounts is not None:
        tiers = limits.account_tiers
        listed = pl.DataFrame(
            {ACCOUNT_ID: list(tiers), TIER: list(tiers.values())},
            schema={ACCOUNT_ID: pl.String, TIER: pl.String},
        )
    else:
        return None
    if settings.sla.tiers:
        listed = listed.filter(pl.col(TIER).is_in(list(settings.sla.tiers)))
    return listed.select(ACCOUNT_ID)


def wrong_429s(rate_limits: RateLimits | None) -> pl.DataFrame | None:
    """Every 429 the rate-limit audit found wrong (account_id, ts), when it judged them against the
    configured limits ([limits]); None when it did not run or only had each account's observed peak."""
    if rate_limits is None or rate_limits.source is not LimitSource.CONFIG:
        return None
    return rate_limits.flagged.filter(pl.col(VERDICT) == Verdict.WRONG.value).select(ACCOUNT_ID, TS)


def compensate(
    gateway: pl.LazyFrame,
    ledger: pl.LazyFrame | None,
    remedy: Remedy | None,
    covered: pl.DataFrame | None,
    settings: Settings,
    incident: tuple[datetime | None, datetime | None],
    wrong_429: pl.DataFrame | None = None,
) -> Compensation | None:
    """The remedy's accounts joined with the SLA credits of `covered` (sla_accounts); None when there is
    neither. `wrong_429` (account_id, wrong_429): the rate-limit audit's wrong 429s, counted as failed."""
    credits = None
    if covered is not None:
        window = sla_window(settings.sla.window, *incident)
        credits = sla_credits(
            gateway,
            ledger if ledger is not None else pl.LazyFrame(schema=LEDGER),  # no ledger: no spend
            covered,
            settings.sla,
            settings.prices,
            window,
            wrong_429,
        )
    if remedy is None and credits is None:
        return None
    return Compensation(remedy=remedy, sla=credits, accounts=_accounts(remedy, credits))


def _accounts(remedy: Remedy | None, credits: SlaCredits | None) -> pl.DataFrame:
    remedy_cols = [c for c in rm.ACCOUNT_COLUMNS if c != ACCOUNT_ID]
    sla_cols = [c for c in sl.COLUMNS if c != ACCOUNT_ID]
    left = (
        remedy.accounts.filter(pl.col(rm.STILL_OWED) > 0)
        if remedy is not None
        else pl.DataFrame(schema={ACCOUNT_ID: pl.String})
    )
    right = (
        credits.accounts.filter(pl.col(sl.CREDIT_PERCENT) > 0)
        if credits is not None
        else pl.DataFrame(schema={ACCOUNT_ID: pl.String})
    )
    # An account in one table only still gets every column: the remedy's from its full table (an SLA
    # account the reset made whole), the SLA's null (not covered by it) or from its full table.
    full_remedy = remedy.accounts if remedy is not None else pl.DataFrame(schema={ACCOUNT_ID: pl.String})
    full_sla = credits.accounts if credits is not None else pl.DataFrame(schema={ACCOUNT_ID: pl.String})
    ids = pl.concat([left.select(ACCOUNT_ID), right.select(ACCOUNT_ID)]).unique()
    out = ids.join(full_remedy, on=ACCOUNT_ID, how="left").join(full_sla, on=ACCOUNT_ID, how="left")
    for name in remedy_cols:
        if name not in out.columns:
            out = out.with_columns(pl.lit(None, pl.Int64).alias(name))
    for name in sla_cols:
        if name not in out.columns:
            dtype = pl.Float64 if name == sl.AVAILABILITY else pl.Int64
            out = out.with_columns(pl.lit(None, dtype).alias(name))
    numbers = [c for c in remedy_cols if c != rm.MADE_WHOLE]
    out = out.with_columns(
        pl.col(numbers).fill_null(0).cast(pl.Int64), pl.col(rm.MADE_WHOLE).cast(pl.Boolean).fill_null(True)
    )
    return out.select(list(COLUMNS)).sort(
        [rm.STILL_OWED, sl.CREDIT_TOKENS, ACCOUNT_ID], descending=[True, True, False], nulls_last=True
    )
