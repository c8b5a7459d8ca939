"""The post-mortem's shape: happenings, the incident window, background kinds, response times, budget."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import timedelta

import polars as pl
import pytest
from rich.console import Console

from analyzer.config import PostmortemSettings, Settings
from analyzer.report import build_report, render_json, render_markdown, render_terminal
from analyzer.report.happenings import END, FAMILY, NAME, Happening
from analyzer.report.incident import find_incident
from analyzer.report.response import error_budget_consumed, response
from analyzer.schema import KIND, TITLE, TS, TS_DTYPE
from tests.fixtures.report.records import at, detection, events, inputs, reconciliation


def _happenings(rows: list[tuple[str, str, int, int, int, int]]) -> pl.DataFrame:
    """(family, title, start hh, start mm, end hh, end mm) rows as a happenings frame."""
    return pl.DataFrame(
        {
            TS: [at(a, b) for _, _, a, b, _, _ in rows],
            END: [at(c, d) for _, _, _, _, c, d in rows],
            FAMILY: [f for f, *_ in rows],
            NAME: [t for _, t, *_ in rows],
            TITLE: [t for _, t, *_ in rows],
        },
        schema={TS: TS_DTYPE, END: TS_DTYPE, FAMILY: pl.String, NAME: pl.String, TITLE: pl.String},
    )


def _events(rows: list[tuple[int, int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {TS: [at(h, m) for h, m, _, _ in rows], KIND: [k for *_, k, _ in rows], TITLE: [t for *_, t in rows]},
        schema={TS: TS_DTYPE, KIND: pl.String, TITLE: pl.String},
    )


SYMPTOMS = [
    (Happening.BURST, "burst a", 9, 10, 9, 30),
    (Happening.SPIKE, "spike b", 10, 0, 10, 20),
    (Happening.PATTERN, "far fault", 20, 0, 20, 10),
    (Happening.EVENT, "not a symptom", 6, 0, 6, 0),
]


def test_incident_window_runs_first_to_last_symptom_and_leaves_far_ones_out() -> None:
    inc = find_incident(_happenings(SYMPTOMS), None, _events([]), pl.DataFrame(), PostmortemSettings())
    assert (inc.start, inc.end) == (at(9, 10), at(10, 20))
    assert (inc.opened_by, inc.closed_by, inc.closed_by_event) == ("burst a", "spike b", False)
    assert inc.isolated == ("far fault",)


def test_isolation_gap_is_the_gate_that_keeps_a_far_symptom_out() -> None:
    wide = PostmortemSettings(isolation_gap=timedelta(hours=12))
    inc = find_incident(_happenings(SYMPTOMS), None, _events([]), pl.DataFrame(), wide)
    assert (inc.start, inc.end, inc.isolated) == (at(9, 10), at(20, 10), ())


@pytest.mark.parametrize(
    ("hh", "mm", "kind", "end", "by_event"),
    [
        pytest.param(10, 41, "recovery", at(10, 41), True, id="recovery-closes-the-window"),
        pytest.param(10, 41, "statement", at(10, 20), False, id="not-a-resolved-kind"),
        pytest.param(13, 0, "recovery", at(10, 20), False, id="recovery-beyond-the-isolation-gap"),
    ],
)
def test_a_resolved_event_closes_the_window(hh: int, mm: int, kind: str, end: object, by_event: bool) -> None:
    ev = _events([(hh, mm, kind, "service recovered")])
    inc = find_incident(_happenings(SYMPTOMS), None, ev, pl.DataFrame(), PostmortemSettings())
    assert (inc.end, inc.closed_by_event) == (end, by_event)


def _day_series() -> pl.DataFrame:
    """100 requests every minute from 06:00 to 18:00."""
    windows = [at(6, 0) + timedelta(minutes=i) for i in range(12 * 60)]
    return pl.DataFrame(
        {"window": windows, "requests": [100] * len(windows)},
        schema={"window": TS_DTYPE, "requests": pl.Int64},
    )


def _findings(
    kind: str, every_minutes: int, start: tuple[int, int], end: tuple[int, int]
) -> list[tuple[object, str]]:
    t, stop, out = at(*start), at(*end), []
    while t < stop:
        out.append((t, kind))
        t += timedelta(minutes=every_minutes)
    return out


@pytest.mark.parametrize(
    ("rows", "background"),
    [
        pytest.param(_findings("unbilled", 30, (6, 0), (18, 0)), True, id="same-rate-all-day"),
        pytest.param(_findings("duplicate", 5, (10, 0), (12, 0)), False, id="only-inside"),
        pytest.param(_findings("orphan", 30, (10, 0), (18, 0)), False, id="never-before-the-incident"),
        # 1 every 30 min outside; inside every 10 min is 3x (background at the ratio), every 5 min is 6x.
        pytest.param(
            _findings("undercharge", 30, (6, 0), (10, 0)) + _findings("undercharge", 10, (10, 0), (12, 0))
            + _findings("undercharge", 30, (12, 0), (18, 0)), True, id="three-times-is-background"
        ),
        pytest.param(
            _findings("undercharge", 30, (6, 0), (10, 0)) + _findings("undercharge", 5, (10, 0), (12, 0))
            + _findings("undercharge", 30, (12, 0), (18, 0)), False, id="six-times-is-incident"
        ),
    ],
)  # fmt: skip
def test_background_kinds_run_at_the_same_rate_inside_and_outside(
    rows: list[tuple[object, str]], background: bool
) -> None:
    findings = pl.DataFrame(
        {TS: [t for t, _ in rows], KIND: [k for _, k in rows]}, schema={TS: TS_DTYPE, KIND: pl.String}
    )
    rec = dataclasses.replace(reconciliation(), findings=findings)
    hap = _happenings([(Happening.BURST, "burst", 10, 0, 11, 59)])
    inc = find_incident(hap, rec, _events([]), _day_series(), PostmortemSettings())
    assert (rows[0][1] in inc.background_kinds) is background


def test_error_budget_consumed_by_hand() -> None:
    # 1,000 requests a day, 10 failed, SLO 99.9%: the 30-day budget is 0.001 x 30,000 = 30 failures; 10 is a third.
    consumed = error_budget_consumed(1000, 10, timedelta(days=1), 0.999, timedelta(days=30))
    assert consumed == pytest.approx(1 / 3)
    # Half a day of the same traffic: twice the rate, so the same 10 failures are a sixth.
    assert error_budget_consumed(1000, 10, timedelta(hours=12), 0.999, timedelta(days=30)) == pytest.approx(
        1 / 6
    )
    assert error_budget_consumed(0, 0, timedelta(days=1), 0.999, timedelta(days=30)) is None


def test_response_times_come_from_the_event_roles() -> None:
    ev = _events(
        [
            (9, 20, "incident", "opened"),
            (9, 45, "hotfix", "fixed"),
            (10, 41, "recovery", "recovered"),
            (9, 5, "incident", "before"),
        ]
    )
    inc = find_incident(_happenings(SYMPTOMS), None, ev, pl.DataFrame(), PostmortemSettings())
    r = response(inc, ev, (), PostmortemSettings())
    assert (r.detected_at, r.mitigated_at, r.resolved_at, r.page_at) == (
        at(9, 20),
        at(9, 45),
        at(10, 41),
        None,
    )
    quiet = find_incident(_happenings(SYMPTOMS), None, _events([]), pl.DataFrame(), PostmortemSettings())
    none = response(quiet, ev, (), PostmortemSettings(detected=(), mitigated=()))
    assert (none.detected_at, none.mitigated_at, none.resolved_at) == (None, None, None)


def _report(**kw: object) -> object:
    return build_report(inputs(), detection(), reconciliation(), events(), Settings(), **kw)  # type: ignore[arg-type]


def test_summary_keys_bound_the_window_and_carry_the_budget() -> None:
    doc = json.loads(render_json(_report()))  # type: ignore[arg-type]
    s = doc["summary"]
    assert s["incident_seconds"] == (
        int(
            (
                pl.Series([s["last_symptom_at"]]).str.to_datetime()
                - pl.Series([s["first_symptom_at"]]).str.to_datetime()
            ).dt.total_seconds()[0]
        )
    )
    # 400 failed of 6,000 requests over the fixture's hour, against 30 days of that traffic at 99.9%.
    assert s["error_budget_consumed"] == pytest.approx(round(400 / (0.001 * 6000 * 30 * 24), 6))
    assert all("group" in e for e in doc["timeline"])


def test_timelines_show_at_most_the_configured_rows_and_full_shows_all() -> None:
    count = 60
    many = pl.DataFrame(
        {TS: [at(9, 0) + timedelta(seconds=30 * i) for i in range(count)], KIND: ["deploy"] * count, TITLE: [f"deploy number {i:03d}" for i in range(count)]},
        schema={TS: TS_DTYPE, KIND: pl.String, TITLE: pl.String},
    )  # fmt: skip
    settings = Settings(postmortem=PostmortemSettings(timeline_rows=20, markdown_timeline_rows=30))
    short = build_report(inputs(), detection(), reconciliation(), many, settings)
    full = build_report(inputs(), detection(), reconciliation(), many, settings, full=True)
    total = full.happenings.height - len(full.incident.background_kinds)

    def terminal(report: object) -> str:
        console = Console(file=io.StringIO(), width=300)
        render_terminal(report, console)  # type: ignore[arg-type]
        return console.file.getvalue()  # type: ignore[attr-defined]

    text = render_markdown(short)
    assert f"{total - 30:,} more timeline rows are left out" in text
    assert f"{total - 20:,} more timeline rows are left out" in terminal(short)
    assert "left out" not in render_markdown(full) and "left out" not in terminal(full)
    assert terminal(full).count("deploy number") == count
    assert len(json.loads(render_json(short))["timeline"]) == len(json.loads(render_json(full))["timeline"])
