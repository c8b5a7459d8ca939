"""The rate-limit audit of a gateway frame: replay, classify, count per limit and per account.

With a `[limits]` section each account (or account and model, with per_model) is held to its tier's
limits; without one, to its own observed peak (the most it was ever admitted under the sliding log, in
flight, and in a day), so a 429 below what the account was allowed at its busiest is still found, and
the report says the limits were observed, not configured.

Memory is bounded by partitions: `requests` reads the columns the replay needs once, as integers
(accounts and models categorical), sorted by unit and arrival; `classify_part` replays and classifies
one partition of whole accounts (about PART_ROWS requests) and keeps only its 429s and over-limit
admissions; `merge` makes the audit of the partitions' union (another engine can classify partitions
apart and merge them). The request ids are read back for the flagged rows only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
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
_OUTPUT: Final = (*FLAGGED_USAGE, *(limit_column(lim) for lim in Limit))
_DAY_US: Final = 86_400_000_000
ORDER: Final = "_order"  # a request's row in the gateway frame: its arrival-order tie-break and its id
PART_ROWS: Final = 1_000_000  # requests per partition (about: whole accounts are kept together)
PACK_BITS: Final = 62  # the unit and the arrival are sorted as one Int64 when they fit in these bits


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


@dataclass(frozen=True, eq=False)
class Requests:
    """What the replay reads of every request with an account, narrowed to integers (accounts and models
    categorical, times in microseconds), sorted by (partition, unit, T, ORDER): each partition's
    accounts are replayed on their own (`classify_part`), so memory holds one partition's replay."""

    frame: pl.DataFrame  # ORDER, ACCOUNT_ID, MODEL, T, END, THROTTLED, TOK
    bounds: tuple[tuple[int, int], ...]  # (offset, length) of each partition in `frame`
    stamp: Stamp
    # The last partition classified and its `limited` frame (one partition's worth of memory).
    _last: tuple[tuple[int, int], pl.DataFrame] | None = field(default=None, repr=False)
    # Each row's concurrency as the classification replayed it (Int32, in `frame`'s order): the sweep
    # is most of a replay's time, and the explanations replay every partition again.
    _in_flight: pl.Series | None = field(default=None, repr=False)

    def parts(self) -> Iterator[pl.DataFrame]:
        """Each partition's rows (slices of `frame`, not copies)."""
        for offset, length in self.bounds:
            yield self.frame.slice(offset, length)

    def limited(self, settings: LimitSettings | None) -> Iterator[pl.DataFrame]:
        """Each partition replayed with its limits (`limited`), the last one classified first: it is
        kept from the classification (`classify_part`) rather than replayed again."""
        bounds = list(self.bounds)
        if self._last is not None:
            yield self._last[1]
            bounds.remove(self._last[0])
        for offset, length in bounds:
            in_flight = self._in_flight.slice(offset, length) if self._in_flight is not None else None
            yield limited(self.frame.slice(offset, length), settings, in_flight)

    def ts(self) -> pl.Expr:
        """The logged ts of a row in microseconds: its arrival, or its end when ts marks completion."""
        return pl.col(END if self.stamp == Stamp.COMPLETION else T)


def requests(gateway: pl.LazyFrame, settings: LimitSettings | None, stamp: Stamp = Stamp.ARRIVAL) -> Requests:
    """The replay's input (`Requests`) from the gateway frame: one scan of the columns it reads."""
    per_model = settings is not None and settings.per_model
    latency_us = (pl.col(s.LATENCY_MS).fill_null(0.0).clip(lower_bound=0.0) * 1000).round().cast(pl.Int64)
    ts_us = pl.col(s.TS).dt.epoch("us")
    arrival = ts_us - latency_us if stamp == Stamp.COMPLETION else ts_us
    served = pl.col(s.STATUS).is_between(200, 299)
    tokens = pl.col(s.PROMPT_TOKENS).fill_null(0) + pl.col(s.COMPLETION_TOKENS).fill_null(0)
    frame = (
        gateway.select(
            s.TS, s.ACCOUNT_ID, s.MODEL, s.STATUS, s.LATENCY_MS, s.PROMPT_TOKENS, s.COMPLETION_TOKENS
        )
        .with_row_index(ORDER)
        .filter(pl.col(s.ACCOUNT_ID).is_not_null())
        .select(
            ORDER,
            pl.col(s.ACCOUNT_ID).cast(pl.Categorical),
            pl.col(s.MODEL).cast(pl.Categorical),
            arrival.alias(T),
            (arrival + latency_us).alias(END),
            (pl.col(s.STATUS) == THROTTLED_STATUS).alias(THROTTLED),
            pl.when(served).then(tokens).otherwise(0).cast(pl.Int64).alias(TOK),
        )
        .collect()
    )
    frame = _sorted(frame, per_model)
    return Requests(frame, _bounds(frame, per_model), stamp)


def _unit(per_model: bool) -> list[pl.Expr]:
    """The limited unit of a row as integers: its account's category (and its model's, nulls as -1)."""
    unit = [pl.col(s.ACCOUNT_ID).to_physical().cast(pl.Int64)]
    if per_model:
        unit.append(pl.col(s.MODEL).to_physical().cast(pl.Int64).fill_null(-1))
    return unit


def _sorted(frame: pl.DataFrame, per_model: bool) -> pl.DataFrame:
    """`frame` (in ORDER) sorted by (unit, T, ORDER): one stable sort of the unit and T packed in an Int64
    when they fit (4-5x faster than sorting by the columns), else by the columns."""
    if frame.is_empty():
        return frame
    account, *model = _unit(per_model)
    unit = account
    if model:
        width = int(frame.select(model[0].max()).item() + 2).bit_length()
        unit = account * (1 << width) + model[0] + 1
    units = int(frame.select(unit.max()).item()) + 1
    origin = int(frame[T].min())  # type: ignore[arg-type]
    span = int(frame[T].max()) - origin + 1  # type: ignore[arg-type]
    if units.bit_length() + span.bit_length() <= PACK_BITS:
        return frame.sort(unit * (1 << span.bit_length()) + (pl.col(T) - origin), maintain_order=True)
    return frame.sort(*_unit(per_model), T, ORDER)


def _bounds(frame: pl.DataFrame, per_model: bool) -> tuple[tuple[int, int], ...]:
    """(offset, length) of about PART_ROWS rows each, cut where a unit starts (whole accounts)."""
    count = max(1, -(-frame.height // PART_ROWS))
    if count == 1:
        return ((0, frame.height),)
    starts = frame.select(
        pl.int_range(pl.len(), dtype=pl.Int64).filter(
            pl.any_horizontal(u.ne_missing(u.shift(1)) for u in _unit(per_model))
        )
    ).to_series()
    wanted = pl.Series([i * frame.height // count for i in range(1, count)], dtype=pl.Int64)
    at = starts.gather(starts.search_sorted(wanted, side="left").clip(upper_bound=starts.len() - 1))
    cuts = sorted({0, *at.to_list(), frame.height})
    return tuple((a, b - a) for a, b in itertools.pairwise(cuts))


def _units(part: pl.DataFrame, settings: LimitSettings | None) -> pl.DataFrame:
    """A partition's rows with KEY (run numbers of its units), REQ and DAY, as `replay` reads them."""
    per_model = settings is not None and settings.per_model
    count_rejected = settings is not None and settings.count_rejected
    reset_us = 0 if settings is None else int(settings.day_reset / timedelta(microseconds=1))
    unit = [s.ACCOUNT_ID, s.MODEL] if per_model else [s.ACCOUNT_ID]
    changed = pl.any_horizontal(
        pl.col(c).to_physical().ne_missing(pl.col(c).to_physical().shift(1)) for c in unit
    )
    counted = ~pl.col(THROTTLED) | pl.lit(count_rejected)
    return part.with_columns(
        changed.cum_sum().cast(pl.Int64).alias(KEY),
        counted.cast(pl.Int64).alias(REQ),
        ((pl.col(T) - reset_us) // _DAY_US).alias(DAY),
    )


def limited(
    part: pl.DataFrame, settings: LimitSettings | None, in_flight: pl.Series | None = None
) -> pl.DataFrame:
    """A partition replayed (`replay`) and each row's limits: its tier's, or its unit's observed peak."""
    replayed = replay(_units(part, settings), in_flight)
    return _observed_limits(replayed) if settings is None else _configured_limits(replayed, settings)


def classify_part(part: pl.DataFrame, settings: LimitSettings | None, *, every: bool = False) -> pl.DataFrame:
    """One partition of `Requests` (whole accounts) classified: its 429s and over-limit admissions (every
    row with `every`), with ORDER, ACCOUNT_ID, MODEL, T, END, TIER, VERDICT, DECIDING, the usage under
    each rule and the limits. Partitions are independent; `merge` makes the audit of their union."""
    return _classified(limited(part, settings), settings, every=every)


def _classified(frame: pl.DataFrame, settings: LimitSettings | None, *, every: bool = False) -> pl.DataFrame:
    tolerance = 0.0 if settings is None else settings.tolerance
    full = classify(bucket(frame), tolerance)
    if not every:
        full = full.filter(pl.col(VERDICT).is_not_null())
    return full.select(ORDER, s.ACCOUNT_ID, s.MODEL, T, END, TIER, VERDICT, DECIDING, *_OUTPUT)


def _configured_limits(frame: pl.DataFrame, settings: LimitSettings) -> pl.DataFrame:
    names = sorted(settings.tiers)
    table = pl.DataFrame(
        {TIER: names, **{limit_column(lim): [settings.tiers[n].limit(lim) for n in names] for lim in Limit}},
        schema={TIER: pl.String, **{limit_column(lim): pl.Int64 for lim in Limit}},
    )
    listed = pl.DataFrame(
        {s.ACCOUNT_ID: list(settings.account_tiers), "_listed": list(settings.account_tiers.values())},
        schema={s.ACCOUNT_ID: pl.Categorical, "_listed": pl.String},
    )
    # Looked up once per unit (KEY runs 1..n in row order), then spread to its rows by KEY: joining
    # every row cost a second a partition at 10M requests.
    units = (
        frame.filter(pl.col(KEY) != pl.col(KEY).shift(1).fill_null(0))
        .select(KEY, s.ACCOUNT_ID)
        .join(listed, on=s.ACCOUNT_ID, how="left", maintain_order="left")
        .with_columns(pl.col("_listed").fill_null(pl.lit(settings.default_tier, dtype=pl.String)).alias(TIER))
        .join(table, on=TIER, how="left", maintain_order="left")
    )
    spread = [TIER, *(limit_column(lim) for lim in Limit)]
    return frame.with_columns(units[c].gather(frame[KEY] - 1) for c in spread)


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
) -> RateLimits:
    """The audit of every request with an account (without explanations: `audit_limits`).
    `completion_logged`: the gateway's format writes ts when the response ends (unless the setting says)."""
    return _audited(gateway, settings, completion_logged)[0]


def _stamp(settings: LimitSettings | None, completion_logged: bool) -> Stamp:
    if settings is not None and settings.timestamp is not None:
        return settings.timestamp
    return Stamp.COMPLETION if completion_logged else Stamp.ARRIVAL


def _audited(
    gateway: pl.LazyFrame, settings: LimitSettings | None, completion_logged: bool
) -> tuple[RateLimits, Requests, pl.DataFrame]:
    rows = requests(gateway, settings, _stamp(settings, completion_logged))
    parts, last, in_flight = [], None, []
    for bounds, part in zip(rows.bounds, rows.parts(), strict=True):
        last = None  # one partition's replay in memory at a time
        frame = limited(part, settings)
        parts.append(_classified(frame, settings))
        in_flight.append(frame[usage_column(Limit.CONCURRENCY)].cast(pl.Int32))
        last = (bounds, frame)
        del frame
    rows = replace(rows, _last=last, _in_flight=pl.concat(in_flight))
    return merge(parts, gateway, settings, rows.stamp), rows, pl.concat(parts)


def classified(
    gateway: pl.LazyFrame, settings: LimitSettings | None, *, completion_logged: bool = False
) -> pl.DataFrame:
    """Every request with an account as the audit classified it (REQUEST_ID, TS, ..., VERDICT null for an
    admitted request under its limits), with the usage under each rule: for tests and small inputs."""
    rows = requests(gateway, settings, _stamp(settings, completion_logged))
    every = pl.concat([classify_part(part, settings, every=True) for part in rows.parts()])
    return _finished(every, gateway, rows.stamp, renamed=False)


def _finished(
    parts: pl.DataFrame, gateway: pl.LazyFrame, stamp: Stamp, *, renamed: bool = True
) -> pl.DataFrame:
    """Classified rows as the report reads them: request ids (read back by ORDER), ts, names, sorted."""
    ids = (
        gateway.select(s.REQUEST_ID)
        .with_row_index(ORDER)
        .filter(pl.col(ORDER).is_in(parts[ORDER].implode()))
        .collect()
    )
    ts = pl.col(END if stamp == Stamp.COMPLETION else T)
    names = {col: col.removeprefix("_use_") for col in FLAGGED_USAGE}
    names |= {limit_column(lim): f"limit_{lim.value}" for lim in Limit}
    if not renamed:
        names = {col: col for col in names}
    return (
        parts.join(ids, on=ORDER, how="left")
        .select(
            s.REQUEST_ID,
            pl.from_epoch(ts, time_unit="us").dt.replace_time_zone("UTC").cast(s.TS_DTYPE).alias(s.TS),
            pl.col(s.ACCOUNT_ID).cast(pl.String),
            pl.col(s.MODEL).cast(pl.String),
            TIER,
            VERDICT,
            DECIDING,
            *names,
        )
        .rename(names)
        .sort(s.TS, s.ACCOUNT_ID, s.REQUEST_ID, nulls_last=True)
    )


def merge(
    parts: list[pl.DataFrame], gateway: pl.LazyFrame, settings: LimitSettings | None, stamp: Stamp
) -> RateLimits:
    """The audit of the union of partitions from each one's `classify_part` (in any order)."""
    return _result(_finished(pl.concat(parts), gateway, stamp), settings, stamp, skipped=_skipped(gateway))


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

    result, rows, flagged = _audited(gateway, settings, completion_logged)
    return replace(result, explanations=explain(rows, flagged, gateway, ledger, settings))


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
