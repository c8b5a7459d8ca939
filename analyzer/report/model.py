"""The Report: everything the renderers need, built once from the library records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Final

import polars as pl

from analyzer.config import Settings
from analyzer.engine import Engine
from analyzer.findings import (
    FIRST_AT,
    MISMATCH_KINDS,
    OVERCHARGE_KINDS,
    REFUND_TOKENS,
    SERIES_ERROR_RATE,
    SERIES_ERRORS,
    SERIES_P95,
    SERIES_P99,
    SERIES_REQUESTS,
    SERIES_WINDOW,
    BurnRateAlert,
    Burst,
    Detection,
    Finding,
    InputReport,
    LatencySpike,
    LogGap,
    Reconciliation,
)
from analyzer.limits import RateLimits
from analyzer.notes import Note
from analyzer.reconcile.compensation import Compensation
from analyzer.report.happenings import happenings, with_groups
from analyzer.report.incident import Incident, find_incident
from analyzer.report.response import error_budget_consumed
from analyzer.report.response import response as respond
from analyzer.report.timeline import build_timeline, clock, span_text
from analyzer.schema import ACCOUNT_ID, KIND, TITLE, TS

SCHEMA_VERSION = 1
SIGNALS = {"errors": "the 5xx rate", "latency": "p95 latency", "ledger": "mismatched ledger entries"}
# Finding kinds counted per account (every kind but ok), in the order the report lists them.
FINDING_KINDS = (
    Finding.OVERCHARGE,
    Finding.CACHED_AT_FULL_PRICE,
    Finding.REASONING_COUNTED_TWICE,
    Finding.UNDERCHARGE,
    Finding.DUPLICATE,
    Finding.FAILED_CHARGED,
    Finding.ORPHAN,
    Finding.IN_LOG_GAP,
    Finding.OUT_OF_SPAN,
    Finding.UNBILLED,
    Finding.BALANCE_BREAK,
)
# Operator events that mark the fix: by their kind, or by a title that says a fix shipped
# ("fix in progress" is a statement, not the fix).
_FIX_KINDS = r"(?i)^(hot)?fix|rollback|revert|mitigat"
_FIX_TITLES = (
    r"(?i)\b(hotfix|rolled back|rollback|reverted|mitigated|fix(ed)? (deployed|shipped|applied|rolled out))\b"
)
_CHANGE_KINDS = r"(?i)^(launch|release|rollout|change)$"
# Columns of `owed_accounts` (with ACCOUNT_ID and REFUND_TOKENS): how many findings the account has.
OWED_FINDINGS: Final = "findings"


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
    notes: tuple[Note, ...]  # said by report/notes.py
    series: pl.DataFrame
    quantile_method: str
    refunds_path: str | None = None
    schema_version: int = SCHEMA_VERSION
    slices: pl.DataFrame = field(default_factory=pl.DataFrame)  # Detection.scopes: each scope's day
    rate_limits: RateLimits | None = None
    compensation: Compensation | None = (
        None  # the remedy's coverage and SLA credits (reconcile/compensation.py)
    )
    # A provider's usage export against the gateway per day and model (reconcile/totals.py); None: no export.
    usage_totals: pl.DataFrame | None = None
    # One row per happening (happenings.py) and the incident window (incident.py); `timeline` has GROUP.
    happenings: pl.DataFrame = field(default_factory=pl.DataFrame)
    incident: Incident = field(default_factory=lambda: Incident(None, None, None, None, False))
    full: bool = False  # the human reports show every happening, not only the first rows by rank
    engine: Engine = (
        Engine.LOCAL
    )  # what read the inputs (engine/): the one thing two engines' reports differ in


def build_report(
    inputs: Sequence[InputReport],
    detection: Detection,
    reconciliation: Reconciliation | None,
    events: pl.DataFrame,
    settings: Settings,
    *,
    notes: Sequence[Note] = (),
    refunds_path: str | None = None,
    rate_limits: RateLimits | None = None,
    usage_totals: pl.DataFrame | None = None,
    full: bool = False,
    engine: Engine = Engine.LOCAL,
) -> Report:
    """Assemble the report from the inputs' reports and the detection and reconciliation records."""
    timeline = with_groups(build_timeline(detection, reconciliation, events, rate_limits))
    rows = happenings(timeline, reconciliation)
    incident = find_incident(rows, reconciliation, events, detection.series, settings.postmortem)
    rec_notes = () if reconciliation is None else reconciliation.notes
    return Report(
        inputs=tuple(inputs),
        summary=_summary(detection, reconciliation, events, settings, incident),
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
        usage_totals=usage_totals,
        refunds_path=refunds_path,
        slices=detection.scopes,
        rate_limits=rate_limits,
        happenings=rows,
        incident=incident,
        full=full,
        engine=engine,
    )


def _span(detection: Detection) -> tuple[datetime, datetime] | None:
    """The first and last window of the gateway series."""
    s = detection.series
    if s.is_empty():
        return None
    return s[SERIES_WINDOW].min(), s[SERIES_WINDOW].max()  # type: ignore[return-value]


def downsample(series: pl.DataFrame, points: int) -> pl.DataFrame:
    """At most `points` rows: errors and requests summed per bucket, p95/p99 the bucket's worst."""
    if series.is_empty():
        return series
    n = series.height
    return (
        series.sort(SERIES_WINDOW)
        .with_row_index("_i")
        .group_by((pl.col("_i") * max(points, 1) // n).alias("_b"), maintain_order=True)
        .agg(
            pl.col(SERIES_WINDOW).first(),
            pl.col(SERIES_REQUESTS).sum(),
            pl.col(SERIES_ERRORS).sum(),
            pl.col(SERIES_P95).max(),
            pl.col(SERIES_P99).max(),
        )
        .with_columns(
            pl.when(pl.col(SERIES_REQUESTS) > 0)
            .then(pl.col(SERIES_ERRORS) / pl.col(SERIES_REQUESTS))
            .otherwise(0.0)
            .alias(SERIES_ERROR_RATE)
        )
        .select(SERIES_WINDOW, SERIES_REQUESTS, SERIES_ERRORS, SERIES_ERROR_RATE, SERIES_P95, SERIES_P99)
    )


def _onsets(detection: Detection, reconciliation: Reconciliation | None) -> dict[str, datetime | None]:
    ledger: list[datetime] = []
    if reconciliation is not None:
        # A pattern is where mismatches bunch; without one, the first mismatch of any model is the onset
        # (with one, a stray early mismatch would claim the ledger moved first).
        ledger = [p.start for p in reconciliation.patterns]
        spans = reconciliation.spans
        if not ledger and not spans.is_empty():
            ledger = spans.filter(pl.col(KIND).is_in(MISMATCH_KINDS))[FIRST_AT].to_list()
    return {
        "errors": min((b.start for b in detection.bursts), default=None),
        "latency": min((s.start for s in detection.spikes), default=None),
        "ledger": min(ledger, default=None),
    }


def what_moved_first(onsets: dict[str, datetime | None]) -> str:
    """Onset order and lead/lag in one sentence: 'First to move: p95 latency, at 09:10 UTC; it led ...'."""
    seen = sorted((t, name) for name, t in onsets.items() if t is not None)
    if not seen:
        return "Nothing moved: no burst, latency spike or ledger mismatch was found."
    first_t, first = seen[0]
    text = f"First to move: {SIGNALS[first]}, at {clock(first_t)} UTC"
    leads = [f"{SIGNALS[name]} by {span_text(t - first_t)}" for t, name in seen[1:] if t > first_t]
    if leads:
        text += "; it led " + " and ".join(leads)
    together = [SIGNALS[name] for t, name in seen[1:] if t == first_t]
    if together:
        text += f"; {' and '.join(together)} moved at the same time"
    missing = [SIGNALS[n] for n, t in onsets.items() if t is None]
    if missing:
        text += f"; {' and '.join(missing)} never stood out"
    return text + "."


def _union_seconds(windows: Sequence[tuple[datetime, datetime]]) -> int:
    """Seconds covered by at least one window: bursts in different scopes overlap and count once."""
    total, reach = 0.0, None
    for start, end in sorted(windows):
        if reach is not None and start < reach:
            start = reach
        if end > start:
            total += (end - start).total_seconds()
            reach = end if reach is None else max(reach, end)
    return int(total)


def _first_response_and_fix(
    events: pl.DataFrame, since: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The first operator event after `since` that is not a launch, and the first one that is a fix."""
    if since is None or events.is_empty():
        return None, None
    kind = pl.col(KIND).fill_null("") if KIND in events.columns else pl.lit("")
    after = events.filter(pl.col(TS) >= since)
    # A launch or release is the change under suspicion, not a response to it.
    response = after.filter(~kind.str.contains(_CHANGE_KINDS))[TS].min()
    fixes = after.filter(
        kind.str.contains(_FIX_KINDS) | pl.col(TITLE).fill_null("").str.contains(_FIX_TITLES)
    )
    return response, fixes[TS].min()  # type: ignore[return-value]


def owed_accounts(accounts: pl.DataFrame) -> pl.DataFrame:
    """Every account owed a refund, largest first (ties by id): account_id, refund_tokens, findings."""
    if accounts.is_empty() or REFUND_TOKENS not in accounts.columns:
        return pl.DataFrame(schema={ACCOUNT_ID: pl.String, REFUND_TOKENS: pl.Int64, OWED_FINDINGS: pl.Int64})
    kinds = [k for k in FINDING_KINDS if k in accounts.columns]
    findings = pl.sum_horizontal(pl.col(kinds).fill_null(0)) if kinds else pl.lit(0)
    return (
        accounts.filter(pl.col(REFUND_TOKENS) > 0)
        .sort([REFUND_TOKENS, ACCOUNT_ID], descending=[True, False])
        .select(
            pl.col(ACCOUNT_ID).cast(pl.String),
            pl.col(REFUND_TOKENS).cast(pl.Int64),
            findings.cast(pl.Int64).alias(OWED_FINDINGS),
        )
    )


def _summary(
    detection: Detection,
    reconciliation: Reconciliation | None,
    events: pl.DataFrame,
    settings: Settings,
    incident: Incident,
) -> dict[str, object]:
    s = detection.series
    requests = int(s[SERIES_REQUESTS].sum()) if not s.is_empty() else 0
    errors = int(s[SERIES_ERRORS].sum()) if not s.is_empty() else 0
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
    if incident.start is not None:
        # The incident window: background kinds and isolated symptoms far from the rest do not stretch it.
        first_symptom, last_symptom = incident.start, incident.end
    response, fix = _first_response_and_fix(events, first_symptom)
    roles = respond(incident, events, detection.alerts, settings.postmortem)
    span = _span(detection)
    consumed = (
        None
        if span is None
        else error_budget_consumed(
            requests,
            errors,
            span[1] - span[0] + settings.bursts.window,
            settings.slo.target,
            settings.postmortem.slo_window,
        )
    )

    def secs(a: datetime | None, b: datetime | None) -> int | None:
        return None if a is None or b is None else int((a - b).total_seconds())

    accounts = reconciliation.accounts if reconciliation is not None else pl.DataFrame()
    owed = owed_accounts(accounts)
    return {
        "requests": requests,
        "failed_requests": errors,
        "error_rate": errors / requests if requests else 0.0,
        "bursts": len(detection.bursts),
        "latency_spikes": len(detection.spikes),
        "log_gaps": len(detection.gaps),
        "seconds_in_burst": _union_seconds([(b.start, b.end) for b in detection.bursts]),
        "accounts_hit_by_errors": detection.accounts_hit,
        "accounts_overcharged": int(
            accounts.select(
                pl.any_horizontal(pl.col(k) > 0 for k in OVERCHARGE_KINDS if k in accounts.columns).sum()
            ).item()
        )
        if Finding.OVERCHARGE in accounts.columns
        else 0,
        "accounts_owed": owed.height,
        "refund_tokens_total": 0 if reconciliation is None else reconciliation.refund_tokens_total,
        "refund_usd": None if reconciliation is None else reconciliation.refund_usd,
        "top_accounts": owed.head(settings.report.top_n).to_dicts(),
        "first_symptom_at": first_symptom,
        "last_symptom_at": last_symptom,
        "first_response_at": response,
        "fix_at": fix,
        "symptom_to_response_seconds": secs(response, first_symptom),
        "incident_seconds": secs(last_symptom, first_symptom),
        "symptom_to_fix_seconds": secs(fix, first_symptom),
        "onsets": onsets,
        "what_moved_first": what_moved_first(onsets),
        "error_budget_consumed": consumed,
        "window_opened_by": incident.opened_by,
        "window_closed_by": incident.closed_by,
        "isolated_symptoms": list(incident.isolated),
        "background": [asdict(b) for b in incident.background],
        "detected_at": roles.detected_at,
        "mitigated_at": roles.mitigated_at,
        "resolved_at": roles.resolved_at,
        "page_at": roles.page_at,
        "time_to_detect_seconds": secs(roles.detected_at, first_symptom),
        "time_to_mitigate_seconds": secs(roles.mitigated_at, first_symptom),
        "time_to_resolve_seconds": secs(roles.resolved_at, first_symptom),
    }
