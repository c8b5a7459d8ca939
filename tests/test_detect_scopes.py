"""Each scope's day: requests, errors, error rate and the p95 of its successful requests' latency."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
from polars.testing import assert_frame_equal
from test_detect_windows import frame

from analyzer.config import Settings
from analyzer.detect import detect
from analyzer.detect import windows as w
from analyzer.detect.scopes import SLICES_SCHEMA, scope_totals


def test_each_scope_has_its_totals_and_p95() -> None:
    # frame(): (m1 r1 200 100 ms), (m1 r2 502), (m2 r1 200 400 ms), (m1 r1 200 200 ms), (m2 r2 429).
    # 502 is an error status, 429 is not; p95 by linear interpolation over the 2xx latencies only:
    # global and pool-a 100, 200, 400 -> 200 + 0.9 x 200 = 380; m1 100, 200 -> 195; r1 as global.
    got = detect(frame().lazy(), Settings()).scopes
    expected = pl.DataFrame(
        {
            "scope": ["global", "endpoint=/v1/chat/completions", "model=m1", "model=m2", "region=r1",
                      "region=r2", "upstream=pool-a"],
            "requests": [5, 5, 3, 2, 3, 2, 5],
            "errors": [1, 1, 1, 0, 0, 1, 1],
            "error_rate": [0.2, 0.2, 1 / 3, 0.0, 0.0, 0.5, 0.2],
            "p95_ms": [380.0, 380.0, 195.0, 400.0, 380.0, None, 380.0],
        },
        schema=SLICES_SCHEMA,
    )  # fmt: skip
    assert_frame_equal(got, expected)


def test_approximate_quantiles_are_used_when_asked() -> None:
    settings = Settings()
    counts = w.all_sizes(w.aggregate(frame().lazy(), settings).table)
    exact = scope_totals(counts, frame().lazy(), settings, approximate=False)
    approx = scope_totals(counts, frame().lazy(), settings, approximate=True)
    assert exact["p95_ms"][0] == 380.0
    # approx_quantile returns a value of the data, not an interpolation between two.
    assert approx["p95_ms"][0] in (100.0, 200.0, 400.0)
    assert approx.drop("p95_ms").equals(exact.drop("p95_ms"))


def test_only_the_configured_slices_are_scopes() -> None:
    base = Settings()
    settings = replace(base, bursts=replace(base.bursts, slices=("region",)))
    got = detect(frame().lazy(), settings).scopes
    assert got["scope"].to_list() == ["global", "region=r1", "region=r2"]
