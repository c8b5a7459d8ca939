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
from analyzer.config import Settings, SourceConfig, load_settings
from analyzer.errors import ConfigError, InputError
from analyzer.ingest import delimited, load, sources
from analyzer.report.notes import sentences

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


LINE = '10.0.0.1 - - [22/Apr/2026:09:00:0{} +0000] "GET /v1/caf\u00e9 HTTP/1.1" 200 5 "-" "M\u00fcller" 0.010 0.009'


def _legacy(path: Path, encoding: str, *, gz: bool = False) -> Path:
    data = "".join(LINE.format(i) + "\n" for i in range(3))
    raw = data.encode(encoding)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def test_a_cp1252_log_is_rejected_with_the_encoding_named_then_read_with_it(tmp_path: Path) -> None:
    path = _legacy(tmp_path / "access.log", "cp1252")
    loaded = load("gateway", [path], Settings())
    assert loaded.inputs[0].rejects_by_reason == {"invalid_utf8": 3}
    assert f'gateway: {path}: 3 lines are not UTF-8; [gateway] encoding = "cp1252" reads them' in sentences(
        loaded.notes
    )
    for source in (path, _legacy(tmp_path / "access.log.gz", "cp1252", gz=True)):
        decoded = load("gateway", [source], Settings(gateway=SourceConfig(encoding="cp1252")))
        assert decoded.inputs[0].rows_rejected == 0
        assert decoded.frame.select("endpoint").collect()["endpoint"].to_list() == ["/v1/café"] * 3


def test_utf16_is_read_with_its_encoding_and_refused_naming_it_without(tmp_path: Path) -> None:
    path = _legacy(tmp_path / "access.log", "utf-16")
    with pytest.raises(InputError, match='set encoding = "utf-16"'):
        load("gateway", [path], Settings())
    (report,) = load("gateway", [path], Settings(gateway=SourceConfig(encoding="utf-16"))).inputs
    assert (report.format, report.rows_analyzed) == ("nginx", 3)


def test_a_byte_cp1252_lacks_suggests_latin1(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"ok line\nbad \x81 line\n")
    assert sources.suggest_encoding(path) == "latin-1"
    path.write_bytes(b"ok line\nbad \xe9 line\n")
    assert sources.suggest_encoding(path) == "cp1252"


def test_an_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[gateway]\nencoding = "klingon"\n')
    with pytest.raises(ConfigError, match="gateway.encoding"):
        load_settings(tmp_path / "a.toml")
