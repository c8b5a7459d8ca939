"""Findings and operator notes merged into one chronological incident timeline.

`build_timeline` turns the detection and reconciliation records and the operator events frame into a
frame of ts, kind, title, detail, scope. Ties on ts are broken by a fixed kind order (ends before starts,
so back-to-back windows read naturally), then title, scope and detail: the order never depends on input
order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import polars as pl

from analyzer.findings import (
    COUNT,
    FIRST_AT,
    GLOBAL,
    LAST_AT,
    BurnRateAlert,
    Burst,
    Detection,
    Finding,
    LatencySpike,
    LogGap,
    Reconciliation,
)
from analyzer.limits import RateLimits, Verdict
from analyzer.limits.classify import VERDICT
from analyzer.schema import ACCOUNT_ID, KIND, MODEL, TITLE, TS, TS_DTYPE


class Entry(StrEnum):
    """The kinds of timeline entry. Their order is the tie-break at equal ts: operator notes first, then
    windows that close, then windows that open."""

    EVENT = "event"
    BURST_END = "burst_end"
    SPIKE_END = "spike_end"
    GAP_END = "gap_end"
    ALERT_RESOLVED = "alert_resolved"
    PATTERN_END = "pattern_end"
    GAP_START = "gap_start"
    BURST_START = "burst_start"
    SPIKE_START = "spike_start"
    ALERT_FIRED = "alert_fired"
    PATTERN_START = "pattern_start"
    FAULT_FIRST = "fault_first"
    FAULT_LAST = "fault_last"
    QUOTA_RESET = "quota_reset"
    WRONG_429_FIRST = "wrong_429_first"
    WRONG_429_LAST = "wrong_429_last"
    LIMITER_FIT_START = "limiter_fit_start"
    LIMITER_FIT_END = "limiter_fit_end"


KIND_ORDER: Final = tuple(Entry)
# Columns of the timeline frame: schema.TS, schema.KIND (an Entry), schema.TITLE and these.
DETAIL: Final = "detail"
SCOPE: Final = "scope"

TIMELINE_SCHEMA: Final[dict[str, pl.DataType]] = {
    TS: TS_DTYPE,
    KIND: pl.String(),
    TITLE: pl.String(),
    DETAIL: pl.String(),
    SCOPE: pl.String(),
}

_Row = tuple[datetime, str, str, str, str | None]


def build_timeline(
    detection: Detection,
    reconciliation: Reconciliation | None,
    events: pl.DataFrame,
    rate_limits: RateLimits | None = None,
) -> pl.DataFrame:
    """One chronological frame (ts, kind, title, detail, scope) of every event and finding."""
    rows: list[_Row] = [
        *_burst_rows(detection.bursts),
        *_spike_rows(detection.spikes),
        *_gap_rows(detection.gaps),
        *_alert_rows(detection.alerts),
    ]
    frames = [_events_frame(events), _frame(rows)]
    if reconciliation is not None:
        frames.append(_spans_frame(reconciliation.spans))
        frames.append(
            _frame(
                [
                    *_pattern_rows(reconciliation),
                    *(
                        (t, Entry.QUOTA_RESET, "Quota reset", _reset_detail(n), None)
                        for t, n in zip(reconciliation.resets, reset_accounts(reconciliation), strict=True)
                    ),
                ]
            )
        )
    if rate_limits is not None:
        frames.append(_frame(_rate_limit_rows(rate_limits)))
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    return (
        pl.concat(frames, how="vertical")
        .with_columns(
            pl.col(KIND).replace_strict(rank, default=len(rank), return_dtype=pl.Int32).alias("_rank")
        )
        .sort([TS, "_rank", TITLE, SCOPE, DETAIL], nulls_last=True)
        .drop("_rank")
    )


def reset_accounts(reconciliation: Reconciliation) -> tuple[int | None, ...]:
    """Accounts reset at each reset time (None each when the reconciliation did not count them)."""
    counts = reconciliation.reset_accounts
    return counts if len(counts) == len(reconciliation.resets) else (None,) * len(reconciliation.resets)


def _reset_detail(accounts: int | None) -> str:
    return "balances set anew" if accounts is None else f"balances of {accounts:,} accounts set anew"


def clock(t: datetime) -> str:
    """A UTC time as HH:MM (HH:MM:SS when the seconds matter), for sentences."""
    return t.strftime("%H:%M:%S" if t.second or t.microsecond else "%H:%M")


def span_text(delta: timedelta) -> str:
    """A duration in words: 45 s, 3 min, 2 h 05 min, 1 d 2 h."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{sign}{minutes} min" + (f" {sec:02d} s" if sec else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours} h" + (f" {minutes:02d} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h"


def _frame(rows: Sequence[_Row]) -> pl.DataFrame:
    columns: list[Sequence[object]] = list(zip(*rows, strict=True)) if rows else [[] for _ in TIMELINE_SCHEMA]
    return pl.DataFrame(dict(zip(TIMELINE_SCHEMA, columns, strict=True)), schema=TIMELINE_SCHEMA)


def _scoped(title: str, scope: str) -> str:
    return title if scope == GLOBAL else f"{title} ({scope})"


def _scope(scope: str) -> str | None:
    return None if scope == GLOBAL else scope


def _burst_rows(bursts: Sequence[Burst]) -> list[_Row]:
    rows: list[_Row] = []
    for b in bursts:
        statuses = ", ".join(f"{code}×{n:,}" for code, n in sorted(b.status_counts.items()))
        severity = f"; alert severity {b.severity}" if b.severity else ""
        start = (
            f"peak {b.peak_error_rate:.1%} at {clock(b.peak_at)}; {b.errors:,} of {b.requests:,} requests "
            f"failed ({statuses}); {b.accounts_affected:,} accounts{severity}"
        )
        rows.append(
            (b.start, Entry.BURST_START, _scoped("5xx burst starts", b.scope), start, _scope(b.scope))
        )
        end = f"lasted {span_text(b.end - b.start)}"
        rows.append((b.end, Entry.BURST_END, _scoped("5xx burst ends", b.scope), end, _scope(b.scope)))
    return rows


def _spike_rows(spikes: Sequence[LatencySpike]) -> list[_Row]:
    rows: list[_Row] = []
    for s in spikes:
        start = (
            f"peak p95 {s.peak_p95_ms:,.0f} ms against a baseline of {s.baseline_p95_ms:,.0f} ms "
            f"({s.factor:.1f}×) at {clock(s.peak_at)}"
        )
        rows.append(
            (s.start, Entry.SPIKE_START, _scoped("Latency spike starts", s.scope), start, _scope(s.scope))
        )
        end = f"lasted {span_text(s.end - s.start)}"
        rows.append((s.end, Entry.SPIKE_END, _scoped("Latency spike ends", s.scope), end, _scope(s.scope)))
    return rows


def _gap_rows(gaps: Sequence[LogGap]) -> list[_Row]:
    rows: list[_Row] = []
    for g in gaps:
        detail = (
            f"no gateway lines for {span_text(g.end - g.start)}; about {g.expected_requests:,.0f} expected"
        )
        rows.append((g.start, Entry.GAP_START, "Log gap starts", detail, None))
        rows.append(
            (g.end, Entry.GAP_END, "Log gap ends", f"lines again after {span_text(g.end - g.start)}", None)
        )
    return rows


def _alert_rows(alerts: Sequence[BurnRateAlert]) -> list[_Row]:
    rows: list[_Row] = []
    for a in alerts:
        rule = (
            f"{a.severity}: burn rate {a.burn_rate:g}× over {span_text(a.long_window)} "
            f"and {span_text(a.short_window)}"
        )
        for f in a.firings:
            still = "" if f.resolved_at is not None else "; still firing when the logs end"
            rows.append(
                (f.fired_at, Entry.ALERT_FIRED, f"Burn-rate alert {a.name} fires", rule + still, None)
            )
            if f.resolved_at is not None:
                held = f"fired for {span_text(f.resolved_at - f.fired_at)}"
                rows.append(
                    (f.resolved_at, Entry.ALERT_RESOLVED, f"Burn-rate alert {a.name} resolves", held, None)
                )
    return rows


def _rate_limit_rows(rl: RateLimits) -> list[_Row]:
    """The first and last wrong 429 of each model, and the span each explanation fits."""
    from analyzer.report.ratelimits import explanation_text

    wrong = rl.flagged.filter(pl.col(VERDICT) == Verdict.WRONG.value)
    per_model = (
        wrong.group_by(MODEL)
        .agg(
            pl.col(TS).min().alias("_a"),
            pl.col(TS).max().alias("_b"),
            pl.len().alias("_n"),
            pl.col(ACCOUNT_ID).n_unique().alias("_acc"),
        )
        .sort(MODEL, nulls_last=True)
    )
    rows: list[_Row] = []
    for model, first, last, n, accounts in per_model.iter_rows():
        scope = None if model is None else f"{MODEL}={model}"
        where = "" if model is None else f" ({model})"
        rows.append(
            (
                first,
                Entry.WRONG_429_FIRST,
                f"First wrong 429{where}",
                f"{n:,}× wrong 429 until {clock(last)} on {accounts:,} accounts",
                scope,
            )
        )
        rows.append(
            (
                last,
                Entry.WRONG_429_LAST,
                f"Last wrong 429{where}",
                f"{n:,}× wrong 429 since {clock(first)}",
                scope,
            )
        )
    for e in rl.explanations:
        scope = f"{MODEL}={e.model}"
        text = explanation_text(e, clock)
        rows.append(
            (e.start, Entry.LIMITER_FIT_START, f"Limiter fits {e.hypothesis} ({e.model})", text, scope)
        )
        rows.append(
            (e.end, Entry.LIMITER_FIT_END, f"Limiter fit ends: {e.hypothesis} ({e.model})", text, scope)
        )
    return rows


def _pattern_rows(reconciliation: Reconciliation) -> list[_Row]:
    rows: list[_Row] = []
    for p in reconciliation.patterns:
        where = f" ({p.model})" if p.model else ""
        scope = None if p.model is None else f"model={p.model}"
        rows.append((p.start, Entry.PATTERN_START, f"Likely fault: {p.kind}{where}", p.description, scope))
        if p.end > p.start:  # a fault seen at one instant has no separate end
            entries = f"{p.entries:,} entr{'y' if p.entries == 1 else 'ies'}"
            fixed = f"last affected entry; {entries} ({p.share:.1%} of their kind) over {span_text(p.end - p.start)}"
            rows.append((p.end, Entry.PATTERN_END, f"Fault stops: {p.kind}{where}", fixed, scope))
    return rows


def _events_frame(events: pl.DataFrame) -> pl.DataFrame:
    kind = pl.col(KIND) if KIND in events.columns else pl.lit(None, dtype=pl.String)
    return events.select(
        pl.col(TS).cast(TS_DTYPE),
        pl.lit(Entry.EVENT).alias(KIND),
        pl.col(TITLE).cast(pl.String).fill_null(""),
        pl.concat_str(pl.lit("operator note"), pl.lit(" ("), kind.cast(pl.String), pl.lit(")"))
        .fill_null("operator note")
        .alias(DETAIL),
        pl.lit(None, dtype=pl.String).alias(SCOPE),
    )


def grouped(n: pl.Expr) -> pl.Expr:
    """An integer as text with thousands separators (2,145), like the f"{n:,}" of the other items."""
    return (
        n.cast(pl.String).str.reverse().str.replace_all(r"(\d{3})", "$1,").str.reverse().str.strip_prefix(",")
    )


def _other_end(column: str, this: str) -> pl.Expr:
    """The span's other end as a time of day, with its date when it falls on another day than this end."""
    same_day = pl.col(column).dt.date() == pl.col(this).dt.date()
    return (
        pl.when(same_day)
        .then(pl.col(column).dt.strftime("%H:%M:%S"))
        .otherwise(pl.col(column).dt.strftime("%Y-%m-%d %H:%M:%S"))
    )


def _spans_frame(spans: pl.DataFrame) -> pl.DataFrame:
    if spans.is_empty():
        return _frame([])
    spans = spans.filter(pl.col(KIND) != Finding.OK)
    model = pl.col(MODEL)
    where = pl.when(model.is_null()).then(pl.lit("")).otherwise(pl.format(" ({})", model))
    scope = pl.when(model.is_null()).then(None).otherwise(pl.format("model={}", model))
    count = grouped(pl.col(COUNT).cast(pl.Int64))
    first = spans.select(
        pl.col(FIRST_AT).cast(TS_DTYPE).alias(TS),
        pl.lit(Entry.FAULT_FIRST).alias(KIND),
        pl.format("First {}{}", pl.col(KIND), where).alias(TITLE),
        pl.format("{}× {} until {}", count, pl.col(KIND), _other_end(LAST_AT, FIRST_AT)).alias(DETAIL),
        scope.alias(SCOPE),
    )
    # A kind seen at one instant needs no separate "last" line.
    last = spans.filter(pl.col(LAST_AT) > pl.col(FIRST_AT)).select(
        pl.col(LAST_AT).cast(TS_DTYPE).alias(TS),
        pl.lit(Entry.FAULT_LAST).alias(KIND),
        pl.format("Last {}{}", pl.col(KIND), where).alias(TITLE),
        pl.format("{}× {} since {}", count, pl.col(KIND), _other_end(FIRST_AT, LAST_AT)).alias(DETAIL),
        scope.alias(SCOPE),
    )
    return pl.concat([first, last], how="vertical").cast(TIMELINE_SCHEMA)  # type: ignore[arg-type]
