"""Findings and operator notes merged into one chronological incident timeline.

`build_timeline` turns the detection and reconciliation records and the operator events frame into a
frame of ts, kind, title, detail, scope. Ties on ts are broken by a fixed kind order (ends before starts,
so back-to-back windows read naturally), then title, scope and detail: the order never depends on input
order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from analyzer.findings import (
    GLOBAL,
    BurnRateAlert,
    Burst,
    Detection,
    LatencySpike,
    LogGap,
    Reconciliation,
)
from analyzer.schema import TS_DTYPE

# Tie-break order at equal ts: operator notes first, then windows that close, then windows that open.
KIND_ORDER: tuple[str, ...] = (
    "event",
    "burst_end",
    "spike_end",
    "gap_end",
    "alert_resolved",
    "pattern_end",
    "gap_start",
    "burst_start",
    "spike_start",
    "alert_fired",
    "pattern_start",
    "fault_first",
    "fault_last",
    "quota_reset",
)

TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS_DTYPE,
    "kind": pl.String(),
    "title": pl.String(),
    "detail": pl.String(),
    "scope": pl.String(),
}

_Row = tuple[datetime, str, str, str, str | None]


def build_timeline(
    detection: Detection, reconciliation: Reconciliation | None, events: pl.DataFrame
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
                        (t, "quota_reset", "Quota reset", "balances set anew", None)
                        for t in reconciliation.resets
                    ),
                ]
            )
        )
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    return (
        pl.concat(frames, how="vertical")
        .with_columns(
            pl.col("kind").replace_strict(rank, default=len(rank), return_dtype=pl.Int32).alias("_rank")
        )
        .sort(["ts", "_rank", "title", "scope", "detail"], nulls_last=True)
        .drop("_rank")
    )


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
        rows.append((b.start, "burst_start", _scoped("5xx burst starts", b.scope), start, _scope(b.scope)))
        end = f"lasted {span_text(b.end - b.start)}"
        rows.append((b.end, "burst_end", _scoped("5xx burst ends", b.scope), end, _scope(b.scope)))
    return rows


def _spike_rows(spikes: Sequence[LatencySpike]) -> list[_Row]:
    rows: list[_Row] = []
    for s in spikes:
        start = (
            f"peak p95 {s.peak_p95_ms:,.0f} ms against a baseline of {s.baseline_p95_ms:,.0f} ms "
            f"({s.factor:.1f}×) at {clock(s.peak_at)}"
        )
        rows.append(
            (s.start, "spike_start", _scoped("Latency spike starts", s.scope), start, _scope(s.scope))
        )
        end = f"lasted {span_text(s.end - s.start)}"
        rows.append((s.end, "spike_end", _scoped("Latency spike ends", s.scope), end, _scope(s.scope)))
    return rows


def _gap_rows(gaps: Sequence[LogGap]) -> list[_Row]:
    rows: list[_Row] = []
    for g in gaps:
        detail = (
            f"no gateway lines for {span_text(g.end - g.start)}; about {g.expected_requests:,.0f} expected"
        )
        rows.append((g.start, "gap_start", "Log gap starts", detail, None))
        rows.append(
            (g.end, "gap_end", "Log gap ends", f"lines again after {span_text(g.end - g.start)}", None)
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
            rows.append((f.fired_at, "alert_fired", f"Burn-rate alert {a.name} fires", rule + still, None))
            if f.resolved_at is not None:
                held = f"fired for {span_text(f.resolved_at - f.fired_at)}"
                rows.append(
                    (f.resolved_at, "alert_resolved", f"Burn-rate alert {a.name} resolves", held, None)
                )
    return rows


def _pattern_rows(reconciliation: Reconciliation) -> list[_Row]:
    rows: list[_Row] = []
    for p in reconciliation.patterns:
        where = f" ({p.model})" if p.model else ""
        scope = None if p.model is None else f"model={p.model}"
        rows.append((p.start, "pattern_start", f"Likely fault: {p.kind}{where}", p.description, scope))
        if p.end > p.start:  # a fault seen at one instant has no separate end
            entries = f"{p.entries:,} entr{'y' if p.entries == 1 else 'ies'}"
            fixed = f"last affected entry; {entries} ({p.share:.1%} of their kind) over {span_text(p.end - p.start)}"
            rows.append((p.end, "pattern_end", f"Fault stops: {p.kind}{where}", fixed, scope))
    return rows


def _events_frame(events: pl.DataFrame) -> pl.DataFrame:
    kind = pl.col("kind") if "kind" in events.columns else pl.lit(None, dtype=pl.String)
    return events.select(
        pl.col("ts").cast(TS_DTYPE),
        pl.lit("event").alias("kind"),
        pl.col("title").cast(pl.String).fill_null(""),
        pl.concat_str(pl.lit("operator note"), pl.lit(" ("), kind.cast(pl.String), pl.lit(")"))
        .fill_null("operator note")
        .alias("detail"),
        pl.lit(None, dtype=pl.String).alias("scope"),
    )


def _grouped(n: pl.Expr) -> pl.Expr:
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
    spans = spans.filter(pl.col("kind") != "ok")
    where = pl.when(pl.col("model").is_null()).then(pl.lit("")).otherwise(pl.format(" ({})", pl.col("model")))
    scope = pl.when(pl.col("model").is_null()).then(None).otherwise(pl.format("model={}", pl.col("model")))
    count = _grouped(pl.col("count").cast(pl.Int64))
    first = spans.select(
        pl.col("first_at").cast(TS_DTYPE).alias("ts"),
        pl.lit("fault_first").alias("kind"),
        pl.format("First {}{}", pl.col("kind"), where).alias("title"),
        pl.format("{}× {} until {}", count, pl.col("kind"), _other_end("last_at", "first_at")).alias(
            "detail"
        ),
        scope.alias("scope"),
    )
    # A kind seen at one instant needs no separate "last" line.
    last = spans.filter(pl.col("last_at") > pl.col("first_at")).select(
        pl.col("last_at").cast(TS_DTYPE).alias("ts"),
        pl.lit("fault_last").alias("kind"),
        pl.format("Last {}{}", pl.col("kind"), where).alias("title"),
        pl.format("{}× {} since {}", count, pl.col("kind"), _other_end("first_at", "last_at")).alias(
            "detail"
        ),
        scope.alias("scope"),
    )
    return pl.concat([first, last], how="vertical").cast(TIMELINE_SCHEMA)  # type: ignore[arg-type]
