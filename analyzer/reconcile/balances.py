"""Per-account balance checks: breaks in the running balance, the replay, refunds already made, resets.

An account's entries are ordered by ts then entry_id. Each balance_after should follow from the one
before and the entry: deduct subtracts its tokens, refund and grant add them, reset sets the balance.
"""

from __future__ import annotations

import polars as pl

from analyzer.reconcile.classify import EXPECTED, FINDING_COLUMNS, REFUND, WIPED
from analyzer.schema import (
    ACCOUNT_ID,
    BALANCE_AFTER,
    ENTRY_ID,
    KIND,
    LEDGER_DEDUCT,
    LEDGER_GRANT,
    LEDGER_REFUND,
    LEDGER_RESET,
    MODEL,
    REQUEST_ID,
    TOKENS,
)
from analyzer.schema import TS as TS_COL

BREAK = "_break"
CHECKED = "_checked"  # the entry's balance could be checked (it and the one before are known)
ALREADY_REFUNDED = "already_refunded"

_ORDER = [TS_COL, ENTRY_ID]


def _delta() -> pl.Expr:
    k, t = pl.col(KIND), pl.col(TOKENS)
    return (
        pl.when(k == LEDGER_DEDUCT)
        .then(-t)
        .when(k.is_in([LEDGER_REFUND, LEDGER_GRANT]))
        .then(t)
        .otherwise(pl.lit(0, pl.Int64))
    )


def checked(ledger: pl.LazyFrame) -> pl.LazyFrame:
    """Every ledger entry with whether its balance could be checked and whether it breaks."""
    prev = pl.col(BALANCE_AFTER).shift(1).over(ACCOUNT_ID, order_by=_ORDER)
    follows = pl.when(pl.col(KIND) == LEDGER_RESET).then(pl.col(TOKENS)).otherwise(prev + _delta())
    known_kind = pl.col(KIND).is_in([LEDGER_DEDUCT, LEDGER_REFUND, LEDGER_GRANT, LEDGER_RESET])
    # The first entry of an account has no previous balance and is never a break; an entry of a
    # kind the analyzer does not know is not checked either.
    is_checked = pl.col(BALANCE_AFTER).is_not_null() & prev.is_not_null() & known_kind
    return (
        ledger.select(TS_COL, ENTRY_ID, ACCOUNT_ID, REQUEST_ID, KIND, TOKENS, BALANCE_AFTER)
        .with_columns(follows.alias(EXPECTED), is_checked.alias(CHECKED))
        .with_columns((pl.col(CHECKED) & (pl.col(BALANCE_AFTER) != pl.col(EXPECTED))).alias(BREAK))
    )


def break_findings(checked_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Balance breaks as findings rows (tokens: the entry's; expected: the balance that should follow)."""
    return (
        checked_lf.filter(pl.col(BREAK))
        .select(
            ENTRY_ID,
            TS_COL,
            ACCOUNT_ID,
            REQUEST_ID,
            pl.lit(None, pl.String).alias(MODEL),
            pl.lit("balance_break").alias(KIND),
            TOKENS,
            EXPECTED,
            pl.lit(0, pl.Int64).alias(REFUND),
            pl.lit(False).alias(WIPED),
        )
        .select(list(FINDING_COLUMNS))
    )


def account_balances(checked_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Per account: refunds already in the ledger, and the replayed against the last balance_after."""
    # Replay from the last reset (or the first entry) forward; where the balance has no break and no
    # null, the replay must land on the last balance_after.
    segment = (pl.col(KIND) == LEDGER_RESET).cum_sum().over(ACCOUNT_ID, order_by=_ORDER)
    ordered = checked_lf.with_columns(segment.alias("_segment")).with_columns(
        (pl.col("_segment") == pl.col("_segment").max().over(ACCOUNT_ID)).alias("_last_seg")
    )
    seg = ordered.filter(pl.col("_last_seg"))
    base = (
        (pl.when(pl.col(KIND) == LEDGER_RESET).then(pl.col(TOKENS)).otherwise(pl.col(BALANCE_AFTER)))
        .sort_by(_ORDER)
        .first()
    )
    later = _delta().sort_by(_ORDER).slice(1).sum()
    replay = seg.group_by(ACCOUNT_ID).agg(
        (base + later).alias("_replayed"),
        pl.col(BALANCE_AFTER).sort_by(_ORDER).last().alias("_last_balance"),
    )
    per_account = ordered.group_by(ACCOUNT_ID).agg(
        pl.col(TOKENS).filter(pl.col(KIND) == LEDGER_REFUND).sum().alias(ALREADY_REFUNDED),
        pl.col(BREAK).any().alias("_any_break"),
        pl.col(BALANCE_AFTER).is_null().any().alias("_any_null"),
        pl.col(KIND)
        .is_in([LEDGER_DEDUCT, LEDGER_REFUND, LEDGER_GRANT, LEDGER_RESET])
        .not_()
        .any()
        .alias("_any_unknown"),
    )
    return per_account.join(replay, on=ACCOUNT_ID, how="left")
