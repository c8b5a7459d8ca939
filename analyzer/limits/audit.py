"""The rate-limit audit of a gateway frame: replay, classify, count per limit and per account.

With a `[limits]` section each account (or account and model, with per_model) is held to its tier's
limits; without one, to its own observed peak (the most it was ever admitted under the sliding log, in
flight, and in a day), so a 429 below what the account was allowed at its busiest is still found, and
the report says the limits were observed, not configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import polars as pl

from analyzer import schema as s
from analyzer.limits.classify import CLASSES, DECIDING, THROTTLED, VERDICT, Verdict, classify
from analyzer.limits.replay import (
    DAY,
    END,
    KEY,
    REQ,
    TOK,
    WINDOWED,
    Rule,
    T,
    bucket,
    limit_column,
    replay,
    usage_column,
)
from analyzer.limits.settings import Limit, LimitSettings, Stamp

TIER: Final = "tier"
OBSERVED_TIER: Final = "observed"  # the tier name of every account in observed-peak mode
THROTTLED_STATUS: Final = 429
# Columns of `accounts`.
THROTTLED_COUNT: Final = "throttled"
# Columns of `flagged`: request_id, ts, account_id, model, TIER, VERDICT, DECIDING, the usage under each
# rule (rpm_fixed_minute, ..., concurrency, tpd) and the limits (limit_rpm, ...).
FLAGGED_USAGE: Final = tuple(
    [usage_column(lim, r) for lim in WINDOWED for r in Rule]
    + [usage_column(Limit.CONCURRENCY), usage_column(Limit.TPD)]
)
_DAY_US: Final = 86_400_000_000


class LimitSource(StrEnum):
    """Where the limits the 429s were judged against came from."""

    CONFIG = "config"
    OBSERVED_PEAK = "observed_peak"


@dataclass(frozen=True)
class Explanation:
    """A rule the limiter behaved as if it applied to one model over a span."""

    model: str
    start: datetime
    end: datetime
    hypothesis: str
    parameter: int | str
    share: float  # of the model's wrong 429s it makes justified
    explained: int
    wrong: int
    rule: str  # the counting rule the hypothesis fits best under


@dataclass(frozen=True, eq=False)
class RateLimits:
    """What the audit found; frames sorted for byte-identical reports."""

    source: LimitSource
    rules: tuple[Rule, ...]
    per_model: bool
    count_rejected: bool
    tolerance: float
    timestamp: Stamp
    counts: dict[str, int]  # throttled, justified, ambiguous, wrong, admitted_over_limit
    by_limit: dict[str, dict[str, int]]  # limit -> class -> count
    accounts: pl.DataFrame  # ACCOUNT_ID, TIER, throttled, wrong, ambiguous, admitted_over_limit
    flagged: pl.DataFrame  # every 429 and every over-limit admission
    skipped: int  # requests without an account id, not audited
    explanations: tuple[Explanation, ...] = field(default_factory=tuple)


def prepare(
    gateway: pl.LazyFrame, settings: LimitSettings | None, stamp: Stamp = Stamp.ARRIVAL
) -> pl.DataFrame:
    """The replay's input: one row per request with an account, sorted by (KEY, T, arrival order)."""
    per_model = settings is not None and settings.per_model
    count_rejected = settings is not None and settings.count_rejected
    reset_us = 0 if settings is None else int(settings.day_reset / timedelta(microseconds=1))
    latency_us = (pl.col(s.LATENCY_MS).fill_null(0.0).clip(lower_bound=0.0) * 1000).round().cast(pl.Int64)
    ts_us = pl.col(s.TS).dt.epoch("us")
    arrival = ts_us - latency_us if stamp == Stamp.COMPLETION else ts_us
    throttled = pl.col(s.STATUS) == THROTTLED_STATUS
    counted = ~throttled | pl.lit(count_rejected)
    served = pl.col(s.STATUS).is_between(200, 299)
    tokens = pl.col(s.PROMPT_TOKENS).fill_null(0) + pl.col(s.COMPLETION_TOKENS).fill_null(0)
    key = pl.col(s.ACCOUNT_ID)
    if per_model:
        key = pl.concat_str(key, pl.col(s.MODEL).fill_null(""), separator="\x1f")
    return (
        gateway.select(
            s.TS,
            s.REQUEST_ID,
            s.ACCOUNT_ID,
            s.MODEL,
            s.STATUS,
            s.LATENCY_MS,
            s.PROMPT_TOKENS,
            s.COMPLETION_TOKENS,
        )
        .with_row_index("_row")
        .filter(pl.col(s.ACCOUNT_ID).is_not_null())
        .with_columns(
            key.alias(KEY),
            arrival.alias(T),
            (arrival + latency_us).alias(END),
            throttled.alias(THROTTLED),
            counted.cast(pl.Int64).alias(REQ),
            pl.when(counted & served).then(tokens).otherwise(0).cast(pl.Int64).alias(TOK),
            ((arrival - reset_us) // _DAY_US).alias(DAY),
        )
        .sort(KEY, T, "_row")
        # Only what the replay, the report and the explanations read is kept (a frame of every request).
        .drop("_row", s.STATUS, s.LATENCY_MS, s.PROMPT_TOKENS, s.COMPLETION_TOKENS)
        # The unit as a run number (rows are sorted by it): integer keys group and join faster.
        .with_columns(
            (pl.col(KEY) != pl.col(KEY).shift(1)).fill_null(True).cum_sum().cast(pl.Int64).alias(KEY)
        )
        .collect()
    )


def _configured_limits(frame: pl.DataFrame, settings: LimitSettings) -> pl.DataFrame:
    names = sorted(settings.tiers)
    table = pl.DataFrame(
        {TIER: names, **{limit_column(lim): [settings.tiers[n].limit(lim) for n in names] for lim in Limit}},
        schema={TIER: pl.String, **{limit_column(lim): pl.Int64 for lim in Limit}},
    )
    listed = pl.DataFrame(
        {s.ACCOUNT_ID: list(settings.account_tiers), "_listed": list(settings.account_tiers.values())},
        schema={s.ACCOUNT_ID: pl.String, "_listed": pl.String},
    )
    return (
        frame.join(listed, on=s.ACCOUNT_ID, how="left")
        .with_columns(pl.col("_listed").fill_null(pl.lit(settings.default_tier, dtype=pl.String)).alias(TIER))
        .drop("_listed")
        .join(table, on=TIER, how="left", maintain_order="left")
    )


def _observed_limits(frame: pl.DataFrame) -> pl.DataFrame:
    """Each KEY's own peak as its limit: the most it met (+1) on an admitted request, per limit."""
    admitted = ~pl.col(THROTTLED)
    peak = {
        Limit.CONCURRENCY: usage_column(Limit.CONCURRENCY),
        Limit.RPM: usage_column(Limit.RPM, Rule.SLIDING),
        Limit.TPM: usage_column(Limit.TPM, Rule.SLIDING),
        Limit.TPD: usage_column(Limit.TPD),
    }
    return frame.with_columns(
        pl.lit(OBSERVED_TIER).alias(TIER),
        *(
            (pl.col(col).filter(admitted).max().over(KEY).fill_null(0) + 1)
            .cast(pl.Int64)
            .alias(limit_column(lim))
            for lim, col in peak.items()
        ),
    )


def _count(flagged: pl.DataFrame, verdict: Verdict) -> int:
    return int((flagged[VERDICT] == verdict.value).sum())


def audit(
    gateway: pl.LazyFrame, settings: LimitSettings | None, *, completion_logged: bool = False
) -> tuple[RateLimits, pl.DataFrame]:
    """The audit of every request with an account; also the classified frame the explanations search.
    `completion_logged`: the gateway's format writes ts when the response ends (unless the setting says)."""
    stamp = settings.timestamp if settings is not None and settings.timestamp is not None else None
    if stamp is None:
        stamp = Stamp.COMPLETION if completion_logged else Stamp.ARRIVAL
    prepared = prepare(gateway, settings, stamp)
    replayed = replay(prepared)
    limited = _observed_limits(replayed) if settings is None else _configured_limits(replayed, settings)
    tolerance = 0.0 if settings is None else settings.tolerance
    full = classify(bucket(limited), tolerance)
    names = {col: col.removeprefix("_use_") for col in FLAGGED_USAGE}
    names |= {limit_column(lim): f"limit_{lim.value}" for lim in Limit}
    flagged = (
        full.filter(pl.col(VERDICT).is_not_null())
        .select(s.REQUEST_ID, s.TS, s.ACCOUNT_ID, s.MODEL, TIER, VERDICT, DECIDING, *names)
        .rename(names)
        .sort(s.TS, s.ACCOUNT_ID, s.REQUEST_ID, nulls_last=True)
    )
    return _result(flagged, settings, stamp, skipped=_skipped(gateway)), full


def _skipped(gateway: pl.LazyFrame) -> int:
    return int(gateway.select(pl.col(s.ACCOUNT_ID).is_null().sum()).collect().item())


def _result(
    flagged: pl.DataFrame, settings: LimitSettings | None, stamp: Stamp, *, skipped: int
) -> RateLimits:
    verdicts = (*CLASSES, Verdict.ADMITTED_OVER_LIMIT)
    counts = {v.value: _count(flagged, v) for v in verdicts}
    counts = {THROTTLED_COUNT: sum(counts[v.value] for v in CLASSES), **counts}
    by_limit = {
        lim.value: {
            v.value: int(((flagged[DECIDING] == lim.value) & (flagged[VERDICT] == v.value)).sum())
            for v in verdicts
        }
        for lim in Limit
    }
    is_ = {v: (pl.col(VERDICT) == v.value).sum().cast(pl.Int64).alias(v.value) for v in verdicts}
    accounts = (
        flagged.group_by(s.ACCOUNT_ID)
        .agg(
            pl.col(TIER).first(),
            pl.col(VERDICT).is_in([v.value for v in CLASSES]).sum().cast(pl.Int64).alias(THROTTLED_COUNT),
            is_[Verdict.WRONG],
            is_[Verdict.AMBIGUOUS],
            is_[Verdict.ADMITTED_OVER_LIMIT],
        )
        .sort([Verdict.WRONG.value, THROTTLED_COUNT, s.ACCOUNT_ID], descending=[True, True, False])
    )
    return RateLimits(
        source=LimitSource.OBSERVED_PEAK if settings is None else LimitSource.CONFIG,
        rules=tuple(Rule),
        per_model=settings is not None and settings.per_model,
        count_rejected=settings is not None and settings.count_rejected,
        tolerance=0.0 if settings is None else settings.tolerance,
        timestamp=stamp,
        counts=counts,
        by_limit=by_limit,
        accounts=accounts,
        flagged=flagged,
        skipped=skipped,
    )


def audit_limits(
    gateway: pl.LazyFrame,
    ledger: pl.LazyFrame | None,
    settings: LimitSettings | None,
    *,
    completion_logged: bool = False,
) -> RateLimits:
    """The audit the report shows (the ledger feeds the explanations of wrong 429s)."""
    from analyzer.limits.explain import explain

    result, full = audit(gateway, settings, completion_logged=completion_logged)
    return replace(result, explanations=explain(full, ledger, settings))


def questionable(rl: RateLimits) -> pl.DataFrame:
    """Every wrong or ambiguous 429 with the usage it met under each rule and its limits (--throttled)."""
    return rl.flagged.filter(pl.col(VERDICT).is_in([Verdict.WRONG.value, Verdict.AMBIGUOUS.value]))


def with_tier(gateway: pl.LazyFrame, settings: LimitSettings) -> pl.LazyFrame:
    """The gateway frame with each request's TIER (the accounts file's, else default_tier), so bursts and
    spikes are searched per tier too (`tier=tier0` failing while the others were served)."""
    listed = pl.LazyFrame(
        {s.ACCOUNT_ID: list(settings.account_tiers), TIER: list(settings.account_tiers.values())},
        schema={s.ACCOUNT_ID: pl.String, TIER: pl.String},
    )
    default = pl.lit(settings.default_tier, dtype=pl.String)
    return gateway.join(listed, on=s.ACCOUNT_ID, how="left", maintain_order="left").with_columns(
        pl.when(pl.col(s.ACCOUNT_ID).is_not_null()).then(pl.col(TIER).fill_null(default)).alias(TIER)
    )
