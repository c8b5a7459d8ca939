"""Timestamps: every accepted spelling lands on the same UTC microsecond; the rest is null."""

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from analyzer.ingest.timestamps import column_to_ts, parse_ts

T = datetime(2026, 4, 22, 9, 0, 1, tzinfo=UTC)
T_FRAC = datetime(2026, 4, 22, 9, 0, 1, 123456, tzinfo=UTC)


def _parse(text: str | None, unit: str = "iso") -> datetime | None:
    return pl.select(parse_ts(pl.lit(text, pl.String), unit)).item()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-04-22T09:00:01Z", T, id="zulu"),
        pytest.param("2026-04-22T17:00:01+08:00", T, id="colon-offset"),
        pytest.param("2026-04-22 17:00:01+0800", T, id="space-compact-offset"),
        pytest.param("2026-04-22T03:30:01-05:30", T, id="negative-half-hour"),
        pytest.param("2026-04-22T17:00:01+08", T, id="hours-only-offset"),
        pytest.param("2026-04-22T09:00:01", T, id="naive-is-utc"),
        pytest.param("2026-04-22 09:00:01.123456", T_FRAC, id="naive-space-fraction"),
        pytest.param("2026-04-22T09:00:01.123456Z", T_FRAC, id="alb"),
        pytest.param("22/Apr/2026:17:00:01 +0800", T, id="nginx"),
        pytest.param(" 2026-04-22T09:00:01Z ", T, id="padded"),
        pytest.param("1776848401", T, id="bare-epoch-seconds"),
        pytest.param("1776848401123.456", T_FRAC.replace(microsecond=123456), id="bare-epoch-ms-fraction"),
        pytest.param("2026-04-22 09:00:01,123456", T_FRAC, id="python-logging-comma"),
        pytest.param("2026-04-22T17:00:01,123456+08:00", T_FRAC, id="comma-with-offset"),
        pytest.param("2026/04/22 09:00:01", T, id="slashes"),
        pytest.param("2026-04-22 09:00:01 UTC", T, id="utc-word"),
        pytest.param("Wed, 22 Apr 2026 09:00:01 GMT", T, id="http-date"),
        pytest.param("2026-04-22T09:00Z", T.replace(second=0), id="no-seconds"),
        pytest.param("Apr 22 09:00:01", None, id="syslog-without-year"),
        pytest.param("yesterday", None, id="word"),
        pytest.param("2026-13-22T09:00:01Z", None, id="month-13"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="null"),
    ],
)
def test_iso_text(text: str | None, expected: datetime | None) -> None:
    assert _parse(text) == expected


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        pytest.param("1776848401", "epoch_s", T, id="s"),
        pytest.param("1776848401.123456", "epoch_s", T_FRAC, id="s-fraction"),
        pytest.param("1776848401123", "epoch_ms", T.replace(microsecond=123000), id="ms"),
        pytest.param("1776848401123456", "epoch_us", T_FRAC, id="us"),
        pytest.param("1776848401123456789", "epoch_ns", T_FRAC, id="ns-keeps-digits"),
        pytest.param("2026-04-22T09:00:01Z", "epoch_ms", None, id="iso-under-epoch"),
        pytest.param("12abc", "epoch_s", None, id="junk"),
    ],
)
def test_epoch_units(text: str, unit: str, expected: datetime | None) -> None:
    assert _parse(text, unit) == expected


def test_mixed_offsets_in_one_column_agree() -> None:
    texts = ["2026-04-22T09:00:01Z", "2026-04-22T17:00:01+08:00", "2026-04-22 04:00:01-0500"]
    out = pl.DataFrame({"t": texts}).select(parse_ts(pl.col("t")))
    assert out.dtypes == [pl.Datetime("us", "UTC")]
    assert out.to_series().to_list() == [T, T, T]


@pytest.mark.parametrize(
    ("series", "unit"),
    [
        pytest.param(pl.Series([datetime(2026, 4, 22, 9, 0, 1)]), "iso", id="naive-datetime"),
        pytest.param(
            pl.Series([datetime(2026, 4, 22, 9, 0, 1)])
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone("Asia/Shanghai"),
            "iso",
            id="aware-datetime",
        ),
        pytest.param(pl.Series([1776848401_000]), "epoch_ms", id="int-ms"),
        pytest.param(pl.Series([1776848401.0]), "epoch_s", id="float-s"),
        pytest.param(pl.Series([1776848401]), "iso", id="int-guessed"),
    ],
)
def test_typed_columns(series: pl.Series, unit: str) -> None:
    out = pl.DataFrame({"t": series}).select(column_to_ts(pl.col("t"), series.dtype, unit)).item()
    assert out == T


def test_a_strftime_unit_reads_what_no_built_in_form_does(tmp_path: Path) -> None:
    # `[gateway.units] ts = "%d.%m.%Y %H:%M:%S"`: a European log; UTC unless the format has %z.
    from analyzer.config import load_settings
    from analyzer.ingest import load

    assert _parse("22.04.2026 09:00:01", "%d.%m.%Y %H:%M:%S") == T
    assert _parse("22.04.2026 17:00:01 +0800", "%d.%m.%Y %H:%M:%S %z") == T
    assert _parse("22.04.2026 09:00:01") is None  # not a built-in form
    (tmp_path / "a.toml").write_text('[gateway.units]\nts = "%d.%m.%Y %H:%M:%S"\n')
    (tmp_path / "g.jsonl").write_text(
        '{"ts": "22.04.2026 09:00:01", "status": 200}\n{"ts": "2026-04-22", "status": 200}\n'
    )
    loaded = load("gateway", [tmp_path / "g.jsonl"], load_settings(tmp_path / "a.toml"))
    assert loaded.frame.select("ts").collect()["ts"].to_list() == [T]
    assert loaded.inputs[0].rejects_by_reason == {"bad_value:ts": 1}
