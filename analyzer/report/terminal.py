"""The report in a terminal: summary, sparklines of error rate and p95, timeline and top tables.

Every string from the logs goes into a `Text` (never read as Rich markup) after `escape(..., "terminal")`
(no control characters, so no escape sequence reaches the terminal). Tables fold long cells, so the
output fits the console width (120 columns when stdout is not a terminal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import polars as pl
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from analyzer.findings import REFUND_TOKENS, SERIES_ERROR_RATE, SERIES_P95, SERIES_WINDOW
from analyzer.reconcile import totals as usage
from analyzer.report.compensation import compensation_terminal
from analyzer.report.escape import escape
from analyzer.report.formatting import (
    Clock,
    count,
    left_out_note,
    ms,
    percent,
    report_day,
    shown_happenings,
    telling_contributors,
    times,
    when,
)
from analyzer.report.happenings import END
from analyzer.report.model import OWED_FINDINGS, Report, downsample
from analyzer.report.postmortem import (
    action_items,
    background_rows,
    page_sentence,
    response_rows,
    summary_sentences,
)
from analyzer.report.ratelimits import terminal_section
from analyzer.report.timeline import DETAIL, Entry, span_text
from analyzer.schema import ACCOUNT_ID, KIND, MODEL, TITLE, TS

BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 72


def sparkline(values: Sequence[float | None]) -> str:
    """Unicode blocks scaled from the lowest to the highest value."""
    vals = [v or 0.0 for v in values]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(BLOCKS[min(7, int((v - lo) / span * 7.999))] for v in vals)


def _text(value: object) -> Text:
    return Text(escape(value, "terminal"))


def _table(title: str, columns: Sequence[str], right: Sequence[str] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", min_width=len(title))
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", overflow="fold")
    return table


def _sparklines(report: Report, clock: Clock) -> list[Text]:
    series = downsample(report.series, SPARK_POINTS)
    if series.is_empty():
        return []
    first, last = clock.short(series[SERIES_WINDOW].min()), clock.short(series[SERIES_WINDOW].max())  # type: ignore[arg-type]
    peak_rate = cast(float, series[SERIES_ERROR_RATE].max())
    peak_p95 = cast(float | None, series[SERIES_P95].max())
    return [
        Text(
            f"5xx rate  {first} {sparkline(series['error_rate'].to_list())} {last}  peak {percent(peak_rate)}"
        ),
        Text(f"p95       {first} {sparkline(series['p95_ms'].to_list())} {last}  peak {ms(peak_p95)}"),
    ]


def _timeline(report: Report, clock: Clock) -> Table:
    shown, hidden = shown_happenings(report, report.settings.postmortem.timeline_rows)
    table = _table(f"Timeline ({clock.heading()})", ("Time", "What", "Detail"))
    if hidden:
        table.caption = left_out_note(hidden)
    for r in shown.iter_rows(named=True):
        style = "bold" if r[KIND] == Entry.EVENT else ""
        table.add_row(
            Text(when(clock, r[TS], r[END])),
            Text(escape(r[TITLE], "terminal"), style=style),
            _text(r[DETAIL]),
        )
    return table


def bursts_table(report: Report, clock: Clock) -> Table:
    """One row per 5xx burst: start, length, scope, peak, failed requests, accounts, leading slice."""
    table = _table(
        f"5xx bursts ({len(report.bursts)})",
        ("Start", "Lasted", "Scope", "Peak", "Failed", "Accounts", "Over-represented slice"),
        right=("Failed", "Accounts"),
    )
    for b in report.bursts:
        lead = "; ".join(
            f"{c.column}={c.value}: {c.error_share:.0%} of errors, {c.traffic_share:.0%} of traffic"
            for c in telling_contributors(b.top, 1)
        )
        table.add_row(
            Text(clock.at(b.start)),
            Text(span_text(b.end - b.start)),
            _text(b.scope),
            Text(f"{percent(b.peak_error_rate)} at {clock.short(b.peak_at)}"),
            Text(f"{b.errors:,} of {b.requests:,}"),
            Text(count(b.accounts_affected)),
            _text(lead or "—"),
        )
    return table


def spikes_table(report: Report, clock: Clock) -> Table:
    """One row per latency spike: start, length, scope, baseline and peak p95, factor."""
    table = _table(
        f"Latency spikes ({len(report.spikes)})",
        ("Start", "Lasted", "Scope", "Baseline p95", "Peak p95", "Factor"),
        right=("Baseline p95", "Factor"),
    )
    for x in report.spikes:
        table.add_row(
            Text(clock.at(x.start)),
            Text(span_text(x.end - x.start)),
            _text(x.scope),
            Text(ms(x.baseline_p95_ms)),
            Text(f"{ms(x.peak_p95_ms)} at {clock.short(x.peak_at)}"),
            Text(times(x.factor)),
        )
    return table


def _refunds(report: Report) -> Table:
    s = report.summary
    top = cast(list[dict[str, Any]], s["top_accounts"])
    table = _table(
        f"Top refunds ({count(s['accounts_owed'])} accounts owed {count(s['refund_tokens_total'])} tokens)",
        ("Account", "Refund tokens", "Findings"),
        right=("Refund tokens", "Findings"),
    )
    for a in top:
        table.add_row(
            _text(a[ACCOUNT_ID]), Text(f"{a[REFUND_TOKENS]:,}"), Text(count(a.get(OWED_FINDINGS, 0)))
        )
    return table


def _summary(report: Report, clock: Clock) -> list[RenderableType]:
    return [
        Text(f"Incident summary ({clock.heading()})", style="bold"),
        *(_text(x) for x in summary_sentences(report, clock)),
        _text(report.summary["what_moved_first"]),
        *_sparklines(report, clock),
    ]


def _response(report: Report, clock: Clock) -> list[RenderableType]:
    parts = [
        f"{label.split(' (')[0].lower()} {at} (+{after})" for label, at, after in response_rows(report, clock)
    ]
    return [Text("Detection and response: " + " · ".join(parts)), _text(page_sentence(report, clock))]


def _background(report: Report, clock: Clock) -> list[RenderableType]:
    rows = background_rows(report)
    if not rows:
        return []
    table = _table(
        "Background (same rate all day; not in the incident window)",
        ("Kind", "Meaning", "Entries", "Per day", "Per 1,000 requests in / out"),
        right=("Entries", "Per day", "Per 1,000 requests in / out"),
    )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return [table]


def _actions(report: Report, clock: Clock) -> list[RenderableType]:
    items = action_items(report)
    if not items:
        return []
    return [Text(f"Action items ({len(items)}, owners to fill in the Markdown): " + "; ".join(items))]


def _timeline_section(report: Report, clock: Clock) -> list[RenderableType]:
    return [_timeline(report, clock)]


def _bursts(report: Report, clock: Clock) -> list[RenderableType]:
    return [bursts_table(report, clock)] if report.bursts else []


def _spikes(report: Report, clock: Clock) -> list[RenderableType]:
    return [spikes_table(report, clock)] if report.spikes else []


def _top_refunds(report: Report, clock: Clock) -> list[RenderableType]:
    return [_refunds(report)] if report.reconciliation is not None and report.summary["top_accounts"] else []


def _usage_export(report: Report, clock: Clock) -> list[RenderableType]:
    """The usage export's days and models that do not match the gateway (with --usage)."""
    totals = report.usage_totals
    if totals is None:
        return []
    off = totals.filter(~pl.col(usage.MATCH))
    title = f"Usage export: {count(totals.height - off.height)} of {count(totals.height)} days × models match"
    if off.is_empty():
        return [Text(title)]
    table = _table(title, ("Day", "Model", "Requests", "Prompt", "Completion", "Cached"), right=("Requests",))
    for r in off.head(20).iter_rows(named=True):
        cells = [f"{r[usage.GATEWAY_PREFIX + t]:,} / {r[usage.EXPORT_PREFIX + t]:,}" for t in usage.TOTALS]
        table.add_row(Text(f"{r[usage.DAY]:%Y-%m-%d}"), _text(r[MODEL] or "-"), *map(Text, cells))
    return [table]


def _broken_invariants(report: Report, clock: Clock) -> list[RenderableType]:
    # A broken invariant means totals above cannot be trusted: said last, where it is seen.
    rec = report.reconciliation
    return [
        Text(escape(f"invariant broken: {i.name}: {i.detail}", "terminal"), style="bold red")
        for i in (rec.invariants if rec else ())
        if not i.holds
    ]


# A section gives what it prints (nothing when it has nothing to say).
Section = Callable[[Report, Clock], list[RenderableType]]

# The terminal report's sections, in order. A new section is one function added here.
SECTIONS: tuple[Section, ...] = (
    _summary,
    compensation_terminal,
    _response,
    _timeline_section,
    _background,
    _bursts,
    _spikes,
    _top_refunds,
    terminal_section,
    _usage_export,
    _actions,
    _broken_invariants,
)


def render_terminal(report: Report, console: Console) -> None:
    """Print each of SECTIONS with Rich: summary, timeline, bursts, spikes, top refunds, broken checks."""
    clock = Clock(report_day(report))
    for section in SECTIONS:
        for item in section(report, clock):
            console.print(item)
