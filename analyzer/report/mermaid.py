"""Mermaid charts for the Markdown report: they render on GitHub and GitLab with no image files.

Mermaid has no escape inside gantt labels, so every label from the logs goes through
`escape(..., "mermaid")`, which swaps the characters that would end a label for look-alikes, and every
label starts with fixed text so that no log string can begin a line with a Mermaid keyword.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from analyzer.findings import SERIES_WINDOW, Pattern
from analyzer.reconcile.classify import WIPED
from analyzer.report.escape import escape
from analyzer.report.formatting import Clock
from analyzer.report.model import Report
from analyzer.report.timeline import Entry
from analyzer.schema import KIND, MODEL, TITLE, TS

_STAMP = "%Y-%m-%d %H:%M:%S"
_MIN_BAR = timedelta(minutes=1)
_LABEL_CHARS = 48  # a longer gantt label pushes the bars off a page-wide chart
MAX_BARS = 40  # items per gantt section: GitHub renders no diagram over 50,000 characters


def _label(text: str) -> str:
    text = escape(text, "mermaid")
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _longest(items: Sequence[tuple[str, datetime, datetime]]) -> list[tuple[str, datetime, datetime]]:
    """At most MAX_BARS items, the longest (ties: earliest), in time order: the chart keeps its size."""
    kept = sorted(items, key=lambda w: (-(w[2] - w[1]).total_seconds(), w[1], w[0]))[:MAX_BARS]
    return sorted(kept, key=lambda w: (w[1], w[0]))


def _section(name: str, items: Sequence[tuple[str, datetime, datetime]]) -> str:
    shown = min(len(items), MAX_BARS)
    return f"    section {name}" + ("" if shown == len(items) else f" ({shown} longest of {len(items):,})")


def gantt(report: Report, clock: Clock, timeline: pl.DataFrame | None = None) -> list[str]:
    """A gantt chart of the incident windows (bursts, spikes, gaps, ledger fault patterns), scattered
    findings (wiped balances) as points, and the operator events of `timeline` (default: the report's).
    Each section draws at most MAX_BARS items, so the block stays within GitHub's size limit."""
    windows: list[tuple[str, Sequence[tuple[str, datetime, datetime]], str]] = [
        ("5xx bursts", [(f"burst {b.scope}", b.start, b.end) for b in report.bursts], "crit, "),
        ("Latency spikes", [(f"spike {s.scope}", s.start, s.end) for s in report.spikes], "active, "),
        ("Log gaps", [("no log lines", g.start, g.end) for g in report.gaps], ""),
    ]
    points: list[tuple[str, datetime, datetime]] = []
    if report.reconciliation is not None:
        rec = report.reconciliation
        faults = [
            (f"{p.kind} {p.model or 'all models'}", p.start, p.end)
            for p in rec.patterns
            if p.kind != Pattern.BALANCE_WIPED  # scattered entries, drawn one by one below
        ]
        windows.append(("Ledger faults", faults, "done, "))
        if WIPED in rec.findings.columns:
            wiped = rec.findings.filter(pl.col(WIPED)).sort(TS).head(MAX_BARS)
            points = [(f"wiped balance {m or ''}", t, t) for t, m in wiped.select(TS, MODEL).iter_rows()]
    timeline = report.timeline if timeline is None else timeline
    events = timeline.filter(timeline[KIND] == Entry.EVENT).head(MAX_BARS)
    if not any(items for _, items, _ in windows) and events.is_empty() and not points:
        return []
    lines = [
        "```mermaid",
        "gantt",
        f"    title Incident windows ({clock.heading()})",
        "    dateFormat YYYY-MM-DD HH:mm:ss",
        "    axisFormat %H:%M" if clock.day else "    axisFormat %m-%d %H:%M",
    ]
    for name, items, tag in windows:
        if items:
            lines.append(_section(name, items))
            # A window of one instant still gets a minute's bar, or the chart would not show it.
            lines += [
                f"    {_label(label)} :{tag}{a:{_STAMP}}, {max(b, a + _MIN_BAR):{_STAMP}}"
                for label, a, b in _longest(items)
            ]
    if points:
        lines.append("    section Scattered ledger findings")
        lines += [
            f"    {_label(f'{clock.short(t)} {label}')} :milestone, {t:{_STAMP}}, 0m"
            for label, t, _ in points
        ]
    if events.height:
        lines.append("    section Operator events")
        lines += [
            f"    {_label(f'{clock.short(t)} {title}')} :milestone, {t:{_STAMP}}, 0m"
            for t, title in events.select(TS, TITLE).iter_rows()
        ]
    return [*lines, "```", ""]


# The line's colour: a dark red with contrast on GitHub's light and dark backgrounds alike.
LINE_COLOUR = "#d62728"


def xychart(
    report: Report, clock: Clock, title: str, unit: str, column: str, scale: float, decimals: int
) -> list[str]:
    """A line chart of one column of the report's series (error rate, p95) over time.

    The x axis is numeric, in hours (UTC) of the report's first day, so Mermaid labels only round
    hours however many points there are; the line takes LINE_COLOUR through the theme variables."""
    s = report.series
    if s.is_empty():
        return []
    first: datetime = s[SERIES_WINDOW].min()  # type: ignore[assignment]
    last: datetime = s[SERIES_WINDOW].max()  # type: ignore[assignment]
    midnight = first.replace(hour=0, minute=0, second=0, microsecond=0)
    lo, hi = (first - midnight) / timedelta(hours=1), (last - midnight) / timedelta(hours=1)
    hi = max(hi, lo + 1 / 60)
    values = ", ".join(f"{(v or 0.0) * scale:.{decimals}f}" for v in s[column])
    axis = f"hour, UTC, {clock.day:%Y-%m-%d}" if clock.day else f"hours since {midnight:%Y-%m-%d} 00:00 UTC"
    return [
        "```mermaid",
        "---",
        "config:",
        "  themeVariables:",
        "    xyChart:",
        f'      plotColorPalette: "{LINE_COLOUR}"',
        "---",
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "{axis}" {lo:.3f} --> {hi:.3f}',
        f'    y-axis "{unit}"',
        f"    line [{values}]",
        "```",
        "",
    ]
