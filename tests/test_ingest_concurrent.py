"""Batches read two at a time (concurrent.read_batches) give exactly what reading them one by one gives.

Every case of test_ingest_batches (JSON lines with rejects and a shipper's copies, a CSV ledger, nginx,
ALB, a broken object, a gzip stream cut short, Parquet read in place), with every file its own batch so
that several are in flight at once: the reports, the rejects with their file, line, reason and raw
text, the analyzed rows with their `_file` and `_line`, and the notes are the serial ones; an error is
the one the serial read raises first.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import pytest
from test_ingest_batches import CASES, _assert_same, _gateway_jsonl

from analyzer.config import Settings
from analyzer.errors import InputError, UnknownFormatError
from analyzer.ingest import Loaded, concurrent, load, reader


def _load(kind: str, paths: list[Path], monkeypatch: pytest.MonkeyPatch, readers: int) -> Loaded:
    monkeypatch.setattr(concurrent, "READERS", readers)
    return load(kind, paths, Settings())


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("batched", [False, True], ids=["file-by-file", "batched"])
def test_reading_two_batches_at_once_equals_the_serial_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, batched: bool
) -> None:
    kind, make = CASES[case]
    paths = make(tmp_path) or [tmp_path]
    if not batched:
        monkeypatch.setattr(reader, "BATCH_FILE_BYTES", -1)  # every file a batch: many in flight
    threads: set[str] = set()
    read = reader.read_batch

    def spy(*args: object) -> list[reader.FileRead]:
        threads.add(threading.current_thread().name)
        return read(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent, "read_batch", spy)
    serial = _load(kind, paths, monkeypatch, 1)
    assert threads == {threading.main_thread().name}
    threads.clear()
    parallel = _load(kind, paths, monkeypatch, 2)
    assert threads and threading.main_thread().name not in threads, "not read by the pool"
    assert len(parallel.inputs) > 1
    _assert_same(parallel, serial)


def test_rejects_keep_their_file_and_line_when_read_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gateway_jsonl(tmp_path)
    monkeypatch.setattr(reader, "BATCH_FILE_BYTES", -1)
    loaded = _load("gateway", [tmp_path], monkeypatch, 2)
    found = loaded.rejects.select("file", "line", "reason").rows()
    name = str(tmp_path / "a-02.jsonl.gz")
    assert (name, 2, "malformed_json") in found
    assert (name, 4, "missing_field:status") in found  # line 3 is blank: not a row, still counted
    copies = [(Path(f).name, n) for f, n, r in found if r == "duplicate_line"]
    assert copies == [("a-03.jsonl.gz", n) for n in range(1, 6)]


def test_the_error_raised_is_the_first_a_serial_read_meets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gateway_jsonl(tmp_path)
    # An input that is no log at all (fails while opened) after one that fails while read: the serial
    # read stops at the read, so the parallel one must say the same.
    monkeypatch.setattr(reader, "BATCH_FILE_BYTES", -1)
    read = reader.read_batch

    def failing(kind: str, batch: list[reader.Opened], *args: object) -> list[reader.FileRead]:
        if batch[0].path.name == "a-03.jsonl.gz":
            raise InputError("cannot read: injected", path=str(batch[0].path))
        return read(kind, batch, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent, "read_batch", failing)
    (tmp_path / "a-09.jsonl.gz").write_bytes(gzip.compress(b"\x00\x01\x02 binary\n" * 10, mtime=0))
    messages = []
    for readers in (1, 2):
        with pytest.raises(InputError) as e:
            _load("gateway", [tmp_path], monkeypatch, readers)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert "a-03.jsonl.gz" in messages[0]
    # Without the failing read, the input that cannot be opened is what both say, after every read.
    monkeypatch.setattr(concurrent, "read_batch", read)
    messages.clear()
    for readers in (1, 2):
        with pytest.raises(UnknownFormatError) as unknown:
            _load("gateway", [tmp_path], monkeypatch, readers)
        messages.append(str(unknown.value))
    assert messages[0] == messages[1]
    assert "a-09.jsonl.gz" in messages[0]
