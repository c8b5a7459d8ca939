"""Replay of the SRE workbook's multi-window, multi-burn-rate SLO alerts over per-window counts.

An alert holds at a window when both its long and its short trailing error ratio (ending at the end
of that window, rolling sums of the per-window counts) exceed burn_rate x (1 - target). Error = any
5xx. At the start of the data the trailing windows hold what there is (the history before the logs
is unknown). A firing is reported at the start of the first window that holds and resolves at the
start of the first window that no longer holds. An alert whose long window is longer than the data
is not evaluated (`evaluable=False`, no firings).
"""

from __future__ import annotations

import math
from datetime import timedelta

import polars as pl

from analyzer.config import SloSettings
from analyzer.detect.windows import REQUESTS, SERVER_ERRORS, WINDOW
from analyzer.findings import AlertFiring, BurnRateAlert


def _steps(span: timedelta, window: timedelta) -> int:
    return max(1, math.ceil(span / window))


def replay(counts: pl.DataFrame, slo: SloSettings, window: timedelta) -> tuple[BurnRateAlert, ...]:
    """Each configured alert with its firings, from `counts` (window, requests, server_errors) on a full grid."""
    ordered = counts.sort("window")
    data_span = ordered.height * window
    budget = 1.0 - slo.target
    out = []
    for name, severity, long_w, short_w, burn in slo.alerts:
        evaluable = ordered.height > 0 and long_w <= data_span
        firings: tuple[AlertFiring, ...] = ()
        if evaluable:
            firings = _firings(
                ordered, _steps(long_w, window) * window, _steps(short_w, window) * window, burn * budget
            )
        out.append(
            BurnRateAlert(
                name=name,
                severity=severity,
                long_window=long_w,
                short_window=short_w,
                burn_rate=burn,
                evaluable=evaluable,
                firings=firings,
            )
        )
    return tuple(out)


def _ratio(span: timedelta) -> pl.Expr:
    # By time, not by rows: the grid leaves out long silences (detect.SILENCE), and a trailing window
    # must not reach over one into the stretch before it.
    e = pl.col(SERVER_ERRORS).rolling_sum_by(WINDOW, span)
    n = pl.col(REQUESTS).rolling_sum_by(WINDOW, span)
    return pl.when(n > 0).then(e / n).otherwise(0.0)


def _firings(
    counts: pl.DataFrame, long_span: timedelta, short_span: timedelta, threshold: float
) -> tuple[AlertFiring, ...]:
    holds = counts.select(
        WINDOW,
        ((_ratio(long_span) > threshold) & (_ratio(short_span) > threshold)).alias("on"),
    ).with_columns((pl.col("on") != pl.col("on").shift(1).fill_null(False)).alias("edge"))
    edges = holds.filter(pl.col("edge"))
    starts = edges.filter(pl.col("on"))[WINDOW].to_list()
    ends = edges.filter(~pl.col("on"))[WINDOW].to_list()
    return tuple(
        AlertFiring(fired_at=start, resolved_at=ends[i] if i < len(ends) else None)
        for i, start in enumerate(starts)
    )
