"""The ledger and refunds sections of the Markdown post-mortem."""

from __future__ import annotations

from typing import Any, cast

from analyzer.findings import REFUND_TOKENS, Finding, RequestBucket
from analyzer.reconcile import totals as usage
from analyzer.report.escape import escape
from analyzer.report.formatting import DASH, Clock, percent, table
from analyzer.report.model import Report
from analyzer.schema import ACCOUNT_ID, MODEL

# What each finding kind means, for a reader who has not seen the code.
KIND_MEANING: dict[str, str] = {
    Finding.OK: "charged what the request served",
    Finding.OVERCHARGE: "charged more than the request served",
    Finding.CACHED_AT_FULL_PRICE: "cached prompt tokens charged at the full prompt price",
    Finding.REASONING_COUNTED_TWICE: "reasoning tokens charged again on top of the completion",
    Finding.UNDERCHARGE: "charged less than the request served",
    Finding.DUPLICATE: "the same request charged again",
    Finding.FAILED_CHARGED: "a failed request charged",
    Finding.ORPHAN: "no such request in the gateway logs",
    Finding.IN_LOG_GAP: "request missing inside a gap in the gateway logs (not judged)",
    Finding.OUT_OF_SPAN: "request outside the logs given (not judged)",
    Finding.UNBILLED: "a served request never charged",
    Finding.BALANCE_BREAK: "balance_after does not follow from the previous balance",
}
BUCKET_MEANING: dict[str, str] = {
    RequestBucket.CHARGED_OK: "served and charged right",
    RequestBucket.OVERCHARGED: "served and charged too much",
    RequestBucket.UNDERCHARGED: "served and charged too little",
    RequestBucket.CHARGED_ON_FAILURE: "failed but charged",
    RequestBucket.UNBILLED: "served but never charged",
    RequestBucket.FAILED_FREE: "failed and not charged",
}


def ledger_section(report: Report, clock: Clock) -> list[str]:
    """Ledger findings: totals, findings by kind, likely causes, invariant checks, requests by outcome."""
    out = ["## Ledger findings", ""]
    rec = report.reconciliation
    if rec is None:
        return [*out, "No ledger was given.", ""]
    diff = rec.tokens_deducted - rec.tokens_expected
    out += [
        f"{rec.deductions:,} deductions took {rec.tokens_deducted:,} tokens where the requests they charge "
        f"come to {rec.tokens_expected:,} ({'+' if diff >= 0 else '−'}{abs(diff):,}).",
        "",
    ]
    rows = [
        [k, KIND_MEANING.get(k, ""), f"{t.count:,}", f"{t.tokens:,}", f"{t.refund_tokens:,}"]
        # ok last: it is the remainder the findings stand out from.
        for k, t in sorted(rec.by_kind.items(), key=lambda item: item[0] == "ok")
    ]
    right = ("Entries", "Tokens", "Refund tokens")
    out += table(["Kind", "Meaning", "Entries", "Tokens", "Refund tokens"], rows, right=right)
    causes = [
        [
            escape(p.kind),
            escape(p.model) if p.model else "all models",
            clock.at(p.start),
            clock.at(p.end),
            f"{p.entries:,}",
            percent(p.share),
            escape(p.description),
        ]
        for p in rec.patterns
    ]
    out += ["### Likely causes", ""]
    head = ["Fault", "Model", "First", "Last", "Entries", "Share of kind", "Evidence"]
    out += table(head, causes, right=("Entries", "Share of kind"), empty="No pattern explains the findings.")
    checks = [
        [escape(i.name), "holds" if i.holds else "**BROKEN**", escape(i.detail)] for i in rec.invariants
    ]
    out += ["### Checks", ""] + table(["Total that must add up", "Result", "Detail"], checks)
    requests = sum(rec.request_buckets.values())
    buckets = [
        [k, BUCKET_MEANING.get(k, ""), f"{n:,}", percent(n / requests) if requests else DASH]
        for k, n in rec.request_buckets.items()
    ]
    out += ["### Requests by billing outcome", ""]
    return out + table(["Outcome", "Meaning", "Requests", "Share"], buckets, right=("Requests", "Share"))


def refunds_section(report: Report, clock: Clock) -> list[str]:
    """The largest refunds, and where the full list is."""
    out = ["## Refunds", ""]
    if report.reconciliation is None:
        return [*out, "No ledger was given, so no refund was computed.", ""]
    s = report.summary
    owed, total = cast(int, s["accounts_owed"]), cast(int, s["refund_tokens_total"])
    if not owed:
        return [*out, "No account is owed a refund.", ""]
    usd = f" (USD {escape(s['refund_usd'])})" if s.get("refund_usd") else ""
    top = cast(list[dict[str, Any]], s["top_accounts"])
    out += [
        f"{owed:,} account{'s are' if owed != 1 else ' is'} owed {total:,} tokens{usd}; "
        f"the {len(top)} largest refunds:",
        "",
    ]
    rows = [
        [
            escape(a[ACCOUNT_ID]),
            f"{a['refund_tokens']:,}",
            percent(a[REFUND_TOKENS] / total) if total else DASH,
            f"{a.get('findings', 0):,}",
        ]
        for a in top
    ]
    out += table(
        ["Account", "Refund tokens", "Share", "Findings"], rows, right=("Refund tokens", "Share", "Findings")
    )
    if report.refunds_path:
        where = f"The full list of {owed:,} accounts is in {escape(report.refunds_path)}."
    else:
        where = (
            f"The full list of {owed:,} accounts is `ledger.accounts` in the JSON report; "
            "`analyzer report … --refunds refunds.csv` writes it as CSV."
        )
    return [*out, where, ""]


USAGE_ROWS = 50  # days x models listed in the Markdown (mismatches first); the JSON has them all


def usage_section(report: Report, clock: Clock) -> list[str]:
    """The provider's usage export against the gateway, per day and model (only with an export)."""
    totals = report.usage_totals
    if totals is None:
        return []
    out = ["## Usage export", ""]
    if totals.is_empty():
        return [*out, "The usage export has no bucket on a day the gateway logs cover.", ""]
    matched = int(totals[usage.MATCH].sum())
    out += [
        f"The provider's usage export against the gateway's answered requests, per UTC day and model: "
        f"{matched:,} of {totals.height:,} match.",
        "",
    ]
    shown = totals.sort(usage.MATCH, usage.DAY, MODEL, nulls_last=True).head(USAGE_ROWS)
    rows = [
        [
            f"{r[usage.DAY]:%Y-%m-%d}",
            escape(r[MODEL]) if r[MODEL] is not None else DASH,
            *(f"{r[usage.GATEWAY_PREFIX + t]:,} / {r[usage.EXPORT_PREFIX + t]:,}" for t in usage.TOTALS),
            "yes" if r[usage.MATCH] else "**no**",
        ]
        for r in shown.iter_rows(named=True)
    ]
    head = ["Day", "Model", "Requests (gateway / export)", "Prompt", "Completion", "Cached", "Match"]
    out += table(head, rows, right=head[2:6])
    if totals.height > USAGE_ROWS:
        out += [f"{totals.height - USAGE_ROWS:,} more rows are `usage_totals` in the JSON report.", ""]
    return out
