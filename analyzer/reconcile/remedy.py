"""The quota reset as a remedy: per account, what its resets restored against what it was owed.

A reset restores `balance it set - balance before it` (the balance the account's previous entry left;
unknown for an account whose first entry is the reset, which then restores nothing that can be
counted). Each refund the reconciliation owes an account (a finding with refund_tokens > 0) belongs to
the account's first reset at or after its time: the reset that gave it back. Per reset, what it
restored covers what belongs to it up to the amount restored; the rest is `not_covered`, the excess is
restored beyond what was owed. What no reset follows (everything, for an account with no reset) is
`owed_after_reset`: the bug outlived the remedy. An account is made whole when it is owed nothing
after its resets and none of them fell short.

Tokens are Int64 throughout; the totals are asserted to add up where they are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from analyzer.reconcile.balances import set_balance
from analyzer.reconcile.classify import REFUND
from analyzer.schema import ACCOUNT_ID, ENTRY_ID, KIND, LEDGER_RESET
from analyzer.schema import TS as TS_COL

BALANCE_SET: Final = "balance_set"
BALANCE_BEFORE: Final = "balance_before"
RESETS: Final = "resets"
OWED_BEFORE: Final = "owed_before_reset"
RESTORED: Final = "restored_by_reset"
NOT_COVERED: Final = "not_covered"
OWED_AFTER: Final = "owed_after_reset"
STILL_OWED: Final = "still_owed"
BEYOND: Final = "restored_beyond_owed"
MADE_WHOLE: Final = "made_whole"
# Per account, in this order (the --compensation file's remedy columns).
ACCOUNT_COLUMNS: Final = (
    ACCOUNT_ID,
    RESETS,
    OWED_BEFORE,
    RESTORED,
    NOT_COVERED,
    OWED_AFTER,
    STILL_OWED,
    BEYOND,
    MADE_WHOLE,
)
# Reset entries further apart than this are separate happenings (a reset job writes every account's
# entry within seconds; the next one comes hours or a billing period later).
RESET_GAP: Final = timedelta(minutes=5)

_RESET_ENTRY = "_reset_entry"
_RESET_AT = "_reset_at"
_CAP = "_cap"
_OWED = "_owed"


@dataclass(frozen=True)
class ResetEvent:
    """Reset entries that fell together (within RESET_GAP of each other): one happening."""

    start: datetime
    end: datetime
    accounts: int
    restored_tokens: int  # balance set minus balance before, over its entries (unknown befores: 0)
    owed_tokens: int  # refunds owed before it that it was the next reset for
    restored_beyond_owed: int


@dataclass(frozen=True)
class Remedy:
    """What the resets made good, per account (ACCOUNT_COLUMNS) and in total."""

    accounts: pl.DataFrame  # every account with a reset or owed a refund, most still owed first
    events: tuple[ResetEvent, ...]
    accounts_made_whole: int
    accounts_not_made_whole: int
    accounts_owed_after_reset: int  # accounts with a reset charged wrongly after their last one
    accounts_not_covered: int  # accounts a reset restored less than it was owed
    accounts_without_reset_owed: int  # owed, with no reset at all
    tokens_owed_after_reset: int  # what no reset follows, no-reset accounts included
    tokens_owed_without_reset: int  # of that, what accounts with no reset are owed
    tokens_not_covered: int
    tokens_restored_beyond_owed: int
    resets_before_unknown: int  # reset entries with no balance before them (restored not counted)


def reset_entries(checked: pl.LazyFrame) -> pl.LazyFrame:
    """Every reset entry with the balance it set and the balance before it. `checked` is one pass's
    entries in (ts, entry_id) order (balances.checked), so the previous row of an account is its
    previous entry."""
    before = set_balance().shift(1).over(ACCOUNT_ID)
    return (
        checked.with_columns(before.alias(BALANCE_BEFORE), set_balance().alias(BALANCE_SET))
        .filter(pl.col(KIND) == LEDGER_RESET)
        .select(ACCOUNT_ID, TS_COL, ENTRY_ID, BALANCE_SET, BALANCE_BEFORE)
    )


def remedy(resets: pl.DataFrame, findings: pl.DataFrame) -> Remedy:
    """The resets (reset_entries' rows) against the refunds owed (findings: ts, account_id, refund_tokens)."""
    resets = resets.sort(ACCOUNT_ID, TS_COL, ENTRY_ID, nulls_last=True).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(_RESET_ENTRY),
        (pl.col(BALANCE_SET) - pl.col(BALANCE_BEFORE)).alias(RESTORED),
    )
    owed = findings.filter(pl.col(REFUND) > 0).select(ACCOUNT_ID, TS_COL, pl.col(REFUND).alias(_OWED))
    # Each refund to the account's first reset at or after it (forward as-of join, per account). Both
    # sides are sorted by time, within each account too; Polars cannot verify that with `by`.
    placed = owed.sort(TS_COL).join_asof(
        resets.select(ACCOUNT_ID, pl.col(TS_COL).alias(_RESET_AT), _RESET_ENTRY).sort(_RESET_AT),
        left_on=TS_COL,
        right_on=_RESET_AT,
        by=ACCOUNT_ID,
        strategy="forward",
        check_sortedness=False,
    )
    per_reset = resets.join(
        placed.group_by(_RESET_ENTRY).agg(pl.col(_OWED).sum()), on=_RESET_ENTRY, how="left"
    ).with_columns(
        pl.col(_OWED).fill_null(0),
        # What a reset gave back that can count: nothing when it lowered the balance or its before is unknown.
        pl.col(RESTORED).clip(lower_bound=0).fill_null(0).alias(_CAP),
    )
    covered = pl.min_horizontal(_OWED, _CAP)
    per_reset = per_reset.with_columns(
        (pl.col(_OWED) - covered).alias(NOT_COVERED), (pl.col(_CAP) - covered).alias(BEYOND)
    )
    by_reset = per_reset.group_by(ACCOUNT_ID).agg(
        pl.len().cast(pl.Int64).alias(RESETS),
        pl.col(_OWED).sum().alias(OWED_BEFORE),
        pl.col(RESTORED).fill_null(0).sum(),
        pl.col(NOT_COVERED).sum(),
        pl.col(BEYOND).sum(),
    )
    after = (
        placed.filter(pl.col(_RESET_ENTRY).is_null())
        .group_by(ACCOUNT_ID)
        .agg(pl.col(_OWED).sum().alias(OWED_AFTER))
    )
    zero = [RESETS, OWED_BEFORE, RESTORED, NOT_COVERED, BEYOND, OWED_AFTER]
    accounts = (
        by_reset.join(after, on=ACCOUNT_ID, how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.col(zero).fill_null(0).cast(pl.Int64))
        .with_columns((pl.col(OWED_AFTER) + pl.col(NOT_COVERED)).alias(STILL_OWED))
        .with_columns((pl.col(STILL_OWED) == 0).alias(MADE_WHOLE))
        .select(list(ACCOUNT_COLUMNS))
        .sort([STILL_OWED, ACCOUNT_ID], descending=[True, False], nulls_last=True)
    )
    total_owed = int(owed[_OWED].sum())
    assert int(accounts[OWED_BEFORE].sum()) + int(accounts[OWED_AFTER].sum()) == total_owed, (
        "owed over accounts"
    )
    no_reset = accounts.filter(pl.col(RESETS) == 0)
    with_reset = accounts.filter(pl.col(RESETS) > 0)
    return Remedy(
        accounts=accounts,
        events=_events(per_reset),
        accounts_made_whole=int(accounts[MADE_WHOLE].sum()),
        accounts_not_made_whole=int((~accounts[MADE_WHOLE]).sum()),
        accounts_owed_after_reset=int((with_reset[OWED_AFTER] > 0).sum()),
        accounts_not_covered=int((accounts[NOT_COVERED] > 0).sum()),
        accounts_without_reset_owed=int((no_reset[OWED_AFTER] > 0).sum()),
        tokens_owed_after_reset=int(accounts[OWED_AFTER].sum()),
        tokens_owed_without_reset=int(no_reset[OWED_AFTER].sum()),
        tokens_not_covered=int(accounts[NOT_COVERED].sum()),
        tokens_restored_beyond_owed=int(accounts[BEYOND].sum()),
        resets_before_unknown=int(resets[BALANCE_BEFORE].null_count()),
    )


def _events(per_reset: pl.DataFrame) -> tuple[ResetEvent, ...]:
    """Reset entries grouped into happenings: a new one after a silence longer than RESET_GAP."""
    grouped = (
        per_reset.sort(TS_COL)
        .with_columns(
            (pl.col(TS_COL).diff() > RESET_GAP).fill_null(False).cum_sum().alias("_event"),
        )
        .group_by("_event")
        .agg(
            pl.col(TS_COL).min().alias("start"),
            pl.col(TS_COL).max().alias("end"),
            pl.col(ACCOUNT_ID).n_unique().cast(pl.Int64).alias("accounts"),
            pl.col(RESTORED).fill_null(0).sum().alias("restored_tokens"),
            pl.col(_OWED).sum().alias("owed_tokens"),
            pl.col(BEYOND).sum().alias("restored_beyond_owed"),
        )
        .sort("start")
        .drop("_event")
    )
    return tuple(ResetEvent(**row) for row in grouped.iter_rows(named=True))
