"""How numbers, times and durations read in the human renderings (Markdown and terminal).

Times are UTC. When everything in a report falls on one date, the date is said once (in the summary)
and tables show the time of day only; otherwise every time carries its date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import cast

import polars as pl

from analyzer.findings import SERIES_WINDOW, Contributor
from analyzer.report.model import Report
from analyzer.report.timeline import Entry, span_text
from analyzer.schema import KIND, TS

DASH = "—"
CONTRIBUTORS = 3  # slices named per burst
# Operator events shown in the human timelines: a deploy log passed as events (thousands of rows) would
# bury the findings. Those nearest the incident are kept; the JSON timeline has every one.
MAX_SHOWN_EVENTS = 50
_EVENT_MARGIN = timedelta(hours=1)
_MIN_ERROR_SHARE = 0.1  # a slice with fewer of the errors explains little, however skewed
_MIN_LIFT = 1.5  # error share over traffic share: below it a slice failed about as much as the rest


def report_day(report: Report) -> date | None:
    """The one UTC date the incident's timeline and series fall on, or None when they span several.

    The inputs' own time ranges do not count: a ledger entry written a second after midnight should
    not put a date on every time; the data-quality table dates those in full.
    """
    times: list[datetime] = []
    for frame, column in ((report.timeline, TS), (report.series, SERIES_WINDOW)):
        if frame.height:
            times += [frame[column].min(), frame[column].max()]  # type: ignore[list-item]
    days = {t.date() for t in times}
    return days.pop() if len(days) == 1 else None


class Clock:
    """Formats times for one report: time of day when the report is within one date, else date and time."""

    def __init__(self, day: date | None) -> None:
        self.day = day

    def at(self, t: datetime | None) -> str:
        """A time in a table cell: HH:MM:SS, with the date in front when the report spans several days."""
        if t is None:
            return DASH
        return t.strftime("%H:%M:%S" if self.day else "%Y-%m-%d %H:%M:%S")

    def short(self, t: datetime | None) -> str:
        """A time in a sentence: HH:MM (HH:MM:SS when the seconds matter), dated when needed."""
        if t is None:
            return DASH
        text = t.strftime("%H:%M:%S" if t.second or t.microsecond else "%H:%M")
        return text if self.day else f"{t:%Y-%m-%d} {text}"

    def heading(self) -> str:
        """'UTC, 2026-04-22' for a one-day report, else 'UTC'."""
        return f"UTC, {self.day:%Y-%m-%d}" if self.day else "UTC"


def count(n: object) -> str:
    """An integer with thousands separators, or a dash when absent."""
    return DASH if n is None else f"{int(n):,}"  # type: ignore[call-overload]


def percent(x: float | None) -> str:
    """A share as a percentage: two decimals below 1%, one above, 0% for none."""
    if x is None:
        return DASH
    if x == 0:
        return "0%"
    # Below 0.95% one decimal would round to 0.x% or 1.0%: two decimals say more.
    return f"{x:.2%}" if abs(x) < 0.0095 else f"{x:.1%}"


def ms(x: float | None) -> str:
    """Milliseconds, rounded, with thousands separators."""
    return DASH if x is None else f"{x:,.0f} ms"


def times(x: float | None) -> str:
    """A ratio such as a latency factor: 4.1×."""
    return DASH if x is None else f"{x:.1f}×"


def duration(seconds: object) -> str:
    """Seconds in words (3 min, 2 h 05 min), or a dash when unknown."""
    return DASH if not isinstance(seconds, int) else span_text(timedelta(seconds=seconds))


def table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[str] = (),
    empty: str = "None found.",
) -> list[str]:
    """Markdown table lines (cells already escaped; `right` columns right-aligned), or `empty` with no rows."""
    if not rows:
        return [empty, ""]
    rule = "".join("---:|" if h in right else "---|" for h in head)
    lines = ["| " + " | ".join(head) + " |", "|" + rule]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def _times_word(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n:,} times")


def headline(report: Report) -> str:
    """The summary in one sentence: failures, bursts, spikes and what the ledger owes."""
    s = report.summary
    requests, failed = cast(int, s["requests"]), cast(int, s["failed_requests"])
    parts = [
        f"{failed:,} of {requests:,} requests failed with a 5xx ({percent(cast(float, s['error_rate']))})"
    ]
    n = len(report.bursts)
    parts.append(
        f"the 5xx rate burst {_times_word(n)} ({duration(s['seconds_in_burst'])} in all)"
        if n
        else "no 5xx burst stood out"
    )
    n = len(report.spikes)
    parts.append(f"p95 latency spiked {_times_word(n)}" if n else "no latency spike stood out")
    if report.reconciliation is None:
        parts.append("no ledger was given")
    else:
        owed, tokens = cast(int, s["accounts_owed"]), cast(int, s["refund_tokens_total"])
        parts.append(
            f"the ledger overcharged {cast(int, s['accounts_overcharged']):,} accounts and "
            f"{owed:,} account{'s are' if owed != 1 else ' is'} owed {tokens:,} tokens"
        )
    return "; ".join(parts) + "."


def telling_contributors(top: Sequence[Contributor], n: int = CONTRIBUTORS) -> list[Contributor]:
    """The slices most over-represented among a burst's errors: error share over traffic share, largest first."""
    telling = [
        c for c in top if c.error_share >= _MIN_ERROR_SHARE and c.error_share >= _MIN_LIFT * c.traffic_share
    ]
    return sorted(telling, key=lambda c: (-c.error_share / max(c.traffic_share, 1e-9), c.column, c.value))[:n]


def shown_timeline(report: Report) -> tuple[pl.DataFrame, int]:
    """The timeline rows the Markdown and terminal show, and how many operator events they leave out.

    Every finding is shown. Above MAX_SHOWN_EVENTS operator events, those from an hour before the
    first finding to an hour after the last are kept (all of them when there is no finding), then the
    first MAX_SHOWN_EVENTS of those; the rows keep the timeline's order.
    """
    is_event = pl.col(KIND) == Entry.EVENT
    timeline = report.timeline.with_row_index("_n")
    events = timeline.filter(is_event)
    if events.height <= MAX_SHOWN_EVENTS:
        return report.timeline, 0
    findings = timeline.filter(~is_event)
    near = events
    if findings.height:
        first: datetime = findings[TS].min()  # type: ignore[assignment]
        last: datetime = findings[TS].max()  # type: ignore[assignment]
        near = events.filter(pl.col(TS).is_between(first - _EVENT_MARGIN, last + _EVENT_MARGIN))
    kept = near.head(MAX_SHOWN_EVENTS)["_n"]
    shown = timeline.filter(~is_event | pl.col("_n").is_in(kept.implode()))
    return shown.drop("_n"), events.height - kept.len()


def shown_events_note(hidden: int) -> str:
    """The line said under a timeline that leaves operator events out."""
    return (
        f"{hidden:,} more operator events are not shown here (only those nearest the incident, at most "
        f"{MAX_SHOWN_EVENTS}); the JSON report's timeline lists every one."
    )
