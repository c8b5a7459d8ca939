"""The broken-file corpus (tests/corpus/make_corpus.py): each case's exact outcome, counted rejects or one error.

Counted rejects: rows read = analyzed + rejected per input, reasons exact. Errors: one AnalyzerError whose
one_line() names the file (and field where there is one); the CLI prints it as one line, exit code 2.
"""

from __future__ import annotations

import io
import sys
import zlib
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import zstandard
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.config import Settings
from analyzer.detect import detect
from analyzer.errors import AnalyzerError, InputError, UnknownFormatError
from analyzer.ingest import Loaded, load, sources
from analyzer.report.notes import sentences

sys.path.insert(0, str(Path(__file__).parent / "corpus"))
import make_corpus  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus.build(tmp_path_factory.mktemp("corpus"))


def _load(kind: str, corpus: Path, *names: str) -> Loaded:
    loaded = load(kind, [corpus / n for n in names], Settings())
    good = dict(loaded.frame.group_by("_file").agg(pl.len()).collect().iter_rows())
    for r in loaded.inputs:
        assert r.rows_read == r.rows_analyzed + r.rows_rejected
        assert r.rows_analyzed == good.get(r.path, 0)
        assert r.rows_rejected == sum(r.rejects_by_reason.values())
    return loaded


def _counts(loaded: Loaded) -> list[tuple[int, int, int, dict[str, int]]]:
    return [(r.rows_read, r.rows_analyzed, r.rows_rejected, r.rejects_by_reason) for r in loaded.inputs]


def _column(loaded: Loaded, name: str) -> list[object]:
    return loaded.frame.select(name).collect()[name].to_list()


def _salvaged(text: str) -> tuple[int, int]:
    """(rows read, rows analyzed) of JSON lines cut at the end of `text`: whole lines, plus a cut one."""
    whole = text.count("\n")
    return whole + (text.rsplit("\n", 1)[-1] != ""), whole


def test_empty_file_has_no_rows(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "empty.jsonl")
    assert [r.format for r in loaded.inputs] == ["empty"]
    assert _counts(loaded) == [(0, 0, 0, {})]


def test_header_only_csv_has_no_rows_but_its_columns(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "header_only.csv")
    (report,) = loaded.inputs
    assert (report.format, report.fields["ts"], report.fields["latency_ms"]) == (
        "csv",
        "timestamp",
        "duration_ms",
    )
    assert _counts(loaded) == [(0, 0, 0, {})]


def test_truncated_gzip_reads_every_line_before_the_cut(corpus: Path) -> None:
    path = corpus / "truncated.jsonl.gz"
    text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(path.read_bytes()).decode()
    read, analyzed = _salvaged(text)
    loaded = _load("gateway", corpus, "truncated.jsonl.gz")
    assert 0 < analyzed < make_corpus.GOOD_LINES
    assert _counts(loaded) == [(read, analyzed, 1, {"malformed_json": 1})]
    assert _column(loaded, "request_id") == [f"r{i}" for i in range(analyzed)]
    assert f"gateway: {path} is a truncated or damaged gzip stream; read up to the break" in sentences(
        loaded.notes
    )


def test_corrupt_zstd_reads_the_blocks_before_the_damage(corpus: Path) -> None:
    path = corpus / "corrupt.jsonl.zst"
    # A floor from an independent reader: zstd's stream reader, until its error.
    prefix = bytearray()
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes()))
    try:
        while chunk := reader.read(4096):
            prefix += chunk
    except zstandard.ZstdError:
        pass
    _, floor = _salvaged(prefix.decode())
    loaded = _load("gateway", corpus, "corrupt.jsonl.zst")
    (report,) = loaded.inputs
    assert 0 < floor <= report.rows_analyzed < make_corpus.ZSTD_LINES
    # Exactly the file's first lines, in order, and the one line the damage cut.
    original = zstandard.ZstdDecompressor().decompressobj()
    ids = pl.Series(original.decompress(make_corpus.clean_zstd()).decode().splitlines()).str.json_path_match(
        "$.request_id"
    )
    assert _column(loaded, "request_id") == ids[: report.rows_analyzed].to_list()
    assert _counts(loaded) == [(report.rows_analyzed + 1, report.rows_analyzed, 1, {"malformed_json": 1})]
    assert f"gateway: {path} is a truncated or damaged zstd stream; read up to the break" in sentences(
        loaded.notes
    )


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        pytest.param(
            "corrupt_head.jsonl.zst",
            InputError,
            "damaged zstd stream: not one line could be decompressed",
            id="zstd-damaged-at-the-head",
        ),
        pytest.param(
            "utf16.jsonl",
            InputError,
            'UTF-16 text (byte-order mark): set encoding = "utf-16" for its kind',
            id="utf-16",
        ),
        pytest.param(
            "cr_only.csv",
            InputError,
            "lines end in a bare CR (classic Mac); convert them to LF",
            id="cr-line-ends",
        ),
        pytest.param(
            "binary.png",
            UnknownFormatError,
            "content matches no supported format (parquet, envoy_json, gcp_lb, cloudflare, caddy, traefik_json, "
            "kong, jsonl, ingress_nginx, traefik, nginx, alb, envoy, haproxy, cloudfront, elb, vhost_combined, "
            "common, tsv, csv)",
            id="binary",
        ),
    ],
)
def test_unreadable_file_is_one_error_naming_it(
    corpus: Path, name: str, error: type[AnalyzerError], message: str
) -> None:
    with pytest.raises(error) as caught:
        load("gateway", [corpus / name], Settings())
    assert caught.value.one_line() == f"{corpus / name}: {message}"


def test_a_5mb_first_line_is_a_row(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "huge_line.jsonl")
    assert [r.format for r in loaded.inputs] == ["jsonl"]
    assert _counts(loaded) == [(4, 4, 0, {})]
    assert _column(loaded, "request_id") == ["big", "r0", "r1", "r2"]


def test_a_50000_deep_object_is_a_malformed_line(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "deep.jsonl")
    assert _counts(loaded) == [(3, 2, 1, {"malformed_json": 1})]
    assert loaded.rejects.select("line", "reason").rows() == [(2, "malformed_json")]


@pytest.mark.parametrize(("depth", "reason"), [(900, "missing_field:ts"), (2_000, "malformed_json")])
def test_a_deep_object_inside_the_sample_is_one_rejected_line(
    tmp_path: Path, depth: int, reason: str
) -> None:
    # The 50,000-deep corpus line is longer than the sample; one a few kB long is in it, and the field
    # discovery's parser (Python's json) must not fail on it (it raised RecursionError: exit 3).
    deep = '{"a":' * depth + "1" + "}" * depth
    (tmp_path / "g.jsonl").write_text(
        "\n".join([make_corpus.gateway_line(1), deep, make_corpus.gateway_line(2)]) + "\n"
    )
    loaded = _load("gateway", tmp_path, "g.jsonl")
    assert _counts(loaded) == [(3, 2, 1, {reason: 1})]
    assert loaded.rejects.select("line", "reason").rows() == [(2, reason)]


@pytest.mark.parametrize("kind", ["gateway", "ledger"])
def test_a_csv_cell_over_128_kib_in_the_sample_is_read(tmp_path: Path, kind: str) -> None:
    # A logged prompt in a cell: Python's csv module refuses cells over 128 KiB by default, which made
    # format detection an internal error (exit 3).
    big = "x" * 200_000
    header = "timestamp,status,request_id,note" if kind == "gateway" else "ts,account_id,kind,tokens,note"
    row = "2026-04-22T09:00:01Z,200,r1" if kind == "gateway" else "2026-04-22T09:00:01Z,acct-1,deduct,120"
    (tmp_path / "f.csv").write_text(f"{header}\n{row},{big}\n{row},ok\n")
    loaded = _load(kind, tmp_path, "f.csv")
    assert [(r.format, *c) for r, c in zip(loaded.inputs, _counts(loaded), strict=True)] == [
        ("csv", 2, 2, 0, {})
    ]


def test_non_finite_latencies_are_bad_values_in_text_and_parquet(tmp_path: Path) -> None:
    # pandas writes NaN for a missing float and "inf" parses as a float: neither is a duration, and on
    # a 2xx line either one made detection fail (an internal error, exit 3).
    (tmp_path / "g.csv").write_text(
        "timestamp,status,request_id,duration_ms\n"
        + "".join(
            f"2026-04-22T09:00:0{i}Z,200,r{i},{v}\n"
            for i, v in enumerate(["12.5", "inf", "NaN", "-Infinity"])
        )
    )
    pl.DataFrame(
        {
            "timestamp": [datetime(2026, 4, 22, 9, 0, i) for i in range(3)],
            "status": [200, 200, 200],
            "duration_ms": pl.Series([1.5, float("nan"), float("inf")], dtype=pl.Float32),
        }
    ).write_parquet(tmp_path / "g.parquet")
    loaded = _load("gateway", tmp_path, "g.csv", "g.parquet")
    assert _counts(loaded) == [(4, 1, 3, {"bad_value:latency_ms": 3}), (3, 1, 2, {"bad_value:latency_ms": 2})]
    assert _column(loaded, "latency_ms") == [12.5, 1.5]
    detection = detect(loaded.frame, Settings())
    assert int(detection.series["requests"].sum()) == 2


def test_csv_cells_padded_with_spaces_are_read_without_them(tmp_path: Path) -> None:
    # "a, b, c" (a separator and a space, as hand-written and some exporters write it): " 200" was no
    # status (every row rejected) and " r1" matched no "r1".
    (tmp_path / "g.csv").write_text(
        "timestamp, status, request_id, duration_ms\n"
        "2026-04-22T09:00:01Z, 200, r1, 12.5\n"
        "2026-04-22T09:00:02Z, 50x, r2, 30\n"
        "2026-04-22T09:00:03Z, 502,  , 30\n"
    )
    loaded = _load("gateway", tmp_path, "g.csv")
    assert _counts(loaded) == [(3, 2, 1, {"bad_value:status": 1})]
    assert loaded.frame.select("status", "request_id", "latency_ms").collect().rows() == [
        (200, "r1", 12.5),
        (502, None, 30.0),
    ]
    assert loaded.rejects["raw"].to_list() == ["2026-04-22T09:00:02Z, 50x, r2, 30"]  # as written


def test_non_utf8_bytes_reject_their_line(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "latin1.jsonl")
    assert _counts(loaded) == [(4, 3, 1, {"invalid_utf8": 1})]
    assert loaded.rejects.select("line", "reason").rows() == [(4, "invalid_utf8")]


@pytest.mark.parametrize(
    ("name", "ids"),
    [
        pytest.param("bom.csv", ["b1", "b2"], id="bom-csv"),
        pytest.param("bom.jsonl", ["r0", "r1", "r2"], id="bom-jsonl"),
        pytest.param("crlf.csv", ["c1", "c2"], id="crlf-csv"),
        pytest.param("crlf.jsonl", ["r0", "r1", "r2"], id="crlf-jsonl"),
    ],
)
def test_bom_and_crlf_read_like_plain_files(corpus: Path, name: str, ids: list[str]) -> None:
    loaded = _load("gateway", corpus, name)
    assert _counts(loaded) == [(len(ids), len(ids), 0, {})]
    assert loaded.inputs[0].fields["ts"] == "timestamp"
    assert _column(loaded, "request_id") == ids


def test_column_type_differing_between_two_files(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "types/a.parquet", "types/b.parquet")
    assert _counts(loaded) == [(3, 3, 0, {}), (3, 2, 1, {"bad_value:status": 1})]
    assert _column(loaded, "status") == [200, 502, 200, 200, 503]
    # The same two files as one folder are one table: which files disagree on what is said.
    with pytest.raises(InputError) as caught:
        load("gateway", [corpus / "types"], Settings())
    assert caught.value.one_line() == (
        f"{corpus / 'types'}: field 'status': column is Int64 in a.parquet but String in b.parquet; "
        "give the files as separate inputs"
    )


def test_ledger_with_non_numeric_amounts(corpus: Path) -> None:
    loaded = _load("ledger", corpus, "ledger_bad_amount.csv")
    assert _counts(loaded) == [(6, 3, 3, {"bad_value:tokens": 2, "missing_field:tokens": 1})]
    assert loaded.rejects.select("line", "reason").rows() == [
        (3, "bad_value:tokens"),
        (4, "missing_field:tokens"),
        (6, "bad_value:tokens"),
    ]
    assert _column(loaded, "tokens") == [120, 1000, -120]  # "1e3" is a whole number


@pytest.mark.parametrize(
    ("args", "name", "message"),
    [
        pytest.param(["inspect"], "binary.png", "content matches no supported format", id="binary"),
        pytest.param(["inspect"], "corrupt_head.jsonl.zst", "damaged zstd stream", id="zstd"),
        pytest.param(
            ["inspect", "--kind", "gateway"], "types", "field 'status': column is Int64", id="types"
        ),
    ],
)
def test_cli_says_one_line_naming_the_file_and_exits_2(
    corpus: Path, args: list[str], name: str, message: str
) -> None:
    result = CliRunner().invoke(app, [*args, str(corpus / name)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {corpus / name}: ")
    assert message in lines[0]


def test_shipper_duplicates_are_counted_and_kept_once(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "shipped/gateway-1.jsonl", "shipped/gateway-2.jsonl")
    assert _counts(loaded) == [(15, 10, 5, {"duplicate_line": 5}), (11, 6, 5, {"duplicate_line": 5})]
    first, second = (str(corpus / "shipped" / n) for n in ("gateway-1.jsonl", "gateway-2.jsonl"))
    assert loaded.rejects.select("file", "line", "reason").rows() == [
        *[(first, line, "duplicate_line") for line in range(11, 16)],
        *[(second, line, "duplicate_line") for line in range(1, 6)],
    ]
    kept = loaded.frame.select("_file", "_line", "request_id", "status").collect()
    # The first copy is kept; r5 of the second file is another record (a 502) with the same id: kept.
    assert kept.filter(pl.col("request_id") == "r5").rows() == [(first, 6, "r5", 200), (second, 6, "r5", 502)]
    assert kept["request_id"].to_list() == [
        *(f"r{i}" for i in range(10)),
        "r5",
        *(f"r{i}" for i in range(10, 15)),
    ]


def test_duplicates_of_rejected_lines_keep_their_reason(tmp_path: Path) -> None:
    good, other, broken = (
        make_corpus.gateway_line(1),
        make_corpus.gateway_line(3),
        make_corpus.gateway_line(2)[:-5],
    )
    (tmp_path / "g.jsonl").write_text("\n".join([good, other, broken, good, broken]) + "\n")
    loaded = _load("gateway", tmp_path, "g.jsonl")
    assert _counts(loaded) == [(5, 2, 3, {"duplicate_line": 1, "malformed_json": 2})]
    assert loaded.rejects.select("line", "reason").rows() == [
        (3, "malformed_json"),
        (4, "duplicate_line"),
        (5, "malformed_json"),
    ]


def test_ledger_lines_are_not_deduplicated(tmp_path: Path) -> None:
    # Two identical deductions are a finding of reconciliation, not a shipping artefact to drop.
    row = "2026-04-22T09:00:01Z,acct-1,deduct,120"
    (tmp_path / "ledger.csv").write_text(f"ts,account_id,kind,tokens\n{row}\n{row}\n")
    loaded = _load("ledger", tmp_path, "ledger.csv")
    assert _counts(loaded) == [(2, 2, 0, {})]
    assert _column(loaded, "tokens") == [120, 120]


def test_clock_skew_between_rotated_files_is_noted(corpus: Path) -> None:
    loaded = _load("gateway", corpus, "skew")
    assert _counts(loaded) == [(61, 61, 0, {})] * 5  # merged as written, not dropped
    skewed = corpus / "skew" / "gateway-2026-04-22T10.jsonl"
    assert [n for n in sentences(loaded.notes) if "clock skew" in n] == [
        f"gateway: {skewed}: times look shifted by +2:00:00 against its neighbours (clock skew?); "
        "its rows, 2026-04-22 12:00:00 to 2026-04-22 12:59:00 UTC, are analyzed as written"
    ]


def test_a_file_without_line_breaks_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A core dump in the log folder: the sniffer stops at LINE_LIMIT instead of reading it all.
    monkeypatch.setattr(sources, "LINE_LIMIT", 1 << 20)
    path = tmp_path / "core.log"
    path.write_bytes(b"\x00\x01" * (1 << 20))
    with pytest.raises(InputError) as caught:
        load("gateway", [path], Settings())
    assert caught.value.one_line() == f"{path}: no line break in the first 1 MiB: not a log"
