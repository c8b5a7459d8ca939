"""Each deduction against its gateway request: expected charge, kind and refund; each request's bucket.

Everything here stays lazy: the ledger is joined to the gateway projected to the few columns the rules
need, and the rank of a deduction within its request comes from a window expression, so the plan can
stream over millions of deductions.
"""

from __future__ import annotations

import polars as pl

from analyzer.config import Settings
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

EXPECTED = "expected"
REFUND = "refund_tokens"
WIPED = "balance_wiped"
BUCKET = "bucket"
# Position of a deduction among those of its request_id (0 = the first); null without a request_id.
POSITION = "_position"
FOUND = "_found"
SERVED = "_served"  # tokens served by the request (unweighted prompt + completion)
PROMPT_PART = "_prompt_part"  # the weighted prompt tokens of the expected charge
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

_OK_2XX = pl.col(STATUS).is_between(200, 299)


def requests(gateway: pl.LazyFrame, settings: Settings) -> pl.LazyFrame:
    """Gateway requests projected to what billing needs, with their expected charge."""
    g = gateway.select(TS_COL, REQUEST_ID, ACCOUNT_ID, MODEL, STATUS, PROMPT_TOKENS, COMPLETION_TOKENS)
    prompt = pl.col(PROMPT_TOKENS).fill_null(0)
    completion = pl.col(COMPLETION_TOKENS).fill_null(0)
    if settings.weights:
        weights = pl.LazyFrame(
            {
                MODEL: list(settings.weights),
                "_wp": [w.prompt for w in settings.weights.values()],
                "_wc": [w.completion for w in settings.weights.values()],
            },
            schema={MODEL: pl.String(), "_wp": pl.Int64(), "_wc": pl.Int64()},
        )
        g = g.join(weights, on=MODEL, how="left")
        wp, wc = pl.col("_wp").fill_null(1), pl.col("_wc").fill_null(1)
    else:
        wp, wc = pl.lit(1, pl.Int64), pl.lit(1, pl.Int64)
    return g.with_columns(
        (prompt * wp + completion * wc).alias(EXPECTED),
        (prompt * wp).alias(PROMPT_PART),
        (prompt + completion).alias(SERVED),
    ).drop("_wp", "_wc", strict=False)


def deductions(requests_lf: pl.LazyFrame, ledger: pl.LazyFrame, settings: Settings) -> pl.LazyFrame:
    """Every deduction with its request's model, status and expected charge, its kind and its refund."""
    rs = settings.reconcile
    # A request_id logged twice by the gateway counts once, as its first line, so a join cannot
    # multiply deductions.
    by_id = (
        requests_lf.filter(pl.col(REQUEST_ID).is_not_null())
        .filter(pl.int_range(pl.len()).over(REQUEST_ID, order_by=TS_COL) == 0)
        .select(
            REQUEST_ID,
            MODEL,
            STATUS,
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
            EXPECTED,
            PROMPT_PART,
            pl.lit(True).alias(FOUND),
        )
    )
    span = requests_lf.select(
        pl.col(TS_COL).min().alias("_span_first"), pl.col(TS_COL).max().alias("_span_last")
    )
    d = (
        ledger.filter(pl.col(KIND) == LEDGER_DEDUCT)
        .select(TS_COL, ENTRY_ID, ACCOUNT_ID, REQUEST_ID, TOKENS, BALANCE_AFTER)
        .with_columns(
            pl.when(pl.col(REQUEST_ID).is_not_null())
            .then(pl.int_range(pl.len()).over(REQUEST_ID, order_by=[TS_COL, ENTRY_ID]))
            .alias(POSITION)
        )
        .join(by_id, on=REQUEST_ID, how="left")
        .join(span, how="cross")
    )
    margin = pl.duration(microseconds=int(rs.edge_margin.total_seconds() * 1_000_000))
    found = pl.col(FOUND).fill_null(False)
    near_edge = (
        pl.col("_span_first").is_null()
        | (pl.col(TS_COL) < pl.col("_span_first") + margin)
        | (pl.col(TS_COL) > pl.col("_span_last") - margin)
    )
    amount, expected, tol = pl.col(TOKENS), pl.col(EXPECTED), rs.tolerance_tokens
    kind = (
        pl.when(pl.col(POSITION) > 0)
        .then(pl.lit("duplicate"))
        .when(pl.col(REQUEST_ID).is_null())
        .then(pl.lit("orphan"))
        .when(~found & near_edge)
        .then(pl.lit("out_of_span"))
        .when(~found)
        .then(pl.lit("orphan"))
        .when(~_OK_2XX)
        .then(pl.lit("failed_charged"))
        .when(amount > expected + tol)
        .then(pl.lit("overcharge"))
        .when(amount < expected - tol)
        .then(pl.lit("undercharge"))
        .otherwise(pl.lit("ok"))
    )
    refundable = (
        pl.col(STATUS).is_in(list(rs.refundable_statuses)) if rs.refundable_statuses else pl.lit(True)
    )
    k = pl.col(KIND)
    refund = (
        pl.when(k == "duplicate")
        .then(amount)
        .when(k == "orphan")
        .then(amount if rs.refund_orphans else pl.lit(0, pl.Int64))
        .when((k == "failed_charged") & refundable)
        .then(amount)
        .when(k == "overcharge")
        .then(amount - expected)
        .otherwise(pl.lit(0, pl.Int64))
    )
    return (
        d.with_columns(kind.alias(KIND))
        .with_columns(
            refund.alias(REFUND),
            ((k == "overcharge") & (pl.col(BALANCE_AFTER) == 0)).fill_null(False).alias(WIPED),
        )
        .drop("_span_first", "_span_last")
    )


def buckets(requests_lf: pl.LazyFrame, deductions_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Every gateway request with the bucket its FIRST deduction (or the lack of one) puts it in."""
    first = deductions_lf.filter((pl.col(POSITION) == 0) & pl.col(FOUND).fill_null(False)).select(
        REQUEST_ID, pl.col(KIND).alias("_first_kind")
    )
    fk = pl.col("_first_kind")
    bucket = (
        pl.when(fk == "failed_charged")
        .then(pl.lit("charged_on_failure"))
        .when(fk == "overcharge")
        .then(pl.lit("overcharged"))
        .when(fk == "undercharge")
        .then(pl.lit("undercharged"))
        .when(fk.is_not_null())
        .then(pl.lit("charged_ok"))
        .when(~_OK_2XX)
        .then(pl.lit("failed_free"))
        .when(pl.col(SERVED) > 0)
        .then(pl.lit("unbilled"))
        .otherwise(pl.lit("charged_ok"))
    )
    return requests_lf.join(first, on=REQUEST_ID, how="left").with_columns(bucket.alias(BUCKET))


def unbilled_findings(buckets_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Served requests with no deduction at all, as findings rows."""
    return buckets_lf.filter(pl.col(BUCKET) == "unbilled").select(
        pl.lit(None, pl.String).alias(ENTRY_ID),
        TS_COL,
        ACCOUNT_ID,
        REQUEST_ID,
        MODEL,
        pl.lit("unbilled").alias(KIND),
        pl.lit(0, pl.Int64).alias(TOKENS),
        EXPECTED,
        pl.lit(0, pl.Int64).alias(REFUND),
        pl.lit(False).alias(WIPED),
    )


def deduction_findings(deductions_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Flagged deductions (every kind but ok), as findings rows."""
    return deductions_lf.filter(pl.col(KIND) != "ok").select(list(FINDING_COLUMNS))
