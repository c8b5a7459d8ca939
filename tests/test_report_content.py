"""What the report says: impact figures, response and fix times, dates said once, post-mortem order, escaping."""

import dataclasses
import io
import json
import re
from datetime import timedelta

import jsonschema
import polars as pl
import pytest
from fixtures.report.records import at, detection, empty_detection, events, inputs, reconciliation
from rich.console import Console

from analyzer.config import Settings
from analyzer.findings import Contributor, InputReport
from analyzer.report import build_report, render_json, render_markdown, render_terminal, schema
from analyzer.report.escape import escape
from analyzer.report.model import Report, what_moved_first
from analyzer.schema import TS_DTYPE


def _report(det=None, rec="default", ev=None, inp=None) -> Report:  # type: ignore[no-untyped-def]
    return build_report(
        inputs() if inp is None else inp,
        detection() if det is None else det,
        reconciliation() if rec == "default" else rec,
        events() if ev is None else ev,
        Settings(),
    )


def _events(*rows: tuple[int, int, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [at(h, m) for h, m, _, _ in rows],
            "kind": [k for *_, k, _ in rows],
            "title": [t for *_, t in rows],
        },
        schema={"ts": TS_DTYPE, "kind": pl.String, "title": pl.String},
    )


def test_accounts_hit_is_detections_distinct_count_and_burst_time_counts_overlaps_once() -> None:
    det = detection()
    second = dataclasses.replace(det.bursts[0], start=at(9, 23), end=at(9, 43), scope="region=eu-west-1")
    # 37 + 37 accounts over two overlapping bursts, but only 50 distinct ones.
    det = dataclasses.replace(det, bursts=(det.bursts[0], second), accounts_hit=50)
    s = _report(det=det).summary
    assert (s["accounts_hit_by_errors"], s["seconds_in_burst"]) == (50, 30 * 60)


@pytest.mark.parametrize(
    ("rows", "response", "fix"),
    [
        pytest.param(
            [(9, 0, "launch", "kimi-k2.6 goes live"), (9, 16, "statement", "fix in progress"),
             (9, 45, "hotfix", "token counting")],
            at(9, 16), at(9, 45), id="hotfix-kind-not-fix-in-progress",
        ),
        pytest.param(
            [(9, 11, "launch", "second region live"), (9, 30, "incident", "rolled back to v1.2")],
            at(9, 30), at(9, 30), id="launch-is-no-response-rollback-title-is-fix",
        ),
        pytest.param([(9, 20, None, "Fix deployed to gateway")], at(9, 20), at(9, 20), id="no-kind-title"),
        pytest.param([(9, 5, "incident", "before the symptom")], None, None, id="before-first-symptom"),
    ],
)  # fmt: skip
def test_first_response_and_fix_are_read_from_operator_events(rows, response, fix) -> None:  # type: ignore[no-untyped-def]
    s = _report(ev=_events(*rows)).summary
    assert (s["first_response_at"], s["fix_at"]) == (response, fix)
    expected = None if fix is None else int((fix - at(9, 10)).total_seconds())
    assert s["symptom_to_fix_seconds"] == expected


def test_top_accounts_carry_findings_and_json_inputs_carry_fields_and_times() -> None:
    inp = (
        dataclasses.replace(
            inputs()[0], fields={"ts": "time", "latency_ms": None}, first_ts=at(9, 0), last_ts=at(9, 59, 30)
        ),
    )
    report = _report(inp=inp)
    assert report.summary["top_accounts"] == [
        {"account_id": "acct-00042", "refund_tokens": 500, "findings": 5},
        {"account_id": "acct-00007", "refund_tokens": 250, "findings": 5},
    ]
    first = json.loads(render_json(report))["inputs"][0]
    assert (first["fields"], first["first_ts"], first["last_ts"]) == (
        {"latency_ms": None, "ts": "time"},
        "2026-04-22T09:00:00Z",
        "2026-04-22T09:59:30Z",
    )


def test_markdown_sections_come_in_post_mortem_order() -> None:
    heads = [line for line in render_markdown(_report()).splitlines() if line.startswith("## ")]
    assert heads == [
        "## Summary",
        "## Impact",
        "## Detection and response",
        "## Contributing factors",
        "## Timeline",
        "## Background",
        "## Bursts",
        "## Latency",
        "## Ledger findings",
        "## Refunds",
        "## Rate limits",
        "## Data quality",
        "## Method and settings",
        "## Action items",
    ]


def test_one_day_report_says_the_date_once_and_a_longer_one_dates_every_time() -> None:
    one_day = render_markdown(_report())
    assert one_day.startswith("# Incident post-mortem: 2026-04-22\n\nAll times are UTC on 2026-04-22.")
    assert "| 09:13:00 | 20 min | model=kimi-k2.6 | 20.0% at 09:20 | 400 of 2,000 |" in one_day
    late = _events((9, 0, "launch", "kimi-k2.6 goes live")).vstack(
        pl.DataFrame({"ts": [at(9, 0) + timedelta(days=1)], "kind": ["recovery"], "title": ["closed"]}).cast(
            {"ts": TS_DTYPE}
        )
    )
    two_days = render_markdown(_report(ev=late))
    assert "All times are UTC." in two_days and "| 2026-04-22 09:13:00 | 20 min |" in two_days
    assert "| 2026-04-23 09:00:00 | **closed** |" in two_days


def test_impact_and_refunds_read_with_separators_and_point_to_the_full_list() -> None:
    text = render_markdown(_report())
    assert "| Failed requests (5xx) | 400 (6.7%) |" in text
    assert "| Largest refunds | acct-00042 (500), acct-00007 (250) |" in text
    assert "2 accounts are owed 750 tokens; the 2 largest refunds:" in text
    assert "`ledger.accounts` in the JSON report" in text
    assert "| Time in a 5xx burst | 20 min |" in text


def test_nothing_found_reads_as_sentences_not_empty_tables() -> None:
    text = render_markdown(_report(det=empty_detection(), rec=None, ev=events().head(0)))
    assert "No 5xx burst stood out from the baseline." in text
    assert "No ledger was given." in text and "no ledger was given" in text
    assert "Nothing moved: no burst" in text
    assert "|---|---|\n\n" not in text  # a header with no rows


@pytest.mark.parametrize(
    ("raw", "absent"),
    [
        pytest.param("see https://evil.example/x", "https://", id="autolink"),
        pytest.param("ping @security-team", "@security", id="mention"),
        pytest.param("<img src=x onerror=alert(1)>", "<img", id="html"),
        pytest.param("a | b", "a | b", id="pipe"),
        pytest.param("[click](javascript:alert(1))", "[click]", id="link"),
        pytest.param("line\n## injected", "\n## injected", id="newline-heading"),
    ],
)
def test_log_strings_are_escaped_everywhere_they_appear(raw: str, absent: str) -> None:
    det = detection(scope_value=raw)
    rec = reconciliation(account=raw)
    ev = _events((9, 16, "statement", raw))
    text = render_markdown(_report(det=det, rec=rec, ev=ev, inp=inputs(path=raw)))
    # Mermaid blocks are code to GitHub (no links, mentions or HTML); their labels are tested below.
    prose = "".join(part for i, part in enumerate(text.split("```")) if i % 2 == 0)
    assert absent not in prose
    assert escape(raw) in prose  # still there, made harmless


def test_mermaid_labels_cannot_break_the_gantt_or_start_with_a_keyword() -> None:
    ev = _events((9, 16, "statement", 'click x call alert(1) : crit, 2026 "#;'))
    gantt = render_markdown(_report(ev=ev)).split("```mermaid\ngantt\n", 1)[1].split("```", 1)[0]
    milestone = next(line for line in gantt.splitlines() if "click" in line)
    label, data = milestone.strip().split(" :", 1)
    assert label.startswith("09∶16 click x call alert(1) ∶ crit‚ 2026 '＃；")
    assert data == "milestone, 2026-04-22 09:16:00, 0m"


def test_json_and_markdown_are_byte_identical_whatever_the_input_order() -> None:
    shuffled = events().reverse()
    a, b = _report(), _report(ev=shuffled)
    assert render_json(a) == render_json(b)
    assert render_markdown(a) == render_markdown(b)


def test_terminal_fits_120_columns_and_shows_every_part() -> None:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    # An escape sequence, and an id too long for any column: folded, never past the edge.
    report = _report(rec=reconciliation(account="acct-\x1b[31mred" + "x" * 150))
    render_terminal(report, console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "\x1b" not in out and "[31mredxxx" in out
    for part in (
        "First to move: p95 latency",
        "5xx rate",
        "p95",
        "Timeline",
        "5xx bursts",
        "Latency spikes",
        "refund",
    ):
        assert part in out


def test_input_report_without_times_renders_dashes() -> None:
    inp = (InputReport("gateway", "g.jsonl", "jsonl", "none", 10, 0, {}),)
    text = render_markdown(_report(inp=inp))
    assert "| gateway | g.jsonl | jsonl | 10 | 0 | — | — | — |" in text


def test_an_input_passing_midnight_keeps_the_one_day_times_and_dates_its_own_range() -> None:
    ledger = dataclasses.replace(inputs()[1], first_ts=at(9, 0), last_ts=at(9, 0) + timedelta(hours=15))
    text = render_markdown(_report(inp=(inputs()[0], ledger)))
    assert "All times are UTC on 2026-04-22." in text
    assert (
        "| ledger | logs/ledger.csv | csv | 120 | 0 | — | 2026-04-22 09:00:00 | 2026-04-23 00:00:00 |" in text
    )


@pytest.mark.parametrize(
    ("onsets", "sentence"),
    [
        pytest.param(
            {"errors": at(9, 13), "latency": at(9, 13), "ledger": None},
            "First to move: the 5xx rate, at 09:13 UTC; p95 latency moved at the same time; "
            "mismatched ledger entries never stood out.",
            id="tie-and-missing",
        ),
        pytest.param(
            {"errors": at(10, 0), "latency": None, "ledger": at(9, 1, 53)},
            "First to move: mismatched ledger entries, at 09:01:53 UTC; it led the 5xx rate by 58 min 07 s; "
            "p95 latency never stood out.",
            id="ledger-first-seconds",
        ),
        pytest.param(
            {"errors": None, "latency": None, "ledger": None},
            "Nothing moved: no burst, latency spike or ledger mismatch was found.",
            id="nothing",
        ),
    ],
)
def test_what_moved_first_states_order_and_lead(onsets: dict, sentence: str) -> None:  # type: ignore[type-arg]
    assert what_moved_first(onsets) == sentence


def test_bursts_name_the_most_over_represented_slices() -> None:
    top = (
        Contributor("endpoint", "/v1/chat", 90, 900, 0.9, 0.91),
        Contributor("region", "ap-southeast-1", 21, 100, 0.21, 0.10),
        Contributor("region", "us-east-1", 42, 390, 0.42, 0.39),  # about its share of the traffic
        Contributor("upstream", "pool-x", 5, 10, 0.05, 0.001),  # skewed, but 5% of the errors
        Contributor("model", "m", 50, 500, 0.5, 0.25),
    )
    det = detection()
    det = dataclasses.replace(det, bursts=(dataclasses.replace(det.bursts[0], top=top),))
    row = next(
        line
        for line in render_markdown(_report(det=det)).splitlines()
        if line.startswith("| 09:13:00 | 20 min |")
    )
    assert row.endswith(
        "| region=ap-southeast-1: 21% of errors, 10% of traffic; model=m: 50% of errors, 25% of traffic |"
    )


def test_ledger_onset_is_where_mismatches_bunch_not_a_stray_one() -> None:
    rec = reconciliation()
    stray = pl.DataFrame(
        {
            "kind": ["duplicate"],
            "model": ["glm-5"],
            "first_at": [at(9, 1)],
            "last_at": [at(9, 1)],
            "count": [1],
        },
        schema=rec.spans.schema,
    )
    rec = dataclasses.replace(rec, spans=rec.spans.vstack(stray))
    assert _report(rec=rec).summary["onsets"]["ledger"] == at(9, 20)  # type: ignore[index]
    no_pattern = dataclasses.replace(rec, patterns=())
    assert _report(rec=no_pattern).summary["onsets"]["ledger"] == at(9, 1)  # type: ignore[index]


def test_hostile_report_renders_to_html_without_tags_and_with_whole_tables() -> None:
    # Rendered as a CommonMark + tables parser does (markdown-it, which Rich already depends on).
    from markdown_it import MarkdownIt

    hostile = "x|y <script>alert(1)</script> <img src=x onerror=alert(1)> [a](javascript:alert(1)) *b*\n# h"
    report = _report(
        det=detection(scope_value=hostile),
        rec=reconciliation(account=hostile),
        ev=_events((9, 16, "statement", hostile)),
        inp=inputs(path=hostile),
    )
    html = MarkdownIt("commonmark").enable("table").render(render_markdown(report))
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "<h1>h</h1>" not in html
    for tbl in html.split("<table>")[1:]:
        head, body = tbl.split("</thead>", 1)
        columns = len(re.findall(r"<th[ >]", head))
        rows = body.split("</table>", 1)[0].split("<tr>")[1:]
        assert rows and all(len(re.findall(r"<td[ >]", row)) == columns for row in rows)


def test_terminal_with_nothing_found_and_no_series_still_renders() -> None:
    quiet = dataclasses.replace(empty_detection(), series=empty_detection().series.head(0))
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_terminal(_report(det=quiet, rec=None, ev=events().head(0)), console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "0 of 0 requests failed" in out and "Nothing moved" in out
    assert "5xx bursts" not in out and "Top refunds" not in out


def test_method_lists_the_fields_each_kind_was_read_from() -> None:
    gateway = dataclasses.replace(inputs()[0], fields={"ts": "time", "latency_ms": None, "status": "code|x"})
    text = render_markdown(_report(inp=(gateway, *inputs()[1:])))
    fields = text.split("<summary>Fields read</summary>", 1)[1]
    assert (
        "| gateway | ts | time |\n| gateway | latency_ms | — |\n| gateway | status | code&#124;x |" in fields
    )


def test_an_account_owed_without_an_id_still_validates_and_renders() -> None:
    rec = reconciliation()
    rec = dataclasses.replace(
        rec, accounts=rec.accounts.with_columns(pl.lit(None, pl.String).alias("account_id"))
    )
    report = _report(rec=rec)
    doc = json.loads(render_json(report))
    jsonschema.validate(doc, schema())
    assert [a["account_id"] for a in doc["ledger"]["accounts"]] == [None, None]
    assert "|  | 500 | 66.7% | 5 |" in render_markdown(report)


@pytest.mark.parametrize("where", ["md", "mermaid", "terminal"])
def test_a_huge_log_string_is_cut_in_human_renderings(where: str) -> None:
    out = escape("a" * 100_000, where)
    assert len(out) == 400 and out.endswith("…")
