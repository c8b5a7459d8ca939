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
from analyzer.report.happenings import END, FAMILY, NAME, RANK, Happening
from analyzer.report.model import Report
from analyzer.report.timeline import span_text
from analyzer.schema import TS

DASH = "—"
CONTRIBUTORS = 3  # slices named per burst
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


def shown_happenings(report: Report, limit: int) -> tuple[pl.DataFrame, int]:
    """The happenings the human timelines show, in time order, and how many they leave out.

    Background finding kinds are left to the Background section. Above `limit` rows (unless the
    report is `full`), the rows kept are those inside the incident window first, then by what a
    responder needs first (operator events, bursts, spikes, gaps, faults, resets, alerts), then time.
    """
    rows = report.happenings
    if rows.is_empty():
        return rows, 0
    background = list(report.incident.background_kinds)
    rows = rows.filter(~((pl.col(FAMILY) == Happening.FAULT) & pl.col(NAME).is_in(background)))
    if report.full or rows.height <= limit:
        return rows, 0
    inc = report.incident
    outside = (
        pl.lit(False)
        if inc.start is None or inc.end is None
        else (pl.col(END) < inc.start) | (pl.col(TS) > inc.end)
    )
    rank = pl.col(FAMILY).replace_strict(RANK, default=len(RANK), return_dtype=pl.Int32)
    ranked = rows.with_row_index("_n").with_columns(outside.alias("_out"), rank.alias("_rank"))
    kept = ranked.sort("_out", "_rank", TS, "_n").head(limit)["_n"]
    shown = ranked.filter(pl.col("_n").is_in(kept.implode())).drop("_n", "_out", "_rank")
    return shown, rows.height - limit


def left_out_note(hidden: int) -> str:
    """The line said under a timeline that leaves happenings out."""
    return (
        f"{hidden:,} more timeline rows are left out here (those outside the incident window and of the "
        "least urgent kinds go first); `analyzer report --full` shows every one, and the JSON report's "
        "timeline lists every entry."
    )


def when(clock: Clock, start: datetime, end: datetime | None) -> str:
    """A happening's time cell: its start, or 'start–end' when it lasted."""
    if end is None or end <= start:
        return clock.at(start)
    return f"{clock.at(start)}–{clock.at(end)}"
