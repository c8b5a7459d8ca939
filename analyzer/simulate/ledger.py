"""The billing ledger the gateway traffic produced, with the story's faults injected and every entry
labelled by what was injected (the answer key the truth is summed from).

Entries are built as whole arrays (one per deduction, duplicate, orphan, grant, refund, reset), sorted
by (ts, creation order), numbered in that order, and their balances run per account with Polars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

import numpy as np
import polars as pl

from analyzer import schema as s
from analyzer.findings import REQUEST_BUCKETS
from analyzer.simulate.scenarios import Story
from analyzer.simulate.spec import CACHED_WEIGHT, MODELS, RESET_SPREAD_S, SimSpec, to_us
from analyzer.simulate.traffic import NEW, US, Traffic, account_names, request_ids

LABEL = (
    "_label"  # duplicate | orphan | failed_charged | overcharge | undercharge | ok | grant | refund | reset
)
EXPECTED = "_expected"  # the right charge of the request (right_charge; 0 when it reported none)
WIPED = "_wiped"
BREAK = "_break"
REQ = "_req"  # index of the request the entry bills, -1 for none
HIDDEN = (LABEL, EXPECTED, WIPED, BREAK, REQ)
BUCKET = {name: i for i, name in enumerate(REQUEST_BUCKETS)}
_DEDUCT_LABELS = (
    "failed_charged",
    "overcharge",
    "undercharge",
    "ok",
    "cached_at_full_price",
    "reasoning_counted_twice",
)


@dataclass(frozen=True)
class Books:
    """The labelled ledger plus, per request, its bucket and whether it went unbilled."""

    ledger: pl.DataFrame  # canonical columns then HIDDEN
    bucket: np.ndarray  # index into REQUEST_BUCKETS, one per request
    unbilled: np.ndarray  # bool, one per request
    grants: np.ndarray  # grant per account index
    charge: np.ndarray  # the right charge of each served request (0 for the others)


def _parts(
    kind: str,
    ts_us: np.ndarray,
    account: np.ndarray,
    req: np.ndarray,
    tokens: np.ndarray,
    label: np.ndarray | str,
    expected: np.ndarray | int,
    request_id: pl.Series | None = None,
) -> pl.DataFrame:
    n = len(ts_us)
    return pl.DataFrame(
        {
            "_ts": pl.Series(ts_us, dtype=pl.Int64),
            "_acct": pl.Series(account, dtype=pl.Int64),
            s.REQUEST_ID: request_id if request_id is not None else pl.Series([None] * n, dtype=pl.String),
            s.KIND: pl.Series([kind], dtype=pl.String).gather(pl.Series(np.zeros(n, dtype=np.int64))),
            s.TOKENS: pl.Series(tokens, dtype=pl.Int64),
            LABEL: pl.Series(np.broadcast_to(np.asarray(label, dtype=object), (n,)).tolist(), dtype=pl.String)
            if n
            else pl.Series([], dtype=pl.String),
            EXPECTED: pl.Series(np.broadcast_to(np.asarray(expected, dtype=np.int64), (n,)), dtype=pl.Int64),
            REQ: pl.Series(req, dtype=pl.Int64),
        }
    )


def resets(spec: SimSpec) -> list[datetime]:
    """End-of-day quota resets (23:59:59) inside the span, and the spec's full quota reset if any."""
    day, out = spec.start.date(), []
    while (t := datetime.combine(day, time(23, 59, 59), tzinfo=spec.start.tzinfo)) < spec.end:
        if t >= spec.start:
            out.append(t)
        day += timedelta(days=1)
    full = _full_reset(spec)
    return sorted(out + ([full] if full is not None else []))


def _full_reset(spec: SimSpec) -> datetime | None:
    """When the spec's full quota reset starts (on the start date), if it asks for one inside the span."""
    if spec.quota_reset is None:
        return None
    t = datetime.combine(spec.start.date(), spec.quota_reset, tzinfo=spec.start.tzinfo)
    return t if spec.start <= t < spec.end else None


def build(spec: SimSpec, story: Story, t: Traffic, rng: np.random.Generator) -> Books:
    """The ledger of `t` under `story`, every entry labelled with the fault that produced it."""
    n = len(t.ts_us)
    served = t.served
    reported = np.where(served, t.prompt + t.completion, 0)
    charge = np.where(served, right_charge(t), 0)
    billable = served & (reported > 0)
    in_sync = _between(t.ts_us, story.sync)
    unbilled = billable & (rng.random(n) < np.where(in_sync, story.sync_unbilled_share, story.unbilled_share))
    charged_share = np.asarray([b.charged_share for b in story.bursts] + [0.0])
    would_be = t.prompt + t.completion
    charged_failure = (t.burst >= 0) & (would_be > 0) & (rng.random(n) < charged_share[t.burst])
    deducted = (billable & ~unbilled) | charged_failure

    # Each fault relative to the right charge (without usage detail: prompt + completion).
    amount = charge.copy()
    if story.token_bug is not None:
        bug = (t.model == NEW) & _between(t.ts_us, story.token_bug)
        bugged = charge + (story.token_multiplier - 1) * t.completion
        amount = np.where(bug & ~_like_wrong_rule(t, charge, bugged), bugged, amount)
    if story.prompt_cap_model is not None:
        capped = t.model == MODELS.index(story.prompt_cap_model)
        excess = np.maximum(t.prompt - story.prompt_cap, 0)
        amount = np.where(capped, np.maximum(charge - excess, 0), amount)
    full, twice, amount = _usage_bugs(story, t, charge, amount)
    amount = np.where(charged_failure, would_be, np.where(served, amount, 0))
    code = np.select([charged_failure, full, twice, amount > charge, amount < charge], [0, 4, 5, 1, 2], 3)
    lag = np.where(in_sync, story.sync_lag_s * US, 0)
    ledger_ts = t.ts_us + (t.latency_ms * 1000).astype(np.int64) + rng.integers(50_000, 2 * US, n) + lag

    idx = np.flatnonzero(deducted)
    rid = request_ids(n)
    labels = np.asarray(_DEDUCT_LABELS, dtype=object)[code[idx]]
    deductions = _parts(
        s.LEDGER_DEDUCT,
        ledger_ts[idx],
        t.account[idx],
        idx,
        amount[idx],
        labels,
        charge[idx],
        rid.gather(idx),
    )
    dup = idx[in_sync[idx] & served[idx] & (rng.random(len(idx)) < story.sync_duplicate_share)]
    dup_ts = ledger_ts[dup] + rng.integers(US, 90 * US, len(dup))
    duplicates = _parts(
        s.LEDGER_DEDUCT, dup_ts, t.account[dup], dup, amount[dup], "duplicate", charge[dup], rid.gather(dup)
    )
    orphans = _orphans(spec, story, len(idx), rng)
    refunds = _support_refunds(spec, story, dup, dup_ts, amount, t, rid, rng)
    body = pl.concat([deductions, duplicates, orphans, refunds])
    spent = body.filter(pl.col(s.KIND) == s.LEDGER_DEDUCT).group_by("_acct").agg(pl.col(s.TOKENS).sum())
    used = np.zeros(spec.accounts, dtype=np.int64)
    used[spent["_acct"].to_numpy()] = spent[s.TOKENS].to_numpy()
    # Each account's daily quota: comfortably above what it spends, so only injected wipes reach zero.
    grants = (np.ceil((1.5 * used + 1_000_000) / 1_000_000) * 1_000_000).astype(np.int64)
    accts = np.arange(spec.accounts)
    start = np.full(spec.accounts, to_us(spec.start), dtype=np.int64)
    parts = [_parts(s.LEDGER_GRANT, start, accts, np.full(spec.accounts, -1), grants, "grant", 0), body]
    full_at = _full_reset(spec)
    for r in resets(spec) if story.daily_resets else []:
        at = np.full(spec.accounts, to_us(r), dtype=np.int64)
        label = "reset"
        if r == full_at:
            # Every account within a few seconds, as a batch job writes them.
            at = at + (accts % RESET_SPREAD_S) * US + accts * 997 % US
            label = "full_reset"
        parts.append(_parts(s.LEDGER_RESET, at, accts, np.full(spec.accounts, -1), grants, label, 0))
    from analyzer.simulate import remedy  # the remedy scenario's resets and top-ups (it imports this module)

    parts += remedy.parts(spec, story, body, grants)
    ledger = _number_and_balance(pl.concat(parts), spec)
    # The full reset is written as tokens 0 with the new balance in balance_after (another convention).
    full_reset = pl.col(LABEL) == "full_reset"
    ledger = ledger.with_columns(
        pl.when(full_reset).then(0).otherwise(pl.col(s.TOKENS)).alias(s.TOKENS),
        pl.when(full_reset).then(pl.lit("reset")).otherwise(pl.col(LABEL)).alias(LABEL),
    )
    ledger = remedy.finish(_wipe_and_break(ledger, story, rng))

    bucket = np.where(served & (reported == 0), BUCKET["charged_ok"], BUCKET["failed_free"])
    bucket = np.where(unbilled, BUCKET["unbilled"], bucket)
    first = ledger.filter(pl.col(REQ) >= 0, pl.col(LABEL) != "duplicate")
    names = ["charged_on_failure", "overcharged", "undercharged", "charged_ok", "overcharged", "overcharged"]
    by_label = dict(zip(_DEDUCT_LABELS, names, strict=True))
    codes = (
        first[LABEL]
        .replace_strict(by_label, return_dtype=pl.String)
        .replace_strict(BUCKET, return_dtype=pl.Int8)
    )
    bucket[first[REQ].to_numpy()] = codes.to_numpy()
    return Books(
        ledger=ledger, bucket=bucket.astype(np.int8), unbilled=unbilled, grants=grants, charge=charge
    )


def right_charge(t: Traffic) -> np.ndarray:
    """What each request should be charged: prompt + completion, with cached tokens at CACHED_WEIGHT
    when the traffic has usage detail (rounded up per request, in integers, as the analyzer does)."""
    if t.cached is None:
        plain: np.ndarray = t.prompt + t.completion
        return plain
    d, n = CACHED_WEIGHT.denominator, CACHED_WEIGHT.numerator
    num = (t.prompt - t.cached + t.completion) * d + t.cached * n
    rounded: np.ndarray = -((-num) // d)
    return rounded


def _like_wrong_rule(t: Traffic, charge: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Where `amount` equals what a wrong usage rule charges: such a fault could not be told apart
    from that rule, so none is injected there."""
    if t.cached is None or t.reasoning is None:
        return np.zeros(len(t.ts_us), dtype=bool)
    full = (t.cached > 0) & (amount == t.prompt + t.completion)
    twice = (t.reasoning > 0) & (amount == charge + t.reasoning)
    same: np.ndarray = full | twice
    return same


def _usage_bugs(story: Story, t: Traffic, charge: np.ndarray, amount: np.ndarray) -> tuple[np.ndarray, ...]:
    """The deductions of the two wrong rules (cached at the full prompt price, reasoning counted twice).

    Only requests charged right so far, whose wrong charge is more than the right one; a request whose
    two wrong charges would be equal is left alone (the analyzer names the first rule first)."""
    n = len(t.ts_us)
    full, twice = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if t.cached is None or t.reasoning is None:
        return full, twice, amount
    plain = t.prompt + t.completion
    right = t.served & (amount == charge)
    if story.full_price is not None and story.full_price_model is not None:
        in_model = t.model == MODELS.index(story.full_price_model)
        full = right & in_model & _between(t.ts_us, story.full_price) & (t.cached > 0) & (plain > charge)
    if story.twice is not None and story.twice_model is not None:
        in_model = t.model == MODELS.index(story.twice_model)
        same = (t.cached > 0) & (charge + t.reasoning == plain)
        twice = right & in_model & _between(t.ts_us, story.twice) & (t.reasoning > 0) & ~same & ~full
    amount = np.where(full, plain, np.where(twice, charge + t.reasoning, amount))
    return full, twice, amount


def _between(ts_us: np.ndarray, window: object) -> np.ndarray:
    if window is None:
        return np.zeros(len(ts_us), dtype=bool)
    start, end = to_us(window.start), to_us(window.end)  # type: ignore[attr-defined]
    return (ts_us >= start) & (ts_us < end)


def _orphans(spec: SimSpec, story: Story, deductions: int, rng: np.random.Generator) -> pl.DataFrame:
    """Deductions with no request: half with no request id, half with an id the gateway never logged.

    They keep 10 minutes away from the span's edges, so none can pass for an out-of-span request."""
    k = max(2, round(story.orphan_share * deductions)) if story.orphan_share > 0 else 0
    lo, hi = to_us(spec.start) + 600 * US, to_us(spec.end) - 600 * US
    if hi <= lo:
        k = 0
    ts = np.sort(rng.integers(lo, max(hi, lo + 1), k))
    account = rng.integers(0, spec.accounts, k)
    tokens = np.clip(1200 * np.exp(rng.normal(0, 0.8, k)), 1, 50_000).astype(np.int64)
    ids = [None if i % 2 == 0 else f"req-9{v:09d}" for i, v in enumerate(rng.integers(0, 10**9, k))]
    return _parts(
        s.LEDGER_DEDUCT, ts, account, np.full(k, -1), tokens, "orphan", 0, pl.Series(ids, dtype=pl.String)
    )


def _support_refunds(
    spec: SimSpec,
    story: Story,
    dup: np.ndarray,
    dup_ts: np.ndarray,
    amount: np.ndarray,
    t: Traffic,
    rid: pl.Series,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Support already refunded a few duplicated charges by hand, about three hours later."""
    k = min(story.support_refunds, len(dup))
    pick = np.sort(rng.choice(len(dup), size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)
    ts = dup_ts[pick] + 3 * 3600 * US + np.arange(k) * 7 * 60 * US
    keep = ts < to_us(spec.end)
    pick, ts = pick[keep], ts[keep]
    req = dup[pick]
    return _parts(
        s.LEDGER_REFUND, ts, t.account[req], np.full(len(req), -1), amount[req], "refund", 0, rid.gather(req)
    )


def _number_and_balance(entries: pl.DataFrame, spec: SimSpec) -> pl.DataFrame:
    """Sort by (ts, creation order), number the entries, and run each account's balance."""
    n = entries.height
    width = max(8, len(str(n)))
    signed = pl.when(pl.col(s.KIND) == s.LEDGER_DEDUCT).then(-pl.col(s.TOKENS)).otherwise(pl.col(s.TOKENS))
    # A reset starts a new segment whose running sum begins at the reset's tokens.
    segment = (pl.col(s.KIND) == s.LEDGER_RESET).cum_sum().over("_acct")
    out = (
        entries.with_row_index("_seq")
        .sort("_ts", "_seq")
        .with_columns(
            pl.col("_ts").cast(s.TS_DTYPE).alias(s.TS),
            (pl.lit("e") + pl.int_range(1, n + 1, dtype=pl.Int64).cast(pl.String).str.zfill(width)).alias(
                s.ENTRY_ID
            ),
            segment.alias("_seg"),
        )
        .with_columns(signed.cum_sum().over("_acct", "_seg").alias(s.BALANCE_AFTER))
    )
    return out.with_columns(account_names(spec.accounts).gather(out["_acct"]).alias(s.ACCOUNT_ID))


def _wipe_and_break(ledger: pl.DataFrame, story: Story, rng: np.random.Generator) -> pl.DataFrame:
    """Zero the balance at a few accounts' last entry before their first reset.

    A wipe deducts the whole remaining balance (consistent balance, an overcharge that left zero);
    a break only reports zero. Either is followed by the reset or by nothing, so each breaks the
    balance chain exactly once."""
    rows = ledger.with_row_index("_row")
    last = rows.filter(pl.col("_seg") == 0).group_by("_acct").agg(pl.col("_row").max())
    candidates = (
        rows.join(last, on=["_acct", "_row"])
        .filter(pl.col(s.KIND) == s.LEDGER_DEDUCT, pl.col(LABEL) == "ok")
        .sort("_acct")["_row"]
        .to_numpy()
    )
    k = min(story.wipes + story.balance_breaks, len(candidates))
    pick = candidates[rng.choice(len(candidates), size=k, replace=False)] if k else candidates[:0]
    wipe = pl.col("_row").is_in(pl.Series(pick[: story.wipes], dtype=pl.UInt32).implode())
    brk = pl.col("_row").is_in(pl.Series(pick[story.wipes :], dtype=pl.UInt32).implode())
    return rows.with_columns(
        pl.when(wipe)
        .then(pl.col(s.BALANCE_AFTER) + pl.col(s.TOKENS))
        .otherwise(pl.col(s.TOKENS))
        .alias(s.TOKENS),
        pl.when(wipe | brk).then(0).otherwise(pl.col(s.BALANCE_AFTER)).alias(s.BALANCE_AFTER),
        pl.when(wipe).then(pl.lit("overcharge")).otherwise(pl.col(LABEL)).alias(LABEL),
        wipe.alias(WIPED),
        brk.alias(BREAK),
    ).select(*s.LEDGER, *HIDDEN)
