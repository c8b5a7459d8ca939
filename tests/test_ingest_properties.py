"""Property: whatever bytes a file holds, loading never crashes and every non-blank line is accounted for
(analyzed once, or rejected with a reason: a repeated good line as a `duplicate_line`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.config import Settings, SourceConfig
from analyzer.ingest import load

GOOD = '{"ts": "2026-04-22T09:00:01Z", "status": 200, "model": "m"}'
_junk = st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)
_line = st.one_of(st.just(GOOD.encode()), _junk, st.just(GOOD[:-3].encode()), st.just(b""))


def _blank(line: bytes) -> bool:
    """Unicode White_Space only: Python's str.isspace also counts the separators U+001C..U+001F, Polars does not."""
    text = line.decode("utf-8", "replace")
    return all(c.isspace() and c not in "\x1c\x1d\x1e\x1f" for c in text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, min_size=1, max_size=12))
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
        # The good line is analyzed once; its later copies are a shipper's duplicates, counted as such.
        assert good == report.rows_analyzed == 1
        copies = sum(1 for line in data if line == GOOD.encode()) - 1
        assert report.rejects_by_reason.get("duplicate_line", 0) == copies
        assert loaded.rejects.height == report.rows_rejected
