"""Detection and response: when the incident was detected, mitigated and resolved, and the error budget.

The operator events' kinds are mapped to roles in `[postmortem]` (`detected`, `mitigated`, `resolved`).
Each time is the first event of its role at or after the incident's first symptom (resolved: the
event that closed the window when one did, else the last of its role inside the window); a role with
no such event is not known (None). The burn-rate page is the first firing of a `page` alert from an
hour before the first symptom on.

The error budget of an availability SLO over a rolling window is (1 − target) of the requests in that
window. The traffic seen is taken as the window's: its request rate over the data's span, times the
window. Consumed = failed requests / that budget (1.0 = the whole budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from analyzer.config import PostmortemSettings
from analyzer.findings import BurnRateAlert
from analyzer.report.incident import Incident
from analyzer.schema import KIND, TITLE, TS

PAGE = "page"  # the severity of a burn-rate alert that pages
_PAGE_LOOKBACK = timedelta(hours=1)


@dataclass(frozen=True)
class Response:
    """The response milestones (None: not known) with the titles of the events that mark them."""

    detected_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    page_at: datetime | None  # the first burn-rate page, if any would have fired
    page_alert: str | None
    detected_by: str | None = None
    mitigated_by: str | None = None
    resolved_by: str | None = None


def error_budget_consumed(
    requests: int, failed: int, span: timedelta, target: float, window: timedelta
) -> float | None:
    """The share of the window's error budget that `failed` of `requests` over `span` consumed."""
    if requests <= 0 or span <= timedelta(0) or target >= 1:
        return None
    budget = (1 - target) * requests * (window / span)
    return failed / budget


def _first(
    events: pl.DataFrame, kinds: tuple[str, ...], after: datetime
) -> tuple[datetime | None, str | None]:
    if events.is_empty() or KIND not in events.columns:
        return None, None
    kind = pl.col(KIND).cast(pl.String).str.to_lowercase().fill_null("")
    hit = events.filter(kind.is_in(list(kinds)) & (pl.col(TS) >= after)).sort(TS)
    return (hit[TS][0], str(hit[TITLE][0])) if hit.height else (None, None)


def response(
    incident: Incident, events: pl.DataFrame, alerts: tuple[BurnRateAlert, ...], settings: PostmortemSettings
) -> Response:
    """When the incident of `incident` was detected, mitigated, resolved and would have paged."""
    start = incident.start
    if start is None:
        return Response(None, None, None, None, None)
    detected, detected_by = _first(events, settings.detected, start)
    mitigated, mitigated_by = _first(events, settings.mitigated, start)
    if incident.closed_by_event:
        resolved, resolved_by = incident.end, incident.closed_by
    else:
        resolved, resolved_by = None, None
    pages = sorted(
        (f.fired_at, a.name)
        for a in alerts
        if a.severity == PAGE
        for f in a.firings
        if f.fired_at >= start - _PAGE_LOOKBACK and (incident.end is None or f.fired_at <= incident.end)
    )
    page_at, page_alert = pages[0] if pages else (None, None)
    return Response(
        detected_at=detected,
        mitigated_at=mitigated,
        resolved_at=resolved,
        page_at=page_at,
        page_alert=page_alert,
        detected_by=detected_by,
        mitigated_by=mitigated_by,
        resolved_by=resolved_by,
    )
