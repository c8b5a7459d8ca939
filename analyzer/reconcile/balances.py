"""Per-account balance checks: breaks in the running balance, the replay, refunds already made, resets.

An account's entries are ordered by ts then entry_id. Each balance_after should follow from the one
before and the entry: deduct subtracts its tokens, refund and grant add them, reset sets the balance:
to its balance_after when it has one, else to its tokens. Ledgers write a reset either way (the new
balance in tokens, or tokens 0 and the new balance in balance_after), so a reset itself never breaks.
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


def set_balance() -> pl.Expr:
    """The balance an entry leaves, when known: a reset's balance_after, else its tokens; any other
    entry's balance_after."""
    reset = pl.col(KIND) == LEDGER_RESET
    return pl.when(reset).then(pl.coalesce(BALANCE_AFTER, TOKENS)).otherwise(pl.col(BALANCE_AFTER))


def reset_disagrees() -> pl.Expr:
    """A reset whose tokens are neither 0 nor its balance_after: the two conventions disagree
    (balance_after is taken as the new balance)."""
    t, after = pl.col(TOKENS), pl.col(BALANCE_AFTER)
    return (pl.col(KIND) == LEDGER_RESET) & after.is_not_null() & (t != 0) & (t != after)


def in_time_order(ledger: pl.LazyFrame) -> pl.LazyFrame:
    """One boolean: the entries already come in (ts, entry_id) order, as an append-only ledger does."""
    ts, prev_ts = pl.col(TS_COL), pl.col(TS_COL).shift(1)
    entry, prev_entry = pl.col(ENTRY_ID), pl.col(ENTRY_ID).shift(1)
    # The order of sort(ts, entry_id, nulls_last=True): a null entry_id goes after its time's others.
    tie_ok = entry.is_null() | (prev_entry.is_not_null() & (prev_entry <= entry))
    follows = (ts > prev_ts) | ((ts == prev_ts) & tie_ok)
    return ledger.select(follows.fill_null(True).all().alias("ordered"))


def checked(ledger: pl.LazyFrame, *, ordered: bool = False) -> pl.LazyFrame:
    """Every ledger entry, in (ts, entry_id) order, with whether its balance could be checked and
    whether it breaks. `ordered`: the entries are known to come in that order already."""
    # Windows per account over frame order: a sort of every column costs ~10x these windows, so
    # it is done only when the entries are out of order.
    prev = set_balance().shift(1).over(ACCOUNT_ID)
    follows = pl.when(pl.col(KIND) == LEDGER_RESET).then(set_balance()).otherwise(prev + _delta())
    known_kind = pl.col(KIND).is_in([LEDGER_DEDUCT, LEDGER_REFUND, LEDGER_GRANT, LEDGER_RESET])
    # The first entry of an account has no previous balance and is never a break; an entry of a
    # kind the analyzer does not know is not checked either.
    is_checked = pl.col(BALANCE_AFTER).is_not_null() & prev.is_not_null() & known_kind
    entries = ledger.select(TS_COL, ENTRY_ID, ACCOUNT_ID, REQUEST_ID, KIND, TOKENS, BALANCE_AFTER)
    if not ordered:
        entries = entries.sort(_ORDER, nulls_last=True, maintain_order=True)
    return entries.with_columns(follows.alias(EXPECTED), is_checked.alias(CHECKED)).with_columns(
        (pl.col(CHECKED) & (pl.col(BALANCE_AFTER) != pl.col(EXPECTED))).alias(BREAK)
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
    # null, the replay must land on the last balance_after. `checked` is in time order, so a running
    # count of resets per account numbers its segments in order.
    base = set_balance()
    unknown = ~pl.col(KIND).is_in([LEDGER_DEDUCT, LEDGER_REFUND, LEDGER_GRANT, LEDGER_RESET])
    # One pass over the entries, per segment; the per-account figures are then sums over segments.
    segments = (
        checked_lf.with_columns((pl.col(KIND) == LEDGER_RESET).cum_sum().over(ACCOUNT_ID).alias("_segment"))
        .group_by(ACCOUNT_ID, "_segment")
        .agg(
            base.first().alias("_base"),
            (_delta().sum() - _delta().first()).alias("_later"),
            set_balance().last().alias("_last_balance"),
            pl.col(TOKENS).filter(pl.col(KIND) == LEDGER_REFUND).sum().alias(ALREADY_REFUNDED),
            pl.col(BREAK).any().alias("_any_break"),
            set_balance().is_null().any().alias("_any_null"),
            unknown.any().alias("_any_unknown"),
        )
    )
    last = pl.col("_segment")
    return segments.group_by(ACCOUNT_ID).agg(
        pl.col(ALREADY_REFUNDED).sum(),
        pl.col("_any_break", "_any_null", "_any_unknown").any(),
        (pl.col("_base") + pl.col("_later")).sort_by(last).last().alias("_replayed"),
        pl.col("_last_balance").sort_by(last).last(),
    )
