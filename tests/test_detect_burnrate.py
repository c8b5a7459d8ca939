"""Burn-rate replay on hand-built per-minute series, and detect() on edge-case inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer.config import BurstSettings, Settings, SloSettings
from analyzer.detect import detect
from analyzer.detect.burnrate import replay
from analyzer.findings import AlertFiring
from analyzer.report.notes import sentences
from analyzer.schema import GATEWAY_COLUMNS, empty

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def minutes(errors: list[int], requests: int = 1000) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "window": [T0 + i * MIN for i in range(len(errors))],
            "requests": [requests] * len(errors),
            "server_errors": errors,
        }
    )


# One alert: long 10 min, short 2 min, burn 10 at target 0.99 -> threshold 0.1 (100 errors of 1000).
ONE = SloSettings(target=0.99, alerts=(("a", "page", 10 * MIN, 2 * MIN, 10.0),))


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        pytest.param([0] * 20, [], id="calm"),
        # Minutes 5-9 at 50%: short window (2 min) >0.1 from minute 5; long (10 min) ratio at minute 5
        # is 500/6000 = 0.083, at minute 6 1000/7000 = 0.14 -> fires at 6. Minute 10 calm: short
        # (500+0)/2000 = 0.25 still holds; minute 11: short 0 -> resolves at 11.
        pytest.param([0] * 5 + [500] * 5 + [0] * 10, [(6, 11)], id="fires-late-resolves-late"),
        # Still failing at the end: never resolved.
        pytest.param([0] * 15 + [1000] * 5, [(16, None)], id="still-firing"),
        # Two episodes. At minute 3 the trailing windows hold only minutes 0-3 (the history before the
        # logs is unknown): long 1000/4000 fires at once. At minute 25 the long ratio is exactly 0.1,
        # not above it: fires at 26.
        pytest.param(
            [0] * 3 + [1000] * 2 + [0] * 20 + [1000] * 2 + [0] * 3,
            [(3, 6), (26, 28)],
            id="two-firings",
        ),
    ],
)
def test_alert_fires_and_resolves_at_the_minute_computed_by_hand(
    errors: list[int], expected: list[tuple[int, int | None]]
) -> None:
    (alert,) = replay(minutes(errors), ONE, MIN)
    assert alert.evaluable
    assert alert.firings == tuple(
        AlertFiring(T0 + a * MIN, None if b is None else T0 + b * MIN) for a, b in expected
    )


def test_long_windows_longer_than_the_data_are_not_evaluated() -> None:
    alerts = replay(minutes([1000] * 120), SloSettings(), MIN)
    assert [(a.name, a.evaluable) for a in alerts] == [
        ("page-1h", True),
        ("page-6h", False),
        ("ticket-1d", False),
        ("ticket-3d", False),
    ]
    assert alerts[0].firings == (AlertFiring(T0, None),)
    assert all(a.firings == () for a in alerts[1:])


def _rows(spec: list[tuple[int, int, int]]) -> pl.LazyFrame:
    """Gateway rows from (second offset, status, count)."""
    ts, status = [], []
    for second, code, count in spec:
        ts += [T0 + timedelta(seconds=second)] * count
        status += [code] * count
    n = len(ts)
    return (
        pl.DataFrame({"ts": ts, "status": status})
        .with_columns(
            pl.lit("acct").alias("account_id"),
            pl.lit("m").alias("model"),
            pl.lit(150.0).alias("latency_ms"),
            pl.lit(100).alias("prompt_tokens"),
            pl.Series("request_id", [str(i) for i in range(n)]),
        )
        .with_columns(
            [
                pl.lit(None).alias(c)
                for c in GATEWAY_COLUMNS
                if c
                not in ("ts", "status", "account_id", "model", "latency_ms", "prompt_tokens", "request_id")
            ]
        )
        .select(list(GATEWAY_COLUMNS))
        .cast(GATEWAY_COLUMNS)  # type: ignore[arg-type]
        .lazy()
    )


def test_empty_input_gives_empty_detection_with_typed_series() -> None:
    d = detect(empty("gateway").lazy(), Settings())
    assert (d.bursts, d.spikes, d.gaps) == ((), (), ())
    assert d.series.columns == ["window", "requests", "errors", "error_rate", "p95_ms", "p99_ms"]
    assert d.series.height == 0
    assert not any(a.evaluable for a in d.alerts)


def test_one_minute_of_data() -> None:
    d = detect(_rows([(5, 200, 100), (30, 502, 2)]), Settings())
    assert d.series.select("requests", "errors").rows() == [(102, 2)]
    assert d.bursts == () and d.gaps == ()


def test_all_requests_failing_is_one_burst_over_the_whole_span() -> None:
    d = detect(_rows([(m * 60 + 1, 502, 30) for m in range(60)]), Settings())
    assert len(d.bursts) == 1
    b = d.bursts[0]
    assert (b.start, b.end, b.errors, b.requests) == (T0, T0 + 60 * MIN, 1800, 1800)
    assert b.status_counts == {"502": 1800} and b.accounts_affected == 1
    assert b.severity == "page"  # the 1h page fires at once on 100% errors


def test_empty_window_inside_the_data_is_zero_in_the_series_not_a_gap() -> None:
    d = detect(_rows([(m * 60 + 1, 200, 30) for m in (0, 1, 3, 4)]), Settings())
    assert d.series.select("requests").to_series().to_list() == [30, 30, 0, 30, 30]
    assert d.series["error_rate"].null_count() == 1
    assert d.gaps == () and d.bursts == ()


def test_silence_in_steady_traffic_is_a_log_gap() -> None:
    spec = [(s, 200, 1) for s in range(0, 3600, 2) if not 1200 <= s < 1800]
    d = detect(_rows(spec), Settings())
    assert [(g.start, g.end) for g in d.gaps] == [
        (T0 + timedelta(seconds=1198), T0 + timedelta(seconds=1800))
    ]
    assert 200 < d.gaps[0].expected_requests < 350
    assert d.bursts == ()


def test_missing_latency_and_slices_are_noted() -> None:
    frame = _rows([(1, 200, 30)]).with_columns(pl.lit(None, pl.Float64).alias("latency_ms"))
    d = detect(frame, Settings(bursts=BurstSettings(slices=("model", "region"))))
    assert "latency: no latency_ms on successful requests, spikes not searched" in sentences(d.notes)
    assert "bursts: no region values, that slice skipped" in sentences(d.notes)


def test_trailing_windows_do_not_reach_over_a_silence_the_grid_leaves_out() -> None:
    # Two stretches two days apart (detect's grid has no windows between them): the first ends failing.
    later = T0 + timedelta(days=2)
    first = minutes([0] * 8 + [1000] * 2)
    second = first.with_columns(
        (pl.col("window") - T0 + later).alias("window"), pl.lit(0, pl.Int64).alias("server_errors")
    )
    (alert,) = replay(pl.concat([first, second]), ONE, MIN)
    # Resolved at the second stretch's first minute: its trailing windows hold none of the first's
    # failures (by rows, the last failing minute would still count there and it would resolve a minute later).
    assert alert.firings == (AlertFiring(T0 + 8 * MIN, later),)
