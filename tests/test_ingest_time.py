"""Time: impossible timestamps are `bad_value:ts`; real rows far from the others are analyzed, stretch by stretch."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from analyzer.config import Settings
from analyzer.detect import SILENCE, _grid, detect
from analyzer.detect.windows import FIRST_TS, LAST_TS, REQUESTS, SERVER_ERRORS, WINDOW, window_index
from analyzer.ingest import load

DAY = datetime(2026, 4, 22, 9, tzinfo=UTC)


def _jsonl(path: Path, stamps: list[str]) -> Path:
    path.write_text("".join(json.dumps({"ts": t, "status": 200}) + "\n" for t in stamps))
    return path


def test_a_1970_line_is_a_bad_value_and_the_day_is_analyzed(tmp_path: Path) -> None:
    stamps = [f"2026-04-22T09:{m:02d}:00Z" for m in range(40)]
    stamps.insert(20, "1970-01-01T00:00:00Z")
    loaded = load("gateway", [_jsonl(tmp_path / "g.jsonl", stamps)], Settings())
    (report,) = loaded.inputs
    assert (report.rows_analyzed, report.rejects_by_reason) == (40, {"bad_value:ts": 1})
    assert loaded.rejects.select("line", "reason").rows() == [(21, "bad_value:ts")]
    assert report.first_ts == DAY


def test_the_floor_is_2000(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "g.jsonl", ["1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "2026-04-22T09:00:00Z"]
    )
    (report,) = load("gateway", [path], Settings()).inputs
    assert report.rejects_by_reason == {"bad_value:ts": 1} and report.first_ts == datetime(
        2000, 1, 1, tzinfo=UTC
    )


def test_the_ceiling_is_a_day_after_the_newest_file_was_written(tmp_path: Path) -> None:
    old = _jsonl(
        tmp_path / "a.jsonl", ["2026-04-22T09:00:00Z", "2026-05-01T23:00:00Z", "2026-05-02T01:00:00Z"]
    )
    newer = _jsonl(tmp_path / "b.jsonl", ["2026-04-22T10:00:00Z"])
    written = datetime(2026, 4, 30, 23, 30, tzinfo=UTC).timestamp()
    os.utime(old, (written, written))
    os.utime(newer, (written + 3600, written + 3600))  # the newest: 2026-05-01T00:30Z
    a, b = load("gateway", [old, newer], Settings()).inputs
    # 23:00 on May 1st is within a day of the newest write, 01:00 on May 2nd is not.
    assert a.rejects_by_reason == {"bad_value:ts": 1} and a.last_ts == datetime(2026, 5, 1, 23, tzinfo=UTC)
    assert b.rows_rejected == 0


def test_an_nginx_log_spanning_years_has_no_reject(tmp_path: Path) -> None:
    line = '10.0.0.1 - - [{} +0000] "POST /v1/chat/completions HTTP/1.1" 200 512 "-" "curl/8.5.0" 1.532 1.530'
    days = ["22/Apr/2019:09:00:01", "03/Jan/2022:17:30:00", "22/Apr/2026:09:00:01"]
    path = tmp_path / "access.log"
    path.write_text("".join(line.format(d) + "\n" for d in days))
    (report,) = load("gateway", [path], Settings()).inputs
    assert (report.format, report.rows_analyzed, report.rows_rejected) == ("nginx", 3, 0)


def _day(start: datetime, burst_at: int) -> list[dict[str, object]]:
    """Three hours of 20 requests a minute; from minute `burst_at`, five minutes of 60% 502s."""
    rows: list[dict[str, object]] = []
    for minute in range(180):
        failing = burst_at <= minute < burst_at + 5
        for i in range(20):
            rows.append(
                {
                    "ts": (start + timedelta(minutes=minute, seconds=3 * i)).isoformat(),
                    "request_id": f"{start:%m%d}-{minute}-{i}",
                    "status": 502 if failing and i < 12 else 200,
                    "latency_ms": 800.0,
                }
            )
    return rows


def test_two_incidents_forty_days_apart_are_both_found(tmp_path: Path) -> None:
    later = DAY + timedelta(days=40)
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _day(DAY, 60) + _day(later, 100)))
    loaded = load("gateway", [path], Settings())
    assert loaded.inputs[0].rows_rejected == 0
    found = detect(loaded.frame, Settings())
    assert [b.start for b in found.bursts] == [DAY + timedelta(minutes=60), later + timedelta(minutes=100)]
    # The grid holds the two stretches' windows, not the 40 days between them.
    assert found.series.height == 2 * 180


def _glob(*minutes: int) -> pl.DataFrame:
    windows = [DAY + timedelta(minutes=m) for m in minutes]
    return pl.DataFrame(
        {WINDOW: windows, REQUESTS: [1] * len(windows), SERVER_ERRORS: [0] * len(windows)},
        schema={WINDOW: pl.Datetime("us", "UTC"), REQUESTS: pl.Int64, SERVER_ERRORS: pl.Int64},
    ).with_columns(
        pl.col(WINDOW).alias(FIRST_TS), pl.col(WINDOW).alias(LAST_TS), window_index(Settings().bursts.window)
    )


def test_the_grid_is_split_at_silences_longer_than_a_day() -> None:
    quantiles = pl.DataFrame(schema={WINDOW: pl.Datetime("us", "UTC")})
    day = int(SILENCE / timedelta(minutes=1))
    within = _grid(_glob(0, day), quantiles, Settings())
    assert within.height == day + 1  # a silence of exactly a day: one stretch, its empty windows zero
    assert within[REQUESTS].sum() == 2
    apart = _grid(_glob(0, day + 1, day + 3), quantiles, Settings())
    assert apart[WINDOW].to_list() == [DAY + timedelta(minutes=m) for m in (0, day + 1, day + 2, day + 3)]
