"""Per-account totals, per-kind spans, and money beside tokens when prices are configured."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import polars as pl

from analyzer.config import ModelPrice
from analyzer.findings import DEDUCTION_KINDS, OTHER_FINDINGS
from analyzer.reconcile.balances import ALREADY_REFUNDED
from analyzer.reconcile.classify import EXPECTED, FOUND, POSITION, PROMPT_PART, REFUND
from analyzer.schema import ACCOUNT_ID, KIND, MODEL, TOKENS
from analyzer.schema import TS as TS_COL

ALL_KINDS = (*DEDUCTION_KINDS, *OTHER_FINDINGS)
REFUND_USD = "refund_usd"
_REFUND_IN = "_refund_input"
_REFUND_OUT = "_refund_output"
_BILLED = "_billed"  # the deduction is the first of a request found in the gateway


def billed() -> pl.Expr:
    """True for the first deduction of a request the gateway logged: the one that bills it."""
    return ((pl.col(POSITION) == 0) & pl.col(FOUND)).fill_null(False)


def account_rows(deductions_lf: pl.LazyFrame, other_findings: pl.LazyFrame) -> pl.LazyFrame:
    """One row per account with a deduction or a finding: totals, counts per kind, first/last bad time."""
    rows = pl.concat(
        [
            deductions_lf.select(
                ACCOUNT_ID,
                TS_COL,
                KIND,
                TOKENS,
                pl.when(billed()).then(pl.col(EXPECTED)).otherwise(0).alias(EXPECTED),
                REFUND,
                pl.lit(1, pl.Int64).alias("_deduction"),
            ),
            other_findings.select(
                ACCOUNT_ID,
                TS_COL,
                KIND,
                pl.lit(0, pl.Int64).alias(TOKENS),
                pl.lit(0, pl.Int64).alias(EXPECTED),
                pl.lit(0, pl.Int64).alias(REFUND),
                pl.lit(0, pl.Int64).alias("_deduction"),
            ),
        ]
    )
    bad = pl.col(KIND) != "ok"
    return rows.group_by(ACCOUNT_ID).agg(
        pl.col("_deduction").sum().alias("deductions"),
        pl.col(TOKENS).sum().alias("tokens_deducted"),
        pl.col(EXPECTED).sum().alias("tokens_expected"),
        pl.col(REFUND).sum().alias(REFUND),
        *[(pl.col(KIND) == k).sum().cast(pl.Int64).alias(k) for k in ALL_KINDS],
        pl.col(TS_COL).filter(bad).min().alias("first_bad_at"),
        pl.col(TS_COL).filter(bad).max().alias("last_bad_at"),
    )


def finish_accounts(rows: pl.DataFrame, balances: pl.DataFrame, usd: pl.DataFrame | None) -> pl.DataFrame:
    """Add refunds already in the ledger (and money) to the account rows; sort by refund desc, id."""
    out = rows.join(balances.select(ACCOUNT_ID, ALREADY_REFUNDED), on=ACCOUNT_ID, how="left").with_columns(
        pl.col(ALREADY_REFUNDED).fill_null(0)
    )
    head = [ACCOUNT_ID, "deductions", "tokens_deducted", "tokens_expected", REFUND, ALREADY_REFUNDED]
    tail = [*ALL_KINDS, "first_bad_at", "last_bad_at"]
    if usd is not None:
        out = out.join(usd, on=ACCOUNT_ID, how="left")
        tail.append(REFUND_USD)
    return out.select(*head, *tail).sort([REFUND, ACCOUNT_ID], descending=[True, False])


def spans(findings: pl.DataFrame) -> pl.DataFrame:
    """First and last time each finding kind occurred per model."""
    return (
        findings.group_by(KIND, MODEL)
        .agg(
            pl.col(TS_COL).min().alias("first_at"),
            pl.col(TS_COL).max().alias("last_at"),
            pl.len().cast(pl.Int64).alias("count"),
        )
        .sort(KIND, MODEL, nulls_last=True)
    )


def refund_split(deductions_lf: pl.LazyFrame) -> pl.LazyFrame:
    """Per account and model, the refund split into input and output tokens, for pricing.

    A charge is read as its prompt part first, then the rest; a refund takes back the last tokens
    of the charge, so an excess over the expected charge is all output, and a whole refund is the
    prompt part at the input price plus the rest at the output price.
    """
    prompt_part = pl.min_horizontal(pl.col(TOKENS), pl.col(PROMPT_PART).fill_null(0))
    out_part = pl.min_horizontal(pl.col(REFUND), pl.col(TOKENS) - prompt_part).clip(lower_bound=0)
    return (
        deductions_lf.filter(pl.col(REFUND) > 0)
        .with_columns(out_part.alias(_REFUND_OUT))
        .with_columns((pl.col(REFUND) - pl.col(_REFUND_OUT)).alias(_REFUND_IN))
        .group_by(ACCOUNT_ID, MODEL)
        .agg(pl.col(_REFUND_IN).sum(), pl.col(_REFUND_OUT).sum())
    )


def price_refunds(
    split: pl.DataFrame, prices: Mapping[str, ModelPrice]
) -> tuple[pl.DataFrame, str, tuple[str, ...]]:
    """Refund USD per account (exact Decimal text), the total, and notes on what could not be priced."""
    per_token = {
        m: (p.input_per_million.scaleb(-6), p.output_per_million.scaleb(-6)) for m, p in prices.items()
    }
    exponents = [d.as_tuple().exponent for pair in per_token.values() for d in pair]
    scale = max([-e for e in exponents if isinstance(e, int) and e < 0] + [0])
    dec = pl.Decimal(38, scale)
    price_frame = pl.DataFrame(
        {
            MODEL: list(per_token),
            "_pin": [p[0] for p in per_token.values()],
            "_pout": [p[1] for p in per_token.values()],
        },
        schema={MODEL: pl.String(), "_pin": dec, "_pout": dec},
    )
    priced = split.join(price_frame, on=MODEL, how="left")
    unpriced = priced.filter(pl.col("_pin").is_null())
    money = (pl.col(_REFUND_IN).cast(pl.Decimal(38, 0)) * pl.col("_pin")) + (
        pl.col(_REFUND_OUT).cast(pl.Decimal(38, 0)) * pl.col("_pout")
    )
    per_account = (
        priced.filter(pl.col("_pin").is_not_null()).group_by(ACCOUNT_ID).agg(money.sum().alias("_usd"))
    )
    total = per_account["_usd"].sum() if per_account.height else Decimal(0)
    per_account = per_account.select(ACCOUNT_ID, _decimal_text(pl.col("_usd")).alias(REFUND_USD))
    notes: tuple[str, ...] = ()
    if unpriced.height:
        models = unpriced[MODEL].fill_null("(no model)").unique().sort().to_list()
        tokens = int(unpriced[_REFUND_IN].sum()) + int(unpriced[_REFUND_OUT].sum())
        notes = (f"reconcile: no price for {', '.join(models)}: {tokens} refund tokens not in refund_usd",)
    return per_account, _text(Decimal(total)), notes


def _decimal_text(e: pl.Expr) -> pl.Expr:
    # Exact digits, without the trailing zeros the fixed scale adds.
    return e.cast(pl.String).str.replace(r"(\.\d*?)0+$", "$1").str.replace(r"\.$", "")


def _text(d: Decimal) -> str:
    s = f"{d:f}"
    return s.rstrip("0").rstrip(".") if "." in s else s
