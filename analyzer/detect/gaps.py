"""Log gaps: stretches with no gateway line at all where traffic was expected.

The silence between the last line of one non-empty window and the first line of the next is a gap
when it lasts at least `min_gap` and `spacing_multiple` times the mean spacing between lines over the
whole span. Its expected requests are its length over that mean spacing.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from analyzer.config import GapSettings
from analyzer.detect.windows import FIRST_TS, LAST_TS, REQUESTS, WINDOW
from analyzer.findings import LogGap


def find_gaps(counts: pl.DataFrame, g: GapSettings) -> tuple[LogGap, ...]:
    """Gaps from the global per-window counts (window, requests, first_ts, last_ts)."""
    busy = counts.filter(pl.col(REQUESTS) > 0).sort(WINDOW)
    total = int(busy[REQUESTS].sum()) if busy.height else 0
    if total < 2:
        return ()
    first: datetime = busy[FIRST_TS].min()  # type: ignore[assignment]
    last: datetime = busy[LAST_TS].max()  # type: ignore[assignment]
    spacing = (last - first) / (total - 1)
    threshold = max(g.min_gap, spacing * g.spacing_multiple)
    silences = busy.select(pl.col(LAST_TS).shift(1).alias("start"), pl.col(FIRST_TS).alias("end")).filter(
        (pl.col("end") - pl.col("start")) >= threshold
    )
    return tuple(
        LogGap(start=r["start"], end=r["end"], expected_requests=(r["end"] - r["start"]) / spacing)
        for r in silences.iter_rows(named=True)
    )
