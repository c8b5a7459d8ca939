"""The post-mortem a team can read in five minutes, on two simulated days with known answers.

A launch day with 4,000 accounts, a full quota reset at 20:30 and a four-hour billing sync failure
(10:00-14:00) once made 2,725 timeline rows, a 2,871-line terminal report and four duplicate faults;
the shipped sample's background faults opened its timeline and two late wiped balances stretched
its incident to 14 h 42 min.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.findings import Finding, Pattern
from analyzer.pipeline import ReportRequest, run_report
from analyzer.report import render_json, render_markdown, render_terminal
from analyzer.report.happenings import FAMILY, Happening
from analyzer.report.model import Report
from analyzer.schema import TITLE
from analyzer.simulate import SimSpec, simulate

ROOT = Path(__file__).resolve().parents[1]
DAY = SimSpec(accounts=4000, rate=0.5, sync_window=(time(10), time(14)), quota_reset=time(20, 30))
TEN_MINUTES = timedelta(minutes=10)


def _terminal(report: Report) -> str:
    console = Console(file=io.StringIO(), width=120)
    render_terminal(report, console)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, dict[str, object]]:
    out = tmp_path_factory.mktemp("day")
    truth = simulate(out, DAY).truth
    return run_report(ReportRequest(directory=out)).report, truth


@pytest.fixture(scope="module")
def sample() -> Report:
    return run_report(ReportRequest(directory=ROOT / "sample_logs")).report


def test_the_day_reads_in_a_few_screens(day: tuple[Report, dict[str, object]]) -> None:
    report, _ = day
    assert len(_terminal(report).splitlines()) < 200
    assert len(render_markdown(report).encode()) < 60_000


def test_the_full_reset_is_one_row_and_the_json_keeps_every_entry(
    day: tuple[Report, dict[str, object]],
) -> None:
    report, _ = day
    resets = report.happenings.filter(report.happenings[FAMILY] == Happening.QUOTA_RESET)
    reset_at = datetime(2026, 4, 22, 20, 30, tzinfo=UTC)
    at_2030 = resets.filter(resets["ts"] == reset_at)
    assert at_2030[TITLE].to_list() == ["Quota reset: 4,000 accounts"]
    assert (at_2030["end"][0] - reset_at) < timedelta(seconds=5)
    terminal = _terminal(report)
    assert terminal.count("Quota reset: 4,000 accounts") == resets.height  # one row per batch
    timeline = json.loads(render_json(report))["timeline"]
    assert len(timeline) == report.timeline.height >= 4000
    grouped = [e for e in timeline if e["group"] == at_2030["group"][0]]
    assert len(grouped) >= 3990  # one entry per reset time (a few accounts share one)


def test_the_sync_failure_is_one_fault_near_the_injected_window(
    day: tuple[Report, dict[str, object]],
) -> None:
    report, truth = day
    assert report.reconciliation is not None
    sync = [p for p in report.reconciliation.patterns if p.kind == Pattern.DUPLICATE_BURST]
    assert len(sync) == 1
    injected = truth["faults"]["sync_failure"]  # type: ignore[index]
    start = datetime.fromisoformat(injected["start"])
    end = datetime.fromisoformat(injected["end"])
    assert abs(sync[0].start - start) <= TEN_MINUTES and abs(sync[0].end - end) <= TEN_MINUTES
    assert sync[0].entries == truth["ledger"]["findings_by_kind"]["duplicate"]  # type: ignore[index]
    # It carries its rate: its entries over its window, per hour.
    hours = (sync[0].end - sync[0].start).total_seconds() / 3600
    assert sync[0].rate_per_hour == pytest.approx(sync[0].entries / hours, abs=0.1)


def test_no_balance_break_where_the_balances_follow(day: tuple[Report, dict[str, object]]) -> None:
    report, truth = day
    assert report.reconciliation is not None
    injected = truth["faults"]["balance_breaks"]["count"]  # type: ignore[index]
    assert report.reconciliation.by_kind[Finding.BALANCE_BREAK].count == injected


def test_the_samples_window_is_the_launch_to_the_recovery(sample: Report) -> None:
    launch = datetime(2026, 4, 22, 9, 0, tzinfo=UTC)
    recovery = datetime(2026, 4, 22, 16, 41, tzinfo=UTC)
    s = sample.summary
    assert abs(s["first_symptom_at"] - launch) <= TEN_MINUTES  # type: ignore[operator]
    assert abs(s["last_symptom_at"] - recovery) <= TEN_MINUTES  # type: ignore[operator]
    assert s["incident_seconds"] == int((s["last_symptom_at"] - s["first_symptom_at"]).total_seconds())  # type: ignore[operator]


def test_the_samples_background_kinds_are_in_background_only(sample: Report) -> None:
    background = set(sample.incident.background_kinds)
    # Unbilled requests and undercharges (a prompt cap) and orphans run at a low rate all day.
    assert {Finding.UNBILLED, Finding.UNDERCHARGE} <= background
    assert Finding.OVERCHARGE not in background and Finding.DUPLICATE not in background
    text = render_markdown(sample)
    timeline = text.split("\n## Timeline", 1)[1].split("\n## ", 1)[0]
    section = text.split("\n## Background", 1)[1].split("\n## ", 1)[0]
    for kind in background:
        assert f"| {kind}: " not in timeline
        assert f"| {kind} |" in section


def test_the_samples_impact_names_the_wrong_429s_and_the_budget(sample: Report) -> None:
    assert sample.rate_limits is not None
    wrong, throttled = sample.rate_limits.counts["wrong"], sample.rate_limits.counts["throttled"]
    impact = render_markdown(sample).split("\n## Impact", 1)[1].split("\n## ", 1)[0]
    assert f"| 429s wrongly given (rate-limit audit) | {wrong:,} of {throttled:,} 429s |" in impact
    assert "of the 30-day error budget (SLO 99.9%)" in impact


def test_the_samples_wrong_429s_are_one_row_per_scope(sample: Report) -> None:
    from analyzer.report.timeline import Entry

    rows = sample.happenings.filter(sample.happenings[FAMILY] == Happening.WRONG_429)
    entries = sample.timeline.filter(
        sample.timeline["kind"].is_in([Entry.WRONG_429_FIRST, Entry.WRONG_429_LAST])
    )
    assert rows.height == entries["scope"].n_unique() >= 1
    assert rows[TITLE].str.starts_with("Wrong 429s").all()
