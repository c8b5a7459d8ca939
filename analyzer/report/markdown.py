"""The post-mortem in Markdown, with Mermaid charts that render on GitHub and GitLab."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from analyzer.report.escape import escape
from analyzer.report.model import Report
from analyzer.timeline import span_text


def _t(t: datetime | None) -> str:
    return "—" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _gantt(report: Report) -> list[str]:
    lines = [
        "```mermaid",
        "gantt",
        "    title Incident windows (UTC)",
        "    dateFormat YYYY-MM-DD HH:mm:ss",
        "    axisFormat %H:%M",
    ]
    groups = [
        ("5xx bursts", [(b.scope, b.start, b.end) for b in report.bursts], "crit, "),
        ("Latency spikes", [(s.scope, s.start, s.end) for s in report.spikes], "active, "),
        ("Log gaps", [("no lines", g.start, g.end) for g in report.gaps], ""),
    ]
    if report.reconciliation is not None:
        groups.append(
            (
                "Ledger faults",
                [(f"{p.kind} {p.model or ''}", p.start, p.end) for p in report.reconciliation.patterns],
                "",
            )
        )
    for name, items, tag in groups:
        if items:
            lines.append(f"    section {name}")
            lines += [f"    {escape(label, 'mermaid')} :{tag}{_t(a)}, {_t(b)}" for label, a, b in items]
    return lines + ["```", ""]


def _xychart(report: Report, title: str, column: str, scale: float) -> list[str]:
    s = report.series
    if s.is_empty():
        return []
    labels = ", ".join(f'"{t:%H:%M}"' for t in s["window"])
    values = ", ".join(f"{(v or 0.0) * scale:.3f}" for v in s[column])
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis [{labels}]",
        f"    line [{values}]",
        "```",
        "",
    ]


def render_markdown(report: Report) -> str:
    """The post-mortem: summary, impact, timeline, bursts, latency, ledger, refunds, data quality, method."""
    s = report.summary
    out = ["# Incident post-mortem", "", "## Summary", ""]
    out += [f"- {escape(s['what_moved_first'])}"]
    for label, key in (
        ("First symptom to first operator event", "symptom_to_response_seconds"),
        ("Incident length", "incident_seconds"),
        ("First symptom to the fix", "symptom_to_fix_seconds"),
    ):
        v = s[key]
        out.append(f"- {label}: {'—' if not isinstance(v, int) else span_text(timedelta(seconds=v))}")
    out += ["", "## Impact", ""]
    out += _table(
        ["Measure", "Value"],
        [
            ["Requests", f"{s['requests']:,}"],
            ["Failed requests (5xx)", f"{s['failed_requests']:,}"],
            ["Minutes in a burst", f"{int(s['seconds_in_burst']) / 60:.1f}"],  # type: ignore[call-overload]
            ["Accounts hit by errors", f"{s['accounts_hit_by_errors']:,}"],
            ["Accounts overcharged", f"{s['accounts_overcharged']:,}"],
            ["Tokens owed", f"{s['refund_tokens_total']:,}"],
        ],
    )
    out += ["## Timeline", ""] + _gantt(report)
    out += _table(
        ["Time (UTC)", "Kind", "What", "Detail"],
        [
            [_t(r["ts"]), r["kind"], escape(r["title"]), escape(r["detail"])]
            for r in report.timeline.iter_rows(named=True)
        ],
    )
    out += ["## Bursts", ""] + _xychart(report, "5xx error rate (%)", "error_rate", 100.0)
    out += _table(
        ["Start", "End", "Scope", "Peak rate", "Errors", "Requests"],
        [
            [
                _t(b.start),
                _t(b.end),
                escape(b.scope),
                f"{b.peak_error_rate:.1%}",
                f"{b.errors:,}",
                f"{b.requests:,}",
            ]
            for b in report.bursts
        ],
    )
    out += ["## Latency", ""] + _xychart(report, "p95 latency (ms)", "p95_ms", 1.0)
    out += _table(
        ["Start", "End", "Scope", "Baseline p95 ms", "Peak p95 ms", "Factor"],
        [
            [
                _t(x.start),
                _t(x.end),
                escape(x.scope),
                f"{x.baseline_p95_ms:,.0f}",
                f"{x.peak_p95_ms:,.0f}",
                f"{x.factor:.2f}",
            ]
            for x in report.spikes
        ],
    )
    out += ["### Burn-rate alerts", ""]
    out += _table(
        ["Alert", "Severity", "Fired", "Resolved"],
        [
            [escape(a.name), escape(a.severity), _t(f.fired_at), _t(f.resolved_at)]
            for a in report.alerts
            for f in a.firings
        ]
        + [
            [escape(a.name), escape(a.severity), "not evaluable: window longer than the data", ""]
            for a in report.alerts
            if not a.evaluable
        ],
    )
    out += ["### Log gaps", ""]
    out += _table(
        ["Start", "End", "Expected requests"],
        [[_t(g.start), _t(g.end), f"{g.expected_requests:,.0f}"] for g in report.gaps],
    )
    rec = report.reconciliation
    out += ["## Ledger findings", ""]
    if rec is None:
        out += ["No ledger was given.", ""]
    else:
        out += _table(
            ["Kind", "Entries", "Tokens", "Refund tokens"],
            [[k, f"{t.count:,}", f"{t.tokens:,}", f"{t.refund_tokens:,}"] for k, t in rec.by_kind.items()],
        )
        out += [
            f"- Likely fault: {escape(p.description)} ({_t(p.start)} to {_t(p.end)})" for p in rec.patterns
        ]
        out += [
            f"- Invariant {escape(i.name)}: {'holds' if i.holds else 'BROKEN'} ({escape(i.detail)})"
            for i in rec.invariants
        ]
        out += ["", "Requests by billing outcome:", ""]
        out += _table(["Bucket", "Requests"], [[k, f"{v:,}"] for k, v in rec.request_buckets.items()])
    out += ["## Refunds", ""]
    out += _table(
        ["Account", "Refund tokens"],
        [
            [escape(a["account_id"]), f"{a['refund_tokens']:,}"]
            for a in cast(list[dict[str, Any]], s["top_accounts"])
        ],
    )
    if report.refunds_path:
        out += [f"The full list is in {escape(report.refunds_path)}.", ""]
    out += ["## Data quality", ""]
    out += _table(
        ["Kind", "Path", "Format", "Rows read", "Rejected", "Rejects by reason"],
        [
            [
                i.kind,
                escape(i.path),
                escape(i.format),
                f"{i.rows_read:,}",
                f"{i.rows_rejected:,}",
                escape(", ".join(f"{k}: {v}" for k, v in sorted(i.rejects_by_reason.items()))),
            ]
            for i in report.inputs
        ],
    )
    out += [f"- {escape(n)}" for n in report.notes] + [""]
    out += [
        "## Method and settings",
        "",
        f"- Quantiles: {report.quantile_method}",
        f"- Burst window: {span_text(report.settings.bursts.window)}",
        "",
    ]
    flat = _flatten(report.settings.to_dict())
    out += ["<details><summary>All settings</summary>", ""]
    out += _table(["Setting", "Value"], [[escape(k), escape(v)] for k, v in flat])
    out += ["</details>", ""]
    return "\n".join(out)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(v, f"{prefix}{k}." if prefix or k else k)]
    return [(prefix.rstrip("."), str(value))]
