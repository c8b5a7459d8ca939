"""Parquet read in place: no staged copy, the same rows, rejects and duplicates as any other format."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer.config import Settings
from analyzer.ingest import Loaded, load
from analyzer.schema import GATEWAY_COLUMNS, TS_DTYPE


def _t(second: int) -> datetime:
    return datetime(2026, 4, 22, 9, 0, second, tzinfo=UTC)


def _gateway(rows: list[tuple[int | None, str | None, str, str]]) -> pl.DataFrame:
    """ts second (None: missing), request_id, status text, model."""
    return pl.DataFrame(
        {
            "ts": [None if s is None else _t(s) for s, *_ in rows],
            "request_id": [r for _, r, _, _ in rows],
            "status": [st for _, _, st, _ in rows],
            "model": [m for *_, m in rows],
        },
        schema={"ts": TS_DTYPE, "request_id": pl.String, "status": pl.String, "model": pl.String},
    )


def _accounted(loaded: Loaded) -> None:
    good = dict(loaded.frame.group_by("_file").agg(pl.len()).collect().iter_rows())
    for report in loaded.inputs:
        rejects = loaded.rejects.filter(pl.col("file") == report.path)
        assert report.rows_rejected == rejects.height == sum(report.rejects_by_reason.values())
        assert report.rows_read == good.get(report.path, 0) + report.rows_rejected


def test_rejects_by_reason_and_good_rows_without_a_staged_copy(tmp_path: Path) -> None:
    path = tmp_path / "gateway.parquet"
    _gateway(
        [(1, "r1", "200", "m"), (None, "r2", "200", "m"), (3, "r3", "OK?", "m"), (4, "r4", "502", "m")]
    ).write_parquet(path)
    work = tmp_path / "work"
    loaded = load("gateway", [path], Settings(), workdir=work)
    _accounted(loaded)
    assert not list(work.rglob("*.parquet"))  # the source is scanned, never copied
    assert loaded.inputs[0].rejects_by_reason == {"bad_value:status": 1, "missing_field:ts": 1}
    assert loaded.rejects.select("line", "reason").rows() == [
        (2, "missing_field:ts"),
        (3, "bad_value:status"),
    ]
    assert loaded.rejects["raw"].to_list() == [  # the row as JSON
        '{"ts":null,"request_id":"r2","status":"200","model":"m"}',
        '{"ts":"2026-04-22T09:00:03+00:00","request_id":"r3","status":"OK?","model":"m"}',
    ]
    got = loaded.frame.select("ts", "request_id", "status", "_line").collect()
    expected = pl.DataFrame(
        {"ts": [_t(1), _t(4)], "request_id": ["r1", "r4"], "status": [200, 502], "_line": [1, 4]},
        schema={"ts": TS_DTYPE, "request_id": pl.String, "status": pl.Int64, "_line": pl.Int64},
    )
    assert_frame_equal(got, expected)
    assert (loaded.inputs[0].first_ts, loaded.inputs[0].last_ts) == (_t(1), _t(4))
    assert list(loaded.frame.collect_schema()) == [*GATEWAY_COLUMNS, "_file", "_line"]


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(
            [(5, "r1", "200", "m"), (6, "r9", "200", "m")], {"duplicate_line": 1}, id="exact-copy-dropped"
        ),
        pytest.param([(5, "r1", "200", "other"), (6, "r9", "200", "m")], {}, id="same-id-other-content-kept"),
    ],
)
def test_a_row_delivered_twice_across_parquet_files(
    tmp_path: Path, second: list[tuple[int, str, str, str]], expected: dict[str, int]
) -> None:
    _gateway([(5, "r1", "200", "m"), (7, "r2", "200", "m")]).write_parquet(tmp_path / "a.parquet")
    _gateway(second).write_parquet(tmp_path / "b.parquet")
    loaded = load("gateway", [tmp_path / "a.parquet", tmp_path / "b.parquet"], Settings())
    _accounted(loaded)
    assert [r.rejects_by_reason for r in loaded.inputs] == [{}, expected]
    kept = loaded.frame.select("request_id").collect()["request_id"].to_list()
    assert kept == ["r1", "r2", *(["r1"] if not expected else []), "r9"]


def test_parquet_and_text_inputs_keep_path_order(tmp_path: Path) -> None:
    _gateway([(2, "p1", "200", "m"), (3, None, "-", "m")]).write_parquet(tmp_path / "b.parquet")
    (tmp_path / "a.jsonl").write_text('{"ts": "2026-04-22T09:00:01Z", "status": 200, "request_id": "j1"}\n')
    (tmp_path / "c.jsonl").write_text('{"ts": "2026-04-22T09:00:04Z", "status": 503, "request_id": "j2"}\n')
    paths = [tmp_path / n for n in ("a.jsonl", "b.parquet", "c.jsonl")]
    loaded = load("gateway", paths, Settings())
    _accounted(loaded)
    got = loaded.frame.select("request_id", "status", "_line").collect().rows()
    assert got == [("j1", 200, 1), ("p1", 200, 1), ("j2", 503, 1)]
    assert loaded.rejects.select("line", "reason").rows() == [(2, "missing_field:status")]


def test_scans_read_only_the_columns_they_need(tmp_path: Path) -> None:
    path = tmp_path / "gateway.parquet"
    _gateway([(1, "r1", "200", "m")]).write_parquet(path)
    plan = load("gateway", [path], Settings()).frame.select("status").explain()
    assert "PROJECT 1/4 COLUMNS" in plan  # of ts, request_id, status, model


def test_same_rows_as_json_lines_give_the_same_frame_and_rejects(tmp_path: Path) -> None:
    rows = _gateway(
        [(1, "r1", "200", "a"), (2, "r2", "x", "b"), (3, None, "502", "-"), (1, "r1", "200", "a")]
    )
    rows.write_parquet(tmp_path / "g.parquet")
    text = rows.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    text.write_ndjson(tmp_path / "g.jsonl")
    by_format = {name: load("gateway", [tmp_path / name], Settings()) for name in ("g.parquet", "g.jsonl")}
    parquet, jsonl = (by_format[n] for n in ("g.parquet", "g.jsonl"))
    assert_frame_equal(parquet.frame.drop("_file").collect(), jsonl.frame.drop("_file").collect())
    assert_frame_equal(parquet.rejects.drop("file", "raw"), jsonl.rejects.drop("file", "raw"))
    assert parquet.rejects.select("line", "reason").rows() == [(2, "bad_value:status"), (4, "duplicate_line")]


def test_a_nested_column_mapped_to_a_value_is_one_error_naming_the_field(tmp_path: Path) -> None:
    # A list where a status belongs: said at open, naming the field and what to do, not a Polars cast error.
    from analyzer.errors import MappingError

    path = tmp_path / "g.parquet"
    pl.DataFrame(
        {"timestamp": ["2026-04-22T09:00:00Z"], "status": [[200]], "request_id": ["r1"]}
    ).write_parquet(path)
    with pytest.raises(MappingError) as caught:
        load("gateway", [path], Settings())
    assert caught.value.one_line() == (
        f"{path}: field 'status': a List(Int64) column cannot be read as status; "
        "map status to another field in [gateway.fields]"
    )
