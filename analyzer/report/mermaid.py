"""Mermaid charts for the Markdown report: they render on GitHub and GitLab with no image files.

Mermaid has no escape inside gantt labels, so every label from the logs goes through
`escape(..., "mermaid")`, which swaps the characters that would end a label for look-alikes, and every
label starts with fixed text so that no log string can begin a line with a Mermaid keyword.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from analyzer.findings import SERIES_WINDOW
from analyzer.report.escape import escape
from analyzer.report.formatting import Clock
from analyzer.report.model import Report
from analyzer.report.timeline import Entry
from analyzer.schema import KIND, TITLE, TS

_STAMP = "%Y-%m-%d %H:%M:%S"
_MIN_BAR = timedelta(minutes=1)
_LABEL_CHARS = 48  # a longer gantt label pushes the bars off a page-wide chart


def _label(text: str) -> str:
    text = escape(text, "mermaid")
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def gantt(report: Report, clock: Clock, timeline: pl.DataFrame | None = None) -> list[str]:
    """A gantt chart of the incident windows (bursts, spikes, gaps, ledger faults) and the operator
    events of `timeline` (default: the report's)."""
    windows: list[tuple[str, Sequence[tuple[str, datetime, datetime]], str]] = [
        ("5xx bursts", [(f"burst {b.scope}", b.start, b.end) for b in report.bursts], "crit, "),
        ("Latency spikes", [(f"spike {s.scope}", s.start, s.end) for s in report.spikes], "active, "),
        ("Log gaps", [("no log lines", g.start, g.end) for g in report.gaps], ""),
    ]
    if report.reconciliation is not None:
        faults = [
            (f"{p.kind} {p.model or 'all models'}", p.start, p.end) for p in report.reconciliation.patterns
        ]
        windows.append(("Ledger faults", faults, "done, "))
    timeline = report.timeline if timeline is None else timeline
    events = timeline.filter(timeline[KIND] == Entry.EVENT)
    if not any(items for _, items, _ in windows) and events.is_empty():
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
            lines.append(f"    section {name}")
            # A window of one instant still gets a minute's bar, or the chart would not show it.
            lines += [
                f"    {_label(label)} :{tag}{a:{_STAMP}}, {max(b, a + _MIN_BAR):{_STAMP}}"
                for label, a, b in items
            ]
    if events.height:
        lines.append("    section Operator events")
        lines += [
            f"    {_label(f'{clock.short(t)} {title}')} :milestone, {t:{_STAMP}}, 0m"
            for t, title in events.select(TS, TITLE).iter_rows()
        ]
    return [*lines, "```", ""]


def xychart(
    report: Report, clock: Clock, title: str, unit: str, column: str, scale: float, decimals: int
) -> list[str]:
    """A line chart of one column of the report's series (error rate, p95) over time."""
    s = report.series
    if s.is_empty():
        return []
    fmt = "%H:%M" if clock.day else "%m-%d %H:%M"
    labels = ", ".join(f'"{t:{fmt}}"' for t in s[SERIES_WINDOW])
    values = ", ".join(f"{(v or 0.0) * scale:.{decimals}f}" for v in s[column])
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "{clock.heading()}" [{labels}]',
        f'    y-axis "{unit}"',
        f"    line [{values}]",
        "```",
        "",
    ]
