"""Rows far in time from the rest of their kind (a clock reset to 1970) are ts_outlier rejects."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from analyzer.config import Settings, load_settings
from analyzer.detect import detect
from analyzer.errors import ConfigError
from analyzer.ingest import load, outliers
from analyzer.schema import TS, TS_DTYPE

sys.path.insert(0, str(Path(__file__).parent / "corpus"))
import make_corpus  # noqa: E402

GAP = timedelta(days=30)
DAY = datetime(2026, 4, 22, tzinfo=UTC)


def _times(*days: float) -> pl.LazyFrame:
    return pl.LazyFrame({TS: [DAY + timedelta(days=d) for d in days]}, schema={TS: TS_DTYPE})


@pytest.mark.parametrize(
    ("days", "span"),
    [
        pytest.param([0, 0.5, 1, 2], None, id="one-run"),
        pytest.param([0, 30, 60], None, id="gaps-of-exactly-the-limit"),
        pytest.param([0, 1, 40], (0, 2), id="a-later-row-past-the-limit"),
        pytest.param([-20_564, 0, 0.2, 1], (0, 2), id="1970"),
        pytest.param([0, 0, 100, 100], (100, 101), id="equal-runs-keep-the-later"),
        pytest.param([0, 100, 100, 200], (100, 101), id="the-run-with-most-rows"),
    ],
)
def test_the_run_of_days_with_most_rows_is_analyzed(days: list[float], span: tuple[int, int] | None) -> None:
    got = outliers.analyzed_span(_times(*days), GAP)
    assert got == (None if span is None else (DAY + timedelta(days=span[0]), DAY + timedelta(days=span[1])))


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_a_1970_line_is_a_reject_of_its_file_and_the_analysis_keeps_its_span(tmp_path: Path) -> None:
    good = [make_corpus.gateway_line(i) for i in range(40)]
    reset = make_corpus.gateway_line(5, request_id="reset").replace("2026-04-22T09", "1970-01-01T00")
    _write(tmp_path / "a.jsonl", [*good[:20], reset, *good[20:]])
    _write(tmp_path / "b.jsonl", [line.replace("2026-04-22T09", "2099-04-22T09") for line in good[:3]])
    loaded = load("gateway", [tmp_path / "a.jsonl", tmp_path / "b.jsonl"], Settings())
    a, b = loaded.inputs
    assert (a.rows_read, a.rows_analyzed, a.rejects_by_reason) == (41, 40, {"ts_outlier": 1})
    assert (b.rows_read, b.rows_analyzed, b.rejects_by_reason) == (3, 0, {"ts_outlier": 3})
    assert (a.first_ts, a.last_ts) == (
        datetime(2026, 4, 22, 9, tzinfo=UTC),
        datetime(2026, 4, 22, 9, 0, 39, tzinfo=UTC),
    )
    assert (b.first_ts, b.last_ts) == (None, None)
    assert loaded.rejects.select("file", "line", "reason").rows() == [
        (str(tmp_path / "a.jsonl"), 21, "ts_outlier"),
        *[(str(tmp_path / "b.jsonl"), n, "ts_outlier") for n in (1, 2, 3)],
    ]
    kept = loaded.frame.collect()
    assert kept.height == 40 and "reset" not in kept["request_id"].to_list()
    # The per-minute grid spans the bulk only (it spanned 56 years: 22 s and 9 GB for these lines).
    assert detect(loaded.frame, Settings()).series.height == 1


def test_a_ledger_entry_in_1970_is_rejected_too(tmp_path: Path) -> None:
    rows = [f"2026-04-22T09:00:0{i}Z,acct-1,deduct,10" for i in range(5)]
    (tmp_path / "ledger.csv").write_text(
        "ts,account_id,kind,tokens\n" + "\n".join([*rows, "1970-01-01T00:00:00Z,acct-1,deduct,10"]) + "\n"
    )
    loaded = load("ledger", [tmp_path / "ledger.csv"], Settings())
    assert loaded.inputs[0].rejects_by_reason == {"ts_outlier": 1}
    assert loaded.rejects.select("line", "reason").rows() == [(7, "ts_outlier")]


def test_outlier_gap_is_a_setting_of_each_kind(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[gateway]\noutlier_gap = "400d"\n')
    assert load_settings(tmp_path / "a.toml").gateway.outlier_gap == timedelta(days=400)
    assert Settings().ledger.outlier_gap == GAP
    (tmp_path / "b.toml").write_text('[ledger]\noutlier_gap = "-1d"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "b.toml")
    assert "ledger.outlier_gap" in caught.value.one_line() and "must be positive" in caught.value.one_line()
