"""build_timeline: chronological order, fixed tie-breaks, content of each item."""

import dataclasses
from datetime import timedelta

import polars as pl
from fixtures.report.records import at, detection, events, reconciliation

from analyzer.report.timeline import build_timeline, span_text


def test_timeline_is_sorted_and_starts_with_launch() -> None:
    tl = build_timeline(detection(), reconciliation(), events())
    assert tl["ts"].is_sorted()
    assert tl.row(0) == (at(9, 0), "event", "kimi-k2.6 goes live", "operator note (launch)", None)
    kinds = set(tl["kind"])
    assert {
        "burst_start",
        "burst_end",
        "spike_start",
        "gap_start",
        "alert_fired",
        "pattern_end",
        "quota_reset",
    } <= kinds


def test_timeline_ties_follow_kind_order_not_input_order() -> None:
    tl = build_timeline(detection(), reconciliation(), events()).filter(ts=at(9, 20))
    assert tl["kind"].to_list() == ["pattern_start", "fault_first"]


def test_timeline_without_ledger_has_no_ledger_items() -> None:
    tl = build_timeline(detection(), None, events())
    assert not set(tl["kind"]) & {"fault_first", "pattern_start", "quota_reset"}
    assert tl.height == 3 + 2 + 2 + 2 + 2


def test_span_text() -> None:
    assert [span_text(at(9, 0) - at(8, 0)), span_text(at(9, 3) - at(9, 0))] == ["1 h", "3 min"]


def test_ledger_items_per_kind_and_model_with_grouped_counts() -> None:
    rec = reconciliation()
    spans = rec.spans.with_columns(
        pl.when(pl.col("kind") == "overcharge").then(2145).otherwise("count").alias("count")
    )
    tl = build_timeline(detection(), dataclasses.replace(rec, spans=spans), events())
    first = tl.filter(kind="fault_first", title="First overcharge (kimi-k2.6)")
    assert first.select("ts", "detail", "scope").row(0) == (
        at(9, 20),
        "2,145× overcharge until 09:44:00",
        "model=kimi-k2.6",
    )
    # One instant (failed_charged on glm-5 at 09:22) gives a first item and no last one.
    assert tl.filter(pl.col("title").str.contains("failed_charged \\(glm-5\\)"))["kind"].to_list() == [
        "fault_first"
    ]
    assert tl.filter(kind="quota_reset")["ts"].to_list() == [at(9, 59, 59)]


def test_a_fault_pattern_of_one_instant_has_no_end_item() -> None:
    rec = reconciliation()
    one = dataclasses.replace(rec.patterns[0], end=rec.patterns[0].start, entries=1)
    tl = build_timeline(detection(), dataclasses.replace(rec, patterns=(one,)), events())
    assert tl.filter(pl.col("kind").str.starts_with("pattern"))["kind"].to_list() == ["pattern_start"]


def test_a_fault_span_past_midnight_dates_its_other_end() -> None:
    rec = reconciliation()
    late = rec.spans.with_columns(
        pl.when(pl.col("kind") == "orphan")
        .then(pl.col("last_at") + timedelta(days=1))
        .otherwise("last_at")
        .alias("last_at")
    )
    tl = build_timeline(detection(), dataclasses.replace(rec, spans=late), events())
    details = (
        tl.filter(pl.col("title") == "First orphan")["detail"].to_list()
        + tl.filter(pl.col("title") == "Last orphan")["detail"].to_list()
    )
    assert details == ["2× orphan until 2026-04-23 09:06:00", "2× orphan since 2026-04-22 09:05:00"]
