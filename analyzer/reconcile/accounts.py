"""Per-account totals, per-kind spans, and money beside tokens when prices are configured."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import polars as pl

from analyzer.config import ModelPrice
from analyzer.findings import COUNT, DEDUCTION_KINDS, FIRST_AT, LAST_AT, OTHER_FINDINGS, TOKENS_DEDUCTED
from analyzer.notes import Note, NoteCode
from analyzer.reconcile.balances import ALREADY_REFUNDED
from analyzer.reconcile.classify import FIRST_BAD, LAST_BAD, PROMPT_PART, REFUND
from analyzer.schema import ACCOUNT_ID, KIND, MODEL, TOKENS
from analyzer.schema import TS as TS_COL

ALL_KINDS = (*DEDUCTION_KINDS, *OTHER_FINDINGS)
EXPECTED_TOKENS = "tokens_expected"
REFUND_USD = "refund_usd"
MICRO = 1_000_000  # micro-dollars per US dollar
DEDUCTIONS = "deductions"
_REFUND_IN = "_refund_input"
_REFUND_OUT = "_refund_output"
_FIRST, _LAST = "first_bad_at", "last_bad_at"


def deduction_rows(groups: pl.DataFrame) -> pl.DataFrame:
    """Per account with a deduction: totals, counts per kind, first/last bad deduction.

    `groups` has one row per (account, kind) with count, tokens, refund, first_bad and last_bad.
    """
    return groups.group_by(ACCOUNT_ID).agg(
        pl.col(COUNT).sum().cast(pl.Int64).alias(DEDUCTIONS),
        pl.col(TOKENS).sum().alias(TOKENS_DEDUCTED),
        pl.col(REFUND).sum(),
        *[pl.col(COUNT).filter(pl.col(KIND) == k).sum().cast(pl.Int64).alias(k) for k in DEDUCTION_KINDS],
        pl.col(FIRST_BAD).min().alias(_FIRST),
        pl.col(LAST_BAD).max().alias(_LAST),
    )


def finish_accounts(
    deductions: pl.DataFrame,
    other_findings: pl.DataFrame,
    expected: pl.DataFrame,
    balances: pl.DataFrame,
    usd: pl.DataFrame | None,
) -> pl.DataFrame:
    """Account rows: deductions, other findings, expected tokens, refunds already made (and money).

    One row per account with a deduction, a finding or an expected charge, sorted by refund desc, id.
    `expected` is per gateway account, so the accounts' tokens_expected add up to the total.
    """
    others = other_findings.group_by(ACCOUNT_ID).agg(
        *[(pl.col(KIND) == k).sum().cast(pl.Int64).alias(k) for k in OTHER_FINDINGS],
        pl.col(TS_COL).min().alias("_first_other"),
        pl.col(TS_COL).max().alias("_last_other"),
    )
    expected = expected.filter(pl.col(EXPECTED_TOKENS) != 0)
    ids = pl.concat([f.select(ACCOUNT_ID) for f in (deductions, others, expected)]).unique()

    def attach(frame: pl.DataFrame, on: pl.DataFrame) -> pl.DataFrame:
        return frame.join(on, on=ACCOUNT_ID, how="left", nulls_equal=True)

    out = attach(
        attach(attach(attach(ids, deductions), others), expected),
        balances.select(ACCOUNT_ID, ALREADY_REFUNDED),
    )
    counts = [DEDUCTIONS, TOKENS_DEDUCTED, EXPECTED_TOKENS, REFUND, ALREADY_REFUNDED, *ALL_KINDS]
    out = out.with_columns(
        pl.col(counts).fill_null(0),
        pl.min_horizontal(_FIRST, "_first_other").alias(_FIRST),
        pl.max_horizontal(_LAST, "_last_other").alias(_LAST),
    )
    head = [ACCOUNT_ID, DEDUCTIONS, TOKENS_DEDUCTED, EXPECTED_TOKENS, REFUND, ALREADY_REFUNDED]
    tail = [*ALL_KINDS, _FIRST, _LAST]
    if usd is not None:
        out = attach(out, usd)
        tail.append(REFUND_USD)
    return out.select(*head, *tail).sort([REFUND, ACCOUNT_ID], descending=[True, False], nulls_last=True)


def spans(findings: pl.DataFrame) -> pl.DataFrame:
    """First and last time each finding kind occurred per model."""
    return (
        findings.group_by(KIND, MODEL)
        .agg(
            pl.col(TS_COL).min().alias(FIRST_AT),
            pl.col(TS_COL).max().alias(LAST_AT),
            pl.len().cast(pl.Int64).alias(COUNT),
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
) -> tuple[pl.DataFrame, str, tuple[Note, ...]]:
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
    notes: tuple[Note, ...] = ()
    if unpriced.height:
        models = tuple(m or "" for m in unpriced[MODEL].unique().sort(nulls_last=False).to_list())  # "": none
        tokens = int(unpriced[_REFUND_IN].sum()) + int(unpriced[_REFUND_OUT].sum())
        notes = (Note(NoteCode.REFUNDS_UNPRICED, names=models, count=tokens),)
    return per_account, _text(Decimal(total)), notes


def _decimal_text(e: pl.Expr) -> pl.Expr:
    # Exact digits, without the trailing zeros the fixed scale adds.
    return e.cast(pl.String).str.replace(r"(\.\d*?)0+$", "$1").str.replace(r"\.$", "")


def _text(d: Decimal) -> str:
    s = f"{d:f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def micro_usd(deductions: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """Refunds of a ledger in micro-dollars as exact dollar text: per account, and the total."""
    refund = pl.col(REFUND)
    dollars = pl.format(
        "{}{}.{}",
        pl.when(refund < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        refund.abs() // MICRO,
        (refund.abs() % MICRO).cast(pl.String).str.zfill(6),
    )
    per_account = deductions.filter(refund != 0).select(ACCOUNT_ID, _decimal_text(dollars).alias(REFUND_USD))
    total = Decimal(int(deductions[REFUND].sum())).scaleb(-6)
    return per_account, _text(total)
