"""Inputs as people pass them: `-` (standard input) and pipes are read once, spooled where seeking is needed."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.config import Settings
from analyzer.ingest import delimited, load, sources

FIXTURES = Path(__file__).parent / "fixtures" / "ingest" / "formats"


def test_a_pipe_is_read_once_and_its_compression_detected(tmp_path: Path) -> None:
    fifo = tmp_path / "day.gz"
    os.mkfifo(fifo)
    data = gzip.compress((FIXTURES / "haproxy.log").read_bytes(), mtime=0)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    (report,) = load("gateway", [fifo], Settings()).inputs
    writer.join()
    assert (report.format, report.compression, report.rows_read, report.rows_rejected) == (
        "haproxy",
        "gzip",
        4,
        0,
    )


def test_standard_input_is_read_by_inspect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_STDIN_FILE", [])
    result = CliRunner().invoke(app, ["inspect", "-", "--json"], input=(FIXTURES / "envoy.log").read_bytes())
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    assert (item["format"], item["rows_read"], item["rows_rejected"]) == ("envoy", 4, 0)


def test_standard_input_named_twice_is_read_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sources, "_STDIN_FILE", [])
    reads: list[int] = []

    class Stdin:
        class buffer:  # noqa: N801 - the attribute sys.stdin has
            @staticmethod
            def read(n: int = -1) -> bytes:
                reads.append(n)
                return (FIXTURES / "common.log").read_bytes() if len(reads) == 1 else b""

    monkeypatch.setattr(sources.sys, "stdin", Stdin)
    first = sources.resolve(["-"])
    assert sources.resolve(["-"]) == first and first[0].read_bytes() == (FIXTURES / "common.log").read_bytes()


def test_a_csv_whose_quoted_cells_hold_line_breaks_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    path = FIXTURES / "multiline.csv"  # a spend-log export whose messages hold line breaks and quotes
    loaded = load("gateway", [path], Settings())
    (report,) = loaded.inputs
    assert (report.format, report.rows_read, report.rows_rejected) == ("csv", 6, 0)
    got = loaded.frame.select("request_id", "status").collect().rows()
    assert got == [(f"r{i}", 502 if i == 3 else 200) for i in range(6)]
    # Line by line the sample fits no width: only the records say it is CSV.
    sample = sources.sniff(path).sample
    assert delimited.looks_like(sample, ",")
    monkeypatch.setattr(delimited, "_records_fit", lambda *args: False)
    assert not delimited.looks_like(sample, ",")
