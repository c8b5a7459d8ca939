"""One event per happening: the timeline's entries that tell one thing, gathered into one row.

A burst's start and end, an alert's firing and resolving, a fault pattern's start and stop are one
happening each; the first and last entries of one finding kind, across every model, are one; quota
resets that fall within RESET_GAP of each other are one ("Quota reset: 4,000 accounts"). Operator
events stay one each. `with_groups` adds to the timeline the GROUP of every entry that was gathered
with others (null for an entry that is a happening on its own), so the JSON keeps every entry and says
which row it was folded into; `happenings` gives the rows the human reports show.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Final

import polars as pl

from analyzer.findings import COUNT, FIRST_AT, GLOBAL, LAST_AT, RESET_ACCOUNTS, Finding, Reconciliation
from analyzer.report.timeline import DETAIL, SCOPE, Entry, grouped, reset_accounts
from analyzer.schema import KIND, MODEL, TITLE, TS, TS_DTYPE

# Columns the timeline gains and the happenings frame has (with schema.TS, KIND, TITLE and the
# timeline's DETAIL, SCOPE): GROUP, the happening's id; END, its last entry's time; ENTRIES, how many
# timeline entries it gathers; FAMILY, what it is (a Happening); NAME, the finding kind, alert, pattern
# or scope it is about.
GROUP: Final = "group"
END: Final = "end"
ENTRIES: Final = "entries"
FAMILY: Final = "family"
NAME: Final = "name"

RESET_GAP: Final = timedelta(minutes=1)  # resets closer than this are one batch


class Happening(StrEnum):
    """What a happening is, in the order a responder reads them first (the rank of the shown rows)."""

    EVENT = "event"
    BURST = "burst"
    SPIKE = "spike"
    GAP = "gap"
    PATTERN = "pattern"
    FAULT = "fault"
    WRONG_429 = "wrong_429"  # the rate-limit audit's wrong 429s, first to last, per scope
    LIMITER_FIT = "limiter_fit"  # what the limiter behaved as if it counted, over a span
    QUOTA_RESET = "quota_reset"
    ALERT = "alert"


RANK: Final = {h: i for i, h in enumerate(Happening)}

_FAMILY_OF: Final = {
    Entry.EVENT: Happening.EVENT,
    Entry.BURST_START: Happening.BURST,
    Entry.BURST_END: Happening.BURST,
    Entry.SPIKE_START: Happening.SPIKE,
    Entry.SPIKE_END: Happening.SPIKE,
    Entry.GAP_START: Happening.GAP,
    Entry.GAP_END: Happening.GAP,
    Entry.ALERT_FIRED: Happening.ALERT,
    Entry.ALERT_RESOLVED: Happening.ALERT,
    Entry.PATTERN_START: Happening.PATTERN,
    Entry.PATTERN_END: Happening.PATTERN,
    Entry.FAULT_FIRST: Happening.FAULT,
    Entry.FAULT_LAST: Happening.FAULT,
    Entry.QUOTA_RESET: Happening.QUOTA_RESET,
    Entry.WRONG_429_FIRST: Happening.WRONG_429,
    Entry.WRONG_429_LAST: Happening.WRONG_429,
    Entry.LIMITER_FIT_START: Happening.LIMITER_FIT,
    Entry.LIMITER_FIT_END: Happening.LIMITER_FIT,
}
# Entries that open a happening of their family: each one starts a new one.
_OPENERS: Final = (
    Entry.BURST_START,
    Entry.SPIKE_START,
    Entry.GAP_START,
    Entry.ALERT_FIRED,
    Entry.PATTERN_START,
)
# Words of the opening entry's title that a happening's title leaves out.
_OPENING_WORDS: Final = r" (starts|fires)( |$)"


def _keyed(timeline: pl.DataFrame) -> pl.DataFrame:
    """The timeline with FAMILY, NAME and the happening's key (`_key`) of each entry."""
    family = pl.col(KIND).replace_strict(_FAMILY_OF, default=Happening.EVENT, return_dtype=pl.String)
    fam = pl.col(FAMILY)
    name = (
        pl.when(fam.is_in([Happening.BURST, Happening.SPIKE]))
        .then(pl.col(SCOPE).fill_null(GLOBAL))
        .when(fam == Happening.ALERT)
        .then(pl.col(TITLE).str.extract(r"^Burn-rate alert (\S+)"))
        .when(fam == Happening.PATTERN)
        .then(
            pl.col(TITLE).str.extract(r"^(?:Likely fault:|Fault stops:|Limiter fits|Limiter fit ends:) (.*)$")
        )
        .when(fam == Happening.FAULT)
        .then(pl.col(TITLE).str.extract(r"^(?:First|Last) (\S+)"))
        .otherwise(pl.lit(""))
        .fill_null("")
    )
    new_batch = (pl.col(TS).diff().over(FAMILY) > RESET_GAP).fill_null(True)
    index = (
        pl.when(fam == Happening.EVENT)
        .then(pl.int_range(pl.len(), dtype=pl.Int64))
        .when(fam.is_in([Happening.FAULT, Happening.WRONG_429]))
        .then(pl.lit(0, dtype=pl.Int64))
        .when(fam == Happening.QUOTA_RESET)
        .then(new_batch.cast(pl.Int64).cum_sum().over(FAMILY))
        .otherwise(pl.col(KIND).is_in(list(_OPENERS)).cast(pl.Int64).cum_sum().over(FAMILY, NAME))
    )
    return (
        timeline.with_columns(family.alias(FAMILY))
        .with_columns(name.alias(NAME))
        .with_columns(pl.format("{}:{}:{}", fam, pl.col(NAME), index).alias("_key"))
    )


def with_groups(timeline: pl.DataFrame) -> pl.DataFrame:
    """The timeline plus GROUP: the id of the happening an entry was gathered into with others, else null."""
    keyed = _keyed(timeline)
    many = pl.len().over("_key") > 1
    return keyed.with_columns(pl.when(many).then(pl.col("_key")).otherwise(None).alias(GROUP)).drop(
        FAMILY, NAME, "_key"
    )


def happenings(timeline: pl.DataFrame, reconciliation: Reconciliation | None) -> pl.DataFrame:
    """One row per happening, in time order: ts, END, KIND (of its first entry), FAMILY, NAME, TITLE,
    DETAIL, SCOPE, ENTRIES, GROUP."""
    keyed = _keyed(timeline.drop(GROUP, strict=False))
    rows = keyed.group_by("_key", maintain_order=True).agg(
        pl.col(TS).min(),
        pl.col(TS).max().alias(END),
        pl.col(KIND).first(),
        pl.col(FAMILY).first(),
        pl.col(NAME).first(),
        pl.col(TITLE).first(),
        pl.col(DETAIL).first(),
        pl.col(SCOPE).first(),
        pl.len().cast(pl.Int64).alias(ENTRIES),
    )
    rows = rows.join(_fault_totals(reconciliation), on=NAME, how="left").join(
        _reset_totals(reconciliation), on=TS, how="left"
    )
    # A batch of resets: the accounts of every reset time in it.
    accounts = pl.col(RESET_ACCOUNTS)
    fam = pl.col(FAMILY)
    title = (
        pl.when(fam == Happening.FAULT)
        .then(pl.format("{}: {} entries", pl.col(NAME), grouped(pl.col("_n"))))
        .when((fam == Happening.QUOTA_RESET) & accounts.is_not_null())
        .then(pl.format("Quota reset: {} accounts", grouped(accounts)))
        .when(fam == Happening.QUOTA_RESET)
        .then(pl.format("Quota reset ({} times)", grouped(pl.col(ENTRIES))))
        .when(fam == Happening.WRONG_429)
        .then(pl.col(TITLE).str.replace(r"^First wrong 429", "Wrong 429s"))
        .otherwise(pl.col(TITLE).str.replace(_OPENING_WORDS, "$2"))
    )
    detail = (
        pl.when(fam == Happening.FAULT)
        .then(pl.col("_models"))
        .when(fam == Happening.QUOTA_RESET)
        .then(pl.lit("balances set anew"))
        .when(fam == Happening.WRONG_429)
        .then(pl.col(DETAIL).str.replace(r" until \S+", ""))
        .otherwise(pl.col(DETAIL))
    )
    return (
        rows.with_columns(title.alias(TITLE), detail.alias(DETAIL))
        .with_columns(pl.when(pl.col(ENTRIES) > 1).then(pl.col("_key")).otherwise(None).alias(GROUP))
        .sort(TS, pl.col(FAMILY).replace_strict(RANK, return_dtype=pl.Int32), TITLE, maintain_order=True)
        .select(TS, END, KIND, FAMILY, NAME, TITLE, DETAIL, SCOPE, ENTRIES, GROUP)
    )


def _fault_totals(reconciliation: Reconciliation | None) -> pl.DataFrame:
    """Per finding kind: its entries (`_n`) and the models they fell in with their counts (`_models`)."""
    empty = pl.DataFrame(schema={NAME: pl.String, "_n": pl.Int64, "_models": pl.String})
    if reconciliation is None or reconciliation.spans.is_empty():
        return empty
    spans = reconciliation.spans.filter(pl.col(KIND) != Finding.OK)
    model = pl.format("{}: {}", pl.col(MODEL).fill_null("no model"), grouped(pl.col(COUNT).cast(pl.Int64)))
    return (
        spans.sort([COUNT, MODEL], descending=[True, False], nulls_last=True)
        .group_by(KIND, maintain_order=True)
        .agg(
            pl.col(COUNT).cast(pl.Int64).sum().alias("_n"),
            model.str.join(", ").alias("_models"),
            pl.col(FIRST_AT).min(),
            pl.col(LAST_AT).max(),
        )
        .select(pl.col(KIND).alias(NAME), "_n", pl.format("by model: {}", pl.col("_models")).alias("_models"))
    )


def _reset_totals(reconciliation: Reconciliation | None) -> pl.DataFrame:
    """Per reset batch (keyed by its first time): the accounts reset in it, when they were counted."""
    schema: dict[str, pl.DataType] = {TS: TS_DTYPE, RESET_ACCOUNTS: pl.Int64()}
    if reconciliation is None or not reconciliation.resets:
        return pl.DataFrame(schema=schema)
    resets = pl.DataFrame(
        {TS: list(reconciliation.resets), RESET_ACCOUNTS: list(reset_accounts(reconciliation))}, schema=schema
    ).sort(TS)
    batch = (pl.col(TS).diff() > RESET_GAP).fill_null(True).cum_sum()
    known = len(reconciliation.reset_accounts) == len(reconciliation.resets)
    total = pl.col(RESET_ACCOUNTS).sum() if known else pl.lit(None, dtype=pl.Int64)
    return (
        resets.with_columns(batch.alias("_b"))
        .group_by("_b", maintain_order=True)
        .agg(pl.col(TS).min(), total.alias(RESET_ACCOUNTS))
        .select(TS, RESET_ACCOUNTS)
    )
