"""Property: whatever bytes a file holds, loading never crashes and every non-blank line is accounted for
(analyzed once, or rejected with a reason: a repeated good line as a `duplicate_line`)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analyzer.config import Settings, SourceConfig
from analyzer.ingest import load

GOOD = '{"ts": "2026-04-22T09:00:01Z", "status": 200, "model": "m", "request_id": "r1"}'
ANON = '{"ts": "2026-04-22T09:00:01Z", "status": 502, "model": "m"}'  # no request id: never a duplicate
_junk = st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)
_line = st.one_of(
    st.just(GOOD.encode()), st.just(ANON.encode()), _junk, st.just(GOOD[:-3].encode()), st.just(b"")
)


def _blank(line: bytes) -> bool:
    """The loader's blank line: Unicode White_Space and the unit separator U+001F (its line reader's cell
    separator, so a line of nothing else holds no data). Python's str.isspace also counts U+001C..U+001E,
    which the loader reads as a row (and rejects)."""
    text = line.decode("utf-8", "replace")
    return all(c == "\x1f" or (c.isspace() and c not in "\x1c\x1d\x1e") for c in text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, min_size=1, max_size=12))
@example([b"\x1f"])  # a line of unit separators only: blank (found by Hypothesis)
@example([b"\x1c", b"a\x1fb"])  # a file separator is a row; a unit separator inside a line keeps the row
def test_every_line_is_analyzed_or_rejected(lines: list[bytes]) -> None:
    # At least one object line first, so the content is recognized as JSON lines.
    data = [GOOD.encode(), *lines]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.jsonl"
        path.write_bytes(b"\n".join(data) + b"\n")
        forced = Settings(gateway=SourceConfig(format="jsonl"))  # the property is accounting, not detection
        loaded = load("gateway", [path], forced, workdir=Path(tmp) / "work")
        (report,) = loaded.inputs
        non_blank = sum(1 for line in data if not _blank(line))
        assert report.rows_read == non_blank
        good = loaded.frame.select(pl.len()).collect().item()
        # The good line is analyzed once, its later copies are a shipper's duplicates, counted as such;
        # a line without a request id is analyzed every time.
        assert good == report.rows_analyzed == 1 + sum(1 for line in data if line == ANON.encode())
        copies = sum(1 for line in data if line == GOOD.encode()) - 1
        assert report.rejects_by_reason.get("duplicate_line", 0) == copies
        assert loaded.rejects.height == report.rows_rejected


_TS = st.sampled_from(["2026-04-22T09:00:01Z", "2026-04-22 11:00:02+02:00", "1776848403", "yesterday"])
_STATUS = st.one_of(st.integers(100, 599).map(str), st.sampled_from(["", "-", "OK?", "200.0", "2e2"]))
_CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_TS, _STATUS, _CELL), min_size=1, max_size=10))
def test_every_csv_record_is_analyzed_or_rejected(records: list[tuple[str, str, str]]) -> None:
    # Written by Python's csv module: quotes, separators and line breaks inside cells are quoted.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("timestamp", "status", "request_id"), *records])
        forced = Settings(gateway=SourceConfig(format="csv"))
        loaded = load("gateway", [path], forced, workdir=Path(tmp) / "work")
        (report,) = loaded.inputs
        assert report.rows_read == len(records)
        assert report.rows_read == report.rows_analyzed + report.rows_rejected == len(records)
        # A record is analyzed exactly when its time and status read (and it is not a copy of an earlier
        # one); its request id comes back as written (without surrounding spaces when the file pads
        # its cells: `a, b`).
        padded = any(c != c.strip(" ") for r in records for c in r)

        def rid(r: tuple[str, str, str]) -> str | None:
            cell = r[2].strip(" ") if padded else r[2]
            return None if cell in ("", "-") else cell

        readable = [r for r in records if r[0] != "yesterday" and r[1] not in ("", "-", "OK?")]
        with_id = [r for r in readable if rid(r) is not None]  # copies only count with a request id
        kept = [r for i, r in enumerate(readable) if rid(r) is None or r not in readable[:i]]
        got = loaded.frame.select("request_id").collect()["request_id"].to_list()
        assert got == [rid(r) for r in kept]
        assert report.rejects_by_reason.get("duplicate_line", 0) == len(with_id) - len(set(with_id))
