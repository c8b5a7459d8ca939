"""The formats table and the raw-line reader: detection, line-format plumbing, damaged and odd files."""

from __future__ import annotations

import gzip
import json
import sys
import types
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import zstandard

from analyzer.config import Settings, SourceConfig
from analyzer.ingest import formats, jsonl, load
from analyzer.ingest.sources import scan_raw_lines, sniff
from analyzer.report.notes import sentences

LINES = [f'{{"ts": "2026-04-22T09:00:{i:02d}Z", "status": 200, "request_id": "r{i}"}}' for i in range(40)]


def _toy_parse(lines: pl.LazyFrame, config: SourceConfig) -> pl.LazyFrame:
    """A stand-in for nginx/alb: `<time> <code>` lines; keeps the reader's reason like a good parser."""
    parts = pl.col("_raw").str.extract_groups(r"^(\S+) (\S+)$")
    return lines.with_columns(
        parts.struct.field("1").alias("when"),
        parts.struct.field("2").alias("code"),
        pl.when(parts.struct.field("1").is_null()).then(pl.lit("unparsable_line")).alias("_reject"),
    )


TOY = formats.line_format(
    "toy",
    lambda sample, config: sum(len(line.split(" ")) == 2 for line in sample) * 2 > len(sample),
    _toy_parse,
    lambda config: {"ts": "when", "status": "code"},
    {"ts": "epoch_s"},
)


def test_line_format_row_gets_default_mapping_units_and_rejects(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(formats, "FORMATS", [TOY, *formats.FORMATS])
    path = tmp_path / "toy.log"
    path.write_bytes(b"1776848401 200\n1776848402 502\nnot-a-line\n\n1776848403 OK?\n1776848404\x1f1 200\n")
    loaded = load("gateway", [path], Settings())
    (report,) = loaded.inputs
    assert report.format == "toy"
    assert report.fields["ts"] == "when" and report.fields["status"] == "code"
    assert report.rejects_by_reason == {"bad_value:status": 1, "unparsable_line": 1, "bad_value:ts": 1}
    assert report.rows_read == 5 and report.rows_analyzed == 2
    assert loaded.frame.select("status", "_line").collect().rows() == [(200, 1), (502, 2)]
    # The \x1f line is glued back whole: the parser sees "1776848404\x1f1 200", whose time is bad.
    assert loaded.rejects.filter(pl.col("line") == 6)["raw"].item() == "1776848404\x1f1 200"


def test_detection_order_and_forced_format(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text("a\tb\n1\t2\n")
    assert formats.choose(path, sniff(path), SourceConfig()).name == "tsv"
    assert formats.choose(path, sniff(path), SourceConfig(format="csv")).name == "csv"
    with pytest.raises(formats.UnknownFormatError):
        formats.choose(path, sniff(path), SourceConfig(format="xml"))


def test_truncated_gzip_keeps_every_line_before_the_cut(tmp_path: Path) -> None:
    whole = gzip.compress(("\n".join(LINES) + "\n").encode(), mtime=0)
    path = tmp_path / "g.jsonl.gz"
    path.write_bytes(whole[: len(whole) - 40])
    loaded = load("gateway", [path], Settings())
    (report,) = loaded.inputs
    cut_at = report.rows_read
    assert 0 < report.rows_analyzed < 40
    assert report.rows_analyzed + report.rows_rejected == cut_at
    assert report.rejects_by_reason in ({}, {"malformed_json": 1})  # the last line may end mid-object
    assert (
        sentences(loaded.notes)[-1]
        == f"gateway: {path} is a truncated or damaged gzip stream; read up to the break"
    )


def test_truncated_zstd_keeps_every_line_before_the_cut(tmp_path: Path) -> None:
    # zstd decodes whole blocks (128 KiB): enough lines for several.
    noise = np.random.default_rng(7).integers(0, 10**9, 20_000)
    lines = [f'{{"ts": "2026-04-22T09:00:00Z", "status": 200, "request_id": "{n}"}}' for n in noise]
    whole = zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "g.jsonl.zst"
    path.write_bytes(whole[: len(whole) // 2])
    loaded = load("gateway", [path], Settings())
    (report,) = loaded.inputs
    assert 0 < report.rows_analyzed < 20_000
    assert report.rows_analyzed + report.rows_rejected == report.rows_read


def test_empty_and_blank_files_have_no_rows(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("")
    (tmp_path / "b.log").write_text("\n  \n")
    loaded = load("gateway", [tmp_path], Settings())
    assert [(r.format, r.rows_read) for r in loaded.inputs] == [("empty", 0), ("empty", 0)]
    assert loaded.frame.collect().height == 0


def test_crlf_lines(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_bytes(("\r\n".join(LINES[:3]) + "\r\n").encode())
    loaded = load("gateway", [path], Settings())
    assert loaded.inputs[0].rows_rejected == 0
    assert scan_raw_lines(path).collect()["_raw"].str.ends_with("}").all()


def test_line_numbers_survive_blank_lines_and_invalid_bytes(tmp_path: Path) -> None:
    path = tmp_path / "g.txt"
    path.write_bytes(b"one\n\n\xff\xfe\n   \nfour\x1fa\x1fb\x1fc\x1fd\n")
    got = scan_raw_lines(path).collect()
    assert got["_line"].to_list() == [1, 3, 5]
    assert got["_raw"][1] == "\ufffd\ufffd"
    assert got["_reject"].to_list() == [None, None, "invalid_char"]


def test_nginx_module_is_wired_by_its_contract(tmp_path: Path, monkeypatch) -> None:
    fake = types.ModuleType("analyzer.ingest.nginx")
    seen_formats: list[str | None] = []

    def parse_nginx(lines: pl.LazyFrame, log_format: str | None = None) -> pl.LazyFrame:
        seen_formats.append(log_format)
        return _toy_parse(lines, SourceConfig()).rename({"when": "time_local", "code": "status"})

    fake.parse_nginx = parse_nginx  # type: ignore[attr-defined]
    fake.looks_like_nginx = lambda sample, log_format: True  # type: ignore[attr-defined]
    fake.nginx_fields = lambda log_format: {"ts": "time_local", "status": "status"}  # type: ignore[attr-defined]
    fake.NGINX_UNITS = {"ts": "epoch_s"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "analyzer.ingest.nginx", fake)
    rows = formats._line_formats()
    assert [r.name for r in rows][:1] == ["nginx"]
    monkeypatch.setattr(formats, "FORMATS", rows)
    path = tmp_path / "access.log"
    path.write_text("1776848401 200\n")
    settings = Settings(gateway=SourceConfig(log_format="$time_local $status"))
    loaded = load("gateway", [path], settings)
    assert loaded.frame.select("status").collect().item() == 200
    assert seen_formats[-1] == "$time_local $status"


# A gateway's own nginx log_format: ISO times, the request id and model headers, no `combined` part.
CUSTOM_FORMAT = '$time_iso8601 $status $request_time "$http_x_request_id" "$http_x_model" $request_uri'
CUSTOM_LINES = [
    '2026-04-22T09:00:01+00:00 200 0.250 "r1" "gpt-x" /v1/chat/completions',
    '2026-04-22T11:00:02+02:00 502 1.500 "r2" "gpt-x" /v1/chat/completions?stream=1',
    "not a line of this format",
]


def test_nginx_with_a_configured_log_format_is_detected_from_content(tmp_path: Path) -> None:
    path = tmp_path / "edge.txt"  # no telling name
    path.write_text("\n".join(CUSTOM_LINES) + "\n")
    custom = SourceConfig(log_format=CUSTOM_FORMAT)
    assert formats.choose(path, sniff(path), custom).name == "nginx"
    loaded = load("gateway", [path], Settings(gateway=custom))
    (report,) = loaded.inputs
    # Defaults follow the format: ts from $time_iso8601 (the default format's $time_local is absent).
    assert {c: report.fields[c] for c in ("ts", "request_id", "model", "endpoint", "latency_ms")} == {
        "ts": "time_iso8601",
        "request_id": "http_x_request_id",
        "model": "http_x_model",
        "endpoint": "request_path",
        "latency_ms": "request_time",
    }
    assert (report.rows_read, report.rejects_by_reason) == (3, {"unparsable_line": 1})
    got = loaded.frame.select("ts", "request_id", "status", "latency_ms", "endpoint").collect()
    assert got.rows() == [
        (datetime(2026, 4, 22, 9, 0, 1, tzinfo=UTC), "r1", 200, 250.0, "/v1/chat/completions"),
        (datetime(2026, 4, 22, 9, 0, 2, tzinfo=UTC), "r2", 502, 1500.0, "/v1/chat/completions"),
    ]


def test_a_custom_nginx_format_is_not_detected_without_its_log_format(tmp_path: Path) -> None:
    path = tmp_path / "edge.txt"
    path.write_text("\n".join(CUSTOM_LINES) + "\n")
    with pytest.raises(formats.UnknownFormatError):
        formats.choose(path, sniff(path), SourceConfig())


@pytest.mark.parametrize(
    ("broken", "reason", "trusting_stops"),
    [
        pytest.param(
            '{"ts": "2026-04-22T09:00:09Z", "status": 200,}', "malformed_json", True, id="braced-but-broken"
        ),
        pytest.param(
            '{"ts": "2026-04-22T09:00:09Z"}{"status": 200}', "malformed_json", True, id="two-objects"
        ),
        pytest.param('{"ts": "2026-04-22T09:00:09Z", "status": 2', "malformed_json", False, id="cut"),
        pytest.param("[1, 2]", "malformed_json", False, id="an-array"),
        pytest.param('  {"ts": "2026-04-22T09:00:09Z", "status": 200}  ', None, False, id="spaces-around"),
    ],
)
def test_every_json_plan_gives_the_same_rows(
    tmp_path: Path, broken: str, reason: str | None, trusting_stops: bool
) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join([*LINES[:5], broken, *LINES[5:8]]) + "\n")
    lines = scan_raw_lines(path)
    wanted = {"src:ts": ("ts",), "src:status": ("status",), "src:request_id": ("request_id",)}
    by_mode = {}
    for mode in ("trusting", "validated", "robust"):
        try:
            by_mode[mode] = jsonl.parse_jsonl(lines, wanted, mode=mode).collect()
        except pl.exceptions.ComputeError:
            by_mode[mode] = None  # the trusting plan may stop; load() then takes the next one
    assert (by_mode["trusting"] is None) is trusting_stops
    assert trusting_stops or by_mode["trusting"].equals(by_mode["validated"])
    assert by_mode["validated"].equals(by_mode["robust"])
    assert by_mode["validated"]["_reject"].to_list() == [None] * 5 + [reason] + [None] * 3
    loaded = load("gateway", [path], Settings())
    assert loaded.inputs[0].rejects_by_reason == ({reason: 1} if reason else {})


def _discover_every_line(sample: list[str]) -> tuple[dict[str, tuple[str, ...]], bool]:
    # The plain definition: every object of the sample walked.
    leaves: dict[str, tuple[str, ...]] = {}
    containers: set[tuple[str, ...]] = set()
    for line in sample:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            jsonl._walk(obj, (), leaves, containers)
    return dict(sorted(leaves.items())), any(p in containers for p in leaves.values())


@pytest.mark.parametrize(
    "sample",
    [
        pytest.param(['{"a": 1, "b": 2}'] * 3 + ['{"a": 1, "b": {"c": 1}}'], id="flat-then-nested"),
        pytest.param(
            ['{"a": {"c": 1}, "b": 2}', '{"a": 1, "b": 2}', '{"a": 3, "b": 4}'], id="nested-then-flat"
        ),
        pytest.param(
            ['{"a": 1}', '{"b": 1, "a": 2}', '{"a": 2}', "not json", "[1]", '{"a": {}}'], id="orders"
        ),
        pytest.param(
            ['{"u": {"p": 1}}', '{"u": {"p": 1, "q": 2}}', '{"u": {"p": {"x": 1}}}'], id="nested-shapes"
        ),
    ],
)
def test_discover_skips_repeated_flat_lines_without_changing_the_answer(sample: list[str]) -> None:
    assert jsonl.discover(sample) == _discover_every_line(sample)
