"""load(): every format and compression to canonical rows, exact reject accounting, mapping, errors."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import zstandard
from polars.testing import assert_frame_equal

from analyzer.config import Settings, SourceConfig, load_settings, settings_from_dict
from analyzer.errors import InputError, MappingError, UnknownFormatError
from analyzer.ingest import Loaded, find_inputs, load
from analyzer.ingest import jsonl as jsonl_module
from analyzer.report.notes import sentences
from analyzer.schema import GATEWAY_COLUMNS, LEDGER, TS_DTYPE

FIX = Path(__file__).parent / "fixtures" / "ingest"
ISSUE_MAPPING = FIX / "issue_mapping.toml"  # the mapping shape from the issue


def _t(second: int, micro: int = 0) -> datetime:
    return datetime(2026, 4, 22, 9, 0, second, micro, tzinfo=UTC)


def _checked(loaded: Loaded) -> Loaded:
    """Assert the identity rows_read = analyzed + rejected on every input, against the frames."""
    good = loaded.frame.group_by("_file").agg(pl.len()).collect()
    good_by_file = dict(good.iter_rows())
    for report in loaded.inputs:
        rejects = loaded.rejects.filter(pl.col("file") == report.path)
        assert report.rows_rejected == rejects.height == sum(report.rejects_by_reason.values())
        assert report.rows_analyzed == good_by_file.get(report.path, 0)
        assert report.rows_read == report.rows_analyzed + report.rows_rejected
    return loaded


def _gzip(src: Path, dst: Path) -> Path:
    with gzip.GzipFile(dst, "wb", mtime=0) as f:
        f.write(src.read_bytes())
    return dst


def _zstd(src: Path, dst: Path) -> Path:
    dst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
    return dst


def test_dirty_jsonl_rejects_are_counted_exactly_by_reason() -> None:
    loaded = _checked(load("gateway", [FIX / "gateway_dirty.jsonl"], Settings()))
    (report,) = loaded.inputs
    # 15 lines, 2 blank (not rows): 3 good, 10 rejected.
    assert (report.rows_read, report.rows_rejected) == (13, 10)
    assert report.rejects_by_reason == {
        "bad_value:latency_ms": 1,
        "bad_value:prompt_tokens": 1,
        "bad_value:status": 1,
        "bad_value:ts": 1,
        "invalid_utf8": 1,
        "malformed_json": 3,
        "missing_field:status": 1,
        "missing_field:ts": 1,
    }
    assert loaded.rejects["line"].to_list() == [3, 4, 5, 6, 7, 8, 9, 12, 13, 15]
    assert loaded.rejects["raw"][1].startswith('{"timestamp": "2026-04-22T09:00:04Z"')
    good = loaded.frame.select("ts", "status", "prompt_tokens", "completion_tokens", "latency_ms", "_line")
    expected = pl.DataFrame(
        {
            "ts": [_t(1), _t(2), _t(8)],
            "status": [200, 502, 200],  # "200.0" is a whole number: kept
            "prompt_tokens": [10, None, None],  # the 502 has no usage block: null, not a reject
            "completion_tokens": [5, None, None],
            "latency_ms": [None, None, 12.0],
            "_line": [1, 2, 14],
        },
        schema_overrides={"ts": TS_DTYPE},
    )
    assert_frame_equal(good.collect(), expected)


def test_canonical_frame_has_every_column_with_its_dtype() -> None:
    loaded = load("gateway", [FIX / "gateway_offsets.jsonl"], Settings())
    schema = loaded.frame.collect_schema()
    assert dict(schema) == {**GATEWAY_COLUMNS, "_file": pl.String(), "_line": pl.Int64()}
    assert "gateway: no region column in any input; region is null" in sentences(loaded.notes)


def test_mixed_offsets_normalize_to_utc() -> None:
    loaded = _checked(load("gateway", [FIX / "gateway_offsets.jsonl"], Settings()))
    got = loaded.frame.select("request_id", "ts", "_line").collect()
    expected = pl.DataFrame(
        {
            "request_id": ["a", "b", "c", "d"],
            "ts": [_t(1), _t(1), _t(1, 250000), datetime(2026, 4, 22, 9, 0, 0, 999999, tzinfo=UTC)],
            "_line": [1, 2, 3, 5],  # line 4 is blank: not a row, but lines keep their numbers
        },
        schema_overrides={"ts": TS_DTYPE},
    )
    assert_frame_equal(got, expected)
    assert loaded.inputs[0].first_ts == datetime(2026, 4, 22, 9, 0, 0, 999999, tzinfo=UTC)
    assert loaded.inputs[0].last_ts == _t(1, 250000)


def test_issue_mapping_reads_nested_json(tmp_path: Path) -> None:
    settings = load_settings(ISSUE_MAPPING)
    loaded = _checked(load("gateway", [FIX / "gateway_nested.jsonl"], settings, workdir=tmp_path))
    got = loaded.frame.select(
        "ts", "request_id", "account_id", "model", "status", "latency_ms", "prompt_tokens"
    ).collect()
    expected = pl.DataFrame(
        {
            "ts": [_t(1), _t(2, 500000), _t(3)],
            "request_id": ["r1", "r2", "r3"],
            "account_id": ["acct-1", "acct-2", "acct-1"],
            "model": ["kimi-k2.6", "glm-5", "kimi-k2.6"],
            "status": [200, 502, 200],
            "latency_ms": [1500.0, 250.0, 2000.0],  # seconds -> ms
            "prompt_tokens": [100, None, 7],
        },
        schema_overrides={"ts": TS_DTYPE},
    )
    assert_frame_equal(got, expected)
    fields = loaded.inputs[0].fields
    assert fields["model"] == "llm.model"
    assert fields["completion_tokens"] == "usage.completion_tokens"  # found by alias
    assert fields["region"] is None


def test_ledger_csv_through_mapping_derives_entry_ids() -> None:
    settings = load_settings(ISSUE_MAPPING)
    loaded = _checked(load("ledger", [FIX / "ledger.csv"], settings))
    got = loaded.frame.select(*LEDGER).collect()
    path = str(FIX / "ledger.csv")
    expected = pl.DataFrame(
        {
            "ts": [_t(1), _t(2), _t(3)],
            "entry_id": [f"{path}:2", f"{path}:3", f"{path}:4"],
            "account_id": ["acct-1", "acct-2", "acct-1"],
            "request_id": ["r1", "r2", None],
            "kind": ["deduct", "deduct", "refund"],
            "tokens": [120, 0, -120],
            "balance_after": [880, 1000, 1000],
        },
        schema=LEDGER,
    )
    assert_frame_equal(got, expected)


@pytest.mark.parametrize(
    ("name", "fmt", "model"),
    [
        pytest.param("gateway.csv", "csv", "glm-5, preview", id="csv"),
        pytest.param("gateway.tsv", "tsv", "glm-5 preview", id="tsv"),
    ],
)
def test_delimited(name: str, fmt: str, model: str) -> None:
    loaded = _checked(load("gateway", [FIX / name], Settings()))
    (report,) = loaded.inputs
    assert report.format == fmt
    assert report.rejects_by_reason == {"too_many_fields": 1, "missing_field:status": 1}
    assert loaded.rejects["line"].to_list() == [5, 6]  # record number + 1; the blank line 4 counts
    got = loaded.frame.select("request_id", "model", "prompt_tokens", "latency_ms").collect()
    expected = pl.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "model": ["kimi-k2.6", model],
            "prompt_tokens": [100, None],
            "latency_ms": [120.5, 30.0],
        }
    )
    assert_frame_equal(got, expected)


@pytest.mark.parametrize(
    ("compress", "suffix", "compression"),
    [
        pytest.param(_gzip, ".gz", "gzip", id="gzip"),
        pytest.param(_zstd, ".zst", "zstd", id="zstd"),
    ],
)
@pytest.mark.parametrize("name", ["gateway_dirty.jsonl", "gateway.csv"])
def test_compressed_equals_plain(tmp_path: Path, compress, suffix: str, compression: str, name: str) -> None:
    # No telling suffix: the content decides.
    packed = compress(FIX / name, tmp_path / f"input{suffix}.bin")
    plain = _checked(load("gateway", [FIX / name], Settings()))
    got = _checked(load("gateway", [packed], Settings()))
    assert got.inputs[0].compression == compression
    assert got.inputs[0].format == plain.inputs[0].format
    assert got.inputs[0].rejects_by_reason == plain.inputs[0].rejects_by_reason
    assert_frame_equal(got.frame.drop("_file").collect(), plain.frame.drop("_file").collect())


def test_many_paths_glob_and_folder_are_read_in_name_order(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(FIX / "gateway_offsets.jsonl", logs / "access.log.2")
    _gzip(FIX / "gateway_dirty.jsonl", logs / "access.log.1.gz")
    shutil.copy(FIX / "gateway.csv", tmp_path / "extra.csv")
    by_folder = _checked(load("gateway", [logs], Settings()))
    assert [Path(r.path).name for r in by_folder.inputs] == ["access.log.1.gz", "access.log.2"]
    by_glob = _checked(load("gateway", [str(logs / "access.log.*"), tmp_path / "extra.csv"], Settings()))
    assert [Path(r.path).name for r in by_glob.inputs] == ["access.log.1.gz", "access.log.2", "extra.csv"]
    assert by_glob.frame.select(pl.len()).collect().item() == 3 + 4 + 2
    assert by_glob.rejects.height == 10 + 2


def _parquet_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time": [datetime(2026, 4, 22, 17, 0, 1), datetime(2026, 4, 22, 17, 0, 2)],
            "status_code": [200, 502],
            "usage": [
                {"input_tokens": 10, "output_tokens": 3},
                {"input_tokens": None, "output_tokens": None},
            ],
            "latency_ms": [10.5, 300.0],
        }
    ).with_columns(pl.col("time").dt.replace_time_zone("Asia/Shanghai"))


def test_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.bin"
    _parquet_rows().write_parquet(path)
    loaded = _checked(load("gateway", [path], Settings()))
    assert (loaded.inputs[0].format, loaded.inputs[0].compression) == ("parquet", "none")
    got = loaded.frame.select("ts", "status", "prompt_tokens", "completion_tokens", "_line").collect()
    expected = pl.DataFrame(
        {
            "ts": [_t(1), _t(2)],
            "status": [200, 502],
            "prompt_tokens": [10, None],
            "completion_tokens": [3, None],
            "_line": [1, 2],
        },
        schema_overrides={"ts": TS_DTYPE},
    )
    assert_frame_equal(got, expected)


def test_hive_partitioned_parquet_folder(tmp_path: Path) -> None:
    rows = _parquet_rows()
    for region, part in (("eu-west-1", rows[:1]), ("us-east-1", rows[1:])):
        folder = tmp_path / "gw" / f"region={region}"
        folder.mkdir(parents=True)
        part.write_parquet(folder / "part-0.parquet")
    loaded = _checked(load("gateway", [tmp_path / "gw"], Settings()))
    assert len(loaded.inputs) == 1
    got = loaded.frame.select("region", "status").sort("region").collect()
    assert got.rows() == [("eu-west-1", 200), ("us-east-1", 502)]


def test_clock_offset_is_added() -> None:
    settings = Settings(gateway=SourceConfig(clock_offset=timedelta(seconds=-2)))
    loaded = load("gateway", [FIX / "gateway_offsets.jsonl"], settings)
    assert loaded.frame.select("ts").collect().to_series().to_list()[:2] == [_t(1) - timedelta(seconds=2)] * 2


def test_shape_change_after_sample_falls_back_to_robust_plan(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(jsonl_module, "SAMPLE_LINES", 1)
    path = tmp_path / "g.jsonl"
    path.write_text(
        '{"ts": "2026-04-22T09:00:01Z", "status": 200, "usage": {"prompt_tokens": 4}}\n'
        '{"ts": "2026-04-22T09:00:02Z", "status": 200, "usage": "n/a"}\n'
        '{"ts": "2026-04-22T09:00:03Z", "status": {"code": 200}}\n'
    )
    loaded = _checked(load("gateway", [path], Settings()))
    assert loaded.frame.select("prompt_tokens").collect().to_series().to_list() == [4, None]
    assert loaded.inputs[0].rejects_by_reason == {"bad_value:status": 1}


def test_events_default_kind_is_note() -> None:
    loaded = _checked(load("events", [FIX / "events.jsonl"], Settings()))
    assert loaded.frame.select("kind", "title").collect().rows() == [
        ("note", "rolled back kimi-k2.6"),
        ("note", "deployed kimi-k2.6"),
    ]


@pytest.mark.parametrize(
    ("kind", "name", "fields"),
    [
        pytest.param("gateway", "gateway_nested.jsonl", {"region": "cloud.zone"}, id="jsonl-no-row-has-it"),
        pytest.param("gateway", "gateway.csv", {"region": "zone"}, id="csv-header-lacks-it"),
    ],
)
def test_mapping_naming_an_absent_field(kind: str, name: str, fields: dict[str, str]) -> None:
    settings = settings_from_dict({kind: {"fields": fields}})
    with pytest.raises(MappingError) as err:
        load(kind, [FIX / name], settings)
    assert err.value.path == str(FIX / name)
    assert err.value.field == next(iter(fields.values()))


def test_missing_path_and_empty_glob_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load("gateway", [tmp_path / "nope.jsonl"], Settings())
    assert err.value.path == str(tmp_path / "nope.jsonl")
    with pytest.raises(InputError) as err:
        load("gateway", [str(tmp_path / "*.log")], Settings())
    assert err.value.path == str(tmp_path / "*.log")


def test_unknown_format_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    path.write_text("just some words\nand more words\n")
    with pytest.raises(UnknownFormatError) as err:
        load("gateway", [path], Settings())
    assert err.value.path == str(path)


def test_forced_format_reads_what_detection_would_not(tmp_path: Path) -> None:
    path = tmp_path / "g.txt"
    path.write_text("ts\tstatus\n2026-04-22T09:00:01Z\t200\n")
    loaded = _checked(load("gateway", [path], Settings(gateway=SourceConfig(format="tsv"))))
    assert loaded.frame.select("status").collect().item() == 200


def test_find_inputs_by_name(tmp_path: Path) -> None:
    for name in (
        "access.log.gz",
        "gateway-2.jsonl",
        "ledger.csv",
        "billing.log",
        "events.jsonl",
        "notes.txt",
        "alb",
    ):
        (tmp_path / name).mkdir() if name == "alb" else (tmp_path / name).write_text("")
    found = find_inputs(tmp_path)
    assert {k: [p.name for p in v] for k, v in found.items()} == {
        "gateway": ["access.log.gz", "alb", "gateway-2.jsonl"],
        "ledger": ["billing.log", "ledger.csv"],
        "events": ["events.jsonl"],
    }


def test_csv_with_unbalanced_quotes_is_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text(
        'ts,status,model\n2026-04-22T09:00:01Z,200,"a\n2026-04-22T09:00:02Z,200,"b,c"\n2026-04-22T09:00:03Z,200,"d"\n'
    )
    loaded = _checked(load("gateway", [path], Settings()))
    assert loaded.frame.select("model", "_line").collect().rows() == [('"a', 2), ("d", 4)]
    assert loaded.inputs[0].rejects_by_reason == {"too_many_fields": 1}  # the quoted comma splits
    assert (
        sentences(loaded.notes)[-1]
        == f"gateway: {path}: unbalanced quotes; read line by line without quoting"
    )


def test_stream_flag_spellings(tmp_path: Path) -> None:
    spellings = {
        "true": True, "false": False, " TRUE ": True, "False": False, "Yes": True, "y": True,
        "N": False, "no": False, "1": True, "0": False, "t": True, " f": False, "maybe": None, "truthy": None,
    }  # fmt: skip
    lines = [
        f'{{"ts": "2026-04-22T09:00:{i:02d}Z", "status": 200, "stream": "{text}"}}'
        for i, text in enumerate(spellings)
    ]
    lines += ['{"ts": "2026-04-22T09:01:00Z", "status": 200, "stream": true}']
    lines += ['{"ts": "2026-04-22T09:01:01Z", "status": 200, "stream": false}']
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = _checked(load("gateway", [path], Settings()))
    expected = [v for v in spellings.values() if v is not None] + [True, False]
    assert loaded.frame.select("stream").collect()["stream"].to_list() == expected
    assert loaded.inputs[0].rejects_by_reason == {"bad_value:stream": 2}


def test_optional_gateway_columns_come_with_their_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(
        '{"ts": "2026-04-22T09:00:01Z", "status": 502, "upstream_status": 503, "ttft_ms": 0.5, "stream": true}\n'
        '{"ts": "2026-04-22T09:00:02Z", "status": 200, "upstream_status": "-", "stream": "maybe"}\n'
    )
    loaded = _checked(load("gateway", [path], Settings(gateway=SourceConfig(units={"ttft_ms": "s"}))))
    got = loaded.frame.select("upstream_status", "ttft_ms", "stream").collect()
    assert_frame_equal(got, pl.DataFrame({"upstream_status": [503], "ttft_ms": [500.0], "stream": [True]}))
    assert loaded.inputs[0].rejects_by_reason == {"bad_value:stream": 1}


def test_two_loads_into_one_workdir_keep_their_rows(tmp_path: Path) -> None:
    first = load("gateway", [FIX / "gateway_offsets.jsonl"], Settings(), workdir=tmp_path)
    second = load("gateway", [FIX / "gateway_nested.jsonl"], Settings(), workdir=tmp_path)
    assert first.frame.select(pl.len()).collect().item() == 4
    assert second.frame.select(pl.len()).collect().item() == 3


def test_events_kind_defaults_to_note_per_row(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("ts,type,text\n2026-04-22T09:00:01Z,deploy,v2 out\n2026-04-22T09:00:02Z,,paged\n")
    loaded = _checked(load("events", [path], Settings()))
    assert loaded.frame.select("kind", "title").collect().rows() == [("deploy", "v2 out"), ("note", "paged")]


def test_raw_text_of_rejects_is_kept_for_the_first_raw_rows_only(monkeypatch) -> None:
    import analyzer.ingest as ingest_module

    whole = load("gateway", [FIX / "gateway_dirty.jsonl"], Settings())
    monkeypatch.setattr(ingest_module, "RAW_ROWS", 3)
    capped = _checked(load("gateway", [FIX / "gateway_dirty.jsonl"], Settings()))
    assert capped.rejects.select("file", "line", "reason").equals(
        whole.rejects.select("file", "line", "reason")
    )
    assert capped.rejects["raw"].to_list() == whole.rejects["raw"].to_list()[:3] + [None] * 7
    assert (
        sentences(capped.notes)[-1]
        == "rejects: the raw text of the first 3 of 10 rejected rows is kept, not all"
    )
    assert not any(n.startswith("rejects:") for n in sentences(whole.notes))


def test_a_folder_s_readme_and_checksums_are_not_read_as_logs(tmp_path: Path) -> None:
    folder = tmp_path / "gateway"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"ts": "2026-04-22T09:00:01Z", "status": 200}\n')
    (folder / "README.md").write_text("# Gateway logs\n\nRotated hourly.\n")
    (folder / "a.jsonl.sha256").write_text("0" * 64 + "  a.jsonl\n")
    loaded = load("gateway", [folder], Settings(), workdir=tmp_path / "work")
    assert [Path(i.path).name for i in loaded.inputs] == ["a.jsonl"]
    # Named on its own, the same README is an input, and not a log.
    with pytest.raises(UnknownFormatError, match="README.md"):
        load("gateway", [folder / "README.md"], Settings(), workdir=tmp_path / "work2")


def test_the_frame_outlives_its_loaded(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"ts": "2026-04-22T09:00:01Z", "status": 200}\n' * 3)
    frame = load("gateway", [path], Settings()).frame  # the Loaded itself is dropped at once
    import gc

    gc.collect()
    assert frame.select(pl.len()).collect().item() == 3
