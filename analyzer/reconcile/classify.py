"""Each deduction against its gateway request: expected charge, kind and refund; each request's bucket.

Everything here stays lazy and streams. The plan has one large hash join: the ledger's deductions
against the gateway grouped by request_id (one row per id: its first line, and how many lines it has
of each sort). It is a full join, so the same rows also give every request with no deduction. The
rank of a deduction within its request_id (a costly ordered window) is computed only for the few
request_ids that have several deductions.

Joins and groups use a 64-bit hash of request_id, not its text: about 2.5x faster and lighter. Two
different ids with the same hash would be matched, so `CLASHES` counts every place where that could
have happened, and the caller redoes the work on the text (`exact=True`) when it is not zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import polars as pl

from analyzer.config import Settings
from analyzer.findings import COUNT, OVERCHARGE_KINDS, REFUND_TOKENS, REQUEST_BUCKETS, Finding
from analyzer.reconcile import charges
from analyzer.schema import (
    ACCOUNT_ID,
    BALANCE_AFTER,
    COMPLETION_TOKENS,
    ENTRY_ID,
    KIND,
    LEDGER_DEDUCT,
    MODEL,
    PROMPT_TOKENS,
    REQUEST_ID,
    STATUS,
    TOKENS,
)
from analyzer.schema import TS as TS_COL

EXPECTED = charges.EXPECTED
REFUND = REFUND_TOKENS
WIPED = "balance_wiped"
BUCKET = "bucket"
# Position of a deduction among those of its request_id (0 = the first); null without a request_id.
POSITION = "_position"
FOUND = "_found"
SERVED = "_served"  # tokens served by the request (unweighted prompt + completion)
PROMPT_PART = charges.PROMPT_PART  # the weighted prompt tokens of the expected charge
KEY = "_key"  # what joins a deduction to its request: a hash of request_id, or request_id itself
DEDUCT = "_deduct"  # true on ledger deductions; null on the rows of requests that have none
LINES = "_lines"  # gateway lines logged with the request_id
FAILED_LINES = "_failed_lines"  # of which non-2xx
UNBILLED_LINES = "_unbilled_lines"  # of which 2xx with tokens served
_EXPECTED_F = charges.EXPECTED_F
# Float sums of |tokens|: Int64 sums wrap around silently past 2^63, so the reconciliation says
# whether its totals can be trusted (invariants: "token totals fit in 64-bit integers").
MAGNITUDE = "tokens_magnitude"
GW_ID = "_gw_request_id"
GW_TS = "_gw_ts"
GW_ACCOUNT = "_gw_account_id"
CLASH = "_clash"
CLASHES = "clashes"
# Columns of `by_account_kind`, one row per (account, kind), read by reconcile/__init__ and accounts.
# (With findings.COUNT, schema.TOKENS and REFUND.)
FIRST: Final = "first"  # first and last deduction of the group
LAST: Final = "last"
FIRST_BAD: Final = "first_bad"  # first and last deduction of a kind other than ok
LAST_BAD: Final = "last_bad"
ID_CLASHES: Final = "id_clashes"
CHARGED_FREE: Final = "_charged_free"  # served lines whose request was not charged and owed nothing
IDS: Final = "ids"  # request_ids seen, each once
ID_LINES: Final = "lines"  # gateway lines with a request_id
# The columns every findings row has, in order (the contract of Reconciliation.findings).
FINDING_COLUMNS: dict[str, pl.DataType] = {
    ENTRY_ID: pl.String(),
    TS_COL: pl.Datetime("us", "UTC"),
    ACCOUNT_ID: pl.String(),
    REQUEST_ID: pl.String(),
    MODEL: pl.String(),
    KIND: pl.String(),
    TOKENS: pl.Int64(),
    EXPECTED: pl.Int64(),
    REFUND: pl.Int64(),
    WIPED: pl.Boolean(),
}
_CHARGED_OK, _OVER, _UNDER, _ON_FAILURE, _UNBILLED, _FAILED_FREE = REQUEST_BUCKETS
_OK_2XX = pl.col(STATUS).is_between(200, 299)
# A line with no status is not a failure (it falls through to the token test, as a 2xx would).
_FAILED = (~_OK_2XX).fill_null(False)
_UNBILLABLE = ~_FAILED & (pl.col(SERVED) > 0)


def requests(gateway: pl.LazyFrame, settings: Settings) -> pl.LazyFrame:
    """Gateway requests projected to what billing needs, with their expected charge (charges.py)."""
    parts = [c for c in charges.USAGE_PARTS if c in gateway.collect_schema().names()]
    g = gateway.select(
        TS_COL, REQUEST_ID, ACCOUNT_ID, MODEL, STATUS, PROMPT_TOKENS, COMPLETION_TOKENS, *parts
    )
    served = pl.col(PROMPT_TOKENS).fill_null(0) + pl.col(COMPLETION_TOKENS).fill_null(0)
    columns = {PROMPT_TOKENS, COMPLETION_TOKENS, *parts}
    priced = charges.with_charges(g, columns, settings.weights, settings.reconcile.rounding)
    return priced.with_columns(served.alias(SERVED)).drop(parts)


def _key(exact: bool) -> pl.Expr:
    rid = pl.col(REQUEST_ID)
    return (rid if exact else pl.when(rid.is_not_null()).then(rid.hash(seed=0))).alias(KEY)


def _split_repeated(frame: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The rows whose KEY occurs once, and those whose KEY occurs several times (usually few)."""
    repeated = (
        frame.filter(pl.col(KEY).is_not_null())
        .group_by(KEY)
        .agg(pl.len().alias("_n"))
        .filter(pl.col("_n") > 1)
        .select(KEY)
    )
    return frame.join(repeated, on=KEY, how="anti"), frame.join(repeated, on=KEY, how="semi")


def by_request(requests_lf: pl.LazyFrame, exact: bool) -> pl.LazyFrame:
    """One row per gateway request_id: its first line by ts and its count of lines of each sort."""
    once, several = _split_repeated(
        requests_lf.filter(pl.col(REQUEST_ID).is_not_null()).with_columns(_key(exact))
    )
    # An ordering aggregation is costly and not streamed, so only ids logged several times get one.
    # A full order: the line picked never depends on row order.
    order = [TS_COL, ACCOUNT_ID, MODEL, STATUS, EXPECTED, PROMPT_PART]
    wrong = charges.alternatives(requests_lf.collect_schema().names())

    def first(column: str) -> pl.Expr:
        return pl.col(column).sort_by(order, nulls_last=True).first()

    return pl.concat(
        [
            once.select(
                KEY,
                pl.col(REQUEST_ID).alias(GW_ID),
                pl.col(TS_COL).alias(GW_TS),
                pl.col(ACCOUNT_ID).alias(GW_ACCOUNT),
                MODEL,
                STATUS,
                EXPECTED,
                PROMPT_PART,
                *wrong,
                pl.lit(1, pl.Int64).alias(LINES),
                _FAILED.cast(pl.Int64).alias(FAILED_LINES),
                _UNBILLABLE.cast(pl.Int64).alias(UNBILLED_LINES),
                pl.lit(False).alias(CLASH),
            ),
            several.group_by(KEY).agg(
                first(REQUEST_ID).alias(GW_ID),
                pl.col(TS_COL).min().alias(GW_TS),
                first(ACCOUNT_ID).alias(GW_ACCOUNT),
                first(MODEL),
                first(STATUS),
                first(EXPECTED),
                first(PROMPT_PART),
                *[first(c) for c in wrong],
                pl.len().cast(pl.Int64).alias(LINES),
                _FAILED.sum().cast(pl.Int64).alias(FAILED_LINES),
                _UNBILLABLE.sum().cast(pl.Int64).alias(UNBILLED_LINES),
                (pl.col(REQUEST_ID).min() != pl.col(REQUEST_ID).max()).alias(CLASH),
            ),
        ]
    )


def _positioned(ledger: pl.LazyFrame, exact: bool) -> pl.LazyFrame:
    once, several = _split_repeated(
        ledger.filter(pl.col(KIND) == LEDGER_DEDUCT)
        .select(TS_COL, ENTRY_ID, ACCOUNT_ID, REQUEST_ID, TOKENS, BALANCE_AFTER)
        .with_columns(_key(exact), pl.lit(True).alias(DEDUCT))
    )
    # The rule's order (ts, then entry_id), then the other columns: ties never depend on row order.
    order = [TS_COL, ENTRY_ID, TOKENS, ACCOUNT_ID, BALANCE_AFTER]
    return pl.concat(
        [
            once.with_columns(pl.when(pl.col(KEY).is_not_null()).then(pl.lit(0, pl.Int64)).alias(POSITION)),
            several.with_columns(
                pl.int_range(pl.len(), dtype=pl.Int64).over(REQUEST_ID, order_by=order).alias(POSITION)
            ),
        ]
    )


def joined(
    requests_lf: pl.LazyFrame,
    ledger: pl.LazyFrame,
    settings: Settings,
    span: tuple[datetime | None, datetime | None],
    *,
    exact: bool = False,
    gaps: Sequence[tuple[datetime, datetime]] = (),
) -> pl.LazyFrame:
    """Every deduction with its request, kind and refund; and one row per request with no deduction.

    `gaps` are the detected log gaps: a deduction whose request is not in the logs, at a time inside
    one, is `in_log_gap` (the gateway's line is missing, not the request; not judged, refund 0).

    `span` is the first and last time of the whole gateway (not just these requests). Deduction
    rows have DEDUCT true; the others have a null DEDUCT, KIND and REQUEST_ID (the id is in GW_ID).
    """
    rs = settings.reconcile
    wrong = charges.alternatives(requests_lf.collect_schema().names())
    j = (
        _positioned(ledger, exact)
        .join(by_request(requests_lf, exact), on=KEY, how="full", coalesce=True)
        .with_columns(pl.col(LINES).is_not_null().alias(FOUND))
    )
    found = pl.col(FOUND)
    first, last = span
    near_edge = (
        pl.lit(True)
        if first is None or last is None
        else (pl.col(TS_COL) < first + rs.edge_margin) | (pl.col(TS_COL) > last - rs.edge_margin)
    )
    in_gap = pl.any_horizontal(
        pl.lit(False), *(pl.col(TS_COL).is_between(a, b, closed="left") for a, b in gaps)
    )
    amount, expected, tol = pl.col(TOKENS), pl.col(EXPECTED), rs.tolerance_tokens
    over = amount > expected + tol
    kind = (
        pl.when(pl.col(POSITION) > 0)
        .then(pl.lit(Finding.DUPLICATE))
        .when(pl.col(REQUEST_ID).is_null())
        .then(pl.lit(Finding.ORPHAN))
        .when(~found & in_gap)
        .then(pl.lit(Finding.IN_LOG_GAP))
        .when(~found & near_edge)
        .then(pl.lit(Finding.OUT_OF_SPAN))
        .when(~found)
        .then(pl.lit(Finding.ORPHAN))
        # A failed request charged nothing was billed right (LiteLLM logs every failed call, spend 0).
        .when(~_OK_2XX & (amount == 0))
        .then(pl.lit(Finding.OK))
        .when(~_OK_2XX)
        .then(pl.lit(Finding.FAILED_CHARGED))
    )
    # An overcharge equal (within the tolerance) to what a known wrong rule charges is named after it.
    for column, name in (
        (charges.FULL_PRICE, Finding.CACHED_AT_FULL_PRICE),
        (charges.TWICE, Finding.REASONING_COUNTED_TWICE),
    ):
        if column in wrong:
            kind = kind.when(over & ((amount - pl.col(column)).abs() <= tol)).then(pl.lit(name))
    classified = (
        kind.when(over)
        .then(pl.lit(Finding.OVERCHARGE))
        .when(amount < expected - tol)
        .then(pl.lit(Finding.UNDERCHARGE))
        .otherwise(pl.lit(Finding.OK))
    )
    refundable = (
        pl.col(STATUS).is_in(list(rs.refundable_statuses)) if rs.refundable_statuses else pl.lit(True)
    )
    k = pl.col(KIND)
    refund = (
        pl.when(k == Finding.DUPLICATE)
        .then(amount)
        .when(k == Finding.ORPHAN)
        .then(amount if rs.refund_orphans else pl.lit(0, pl.Int64))
        .when((k == Finding.FAILED_CHARGED) & refundable)
        .then(amount)
        .when(k.is_in(OVERCHARGE_KINDS))
        .then(amount - expected)
        .when(k.is_not_null())
        .then(pl.lit(0, pl.Int64))
    )
    return j.with_columns(pl.when(pl.col(DEDUCT)).then(classified).alias(KIND)).with_columns(
        refund.alias(REFUND),
        (k.is_in(OVERCHARGE_KINDS) & (pl.col(BALANCE_AFTER) == 0)).fill_null(False).alias(WIPED),
    )


def deductions(joined_lf: pl.LazyFrame) -> pl.LazyFrame:
    """The ledger's deductions among the joined rows."""
    return joined_lf.filter(pl.col(DEDUCT).fill_null(False))


def deduction_clashes() -> pl.Expr:
    """Deductions matched to a request with another id (a hash collision): must be 0."""
    return (pl.col(FOUND) & (pl.col(GW_ID) != pl.col(REQUEST_ID))).fill_null(False).sum().alias(CLASHES)


def by_account_kind(joined_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Per (account, kind) of the deductions, and per bucket the gateway lines with a request_id.

    Requests with no deduction fall in the group with a null account and kind. Summing over the
    groups gives the totals per kind, per account and per bucket.
    """
    # Each request_id once: the row of its first deduction, or its row without any.
    once = pl.col(FOUND) & (pl.col(POSITION).is_null() | (pl.col(POSITION) == 0))
    k, lines, zero = pl.col(KIND), pl.col(LINES), pl.lit(0, pl.Int64)
    billed = pl.col(DEDUCT).fill_null(False)
    bad = billed & (k != Finding.OK)

    def weight(condition: pl.Expr, value: pl.Expr) -> pl.Expr:
        return pl.when(once & condition).then(value).otherwise(zero).sum()

    return joined_lf.group_by(ACCOUNT_ID, KIND).agg(
        billed.sum().cast(pl.Int64).alias(COUNT),
        pl.col(TOKENS).sum(),
        pl.col(REFUND).sum(),
        pl.col(TS_COL).min().alias(FIRST),
        pl.col(TS_COL).max().alias(LAST),
        pl.col(TS_COL).filter(bad).min().alias(FIRST_BAD),
        pl.col(TS_COL).filter(bad).max().alias(LAST_BAD),
        deduction_clashes(),
        pl.col(CLASH).fill_null(False).sum().cast(pl.Int64).alias(ID_CLASHES),
        weight(billed & (k == Finding.OK) & ~_FAILED, lines).alias(_CHARGED_OK),
        weight(~billed, lines - pl.col(FAILED_LINES) - pl.col(UNBILLED_LINES)).alias(CHARGED_FREE),
        weight(billed & k.is_in(OVERCHARGE_KINDS), lines).alias(_OVER),
        weight(billed & (k == Finding.UNDERCHARGE), lines).alias(_UNDER),
        weight(billed & (k == Finding.FAILED_CHARGED), lines).alias(_ON_FAILURE),
        weight(~billed, pl.col(UNBILLED_LINES)).alias(_UNBILLED),
        (weight(~billed, pl.col(FAILED_LINES)) + weight(billed & (k == Finding.OK) & _FAILED, lines)).alias(
            _FAILED_FREE
        ),
        weight(pl.lit(True), zero + 1).alias(IDS),
        weight(pl.lit(True), lines).alias(ID_LINES),
    )


def finding_rows(joined_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Flagged deductions (every kind but ok) and served requests with no deduction, as findings rows.

    A request with no deduction is one row, from its first line; PROMPT_PART is kept for patterns.
    """
    billed = pl.col(DEDUCT).fill_null(False)
    keep = (billed & (pl.col(KIND) != Finding.OK)) | (~billed & (pl.col(UNBILLED_LINES) > 0))
    return joined_lf.filter(keep).select(
        ENTRY_ID,
        pl.coalesce(TS_COL, GW_TS).alias(TS_COL),
        pl.coalesce(ACCOUNT_ID, GW_ACCOUNT).alias(ACCOUNT_ID),
        pl.coalesce(REQUEST_ID, GW_ID).alias(REQUEST_ID),
        MODEL,
        pl.coalesce(KIND, pl.lit(Finding.UNBILLED)).alias(KIND),
        pl.col(TOKENS).fill_null(0),
        EXPECTED,
        pl.col(REFUND).fill_null(0),
        WIPED,
        PROMPT_PART,
    )


def lines_without_id(requests_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Gateway lines with no request_id per bucket (they can match no deduction), all lines, and the
    float sum of their expected tokens (MAGNITUDE)."""
    no_id = pl.col(REQUEST_ID).is_null()
    return requests_lf.select(
        pl.len().alias("requests"),
        pl.col(_EXPECTED_F).sum().alias(MAGNITUDE),
        no_id.sum().alias("null_ids"),
        (no_id & ~_FAILED & ~_UNBILLABLE).sum().alias(_CHARGED_OK),
        (no_id & _UNBILLABLE).sum().alias(_UNBILLED),
        (no_id & _FAILED).sum().alias(_FAILED_FREE),
    )


def expected_by_account(requests_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Per gateway account, what a correct ledger deducts: the expected charge of its 2xx requests."""
    return requests_lf.group_by(ACCOUNT_ID).agg(
        pl.col(EXPECTED).filter(_OK_2XX).sum().alias("tokens_expected")
    )


def unbilled_without_id(requests_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Served lines with no request_id (so no deduction can be theirs), as findings rows."""
    return requests_lf.filter(pl.col(REQUEST_ID).is_null() & _UNBILLABLE).select(
        pl.lit(None, pl.String).alias(ENTRY_ID),
        TS_COL,
        ACCOUNT_ID,
        REQUEST_ID,
        MODEL,
        pl.lit(Finding.UNBILLED).alias(KIND),
        pl.lit(0, pl.Int64).alias(TOKENS),
        EXPECTED,
        pl.lit(0, pl.Int64).alias(REFUND),
        pl.lit(False).alias(WIPED),
        PROMPT_PART,
    )
