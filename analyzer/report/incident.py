"""The incident's window and the background it stands out from.

Symptoms are the happenings that are windows of trouble: 5xx bursts, latency spikes, log gaps and
fault patterns (a pattern of scattered wiped balances is points, not a window). Symptoms whose windows
come within `isolation_gap` of each other form a cluster; the incident is the cluster with the most
symptoms (the earliest on a tie). It runs from its first symptom to its last one, or to the last
`resolved` operator event after it opened (within `isolation_gap` of its last symptom) when that is
later. Symptoms outside it are isolated: still in the timeline and the refunds, not in its length.

A finding kind is background when it was already there before the incident and its rate (per 1,000
gateway requests, so that busier hours are not taken for more trouble) inside the window is at most
`background_ratio` times its rate outside (unbilled requests at the same low rate all day): the report lists it in a Background section, not in the incident's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from analyzer.config import PostmortemSettings
from analyzer.findings import SERIES_REQUESTS, SERIES_WINDOW, Pattern, Reconciliation
from analyzer.report.happenings import END, FAMILY, NAME, Happening
from analyzer.schema import KIND, TITLE, TS

_WINDOWS = (Happening.BURST, Happening.SPIKE, Happening.GAP, Happening.PATTERN)


@dataclass(frozen=True)
class Background:
    """A finding kind that ran at about the same rate all day: its count and rates per hour."""

    kind: str
    count: int
    per_day: float  # count over the data's span, scaled to 24 hours
    rate_inside: float  # per 1,000 requests, inside the incident window
    rate_outside: float  # per 1,000 requests, outside it


@dataclass(frozen=True)
class Incident:
    """The incident window, what opened and closed it, the background and the isolated symptoms."""

    start: datetime | None
    end: datetime | None
    opened_by: str | None  # the title of the first symptom
    closed_by: str | None  # the title of the last symptom or of the resolving operator event
    closed_by_event: bool
    background: tuple[Background, ...] = ()
    isolated: tuple[str, ...] = ()  # titles of symptoms outside the window

    @property
    def background_kinds(self) -> tuple[str, ...]:
        """The finding kinds that are background."""
        return tuple(b.kind for b in self.background)


def _symptoms(happenings: pl.DataFrame) -> pl.DataFrame:
    """Happenings that are windows of trouble (ts, END, TITLE), in time order."""
    points = pl.col(NAME).str.starts_with(Pattern.BALANCE_WIPED)
    return (
        happenings.filter(pl.col(FAMILY).is_in(list(_WINDOWS)) & ~points).select(TS, END, TITLE).sort(TS, END)
    )


def find_incident(
    happenings: pl.DataFrame,
    reconciliation: Reconciliation | None,
    events: pl.DataFrame,
    series: pl.DataFrame,
    settings: PostmortemSettings,
) -> Incident:
    """The incident window of `happenings` (see the module docstring), its background and isolated symptoms."""
    symptoms = _symptoms(happenings)
    if symptoms.is_empty():
        return Incident(None, None, None, None, False)
    gap = settings.isolation_gap
    reach = pl.col(END).cum_max().shift(1)
    clustered = symptoms.with_columns((pl.col(TS) > reach + gap).fill_null(True).cum_sum().alias("_c"))
    best = (
        clustered.group_by("_c")
        .agg(pl.len().alias("_n"), pl.col(TS).min().alias("_start"), pl.col(END).max().alias("_end"))
        .sort(["_n", "_start"], descending=[True, False])
        .row(0, named=True)
    )
    start: datetime = best["_start"]
    last: datetime = best["_end"]
    inside = clustered.filter(pl.col("_c") == best["_c"])
    opened_by = str(inside[TITLE][0])
    closed_by = str(inside.sort(END, TS)[TITLE][-1])
    end, by_event = last, False
    resolved = _resolved(events, settings).filter(pl.col(TS).is_between(start, last + gap))
    if resolved.height and resolved[TS].max() >= last:  # type: ignore[operator]
        end, by_event = resolved[TS].max(), True  # type: ignore[assignment]
        closed_by = str(resolved.sort(TS)[TITLE][-1])
    everything = happenings.filter(pl.col(FAMILY).is_in(list(_WINDOWS)))
    isolated = everything.filter((pl.col(END) < start) | (pl.col(TS) > end))[TITLE].to_list()
    return Incident(
        start=start,
        end=end,
        opened_by=opened_by,
        closed_by=closed_by,
        closed_by_event=by_event,
        background=_background(reconciliation, start, end, series, settings),
        isolated=tuple(isolated),
    )


def _resolved(events: pl.DataFrame, settings: PostmortemSettings) -> pl.DataFrame:
    if events.is_empty() or KIND not in events.columns:
        return pl.DataFrame(schema={TS: events.schema.get(TS, pl.Datetime("us", "UTC")), TITLE: pl.String})
    kind = pl.col(KIND).cast(pl.String).str.to_lowercase().fill_null("")
    return events.filter(kind.is_in(list(settings.resolved))).select(TS, pl.col(TITLE).cast(pl.String))


def _background(
    reconciliation: Reconciliation | None,
    start: datetime,
    end: datetime,
    series: pl.DataFrame,
    settings: PostmortemSettings,
) -> tuple[Background, ...]:
    """Finding kinds seen before `start` whose rate per request inside [start, end] is at most
    `background_ratio` times their rate outside it; `series` gives the requests per window."""
    if reconciliation is None or series.is_empty() or reconciliation.findings.is_empty():
        return ()
    window = pl.col(SERIES_WINDOW)
    requests = series.select(
        pl.col(SERIES_REQUESTS).filter(window.is_between(start, end)).sum().alias("_in"),
        pl.col(SERIES_REQUESTS).sum().alias("_all"),
        window.min().alias("_lo"),
        window.max().alias("_hi"),
    ).row(0, named=True)
    inside, outside = int(requests["_in"]), int(requests["_all"] - requests["_in"])
    if inside <= 0 or outside <= 0:
        return ()
    ts = pl.col(TS)
    rates = (
        reconciliation.findings.group_by(KIND)
        .agg(
            pl.len().alias("_n"),
            ts.is_between(start, end).sum().alias("_in"),
            (ts < start).sum().alias("_before"),
        )
        .with_columns(
            (pl.col("_in") * 1000 / inside).alias("_rate_in"),
            ((pl.col("_n") - pl.col("_in")) * 1000 / outside).alias("_rate_out"),
        )
        .filter(
            (pl.col("_before") > 0)
            & (pl.col("_rate_out") > 0)
            & (pl.col("_rate_in") <= settings.background_ratio * pl.col("_rate_out"))
        )
        .sort(KIND)
    )
    lo, hi = min(requests["_lo"], start), max(requests["_hi"], end)
    day = max((hi - lo) / timedelta(days=1), 1 / 24)
    return tuple(
        Background(
            kind=str(kind),
            count=int(n),
            per_day=round(n / day, 1),
            rate_inside=round(rate_in, 3),
            rate_outside=round(rate_out, 3),
        )
        for kind, n, rate_in, rate_out in rates.select(KIND, "_n", "_rate_in", "_rate_out").iter_rows()
    )
