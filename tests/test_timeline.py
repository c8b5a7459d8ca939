"""build_timeline: chronological order, fixed tie-breaks, content of each item."""

from fixtures.report.records import at, detection, events, reconciliation

from analyzer.timeline import build_timeline, span_text


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
