"""Inputs read in batches: every outcome equals reading the same files one by one.

A batch is read by one scan of several files (reader.batches): small text files staged together,
Parquet files of one schema as one lazy query. What must not change: each file's
report (rows, rejects by reason, fields, times), the rejects table (file, line, reason, raw), the
analyzed rows with their `_file` and `_line`, derived entry ids, and the notes, including when a batch
has to fall back to reading file by file (a broken object, a truncated stream).
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analyzer.config import Settings
from analyzer.ingest import Loaded, concurrent, load, reader

sys.path.insert(0, str(Path(__file__).parent / "corpus"))
import make_corpus  # noqa: E402
from test_ingest_alb import BAD_GATEWAY, MODERN  # noqa: E402

line = make_corpus.gateway_line


def _write(path: Path, lines: list[str], *, compress: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


def _gateway_jsonl(folder: Path) -> None:
    _write(folder / "a-01.jsonl.gz", [line(i) for i in range(0, 10)], compress=True)
    # A broken line, a blank one, one without a status, a byte that is not UTF-8 (written below).
    _write(
        folder / "a-02.jsonl.gz",
        [line(10), "not json", "", line(11).replace('"status": 200, ', "")],
        compress=True,
    )
    _write(folder / "a-03.jsonl.gz", [line(i) for i in range(3, 8)], compress=True)  # a shipper's copies
    _write(folder / "a-04.jsonl.gz", [line(i, status=502) for i in range(20, 26)], compress=True)
    (folder / "a-05.jsonl").write_bytes(
        b'{"timestamp": "2026-04-22T09:01:00Z", "user": "caf\xe9"}\n' + f"{line(30)}\n".encode()
    )
    _write(folder / "a-06.jsonl", [line(i) for i in range(31, 36)])
    _write(folder / "a-07.jsonl", [line(40).replace('"model": "m", ', "")])  # other fields: its own batch
    _write(folder / "a-08.jsonl", [line(i, hour=10) for i in range(3)])


def _ledger_csv(folder: Path) -> None:
    # No entry_id column: each entry's id is "<file>:<line>", which a batch must give alike.
    header = "ts,account_id,kind,tokens,balance_after"
    for n in range(4):
        rows = [f"2026-04-22T09:0{n}:{s:02d}Z,acct-{s % 2},deduct,{10 + s},{1000 - s}" for s in range(5)]
        if n == 2:
            rows[1] = "2026-04-22T09:02:01Z,acct-1,deduct,12O,999"  # not a number
            rows.append("2026-04-22T09:02:09Z,acct-1,deduct,1,2,3")  # too many fields
        _write(folder / f"ledger-{n}.csv", [header, *rows])


def _gateway_nginx(folder: Path) -> None:
    for n in range(3):
        rows = [
            f'10.0.0.{s} - acct_{s} [22/Apr/2026:09:0{n}:{s:02d} +0000] "POST /v1/chat/completions HTTP/1.1" '
            f'{502 if s % 4 == 0 else 200} 12 "-" "curl/8" 0.{s + 1:03d} 0.{s:03d}'
            for s in range(6)
        ]
        if n == 1:
            rows.insert(2, "garbage that is no nginx line")
        _write(folder / f"access-{n}.log", rows)


def _gateway_alb(folder: Path) -> None:
    # One file per load balancer node every 5 minutes: the case batches are for.
    for n in range(4):
        rows = [
            (BAD_GATEWAY if s % 3 == 0 else MODERN).replace(
                "22:23:00.186641", f"22:{20 + n:02d}:{s:02d}.000000"
            )
            for s in range(5)
        ]
        if n == 2:
            rows.insert(1, "not an ALB line")
        _write(folder / f"lb-{n}.log.gz", rows, compress=True)


def _broken_object(folder: Path) -> None:
    # Inside braces but not JSON: the fastest plan stops on it, so the batch is read file by file.
    _write(folder / "b-1.jsonl", [line(i) for i in range(4)])
    _write(folder / "b-2.jsonl", [line(4), '{"timestamp": "2026-04-22T09:00:05Z", "status": }', line(6)])
    _write(folder / "b-3.jsonl", [line(i) for i in range(7, 9)])


def _truncated(folder: Path) -> None:
    _write(folder / "t-1.jsonl.gz", [line(i) for i in range(4)], compress=True)
    cut = gzip.compress(("\n".join(line(i) for i in range(4, 40)) + "\n").encode(), mtime=0)
    (folder / "t-2.jsonl.gz").write_bytes(cut[: len(cut) // 2])
    _write(folder / "t-3.jsonl.gz", [line(i) for i in range(40, 44)], compress=True)


def _parquet_files(folder: Path) -> list[Path]:
    # Parquet files named one by one (a folder would be one dataset): read in place, one query a batch.
    rows = [
        {"timestamp": f"2026-04-22T09:00:{s:02d}Z", "request_id": f"p{s}", "status": "200", "model": "m"}
        for s in range(12)
    ]
    rows[7]["status"] = "OK?"  # not a status: a reject of the file it is in
    parts = [rows[0:4], rows[4:8], [*rows[2:4], *rows[8:10]], rows[10:12]]  # part 2 repeats two rows
    paths = []
    for i, part in enumerate(parts):
        frame = pl.DataFrame(part)
        if i == 3:
            frame = frame.with_columns(pl.col("status").cast(pl.Int64))  # another schema: another batch
        paths.append(folder / f"p-{i}.parquet")
        frame.write_parquet(paths[-1])
    return paths


CASES: dict[str, tuple[str, Callable[[Path], list[Path] | None]]] = {
    "jsonl": ("gateway", _gateway_jsonl),
    "csv-ledger": ("ledger", _ledger_csv),
    "nginx": ("gateway", _gateway_nginx),
    "alb": ("gateway", _gateway_alb),
    "broken-object": ("gateway", _broken_object),
    "truncated-gzip": ("gateway", _truncated),
    "parquet-files": ("gateway", _parquet_files),
}


def _load(kind: str, paths: list[Path], monkeypatch: pytest.MonkeyPatch, sizes: list[int]) -> Loaded:
    """Load `paths`, recording the size of every batch read."""

    def spy(kind: str, batch: list[reader.Opened], *args: object) -> list[reader.FileRead]:
        sizes.append(len(batch))
        return reader.read_batch(kind, batch, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent, "read_batch", spy)
    monkeypatch.setattr(concurrent, "READERS", 1)  # the sizes in the order the batches come
    return load(kind, paths, Settings())


def _assert_same(batched: Loaded, alone: Loaded) -> None:
    assert batched.inputs == alone.inputs
    assert batched.notes == alone.notes
    assert_frame_equal(batched.rejects, alone.rejects)
    assert_frame_equal(batched.frame.collect(), alone.frame.collect())


@pytest.mark.parametrize("case", list(CASES))
def test_batched_read_equals_reading_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    kind, make = CASES[case]
    paths = make(tmp_path) or [tmp_path]
    batched_sizes: list[int] = []
    batched = _load(kind, paths, monkeypatch, batched_sizes)
    monkeypatch.setattr(reader, "BATCH_FILE_BYTES", -1)  # no file is small enough: one at a time
    alone_sizes: list[int] = []
    alone = _load(kind, paths, monkeypatch, alone_sizes)
    assert set(alone_sizes) == {1}
    assert max(batched_sizes) > 1, "no batch was formed: the comparison would prove nothing"
    assert sum(batched_sizes) == sum(alone_sizes) == len(alone.inputs)
    _assert_same(batched, alone)
    assert sum(r.rows_read for r in alone.inputs) == sum(
        r.rows_analyzed + r.rows_rejected for r in alone.inputs
    )


def test_batches_hold_runs_of_files_read_alike_within_the_size_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gateway_jsonl(tmp_path)
    sizes: list[int] = []
    _load("gateway", [tmp_path], monkeypatch, sizes)
    # a-01..a-04: gzip, one set of fields; a-05 and a-06: plain, the same set; a-07 lacks `model`;
    # a-08 is like a-06 but a batch is a run of neighbours (path order is kept).
    assert sizes == [4, 2, 1, 1]
    monkeypatch.setattr(reader, "BATCH_BYTES", 2 * 8 * (tmp_path / "a-01.jsonl.gz").stat().st_size)
    sizes.clear()
    _load("gateway", [tmp_path], monkeypatch, sizes)
    assert sizes[:2] == [2, 2] and sum(sizes) == 8


def test_the_expected_findings_of_the_corpus_files_hold_when_batched(tmp_path: Path) -> None:
    _gateway_jsonl(tmp_path)
    loaded = load("gateway", [tmp_path], Settings())
    by_name = {Path(r.path).name: r for r in loaded.inputs}
    assert by_name["a-02.jsonl.gz"].rejects_by_reason == {"malformed_json": 1, "missing_field:status": 1}
    assert by_name["a-03.jsonl.gz"].rejects_by_reason == {"duplicate_line": 5}
    assert by_name["a-05.jsonl"].rejects_by_reason == {"invalid_utf8": 1}
    bad = loaded.rejects.filter(loaded.rejects["reason"] == "malformed_json")
    assert bad.select("file", "line", "raw").rows() == [(str(tmp_path / "a-02.jsonl.gz"), 2, "not json")]
    missing = loaded.rejects.filter(loaded.rejects["reason"] == "missing_field:status")
    assert missing["line"].to_list() == [4]  # the blank line 3 is not a row but still counts as a line


def test_parquet_files_batched_keep_their_rows_rejects_and_copies(tmp_path: Path) -> None:
    paths = _parquet_files(tmp_path)
    loaded = load("gateway", paths, Settings())
    assert [(r.rows_read, r.rows_rejected, r.rejects_by_reason) for r in loaded.inputs] == [
        (4, 0, {}),
        (4, 1, {"bad_value:status": 1}),
        (4, 2, {"duplicate_line": 2}),
        (2, 0, {}),
    ]
    assert loaded.rejects.select("file", "line").rows() == [
        (str(paths[1]), 4),
        (str(paths[2]), 1),
        (str(paths[2]), 2),
    ]
    kept = loaded.frame.select("_file", "_line", "request_id").collect()
    assert kept.filter(pl.col("_file") == str(paths[2])).rows() == [
        (str(paths[2]), 3, "p8"),
        (str(paths[2]), 4, "p9"),
    ]
    assert kept["request_id"].to_list() == [f"p{i}" for i in range(12) if i != 7]


def test_a_small_gzip_holding_much_text_is_read_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 MiB of repetitive text compresses to a few kB: the gzip trailer, not the file size, says how
    # much a batch would hold for it.
    _write(tmp_path / "a-1.jsonl.gz", [line(i) for i in range(3)], compress=True)
    _write(tmp_path / "a-2.jsonl.gz", [line(1)] * 7000, compress=True)  # ~2 MiB of text
    _write(tmp_path / "a-3.jsonl.gz", [line(i) for i in range(3, 6)], compress=True)
    assert (tmp_path / "a-2.jsonl.gz").stat().st_size * 8 < 1 << 20
    monkeypatch.setattr(reader, "BATCH_FILE_BYTES", 1 << 20)
    sizes: list[int] = []
    _load("gateway", [tmp_path], monkeypatch, sizes)
    assert sizes == [1, 1, 1]
    monkeypatch.setattr(reader, "BATCH_FILE_BYTES", 4 << 20)
    sizes.clear()
    _load("gateway", [tmp_path], monkeypatch, sizes)
    assert sizes == [3]


_LINES = st.sampled_from(
    [
        line(1),
        line(2, status=502),
        line(3, request_id="shared"),
        "",
        "not json",
        '{"timestamp": "2026-04-22T09:00:05Z", "status": "OK?"}',
        line(4).replace('"status": 200, ', ""),
        '{"timestamp": "yesterday", "status": 200}',
    ]
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_LINES, min_size=1, max_size=6), min_size=2, max_size=6), st.data())
def test_any_split_of_lines_into_files_reads_the_same_batched(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    files: list[list[str]],
    data: st.DataObject,
) -> None:
    folder = tmp_path_factory.mktemp("split")
    for n, extra in enumerate(files):
        # Mostly objects, or the file is not JSON lines at all (an error, not a batch's business).
        lines = [line(10 * n + i) for i in range(len(extra) + 1)] + extra
        _write(folder / f"f-{n}.jsonl.gz", lines, compress=data.draw(st.booleans(), label=f"gzip {n}"))
    with monkeypatch.context() as m:
        batched = _load("gateway", [folder], m, [])
    with monkeypatch.context() as m:
        m.setattr(reader, "BATCH_FILE_BYTES", -1)
        alone = _load("gateway", [folder], m, [])
    _assert_same(batched, alone)


def test_empty_files_between_logs_change_nothing_but_their_own_reports(tmp_path: Path) -> None:
    # Fresh rotations (no line, or blank ones) are reported with zero rows and staged nowhere.
    _gateway_jsonl(tmp_path / "with")
    _gateway_jsonl(tmp_path / "without")
    for n in (0, 3, 9):
        (tmp_path / "with" / f"a-0{n}.5-empty.log").write_text("\n  \n" if n == 3 else "")
    with_empty = load("gateway", [tmp_path / "with"], Settings())
    plain = load("gateway", [tmp_path / "without"], Settings())
    empty = [r for r in with_empty.inputs if "empty" in Path(r.path).name]
    assert [(r.rows_read, r.format) for r in empty] == [(0, "empty")] * 3
    assert [r for r in with_empty.inputs if "empty" not in Path(r.path).name] == [
        replace(r, path=r.path.replace("without", "with")) for r in plain.inputs
    ]
    assert_frame_equal(with_empty.frame.collect().drop("_file"), plain.frame.collect().drop("_file"))
    assert_frame_equal(with_empty.rejects.drop("file"), plain.rejects.drop("file"))
