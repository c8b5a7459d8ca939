"""Totals that must add up, checked on every run of the reconciliation."""

from __future__ import annotations

import polars as pl

from analyzer.findings import DEDUCTION_KINDS, REQUEST_BUCKETS, TOKENS_DEDUCTED, Invariant, KindTotal
from analyzer.reconcile.classify import REFUND
from analyzer.schema import ACCOUNT_ID


def check_invariants(
    *,
    deductions: int,
    tokens_deducted: int,
    requests: int,
    refund_total: int,
    by_kind: dict[str, KindTotal],
    request_buckets: dict[str, int],
    accounts: pl.DataFrame,
    balances: pl.DataFrame,
    magnitude: float,
) -> tuple[Invariant, ...]:
    """The seven invariants of the reconciliation, each with whether it holds and its figures.

    `magnitude` is the float sum of |tokens| over the ledger and of the gateway's expected tokens:
    every integer total here is at most that, and Int64 sums wrap around silently past 2^63.
    """
    kinds_count = sum(by_kind[k].count for k in DEDUCTION_KINDS)
    kinds_tokens = sum(by_kind[k].tokens for k in DEDUCTION_KINDS)
    buckets = sum(request_buckets[b] for b in REQUEST_BUCKETS)
    accounts_refund = int(accounts[REFUND].sum())
    over = accounts.filter(pl.col(REFUND) > pl.col(TOKENS_DEDUCTED))
    return (
        Invariant(
            "every deduction classified once",
            kinds_count == deductions,
            f"{kinds_count} classified of {deductions} deductions",
        ),
        Invariant(
            "tokens over kinds equal tokens deducted",
            kinds_tokens == tokens_deducted,
            f"{kinds_tokens} over kinds, {tokens_deducted} deducted",
        ),
        Invariant(
            "every request in one bucket",
            buckets == requests,
            f"{buckets} in buckets of {requests} requests",
        ),
        Invariant(
            "refunds over accounts add up to the total",
            accounts_refund == refund_total,
            f"{accounts_refund} over accounts, {refund_total} in total",
        ),
        Invariant(
            "no account refunded more than it was charged",
            over.is_empty(),
            "none" if over.is_empty() else f"{over.height} accounts, first {over[ACCOUNT_ID][0]}",
        ),
        _replay(balances),
        _fits(magnitude),
    )


# Below 2^63 with room for the float sum's rounding (relative error far under 1e-9 here).
_INT64_ROOM = 2**63 * (1 - 1e-9)


def _fits(magnitude: float) -> Invariant:
    fits = magnitude < _INT64_ROOM
    # No float figure when it holds: its last digits may differ with the order of the sum.
    detail = (
        "ledger and gateway tokens add up to less than 2^63"
        if fits
        else (
            f"ledger and gateway tokens add up to about {magnitude:.3g}, past 2^63 (9.22e18): "
            "token totals and refunds here have wrapped around and are wrong"
        )
    )
    return Invariant("token totals fit in 64-bit integers", fits, detail)


def _replay(balances: pl.DataFrame) -> Invariant:
    clean = balances.filter(
        ~pl.col("_any_break")
        & ~pl.col("_any_null")
        & ~pl.col("_any_unknown")
        & pl.col("_replayed").is_not_null()
    )
    wrong = clean.filter(pl.col("_replayed") != pl.col("_last_balance"))
    skipped = balances.height - clean.height
    detail = f"{clean.height} accounts replayed to their last balance_after"
    if skipped:
        detail += f", {skipped} with a break, a null balance or an unknown entry kind skipped"
    if not wrong.is_empty():
        detail = f"{wrong.height} of {clean.height} accounts do not replay, first {wrong[ACCOUNT_ID][0]}"
    return Invariant("balances replay to the last balance_after", wrong.is_empty(), detail)
