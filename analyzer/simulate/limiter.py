"""The gateway's rate limiter: account tiers, genuine 429s from batch storms, and the legacy-limiter fault.

Every account gets the lowest tier of `TIERS` under which its own traffic stays at or below half of
every limit in every 60-second window (requests, tokens, requests in flight), so no ordinary request
comes near a limit under any counting rule. Two kinds of 429 are then written, each by construction:

- storms (genuine, `justified` under every rule): a tier0 or tier1 account with no traffic for two
  minutes fires a batch, RPM + 10 embeddings 20 ms apart (RPM admitted, 10 over) or 5 long chat prompts
  of 0.4 x TPM tokens 1 s apart (3 admitted, 2 over TPM). The batch is so dense that a fixed window, a
  sliding log and a token bucket all count the rejected ones over the limit (the bucket refills less
  than one request, or 0.07 x TPM, during the storm), and the account is silent again for a minute
  after the storm's minute.
- the legacy-limiter fault (`wrong`): during the story's window the new model is admitted by a legacy
  limiter that charges each of its requests `cost` tokens (the whole context) against the tier's TPM in
  a fixed clock-minute window per account, other requests counting their served tokens. Its 429s fall on
  accounts far under every real limit (the half-limit margin above).

All of it is whole-array NumPy and Polars; the only sequential part (a limiter admits while the counter
is under the limit) is a prefix within each window, since the counter only grows once it is over.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import polars as pl

from analyzer.simulate.scenarios import Story
from analyzer.simulate.spec import MODELS, REGIONS, SimSpec, to_us
from analyzer.simulate.traffic import EMBEDDINGS, NEW, US, Traffic, account_names

# name, concurrency, rpm, tpm, tpd (0: unlimited). The simulator's own table, not a vendor's.
TIERS: Final = (
    ("tier0", 4, 20, 200_000, 0),
    ("tier1", 8, 30, 500_000, 0),
    ("tier2", 50, 200, 2_000_000, 0),
    ("tier3", 100, 500, 3_000_000, 0),
)
MINUTE_US: Final = 60 * US
QUIET_BEFORE_US: Final = 120 * US  # no traffic of a storm account this long before its storm
STORM_TIERS: Final = 2  # storms fall on accounts of the two lowest tiers
RPM_STORM_OVER: Final = 10  # requests over the RPM
RPM_STORM_SPACING_US: Final = 20_000
TPM_STORM: Final = (5, 1_000_000)  # requests, spacing in microseconds
TPM_STORM_ADMITTED: Final = 3  # prompts of 0.4 x TPM: the 4th meets 1.2 x TPM
STORM_OFFSET_US: Final = 5 * US  # a storm starts this far into its clock minute
STORM_REGION: Final = REGIONS.index("us-east-1")
TPM_STORM_MODEL: Final = MODELS.index("kimi-k2-turbo")
TPM_STORM_SHARE: Final = 0.4


@dataclass(frozen=True)
class Storm:
    """One injected batch: which account, when, the limit it broke, how many requests were rejected."""

    account: int
    start_us: int
    limit: str  # rpm | tpm
    requests: int
    rejected: int


@dataclass(frozen=True)
class Limited:
    """The traffic after the limiter, with what it did."""

    traffic: Traffic
    tier: np.ndarray  # tier index per account index
    reason: np.ndarray  # per request: 0 admitted, 1 storm (genuine), 2 legacy fault
    storms: tuple[Storm, ...]


def _group_sorted(account: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Row order sorted by (account, ts): the order every per-account sweep works in."""
    return np.lexsort((ts_us, account))


def _window_max(account: np.ndarray, ts_us: np.ndarray, weight: np.ndarray, accounts: int) -> np.ndarray:
    """Per account, the most weight in any 60-second window [t, t + 60 s) starting at one of its requests."""
    order = _group_sorted(account, ts_us)
    acc, ts, w = account[order], ts_us[order], weight[order].astype(np.int64)
    key = acc.astype(np.int64) * (1 << 42) + (ts - ts.min())
    cum = np.concatenate(([0], np.cumsum(w)))
    end = np.searchsorted(key, key + MINUTE_US, side="left")
    in_window = cum[end] - cum[np.arange(len(key))]
    out = np.zeros(accounts, dtype=np.int64)
    np.maximum.at(out, acc, in_window)
    return out


def _max_in_flight(t: Traffic, accounts: int) -> np.ndarray:
    """Per account, the most of its requests ever in flight at one of its arrivals (itself included)."""
    start = t.ts_us
    end = start + np.ceil(t.latency_ms * 1000).astype(np.int64)
    base = min(int(start.min()), int(end.min()))
    key_start = t.account.astype(np.int64) * (1 << 42) + (start - base)
    key_end = np.sort(t.account.astype(np.int64) * (1 << 42) + (end - base))
    started = np.searchsorted(np.sort(key_start), key_start, side="right")  # own arrival included
    ended = np.searchsorted(key_end, key_start, side="right")
    out = np.zeros(accounts, dtype=np.int64)
    np.maximum.at(out, t.account, started - ended)
    return out


def assign_tiers(t: Traffic, accounts: int) -> np.ndarray:
    """The lowest tier under which each account's peaks stay at or below half of every limit."""
    tokens = t.prompt + t.completion
    peaks = np.stack(
        [
            _max_in_flight(t, accounts),
            _window_max(t.account, t.ts_us, np.ones(len(t.ts_us), dtype=np.int64), accounts),
            _window_max(t.account, t.ts_us, tokens, accounts),
        ]
    )
    limits = np.asarray([tier[1:4] for tier in TIERS], dtype=np.int64).T  # (3, tiers)
    fits: np.ndarray = np.asarray((2 * peaks[:, :, None] <= limits[:, None, :]).all(axis=0))
    fits[:, -1] = True  # (accounts, tiers); the top tier takes whoever fits nowhere
    out: np.ndarray = np.argmax(fits, axis=1).astype(np.int8)
    return out


def _quiet(t: Traffic, account: int, lo_us: int, hi_us: int) -> bool:
    mine = t.ts_us[t.account == account]
    return not bool(((mine >= lo_us) & (mine < hi_us)).any())


def _storm_rows(storm: Storm, tpm: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = storm.requests
    if storm.limit == "rpm":
        spacing = RPM_STORM_SPACING_US
        model = np.full(n, len(MODELS) - 1)
        endpoint = np.full(n, EMBEDDINGS)
        prompt = rng.integers(100, 400, n)
        completion = np.zeros(n, dtype=np.int64)
        latency = rng.uniform(12.0, 40.0, n)
    else:
        spacing = TPM_STORM[1]
        model = np.full(n, TPM_STORM_MODEL)
        endpoint = np.zeros(n, dtype=np.int64)
        prompt = int(TPM_STORM_SHARE * tpm) + rng.integers(0, 1000, n)
        completion = rng.integers(200, 400, n)
        latency = 60.0 + 0.11 * prompt + 5.0 * completion
    admitted = np.arange(n) < n - storm.rejected
    return {
        "ts_us": storm.start_us + np.arange(n, dtype=np.int64) * spacing,
        "account": np.full(n, storm.account),
        "model": model,
        "endpoint": endpoint,
        "prompt": prompt.astype(np.int64),
        "completion": completion.astype(np.int64),
        "latency_ms": np.round(np.where(admitted, latency, rng.uniform(2.0, 6.0, n)), 1),
        "status": np.where(admitted, 200, 429),
    }


def _storms(
    spec: SimSpec, story: Story, t: Traffic, tier: np.ndarray, rng: np.random.Generator
) -> tuple[Storm, ...]:
    """One storm per slot of the story, on a low-tier account quiet around it (skipped if none is)."""
    small = np.flatnonzero(tier < STORM_TIERS)
    out: list[Storm] = []
    used: set[int] = set()
    for at, limit in story.storms:
        start = to_us(at) + STORM_OFFSET_US
        minute_end = to_us(at) + MINUTE_US
        if not (to_us(spec.start) <= start - QUIET_BEFORE_US and minute_end + MINUTE_US <= to_us(spec.end)):
            continue
        candidates = [
            int(a)
            for a in rng.permutation(small)
            if int(a) not in used and _quiet(t, int(a), start - QUIET_BEFORE_US, minute_end + MINUTE_US)
        ]
        if not candidates:
            continue
        account = candidates[0]
        used.add(account)
        if limit == "rpm":
            out.append(Storm(account, start, limit, TIERS[tier[account]][2] + RPM_STORM_OVER, RPM_STORM_OVER))
        else:
            out.append(Storm(account, start, limit, TPM_STORM[0], TPM_STORM[0] - TPM_STORM_ADMITTED))
    return tuple(out)


def _legacy_rejects(t: Traffic, tier: np.ndarray, story: Story) -> np.ndarray:
    """The new model's requests the legacy limiter rejected: per (account, clock minute) in the fault
    window, the counter (others' served tokens + `cost` per earlier request of the new model) at or over
    the tier's TPM."""
    if story.limiter_bug is None:
        return np.zeros(len(t.ts_us), dtype=bool)
    lo, hi = to_us(story.limiter_bug.start), to_us(story.limiter_bug.end)
    tpm = np.asarray([row[3] for row in TIERS], dtype=np.int64)[tier[t.account]]
    frame = pl.DataFrame(
        {
            "i": np.arange(len(t.ts_us)),
            "acct": t.account.astype(np.int64),
            "minute": t.ts_us // MINUTE_US,
            "new": t.model == NEW,
            "cost": np.where(
                t.model == NEW, story.limiter_cost, np.where(t.served, t.prompt + t.completion, 0)
            ),
            "tpm": tpm,
            "inside": (t.ts_us >= lo) & (t.ts_us < hi),
        }
    )
    # Rows are in arrival order; a counter that is over stays over (others are never rejected).
    before = pl.col("cost").cum_sum().over("acct", "minute") - pl.col("cost")
    hit = frame.select(pl.col("new") & pl.col("inside") & (before >= pl.col("tpm")))
    return hit.to_series().to_numpy()


def _merge(t: Traffic, rows: list[dict[str, np.ndarray]]) -> tuple[Traffic, np.ndarray]:
    """The traffic with the storms' requests added, in arrival order; the storm flag per request."""
    if not rows:
        return t, np.zeros(len(t.ts_us), dtype=bool)
    extra = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    m = len(extra["ts_us"])
    ts = np.concatenate([t.ts_us, extra["ts_us"]])
    order = np.argsort(ts, kind="stable")
    storm = np.concatenate([np.zeros(len(t.ts_us), dtype=bool), np.ones(m, dtype=bool)])[order]
    served = extra["status"] == 200

    def cat(base: np.ndarray, more: np.ndarray) -> np.ndarray:
        return np.concatenate([base, more.astype(base.dtype)])[order]

    merged = Traffic(
        ts_us=ts[order],
        account=cat(t.account, extra["account"]),
        model=cat(t.model, extra["model"]),
        endpoint=cat(t.endpoint, extra["endpoint"]),
        region=cat(t.region, np.full(m, STORM_REGION)),
        status=cat(t.status, extra["status"]),
        latency_ms=cat(t.latency_ms, extra["latency_ms"]),
        prompt=cat(t.prompt, extra["prompt"]),
        completion=cat(t.completion, extra["completion"]),
        upstream_status=cat(t.upstream_status, np.where(served, 200, -1)),
        ttft_ms=cat(t.ttft_ms, np.full(m, np.nan)),
        stream=cat(t.stream, np.zeros(m, dtype=bool)),
        burst=cat(t.burst, np.full(m, -1)),
    )
    return merged, storm


def apply(spec: SimSpec, story: Story, t: Traffic, rng: np.random.Generator) -> Limited:
    """Tiers, storms and the legacy fault applied to the traffic (after its incidents)."""
    tier = assign_tiers(t, spec.accounts)
    legacy = _legacy_rejects(t, tier, story)
    n = len(t.ts_us)
    faulted = replace(
        t,
        status=np.where(legacy, 429, t.status),
        latency_ms=np.where(legacy, np.round(rng.uniform(2.0, 6.0, n), 1), t.latency_ms),
        upstream_status=np.where(legacy, -1, t.upstream_status),
        ttft_ms=np.where(legacy, np.nan, t.ttft_ms),
        burst=np.where(legacy, -1, t.burst).astype(np.int8),
    )
    storms = _storms(spec, story, faulted, tier, rng)
    merged, storm = _merge(faulted, [_storm_rows(st, TIERS[tier[st.account]][3], rng) for st in storms])
    legacy_all = np.zeros(len(merged.ts_us), dtype=bool)
    legacy_all[~storm] = legacy
    reason = np.where(legacy_all, 2, np.where(storm & (merged.status == 429), 1, 0)).astype(np.int8)
    return Limited(traffic=merged, tier=tier, reason=reason, storms=storms)


def accounts_frame(tier: np.ndarray) -> pl.DataFrame:
    """accounts.csv: every account id with its tier name."""
    names = pl.Series("tier", [row[0] for row in TIERS], dtype=pl.String)
    return pl.DataFrame([account_names(len(tier)), names.gather(pl.Series(tier.astype(np.int64)))])


def limits_toml(accounts_file: str) -> str:
    """The [limits] settings the simulated limiter enforced, as a config file beside the logs."""
    lines = [
        "# The limits the simulated gateway enforced (analyzer report DIR --config DIR/limits.toml).",
        "[limits]",
        f'accounts = "{accounts_file}"',
        f'default_tier = "{TIERS[1][0]}"',
        'day_reset = "00:00"',
    ]
    for name, concurrency, rpm, tpm, tpd in TIERS:
        lines += ["", f"[limits.tiers.{name}]", f"concurrency = {concurrency}", f"rpm = {rpm}"]
        lines += [f"tpm = {tpm}", f"tpd = {tpd}"]
    return "\n".join(lines) + "\n"
