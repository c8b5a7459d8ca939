"""The Report: everything the renderers need, built once from the library records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from analyzer.config import Settings
from analyzer.findings import (
    BurnRateAlert,
    Burst,
    Detection,
    InputReport,
    LatencySpike,
    LogGap,
    Reconciliation,
)
from analyzer.timeline import build_timeline, span_text

SCHEMA_VERSION = 1
MISMATCH_KINDS = ("overcharge", "duplicate", "failed_charged")
SIGNALS = {"errors": "5xx rate", "latency": "p95 latency", "ledger": "mismatched ledger entries"}


@dataclass(frozen=True, eq=False)
class Report:
    """A finished analysis, ready to render as JSON, Markdown or terminal output."""

    inputs: tuple[InputReport, ...]
    summary: dict[str, object]
    bursts: tuple[Burst, ...]
    spikes: tuple[LatencySpike, ...]
    alerts: tuple[BurnRateAlert, ...]
    gaps: tuple[LogGap, ...]
    reconciliation: Reconciliation | None
    timeline: pl.DataFrame
    settings: Settings
    notes: tuple[str, ...]
    series: pl.DataFrame
    quantile_method: str
    refunds_path: str | None = None
    schema_version: int = SCHEMA_VERSION


def build_report(
    inputs: Sequence[InputReport],
    detection: Detection,
    reconciliation: Reconciliation | None,
    events: pl.DataFrame,
    settings: Settings,
    *,
    notes: Sequence[str] = (),
    refunds_path: str | None = None,
) -> Report:
    """Assemble the report from the inputs' reports and the detection and reconciliation records."""
    timeline = build_timeline(detection, reconciliation, events)
    rec_notes = () if reconciliation is None else reconciliation.notes
    return Report(
        inputs=tuple(inputs),
        summary=_summary(detection, reconciliation, timeline, settings),
        bursts=detection.bursts,
        spikes=detection.spikes,
        alerts=detection.alerts,
        gaps=detection.gaps,
        reconciliation=reconciliation,
        timeline=timeline,
        settings=settings,
        notes=(*notes, *detection.notes, *rec_notes),
        series=downsample(detection.series, settings.report.chart_points),
        quantile_method=detection.quantile_method,
        refunds_path=refunds_path,
    )


def downsample(series: pl.DataFrame, points: int) -> pl.DataFrame:
    """At most `points` rows: errors and requests summed per bucket, p95/p99 the bucket's worst."""
    if series.is_empty():
        return series
    n = series.height
    return (
        series.sort("window")
        .with_row_index("_i")
        .group_by((pl.col("_i") * max(points, 1) // n).alias("_b"), maintain_order=True)
        .agg(
            pl.col("window").first(),
            pl.col("requests").sum(),
            pl.col("errors").sum(),
            pl.col("p95_ms").max(),
            pl.col("p99_ms").max(),
        )
        .with_columns(
            pl.when(pl.col("requests") > 0)
            .then(pl.col("errors") / pl.col("requests"))
            .otherwise(0.0)
            .alias("error_rate")
        )
        .select("window", "requests", "errors", "error_rate", "p95_ms", "p99_ms")
    )


def _onsets(detection: Detection, reconciliation: Reconciliation | None) -> dict[str, datetime | None]:
    ledger: list[datetime] = []
    if reconciliation is not None:
        spans = reconciliation.spans
        if not spans.is_empty():
            ledger += spans.filter(pl.col("kind").is_in(MISMATCH_KINDS))["first_at"].to_list()
        ledger += [p.start for p in reconciliation.patterns]
    return {
        "errors": min((b.start for b in detection.bursts), default=None),
        "latency": min((s.start for s in detection.spikes), default=None),
        "ledger": min(ledger, default=None),
    }


def what_moved_first(onsets: dict[str, datetime | None]) -> str:
    """A sentence of onset order and lead/lag, e.g. 'p95 latency moved first; it led 5xx rate by 3 min.'"""
    seen = sorted((t, name) for name, t in onsets.items() if t is not None)
    if not seen:
        return "Nothing moved: no burst, latency spike or ledger mismatch was found."
    first_t, first = seen[0]
    parts = [f"{SIGNALS[first]} moved first ({first_t:%H:%M} UTC)"]
    for t, name in seen[1:]:
        parts.append(
            f"{SIGNALS[name]} moved at the same time"
            if t == first_t
            else f"{SIGNALS[first]} led {SIGNALS[name]} by {span_text(t - first_t)}"
        )
    missing = [SIGNALS[n] for n, t in onsets.items() if t is None]
    tail = f"; no onset of {', '.join(missing)}" if missing else ""
    return "; ".join(parts) + tail + "."


def _summary(
    detection: Detection, reconciliation: Reconciliation | None, timeline: pl.DataFrame, settings: Settings
) -> dict[str, object]:
    s = detection.series
    requests = int(s["requests"].sum()) if not s.is_empty() else 0
    errors = int(s["errors"].sum()) if not s.is_empty() else 0
    onsets = _onsets(detection, reconciliation)
    starts = [t for t in onsets.values() if t is not None] + [g.start for g in detection.gaps]
    first_symptom = min(starts, default=None)
    ends = (
        [b.end for b in detection.bursts]
        + [x.end for x in detection.spikes]
        + [g.end for g in detection.gaps]
    )
    if reconciliation is not None:
        ends += [p.end for p in reconciliation.patterns]
    last_symptom = max(ends, default=first_symptom)
    ev = timeline.filter(pl.col("kind") == "event")
    response = fix = None
    if first_symptom is not None:
        after = ev.filter(pl.col("ts") >= first_symptom)
        response = after["ts"].min() if after.height else None
        fixes = after.filter(
            pl.col("detail").str.contains(r"(?i)\b(hot)?fix|rollback|revert|mitigat")
            | pl.col("title").str.contains(r"(?i)\b(hot)?fix|rollback|revert|mitigat")
        )
        fix = fixes["ts"].min() if fixes.height else None

    def secs(a: object, b: datetime | None) -> int | None:
        return None if a is None or b is None else int((a - b).total_seconds())  # type: ignore[operator]

    accounts = reconciliation.accounts if reconciliation is not None else pl.DataFrame()
    owed = accounts.filter(pl.col("refund_tokens") > 0) if "refund_tokens" in accounts.columns else accounts
    top = (
        owed.sort(["refund_tokens", "account_id"], descending=[True, False]).head(settings.report.top_n)
        if owed.height
        else owed
    )
    return {
        "requests": requests,
        "failed_requests": errors,
        "error_rate": errors / requests if requests else 0.0,
        "bursts": len(detection.bursts),
        "latency_spikes": len(detection.spikes),
        "seconds_in_burst": int(sum((b.end - b.start).total_seconds() for b in detection.bursts)),
        "accounts_hit_by_errors": sum(b.accounts_affected for b in detection.bursts),
        "accounts_overcharged": int((accounts["overcharge"] > 0).sum())
        if "overcharge" in accounts.columns
        else 0,
        "accounts_owed": owed.height,
        "refund_tokens_total": 0 if reconciliation is None else reconciliation.refund_tokens_total,
        "top_accounts": [
            {"account_id": r["account_id"], "refund_tokens": int(r["refund_tokens"])}
            for r in top.iter_rows(named=True)
        ]
        if top.height
        else [],
        "first_symptom_at": first_symptom,
        "last_symptom_at": last_symptom,
        "first_response_at": response,
        "fix_at": fix,
        "symptom_to_response_seconds": secs(response, first_symptom),
        "incident_seconds": secs(last_symptom, first_symptom),
        "symptom_to_fix_seconds": secs(fix, first_symptom),
        "onsets": onsets,
        "what_moved_first": what_moved_first(onsets),
    }
