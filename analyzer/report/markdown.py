"""The post-mortem in Markdown, in the order one is read: summary, impact, timeline, then the evidence.

Every string that came from the logs (paths, scopes, account ids, event titles, descriptions) goes
through `escape`, so it can neither break a table nor inject HTML, links or mentions. Times are UTC;
a report within one date says the date once and shows times of day.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import polars as pl

from analyzer.findings import SERIES_ERROR_RATE, SERIES_P95, Contributor
from analyzer.report.compensation import compensation_section
from analyzer.report.escape import escape
from analyzer.report.formatting import (
    DASH,
    Clock,
    count,
    duration,
    left_out_note,
    ms,
    percent,
    report_day,
    shown_happenings,
    table,
    telling_contributors,
    times,
    when,
)
from analyzer.report.happenings import END
from analyzer.report.ledger_md import ledger_section, refunds_section, usage_section
from analyzer.report.mermaid import gantt, xychart
from analyzer.report.model import Report
from analyzer.report.notes import sentences
from analyzer.report.postmortem import (
    actions_md,
    background_md,
    detection_md,
    factors_md,
    impact_extra,
    summary_md,
)
from analyzer.report.ratelimits import markdown_section as rate_limits_section
from analyzer.report.timeline import DETAIL, Entry, span_text
from analyzer.schema import KIND, TITLE, TS

# More inputs than this: the Data quality table lists only inputs with rejected rows (at most this many).
MAX_INPUT_ROWS = 30


def render_markdown(report: Report) -> str:
    """The post-mortem: each of SECTIONS in order, under a title that dates it."""
    clock = Clock(report_day(report))
    day = f": {clock.day:%Y-%m-%d}" if clock.day else ""
    out = [f"# Incident post-mortem{day}", ""]
    out += [f"All times are UTC{f' on {clock.day:%Y-%m-%d}' if clock.day else ''}.", ""]
    for section in SECTIONS:
        out += section(report, clock)
    return "\n".join(out)


# Timeline kinds that can be the first or the last symptom, for naming it in the milestones.
_FIRST_KINDS = (Entry.BURST_START, Entry.SPIKE_START, Entry.GAP_START, Entry.PATTERN_START, Entry.FAULT_FIRST)
_LAST_KINDS = (Entry.BURST_END, Entry.SPIKE_END, Entry.GAP_END, Entry.PATTERN_END, Entry.PATTERN_START)


def _what_at(report: Report, t: object, kinds: tuple[str, ...]) -> str:
    """The title of the first timeline item of one of `kinds` at `t` (ties come in the timeline's order)."""
    if t is None:
        return DASH
    rows = report.timeline.filter((pl.col(TS) == t) & pl.col(KIND).is_in(kinds))
    return escape(rows[TITLE][0]) if rows.height else DASH


def _summary(report: Report, clock: Clock) -> list[str]:
    s = report.summary
    out = summary_md(report, clock)
    rows = []
    for label, at_key, secs_key, kinds in (
        ("First symptom", "first_symptom_at", None, _FIRST_KINDS),
        ("First operator event", "first_response_at", "symptom_to_response_seconds", (Entry.EVENT,)),
        ("Fix", "fix_at", "symptom_to_fix_seconds", (Entry.EVENT,)),
        ("End of the incident window (its length)", "last_symptom_at", "incident_seconds", _LAST_KINDS),
    ):
        at = s[at_key]
        after = DASH if secs_key is None else duration(s[secs_key])
        what = _what_at(report, at, kinds)
        if at_key == "first_symptom_at" and report.incident.opened_by:
            what = escape(report.incident.opened_by)
        if at_key == "last_symptom_at" and report.incident.closed_by:
            what = escape(report.incident.closed_by)
        rows.append([label, clock.at(at), after, what])  # type: ignore[arg-type]
    return out + table(["Milestone", "Time", "After the first symptom", "What"], rows)


def _impact(report: Report, clock: Clock) -> list[str]:
    s = report.summary
    owed = f"{cast(int, s['refund_tokens_total']):,}"
    if s.get("refund_usd"):
        owed += f" (USD {escape(s['refund_usd'])})"
    top = cast(list[dict[str, Any]], s["top_accounts"])[:3]
    rows = [
        ["Requests", count(s["requests"])],
        ["Failed requests (5xx)", f"{count(s['failed_requests'])} ({percent(cast(float, s['error_rate']))})"],
        ["Time in a 5xx burst", duration(s["seconds_in_burst"])],
        ["Accounts hit by errors in a burst", count(s["accounts_hit_by_errors"])],
    ]
    if report.reconciliation is not None:
        rows += [
            ["Accounts overcharged", count(s["accounts_overcharged"])],
            ["Accounts owed a refund", count(s["accounts_owed"])],
            ["Tokens owed", owed],
            [
                "Largest refunds",
                ", ".join(f"{escape(a['account_id'])} ({a['refund_tokens']:,})" for a in top) or DASH,
            ],
        ]
    rows += [[label, escape(value)] for label, value in impact_extra(report)]
    return ["## Impact", "", *table(["Measure", "Value"], rows)]


def _timeline(report: Report, clock: Clock) -> list[str]:
    shown, hidden = shown_happenings(report, report.settings.postmortem.markdown_timeline_rows)
    out = ["## Timeline", "", *gantt(report, clock, shown)]
    rows = []
    for r in shown.iter_rows(named=True):
        what = escape(r[TITLE])
        # Operator notes stand out among the findings: they are what people did.
        bold = r[KIND] == Entry.EVENT
        rows.append([when(clock, r[TS], r[END]), f"**{what}**" if bold else what, escape(r[DETAIL])])
    out += table(
        ["Time", "What", "Detail"], rows, empty="Nothing happened: no finding and no operator event."
    )
    return out + ([left_out_note(hidden), ""] if hidden else [])


def _contributors(top: tuple[Contributor, ...]) -> str:
    return (
        "; ".join(
            f"{escape(c.column)}={escape(c.value)}: {c.error_share:.0%} of errors, {c.traffic_share:.0%} of traffic"
            for c in telling_contributors(top)
        )
        or DASH
    )


def _bursts(report: Report, clock: Clock) -> list[str]:
    out = ["## Bursts", "", *xychart(report, clock, "5xx error rate", "%", SERIES_ERROR_RATE, 100.0, 2)]
    rows = [
        [
            clock.at(b.start),
            span_text(b.end - b.start),
            escape(b.scope),
            f"{percent(b.peak_error_rate)} at {clock.short(b.peak_at)}",
            f"{b.errors:,} of {b.requests:,}",
            escape(", ".join(f"{code}: {n:,}" for code, n in sorted(b.status_counts.items()))),
            f"{b.accounts_affected:,}",
            escape(b.severity) if b.severity else DASH,
            _contributors(b.top),
        ]
        for b in report.bursts
    ]
    head = [
        "Start",
        "Lasted",
        "Scope",
        "Peak 5xx rate",
        "Failed",
        "Statuses",
        "Accounts",
        "Alert",
        "Over-represented slices",
    ]
    out += table(head, rows, right=("Failed", "Accounts"), empty="No 5xx burst stood out from the baseline.")
    alerts = [
        [
            escape(a.name),
            escape(a.severity),
            clock.at(f.fired_at),
            clock.at(f.resolved_at) if f.resolved_at else "still firing",
        ]
        for a in report.alerts
        for f in a.firings
    ]
    idle = [escape(a.name) for a in report.alerts if not a.evaluable]
    out += ["### Burn-rate alerts", ""]
    out += table(
        ["Alert", "Severity", "Fired", "Resolved"], alerts, empty="No burn-rate alert would have fired."
    )
    if idle:
        out += [f"Not evaluable (window longer than the data): {', '.join(idle)}.", ""]
    return out


def _latency(report: Report, clock: Clock) -> list[str]:
    out = ["## Latency", "", *xychart(report, clock, "p95 latency", "ms", SERIES_P95, 1.0, 0)]
    rows = [
        [
            clock.at(x.start),
            span_text(x.end - x.start),
            escape(x.scope),
            ms(x.baseline_p95_ms),
            f"{ms(x.peak_p95_ms)} at {clock.short(x.peak_at)}",
            ms(x.peak_p99_ms),
            times(x.factor),
            count(x.requests),
        ]
        for x in report.spikes
    ]
    head = ["Start", "Lasted", "Scope", "Baseline p95", "Peak p95", "Peak p99", "Factor", "Requests"]
    out += table(
        head,
        rows,
        right=("Baseline p95", "Peak p99", "Factor", "Requests"),
        empty="No latency spike stood out from what the request sizes predict.",
    )
    gaps = [
        [clock.at(g.start), span_text(g.end - g.start), f"{g.expected_requests:,.0f}"] for g in report.gaps
    ]
    out += ["### Log gaps", ""]
    return out + table(
        ["Start", "Lasted", "Requests expected"],
        gaps,
        right=("Requests expected",),
        empty="No gap in the gateway logs.",
    )


def _data_quality(report: Report, clock: Clock) -> list[str]:
    out = ["## Data quality", ""]
    dated = Clock(None)  # an input's range may pass midnight when the incident does not
    for kind in ("gateway", "ledger", "events", "usage"):
        files = [i for i in report.inputs if i.kind == kind]
        if files:
            read = sum(i.rows_read for i in files)
            rejected = sum(i.rows_rejected for i in files)
            share = f" ({percent(rejected / read)})" if read else ""
            out.append(
                f"- {kind}: {len(files):,} file{'s' if len(files) != 1 else ''}, {read:,} rows read, "
                f"{rejected:,} rejected{share}"
            )
    out.append("")
    listed = report.inputs
    if len(listed) > MAX_INPUT_ROWS:
        # Rotated logs come in thousands of files: the page names those with rejects, the JSON all.
        listed = tuple(i for i in report.inputs if i.rows_rejected)
    rows = [
        [
            i.kind,
            escape(i.path),
            escape(i.format)
            + (f", preset {escape(i.preset)}" if i.preset else "")
            + ("" if i.compression == "none" else f" ({escape(i.compression)})"),
            f"{i.rows_read:,}",
            f"{i.rows_rejected:,}",
            escape(", ".join(f"{k}: {v:,}" for k, v in sorted(i.rejects_by_reason.items()))) or DASH,
            dated.at(i.first_ts),
            dated.at(i.last_ts),
        ]
        for i in listed[:MAX_INPUT_ROWS]
    ]
    head = ["Kind", "Path", "Format", "Rows read", "Rejected", "Rejects by reason", "First", "Last"]
    if rows:
        out += table(head, rows, right=("Rows read", "Rejected"))
    if not rows:
        out += [
            f"None of the {len(report.inputs):,} inputs has a rejected row; the JSON report's `inputs` lists each.",
            "",
        ]
    elif len(rows) < len(report.inputs):
        first = f"the first {len(rows)} " if len(listed) > len(rows) else ""
        out += [
            f"{len(rows):,} of {len(report.inputs):,} inputs listed: {first}with rejected rows, in path "
            "order. The JSON report's `inputs` lists every input.",
            "",
        ]
    if report.notes:
        out += [f"- {escape(n)}" for n in sentences(report.notes)] + [""]
    return out


def _method(report: Report, clock: Clock) -> list[str]:
    st = report.settings
    b, lat, slo, rec = st.bursts, st.latency, st.slo, st.reconcile
    out = [
        "## Method and settings",
        "",
        f"- Windows of {span_text(b.window)}"
        + ("" if lat.window == b.window else f" (latency spikes: {span_text(lat.window)})")
        + f"; latency quantiles {report.quantile_method}.",
        f"- A 5xx burst opens on a window with at least {b.min_errors} errors, a 5xx rate above "
        f"{b.rate_floor * 100:g}% and {b.baseline_multiple:g}× the baseline, and a robust score of "
        f"{b.z_open:g} (it stays open down to {b.z_stay:g}); statuses {', '.join(map(str, b.statuses))}; "
        f"searched globally and by {escape(', '.join(b.slices))}.",
        f"- A latency spike opens when p95 is {lat.factor:g}× what the request sizes predict (it stays open "
        f"down to {lat.factor_stay:g}×), in windows with at least {lat.min_requests} successful requests.",
        f"- Burn-rate alerts replayed against an SLO of {slo.target * 100:g}% availability.",
        f"- A log gap is at least {span_text(st.gaps.min_gap)} with no gateway lines where traffic was expected.",
        f"- Ledger: a deduction matches its request within {rec.tolerance_tokens:,} tokens; a likely fault "
        f"explains at least {rec.min_pattern_share * 100:g}% of its kind's entries within "
        f"{span_text(rec.pattern_window)}.",
        "",
        "<details><summary>All settings</summary>",
        "",
    ]
    rows = [[escape(k), escape(v)] for k, v in _flatten(st.to_dict())]
    out += table(["Setting", "Value"], rows) + ["</details>", ""]
    return out + _mapping(report)


def _mapping(report: Report) -> list[str]:
    """Which source field each canonical column was read from, per kind (its first input stands for all)."""
    first = {i.kind: i for i in reversed(report.inputs)}
    rows = [
        [kind, escape(column), DASH if source is None else escape(source)]
        for kind in ("gateway", "ledger", "events", "usage")
        if kind in first
        for column, source in first[kind].fields.items()
    ]
    if not rows:
        return []
    out = ["<details><summary>Fields read</summary>", ""]
    out += table(["Kind", "Column", "Source field (— absent)"], rows)
    return out + ["</details>", ""]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(v, f"{prefix}{k}.")]
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return [(prefix.rstrip("."), DASH if value is None else text)]


# A section renders its lines (ending in a blank line), or none when it has nothing to say.
Section = Callable[[Report, Clock], list[str]]

# The post-mortem's sections, in the order it is read. A new section is one function added here.
SECTIONS: tuple[Section, ...] = (
    _summary,
    _impact,
    compensation_section,
    detection_md,
    factors_md,
    _timeline,
    background_md,
    _bursts,
    _latency,
    ledger_section,
    refunds_section,
    usage_section,
    rate_limits_section,
    _data_quality,
    _method,
    actions_md,
)
