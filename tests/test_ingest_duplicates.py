"""Shipper duplicates: the search over hash slices finds exactly what one pass finds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from analyzer.config import Settings
from analyzer.ingest import duplicates, load

sys.path.insert(0, str(Path(__file__).parent / "corpus"))
import make_corpus  # noqa: E402


@pytest.mark.parametrize(
    "pass_rows", [pytest.param(1, id="a-slice-per-row"), pytest.param(7, id="four-slices")]
)
def test_sliced_search_equals_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pass_rows: int
) -> None:
    lines = [make_corpus.gateway_line(i % 9) for i in range(25)]  # r0..r8, then repeated twice and a bit
    (tmp_path / "g.jsonl").write_text("\n".join(lines) + "\n")
    whole = load("gateway", [tmp_path / "g.jsonl"], Settings())
    monkeypatch.setattr(duplicates, "PASS_ROWS", pass_rows)
    sliced = load("gateway", [tmp_path / "g.jsonl"], Settings())
    assert whole.inputs[0].rejects_by_reason == {"duplicate_line": 25 - 9}
    assert sliced.inputs == whole.inputs
    assert_frame_equal(sliced.rejects, whole.rejects)
    assert_frame_equal(sliced.frame.collect(), whole.frame.collect())
    assert whole.frame.collect()["_line"].to_list() == list(range(1, 10))


def test_csv_records_differing_only_where_the_raw_text_is_rebuilt_are_both_kept(tmp_path: Path) -> None:
    # The raw text of a CSV record is rebuilt from its cells ("r1," and "r1" + an empty cell read alike):
    # the cells decide, so only the true copy (line 4) is a duplicate.
    path = tmp_path / "g.csv"
    path.write_text(
        "timestamp,status,request_id,model\n"
        '2026-04-22T09:00:01Z,200,"r1,",\n'
        "2026-04-22T09:00:01Z,200,r1,\n"
        '2026-04-22T09:00:01Z,200,"r1,",\n'
    )
    loaded = load("gateway", [path], Settings())
    assert loaded.inputs[0].rejects_by_reason == {"duplicate_line": 1}
    assert loaded.rejects.select("line", "reason").rows() == [(4, "duplicate_line")]
    assert loaded.frame.select("request_id").collect()["request_id"].to_list() == ["r1,", "r1"]


def test_identical_lines_without_a_request_id_are_all_kept(tmp_path: Path) -> None:
    # Same client, second and status: in a 502 burst these are separate requests, not a shipper's copy.
    line = '{"ts": "2026-04-22T09:00:01Z", "status": 502, "model": "m"}'
    (tmp_path / "g.jsonl").write_text(f"{line}\n{line}\n{line}\n")
    loaded = load("gateway", [tmp_path / "g.jsonl"], Settings())
    assert (loaded.inputs[0].rows_analyzed, loaded.inputs[0].rejects_by_reason) == (3, {})
