"""Report renderers: JSON against its schema, golden Markdown, escaping of hostile strings, terminal, gate.

Regenerate the golden file deliberately with: ANALYZER_REGEN_GOLDEN=1 python3 -m pytest tests/test_report_render.py
"""

import io
import json
import os
from pathlib import Path

import jsonschema
import pytest
from fixtures.report.records import (
    HOSTILE,
    HOSTILE_MERMAID,
    detection,
    empty_detection,
    events,
    inputs,
    reconciliation,
)
from rich.console import Console

from analyzer.config import Settings
from analyzer.errors import ConfigError
from analyzer.report import build_report, failing_rules, render_json, render_markdown, render_terminal, schema
from analyzer.report.model import Report

GOLDEN = Path(__file__).parent / "fixtures" / "report" / "expected.md"


def _report(**kw: object) -> Report:
    rec = kw.get("rec", reconciliation())
    det = kw.get("det", detection())
    return build_report(inputs(), det, rec, events(), Settings(), refunds_path="refunds.csv")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(_report(), id="full"),
        pytest.param(_report(rec=None), id="no-ledger"),
        pytest.param(_report(det=empty_detection(), rec=None), id="nothing-found"),
    ],
)
def test_json_validates_against_schema_and_is_deterministic(report: Report) -> None:
    text = render_json(report)
    doc = json.loads(text)
    jsonschema.validate(doc, schema())
    assert text == render_json(report)
    assert doc["schema_version"] == 1


def test_json_ledger_null_without_ledger_and_contract_values() -> None:
    assert json.loads(render_json(_report(rec=None)))["ledger"] is None
    doc = json.loads(render_json(_report()))
    assert doc["ledger"]["accounts"] == [
        {"account_id": "acct-00042", "refund_tokens": 500, "findings": 5},
        {"account_id": "acct-00007", "refund_tokens": 250, "findings": 5},
    ]
    assert doc["bursts"][0]["start"] == "2026-04-22T09:13:00Z"


def test_what_moved_first_and_durations() -> None:
    s = _report().summary
    assert s["what_moved_first"] == (
        "First to move: p95 latency, at 09:10 UTC; it led the 5xx rate by 3 min "
        "and mismatched ledger entries by 10 min."
    )
    assert (s["symptom_to_response_seconds"], s["symptom_to_fix_seconds"], s["incident_seconds"]) == (
        360,
        2100,
        2760,
    )


def test_markdown_matches_golden_and_renders_twice_the_same() -> None:
    # The all-settings table is left out: it grows whenever a setting is added, which is not a change here.
    text = render_markdown(_report()).split("<details>", 1)[0]
    if os.environ.get("ANALYZER_REGEN_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert render_markdown(_report()) == render_markdown(_report())
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_hostile_strings_are_escaped_in_tables_and_mermaid() -> None:
    report = build_report(
        inputs(path=HOSTILE),
        detection(scope_value=HOSTILE_MERMAID),
        reconciliation(account=HOSTILE),
        events(title=HOSTILE),
        Settings(),
    )
    text = render_markdown(report)
    assert "<script>" not in text and "acct|" not in text and "\n# x" not in text
    gantt = text.split("```mermaid\ngantt\n", 1)[1].split("```", 1)[0]
    assert 'a:b;c"d' not in gantt and "model=a∶b；c'd :crit" in gantt
    for line in text.splitlines():
        if line.startswith("| ") and "Time (UTC)" not in line:
            assert line.count(" | ") + 2 == line.count("|")  # no cell split by a stray pipe


def test_terminal_shows_summary_sparklines_and_plain_text_ids() -> None:
    console = Console(file=io.StringIO(), width=120)
    render_terminal(
        build_report(inputs(), detection(), reconciliation(account="[bold]x"), events(), Settings()), console
    )
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "▁▁▁█" in out and "[bold]x" in out and "First to move: p95 latency" in out


def test_terminal_ends_with_each_broken_invariant() -> None:
    from dataclasses import replace

    from analyzer.findings import Invariant

    rec = reconciliation()
    broken = Invariant("token totals fit in 64-bit integers", False, "about 3.7e+19, past 2^63")
    rec = replace(rec, invariants=(*rec.invariants, broken))
    console = Console(file=io.StringIO(), width=200)
    render_terminal(build_report(inputs(), detection(), rec, events(), Settings()), console)
    lines = console.file.getvalue().rstrip().splitlines()  # type: ignore[attr-defined]
    assert lines[-1] == "invariant broken: token totals fit in 64-bit integers: about 3.7e+19, past 2^63"
    assert sum("invariant broken" in line for line in lines) == 1


@pytest.mark.parametrize(
    ("rules", "held"),
    [
        pytest.param(["bursts", "spikes"], ["bursts", "spikes"], id="bursts-spikes"),
        pytest.param(["refunds>749"], ["refunds>749"], id="refunds-below"),
        pytest.param(["refunds>750"], [], id="refunds-at-boundary"),
        pytest.param(["rejects>0.1%"], ["rejects>0.1%"], id="rejects-below"),
        pytest.param(["rejects>0.2%"], [], id="rejects-above"),
    ],
)
def test_gate_rules(rules: list[str], held: list[str]) -> None:
    assert [r.split(":")[0] for r in failing_rules(_report(), rules)] == held


def test_gate_rules_boundary_exact_and_malformed() -> None:
    # 10 rejected of 6133 rows read: exactly at 10/6133 is not above it.
    assert failing_rules(_report(det=empty_detection(), rec=None), ["bursts", "spikes", "refunds>0"]) == []
    with pytest.raises(ConfigError, match="unknown --fail-on rule"):
        failing_rules(_report(), ["refunds>=3"])


@pytest.mark.parametrize(
    ("rule", "holds"),
    [
        pytest.param("rejects>0.5%", False, id="at-boundary"),
        pytest.param("rejects>0.49%", True, id="just-below"),
    ],
)
def test_gate_rejects_boundary_is_exact(rule: str, holds: bool) -> None:
    from analyzer.findings import InputReport

    report = build_report(
        [InputReport("gateway", "g.jsonl", "jsonl", "none", 200, 1, {"bad_value:status": 1})],
        empty_detection(),
        None,
        events(),
        Settings(),
    )
    assert bool(failing_rules(report, [rule])) is holds


def test_no_events_means_no_response_or_fix_time() -> None:
    s = build_report(inputs(), detection(), None, events().head(0), Settings()).summary
    assert (s["first_response_at"], s["fix_at"], s["symptom_to_fix_seconds"]) == (None, None, None)


@pytest.mark.parametrize(("inputs_count", "with_rejects"), [(31, 2), (40, 35), (40, 0)])
def test_many_inputs_list_only_those_with_rejects_in_markdown(inputs_count: int, with_rejects: int) -> None:
    # Thousands of rotated files would be thousands of table rows: the page names the ones with
    # rejects (at most MAX_INPUT_ROWS), the JSON keeps every input.
    from analyzer.findings import InputReport
    from analyzer.report.markdown import MAX_INPUT_ROWS

    many = tuple(
        InputReport(
            "gateway",
            f"logs/g-{n:03d}.jsonl",
            "jsonl",
            "none",
            10,
            int(n < with_rejects),
            {"malformed_json": 1} if n < with_rejects else {},
        )
        for n in range(inputs_count)
    )
    report = build_report(many, detection(), reconciliation(), events(), Settings())
    text = render_markdown(report)
    listed = [n for n in range(inputs_count) if f"| logs/g-{n:03d}.jsonl |" in text]
    assert listed == list(range(min(with_rejects, MAX_INPUT_ROWS)))
    first = f"the first {MAX_INPUT_ROWS} " if with_rejects > MAX_INPUT_ROWS else ""
    said = (
        f"{len(listed)} of {inputs_count} inputs listed: {first}with rejected rows, in path order. "
        "The JSON report's `inputs` lists every input."
        if with_rejects
        else f"None of the {inputs_count} inputs has a rejected row; the JSON report's `inputs` lists each."
    )
    assert said in text
    assert ("| Kind | Path |" in text) == bool(with_rejects)
    assert f"- gateway: {inputs_count} files, {10 * inputs_count} rows read, {with_rejects} rejected" in text
    assert len(json.loads(render_json(report))["inputs"]) == inputs_count


def test_up_to_max_inputs_are_all_listed() -> None:
    from analyzer.report.markdown import MAX_INPUT_ROWS

    text = render_markdown(_report())
    assert len(inputs()) <= MAX_INPUT_ROWS
    assert all(f"| {i.path} |" in text for i in inputs())
    assert "inputs listed" not in text
