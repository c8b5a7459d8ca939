"""Ledger deductions checked against the tokens the gateway served; refunds per account; fault patterns.

    classify.py    each deduction's kind and refund, each request's bucket (lazy, streaming joins)
    balances.py    running balances per account: breaks, the replay, refunds already made
    accounts.py    per-account rows, per-kind spans, refunds in USD when prices are set
    patterns.py    what went wrong: multiplied token counts, bunched duplicates, wiped balances
    invariants.py  totals that must add up

`reconcile` builds every lazy plan first and collects them together, so each input is scanned once.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from analyzer.config import Settings
from analyzer.findings import DEDUCTION_KINDS, OTHER_FINDINGS, REQUEST_BUCKETS, KindTotal, Reconciliation
from analyzer.reconcile import accounts as acc
from analyzer.reconcile import balances as bal
from analyzer.reconcile import classify as cls
from analyzer.reconcile.invariants import check_invariants
from analyzer.reconcile.patterns import find_patterns
from analyzer.schema import BALANCE_AFTER, KIND, LEDGER_KINDS, LEDGER_RESET, REQUEST_ID, STATUS, TOKENS
from analyzer.schema import TS as TS_COL

__all__ = ["reconcile"]


def reconcile(gateway: pl.LazyFrame, ledger: pl.LazyFrame, settings: Settings) -> Reconciliation:
    """Classify every deduction, bucket every request, check balances, and total refunds per account."""
    requests = cls.requests(gateway, settings)
    deductions = cls.deductions(requests, ledger, settings)
    buckets = cls.buckets(requests, deductions)
    checked = bal.checked(ledger)
    unbilled = cls.unbilled_findings(buckets)
    breaks = bal.break_findings(checked)
    plans: dict[str, pl.LazyFrame] = {
        "flagged": deductions.filter(pl.col(KIND) != "ok").select(*cls.FINDING_COLUMNS, cls.PROMPT_PART),
        "by_kind": deductions.group_by(KIND).agg(
            pl.len().alias("count"), pl.col(TOKENS).sum(), pl.col(cls.REFUND).sum()
        ),
        "summary": deductions.select(
            pl.len().alias("deductions"),
            pl.col(TOKENS).sum().alias("tokens"),
            pl.col(TS_COL).min().alias("first"),
            pl.col(TS_COL).max().alias("last"),
        ),
        "buckets": buckets.group_by(cls.BUCKET).agg(pl.len().alias("count")),
        # What a correct ledger deducts: the expected charge of every 2xx request.
        "expected": requests.select(
            pl.col(cls.EXPECTED).filter(pl.col(STATUS).is_between(200, 299)).sum().alias("expected")
        ),
        "gateway": gateway.select(
            pl.len().alias("requests"),
            pl.col(REQUEST_ID).null_count().alias("null_ids"),
            (pl.col(REQUEST_ID).drop_nulls().len() - pl.col(REQUEST_ID).drop_nulls().n_unique()).alias(
                "repeated_ids"
            ),
        ),
        "ledger": ledger.select(
            pl.col(BALANCE_AFTER).null_count().alias("null_balances"),
            (~pl.col(KIND).is_in(list(LEDGER_KINDS))).sum().alias("unknown_kinds"),
        ),
        "unbilled": unbilled,
        "breaks": breaks,
        "balances": bal.account_balances(checked),
        "accounts": acc.account_rows(deductions, pl.concat([unbilled, breaks])),
        "resets": ledger.filter(pl.col(KIND) == LEDGER_RESET).select(TS_COL).unique().sort(TS_COL),
    }
    if settings.prices:
        plans["split"] = acc.refund_split(deductions)
    out = dict(zip(plans, pl.collect_all(plans.values()), strict=True))

    flagged = out["flagged"]
    findings = pl.concat([flagged.select(list(cls.FINDING_COLUMNS)), out["unbilled"], out["breaks"]]).sort(
        TS_COL, cls.REFUND, "entry_id", "request_id", nulls_last=True
    )
    summary, gw, lg = (
        out["summary"].row(0, named=True),
        out["gateway"].row(0, named=True),
        out["ledger"].row(0, named=True),
    )
    by_kind = _by_kind(out["by_kind"], findings)
    request_buckets = {b: 0 for b in REQUEST_BUCKETS} | dict(out["buckets"].iter_rows())
    refund_total = sum(by_kind[k].refund_tokens for k in DEDUCTION_KINDS)

    notes = list(_notes(gw, lg))
    usd_rows, refund_usd = None, None
    if settings.prices:
        usd_rows, refund_usd, price_notes = acc.price_refunds(out["split"], settings.prices)
        notes.extend(price_notes)
    accounts = acc.finish_accounts(out["accounts"], out["balances"], usd_rows)
    first: datetime | None = summary["first"]
    last: datetime | None = summary["last"]
    return Reconciliation(
        deductions=int(summary["deductions"]),
        tokens_deducted=int(summary["tokens"] or 0),
        tokens_expected=int(out["expected"]["expected"][0] or 0),
        refund_tokens_total=refund_total,
        by_kind=by_kind,
        request_buckets=request_buckets,
        findings=findings,
        accounts=accounts,
        spans=acc.spans(findings),
        patterns=find_patterns(flagged, first, last, settings.reconcile),
        invariants=check_invariants(
            deductions=int(summary["deductions"]),
            tokens_deducted=int(summary["tokens"] or 0),
            requests=int(gw["requests"]),
            refund_total=refund_total,
            by_kind=by_kind,
            request_buckets=request_buckets,
            accounts=accounts,
            balances=out["balances"],
        ),
        resets=tuple(out["resets"][TS_COL].to_list()),
        notes=tuple(notes),
        refund_usd=refund_usd,
    )


def _by_kind(deduction_kinds: pl.DataFrame, findings: pl.DataFrame) -> dict[str, KindTotal]:
    totals = {k: KindTotal(0, 0, 0) for k in (*DEDUCTION_KINDS, *OTHER_FINDINGS)}
    other = (
        findings.filter(pl.col(KIND).is_in(list(OTHER_FINDINGS)))
        .group_by(KIND)
        .agg(pl.len().alias("count"), pl.col(TOKENS).sum(), pl.col(cls.REFUND).sum())
    )
    for kind, count, tokens, refund in pl.concat(
        [deduction_kinds, other], how="vertical_relaxed"
    ).iter_rows():
        totals[kind] = KindTotal(int(count), int(tokens), int(refund))
    return totals


def _notes(gw: dict[str, int], lg: dict[str, int]) -> tuple[str, ...]:
    notes = []
    if gw["requests"] and gw["null_ids"] == gw["requests"]:
        notes.append(
            "reconcile: the gateway logs have no request_id: every deduction is orphan or out_of_span"
        )
    elif gw["null_ids"]:
        notes.append(
            f"reconcile: {gw['null_ids']} gateway requests have no request_id and match no deduction"
        )
    if gw["repeated_ids"]:
        notes.append(
            f"reconcile: {gw['repeated_ids']} gateway lines repeat a request_id; the first line is used"
        )
    if lg["null_balances"]:
        notes.append(
            f"reconcile: {lg['null_balances']} ledger entries have no balance_after; their balance is not checked"
        )
    if lg["unknown_kinds"]:
        notes.append(
            f"reconcile: {lg['unknown_kinds']} ledger entries of an unknown kind are kept but not reconciled"
        )
    return tuple(notes)
