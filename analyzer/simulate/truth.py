"""truth.json: what was injected, summed from the labels the generators attached, never re-derived by
classifying the written data (tests do that independently and compare)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from analyzer import schema as s
from analyzer.findings import DEDUCTION_KINDS, OTHER_FINDINGS, REQUEST_BUCKETS, Finding
from analyzer.simulate.ledger import BREAK, LABEL, WIPED, Books
from analyzer.simulate.limiter import TIERS, Limited
from analyzer.simulate.remedy import owed_expr, remedy_truth, sla_truth
from analyzer.simulate.scenarios import Story
from analyzer.simulate.spec import CACHED_WEIGHT, MODELS, NEW_MODEL, SimSpec, from_us, iso, to_us
from analyzer.simulate.traffic import US, Traffic, account_names, request_ids

SCHEMA_VERSION = 1
USAGE_KINDS = ("cached_at_full_price", "reasoning_counted_twice")
CACHED_NOTE = (
    "With cached: the expected charge is (prompt - cached) + cached x {w} + completion, rounded up per "
    "request (weights in analyzer.toml); cached_at_full_price deductions charge prompt + completion "
    "(refund = amount - expected); reasoning_counted_twice deductions charge expected + reasoning "
    "(refund = amount - expected)."
)

NOTES = (
    "Deductions are ledger entries with kind == 'deduct', joined to gateway requests by request_id; "
    "expected charge = prompt_tokens + completion_tokens (weights 1 and 1), null tokens count as 0.",
    "Each deduction has exactly one kind, checked in order: duplicate (2nd or later deduction of a "
    "request_id by (ts, entry_id); refund = amount) > orphan (null request_id or one not in the gateway "
    "logs; refund 0) > out_of_span (never generated: orphans keep 10 minutes from the span's edges) > "
    "failed_charged (request status not 2xx; refund = amount) > overcharge (refund = amount - expected) "
    "> undercharge (refund 0) > ok.",
    "balance_wiped counts overcharges whose entry left balance_after == 0 (a deduction of the whole "
    "remaining balance, so the balance chain stays consistent).",
    "balance_break counts entries whose balance_after is 0 while the running balance "
    "(deduct: -tokens; refund, grant: +tokens; reset: = tokens, per account by (ts, entry_id)) is not; "
    "each is the account's last entry before its reset (or its last entry), so it breaks the chain once.",
    "Request buckets (every gateway request exactly once, by its first deduction): 2xx with tokens > 0 "
    "and no deduction -> unbilled; non-2xx and no deduction -> failed_free; 2xx with 0 tokens and no "
    "deduction -> charged_ok (nothing owed); non-2xx deducted -> charged_on_failure.",
    "tokens_expected is the sum of prompt_tokens + completion_tokens over every 2xx gateway request "
    "(what a correct ledger deducts); tokens_deducted sums every deduction, duplicates and orphans included.",
    "refunds are gross, per account owed > 0; refund entries already in the ledger are listed apart as "
    "already_refunded and not subtracted.",
    "Windows are half-open [start, end). error_rate is the chance an in-scope request was failed by the "
    "burst, on top of ~0.1% background 5xx everywhere.",
    "Every 429 comes from the simulated limiter (rate_limits): storms, batches of a tier0 account over "
    "its RPM or TPM under every counting rule (justified), and the legacy-limiter fault: during "
    "rate_limits.fault the new model's requests were charged `parameter` tokens each against the tier's "
    "TPM in a fixed clock-minute window per account (wrong: every account is at most half of every limit "
    "in every 60-second window of its own traffic).",
)


def _window(w: Any) -> dict[str, str]:
    return {"start": iso(w.start), "end": iso(w.end)}


def _per_account(frame: pl.DataFrame, value: str) -> dict[str, int]:
    sums = frame.group_by(s.ACCOUNT_ID).agg(pl.col(value).sum()).filter(pl.col(value) > 0).sort(s.ACCOUNT_ID)
    return {a: int(v) for a, v in zip(sums[s.ACCOUNT_ID], sums[value], strict=True)}


def ledger_truth(t: Traffic, books: Books) -> dict[str, Any]:
    """The ledger section: counts by kind, buckets and refunds owed, from the injection labels."""
    led = books.ledger
    deductions = led.filter(pl.col(s.KIND) == s.LEDGER_DEDUCT).with_columns(owed_expr().alias("_refund"))
    labels = deductions[LABEL].value_counts()
    by_label = {str(k): int(v) for k, v in zip(labels[LABEL], labels["count"], strict=True)}
    # The kinds only usage detail can show are listed only when the traffic has it.
    # The kinds it cannot produce are not listed: usage kinds without usage detail, and in_log_gap
    # (the simulator writes no log gap).
    usage_only = (*(() if t.cached is not None else USAGE_KINDS), Finding.IN_LOG_GAP)
    findings = {k: by_label.get(k, 0) for k in DEDUCTION_KINDS if k not in usage_only}
    findings["unbilled"] = int(books.unbilled.sum())
    findings["balance_break"] = int(led[BREAK].sum())
    assert set(findings) == (set(DEDUCTION_KINDS) | set(OTHER_FINDINGS)) - set(usage_only)
    buckets = np.bincount(books.bucket, minlength=len(REQUEST_BUCKETS))
    assert int(buckets.sum()) == len(t.ts_us)
    refund_by_kind = deductions.group_by(LABEL).agg(pl.col("_refund").sum())
    served = t.served
    expected_total = int(np.where(served, books.charge, 0).sum())
    unbilled_tokens = int((t.prompt + t.completion)[books.unbilled].sum())
    refunds = _per_account(deductions, "_refund")
    total = int(deductions["_refund"].sum())
    assert total == sum(refunds.values())
    return {
        "deductions": deductions.height,
        "tokens_deducted": int(deductions[s.TOKENS].sum()),
        "tokens_expected": expected_total,
        "tokens_unbilled": unbilled_tokens,
        "findings_by_kind": findings,
        "balance_wiped": int(led[WIPED].sum()),
        "request_buckets": {k: int(v) for k, v in zip(REQUEST_BUCKETS, buckets, strict=True)},
        "refund_tokens_total": total,
        "refund_tokens_by_kind": {
            str(k): int(v)
            for k, v in zip(refund_by_kind[LABEL], refund_by_kind["_refund"], strict=True)
            if v > 0
        },
        "refunds": refunds,
        "already_refunded": _per_account(led.filter(pl.col(s.KIND) == s.LEDGER_REFUND), s.TOKENS),
    }


def limits_truth(story: Story, limited: Limited) -> dict[str, Any]:
    """The rate_limits section: tiers, every 429 with its class and why, the storms and the fault."""
    t = limited.traffic
    names = account_names(len(limited.tier))
    throttled = np.flatnonzero(t.status == 429)
    reason = limited.reason[throttled]
    assert bool((reason > 0).all()), "every 429 comes from the limiter"
    ids = request_ids(len(t.ts_us)).gather(pl.Series(throttled))
    storm_limit = np.full(len(t.ts_us), "", dtype=object)
    for st in limited.storms:
        storm_limit[
            (t.account == st.account) & (t.ts_us >= st.start_us) & (t.ts_us < st.start_us + 60 * US)
        ] = st.limit
    rows = [
        {
            "request_id": rid,
            "account_id": names[int(t.account[i])],
            "model": MODELS[int(t.model[i])],
            "ts": iso(from_us(int(t.ts_us[i]))),
            "class": "justified" if r == 1 else "wrong",
            "limit": str(storm_limit[i]) if r == 1 else None,
        }
        for rid, i, r in zip(ids, throttled, reason, strict=True)
    ]
    wrong = [row for row in rows if row["class"] == "wrong"]
    by_account: dict[str, int] = {}
    for row in wrong:
        by_account[row["account_id"]] = by_account.get(row["account_id"], 0) + 1
    tiers_used = np.bincount(limited.tier, minlength=len(TIERS))
    fault = None
    if story.limiter_bug is not None:
        fault = {
            **_window(story.limiter_bug),
            "model": NEW_MODEL,
            "rule": "fixed_cost",
            "window": "fixed",
            "limit": "tpm",
            "parameter": story.limiter_cost,
        }
    return {
        "tiers": {
            name: {"concurrency": c, "rpm": rpm, "tpm": tpm, "tpd": tpd} for name, c, rpm, tpm, tpd in TIERS
        },
        "accounts_by_tier": {row[0]: int(k) for row, k in zip(TIERS, tiers_used, strict=True)},
        "throttled": len(rows),
        "justified": len(rows) - len(wrong),
        "ambiguous": 0,
        "wrong": len(wrong),
        "admitted_over_limit": 0,
        "wrong_by_account": dict(sorted(by_account.items())),
        "storms": [
            {
                "account_id": names[st.account],
                "start": iso(from_us(st.start_us)),
                "limit": st.limit,
                "requests": st.requests,
                "rejected": st.rejected,
            }
            for st in limited.storms
        ],
        "fault": fault,
        "throttled_requests": rows,
    }


def _usage_faults(story: Story, led: dict[str, Any]) -> dict[str, Any]:
    """The two wrong billing rules, when injected: window, model, count and refund tokens."""
    out: dict[str, Any] = {}
    for kind, window, model in (
        ("cached_at_full_price", story.full_price, story.full_price_model),
        ("reasoning_counted_twice", story.twice, story.twice_model),
    ):
        if window is not None:
            out[kind] = {
                **_window(window),
                "model": model,
                "count": led["findings_by_kind"][kind],
                "refund_tokens": led["refund_tokens_by_kind"].get(kind, 0),
            }
    return out


def build_truth(
    spec: SimSpec, story: Story, limited: Limited, books: Books, resets: list[str], events: pl.DataFrame
) -> dict[str, Any]:
    """The whole truth.json document."""
    t = limited.traffic
    led = ledger_truth(t, books)
    f = led["findings_by_kind"]
    bursts = []
    for i, b in enumerate(story.bursts):
        lo, hi = to_us(b.window.start), to_us(b.window.end)
        inside = (t.ts_us >= lo) & (t.ts_us < hi)
        bursts.append(
            {
                **_window(b.window),
                "scope": b.scope,
                "statuses": list(b.statuses),
                "error_rate": b.error_rate,
                "injected_errors": int((t.burst == i).sum()),
                "requests_in_window": int(inside.sum()),
            }
        )
    sync = None
    if story.sync is not None:
        sync = {**_window(story.sync), "lag_seconds": story.sync_lag_s, "duplicates": f["duplicate"]}
    bug = None
    if story.token_bug is not None:
        bug = {
            **_window(story.token_bug),
            "model": NEW_MODEL,
            "completion_multiplier": story.token_multiplier,
        }
    cap = None
    if story.prompt_cap_model is not None:
        cap = {"model": story.prompt_cap_model, "cap": story.prompt_cap, "count": f["undercharge"]}
    # The remedy scenario only: what the resets made good, and the SLA accounts' credits.
    remedy = {
        k: v
        for k, v in (
            ("remedy", remedy_truth(story, books.ledger, spec.accounts)),
            ("sla", sla_truth(story, limited, books.ledger)),
        )
        if v is not None
    }
    return remedy | {
        "schema_version": SCHEMA_VERSION,
        "scenario": spec.scenario,
        "seed": spec.seed,
        "hours": spec.hours,
        "rate": spec.rate,
        "accounts": spec.accounts,
        "start": iso(spec.start),
        "end": iso(spec.end),
        "requests": len(t.ts_us),
        "launch_at": iso(story.launch_at),
        "new_model": NEW_MODEL,
        "bursts": bursts,
        "latency_spikes": [
            {**_window(sp.window), "scope": sp.scope, "factor": sp.factor} for sp in story.spikes
        ],
        "log_gaps": [],
        "rate_limits": limits_truth(story, limited),
        "ledger": led,
        "faults": {
            "token_bug": bug,
            "sync_failure": sync,
            "prompt_cap": cap,
            "failed_charged": {"count": f["failed_charged"]},
            "orphans": {"count": f["orphan"]},
            "wipes": {"count": led["balance_wiped"]},
            "unbilled": {"count": f["unbilled"]},
            "balance_breaks": {"count": f["balance_break"]},
            **_usage_faults(story, led),
        },
        "resets": resets,
        "events": [
            {"ts": iso(ts), "kind": k, "title": title}
            for ts, k, title in zip(events[s.TS], events[s.KIND], events[s.TITLE], strict=True)
        ],
        "notes": [*NOTES, *([CACHED_NOTE.format(w=CACHED_WEIGHT)] if spec.cached else [])],
    }
