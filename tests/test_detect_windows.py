"""The one pass: cells rolled up into scopes, fixed-point log sums, exact or approximate quantiles."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer.config import LatencySettings, Settings
from analyzer.detect import detect
from analyzer.detect import windows as w
from analyzer.schema import GATEWAY_COLUMNS

T0 = datetime(2026, 4, 22, 9, 0, tzinfo=UTC)


def frame() -> pl.DataFrame:
    """Five requests over two minutes, two models, two regions."""
    rows = [
        # minute, model, region, status, latency, prompt tokens
        (0, "m1", "r1", 200, 100.0, 1000),
        (0, "m1", "r2", 502, 30.0, None),
        (0, "m2", "r1", 200, 400.0, 1500),
        (1, "m1", "r1", 200, 200.0, 1024),
        (1, "m2", "r2", 429, 5.0, 10),
    ]
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=m, seconds=i) for i, (m, *_) in enumerate(rows)],
            "request_id": [f"r{i}" for i in range(len(rows))],
            "account_id": ["a"] * len(rows),
            "model": [r[1] for r in rows],
            "endpoint": ["/v1/chat/completions"] * len(rows),
            "region": [r[2] for r in rows],
            "upstream": ["pool-a"] * len(rows),
            "status": [r[3] for r in rows],
            "latency_ms": [r[4] for r in rows],
            "prompt_tokens": [r[5] for r in rows],
            "completion_tokens": [10] * len(rows),
        },
        schema=GATEWAY_COLUMNS,
    )


def test_scopes_roll_up_counts_by_model_and_size() -> None:
    table = w.aggregate(frame().lazy(), Settings()).table
    got = (
        table.filter(pl.col(w.SCOPE).is_in(["global", "region=r1"]))
        .select(w.SCOPE, w.CLASS, w.BUCKET, w.IDX, w.REQUESTS, w.ERRORS, w.OK)
        .sort(w.SCOPE, w.IDX, w.CLASS, w.BUCKET)
    )
    minute0 = int(T0.timestamp()) // 60
    expected = pl.DataFrame(
        {
            w.SCOPE: ["global"] * 4 + ["region=r1"] * 3,
            w.CLASS: ["m1", "m1", "m2", "m1", "m1", "m2", "m1"],
            # log2(1000) -> 9, log2(1500) -> 10, log2(1024) -> 10, no tokens -> UNKNOWN_SIZE, log2(10) -> 3
            w.BUCKET: [w.UNKNOWN_SIZE, 9, 10, 10, 9, 10, 10],
            w.IDX: [minute0] * 3 + [minute0 + 1] + [minute0] * 2 + [minute0 + 1],
            w.REQUESTS: [1, 1, 1, 1, 1, 1, 1],
            w.ERRORS: [1, 0, 0, 0, 0, 0, 0],
            w.OK: [0, 1, 1, 1, 1, 1, 1],
        },
        schema_overrides={w.BUCKET: pl.Int32, w.IDX: pl.Int64},
    )
    # minute 1 of the global scope also holds the 429 of m2 (bucket 3): checked apart
    assert_frame_equal(got.filter(~((pl.col(w.CLASS) == "m2") & (pl.col(w.BUCKET) == 3))), expected)
    rest = table.filter((pl.col(w.SCOPE) == "global") & (pl.col(w.BUCKET) == 3))
    assert rest.select(w.REQUESTS, w.ERRORS, w.OK).rows() == [(1, 0, 0)]


def test_log_sums_are_fixed_point_and_exact() -> None:
    table = w.aggregate(frame().lazy(), Settings()).table
    g = table.filter((pl.col(w.SCOPE) == "global") & (pl.col(w.CLASS) == "m1") & (pl.col(w.BUCKET) == 9))
    assert g[w.LOG_SUM].dtype == pl.Int64
    assert g[w.LOG_SUM].item() == round(math.log(100.0) / w.LOG_UNIT)
    assert g[w.LOG_SQ].item() == round(math.log(100.0) ** 2 / w.LOG_SQ_UNIT)


def test_quantiles_are_exact_up_to_the_row_threshold_and_approximate_above() -> None:
    rows = pl.concat([frame()] * 40)  # 200 rows, 120 of them 2xx in two minutes
    exact = detect(rows.lazy(), Settings(latency=LatencySettings(exact_quantile_max_rows=rows.height)))
    approx = detect(rows.lazy(), Settings(latency=LatencySettings(exact_quantile_max_rows=rows.height - 1)))
    assert (exact.quantile_method, approx.quantile_method) == ("exact", "approximate")
    # minute 0: the 2xx latencies are 100 and 400 ms, 40 of each: the p95 is 400.
    assert exact.series["p95_ms"][0] == pytest.approx(400.0)
    assert approx.series["p95_ms"][0] == pytest.approx(400.0, rel=0.03)
    assert approx.series["requests"].to_list() == exact.series["requests"].to_list() == [120, 80]
