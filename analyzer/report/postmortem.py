"""The parts of the post-mortem that follow the templates teams use (the SRE book's, PagerDuty's,
Atlassian's, incident.io's): the summary in three sentences, detection and response, contributing
factors, the background the incident stands out from, and the action items left to fill.

The sentences are written here once; `markdown.py` and `terminal.py` both say them.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from analyzer.report.escape import escape
from analyzer.report.formatting import DASH, Clock, count, duration, headline, percent, table
from analyzer.report.ledger_md import KIND_MEANING
from analyzer.report.model import Report
from analyzer.report.timeline import span_text

# What each response measure means, said under its table.
DEFINITIONS = (
    "Time to detect: from the first symptom to the first operator event of a `detected` kind; "
    "to mitigate: to the first of a `mitigated` kind; to resolve: to the `resolved` event that closed "
    "the incident window. The kinds are `[postmortem] detected`, `mitigated`, `resolved` in the config."
)


def budget_text(report: Report) -> str:
    """'42.0% of the 30-day error budget (SLO 99.9%)', or a dash when it cannot be computed."""
    consumed = report.summary.get("error_budget_consumed")
    days = report.settings.postmortem.slo_window.total_seconds() / 86_400
    if not isinstance(consumed, float | int):
        return DASH
    return (
        f"{consumed * 100:.1f}% of the {days:g}-day error budget (SLO {report.settings.slo.target * 100:g}%)"
    )


def window_sentence(report: Report, clock: Clock) -> str:
    """What bounded the incident window: its first symptom and its last symptom or resolving event."""
    inc, s = report.incident, report.summary
    if inc.start is None or inc.end is None:
        return "No symptom stood out, so there is no incident window."
    closed = "the recovery event" if inc.closed_by_event else "the last symptom"
    text = (
        f"The incident ran {duration(s['incident_seconds'])}, from {clock.short(inc.start)} (first symptom: "
        f"{inc.opened_by}) to {clock.short(inc.end)} ({closed}: {inc.closed_by})"
    )
    if inc.isolated:
        n = len(inc.isolated)
        text += f"; {n} isolated symptom{'s' if n != 1 else ''} far from the rest (in the timeline) do not stretch it"
    return text + "."


def summary_sentences(report: Report, clock: Clock) -> list[str]:
    """The summary: what broke; for whom; how long (what bounded the window); what it cost."""
    s = report.summary
    who = f"{count(s['accounts_hit_by_errors'])} accounts got 5xx errors in a burst"
    if report.reconciliation is not None:
        who += f" and {count(s['accounts_overcharged'])} were overcharged"
    cost = f"{count(s['failed_requests'])} failed requests consumed {budget_text(report)}"
    if report.reconciliation is not None:
        owed = cast(int, s["refund_tokens_total"])
        usd = f" (USD {s['refund_usd']})" if s.get("refund_usd") else ""
        cost += f", and {count(s['accounts_owed'])} accounts are owed {owed:,} tokens{usd}"
    return [headline(report), f"{who}.", window_sentence(report, clock), f"{cost}."]


def _after(report: Report, t: object) -> str:
    start = report.incident.start
    if not isinstance(t, datetime) or start is None:
        return DASH
    return span_text(t - start)


def response_rows(report: Report, clock: Clock) -> list[list[str]]:
    """Detected, mitigated, resolved and the burn-rate page: time and time since the first symptom."""
    s = report.summary
    rows = []
    for label, key in (
        ("Detected (time to detect)", "detected_at"),
        ("Mitigated (time to mitigate)", "mitigated_at"),
        ("Resolved (time to resolve)", "resolved_at"),
        ("Burn-rate page would have fired", "page_at"),
    ):
        at = s.get(key)
        known = isinstance(at, datetime)
        rows.append([label, clock.at(at) if known else "not known", _after(report, at) if known else DASH])  # type: ignore[arg-type]
    return rows


def page_sentence(report: Report, clock: Clock) -> str:
    """When the burn-rate page would have fired against when the incident was detected."""
    s = report.summary
    page, detected = s.get("page_at"), s.get("detected_at")
    if not isinstance(page, datetime):
        return "No burn-rate page would have fired during the incident."
    if not isinstance(detected, datetime):
        return f"The burn-rate page would have fired at {clock.short(page)}; when the incident was detected is not known."
    if page < detected:
        return f"The burn-rate page would have fired at {clock.short(page)}, {span_text(detected - page)} before it was detected."
    if page > detected:
        return f"The burn-rate page would have fired at {clock.short(page)}, {span_text(page - detected)} after it was detected."
    return f"The burn-rate page would have fired at {clock.short(page)}, when it was detected."


def factors(report: Report) -> list[str]:
    """The fault patterns and windows of trouble inside the incident, in the order they began."""
    inc = report.incident
    isolated = set(inc.isolated)
    out: list[tuple[datetime, str]] = []
    rec = report.reconciliation
    for p in rec.patterns if rec else ():
        where = f" ({p.model})" if p.model else ""
        if f"Likely fault: {p.kind}{where}" not in isolated:
            out.append((p.start, f"{p.kind}{where}: {p.description}"))
    for b in report.bursts:
        out.append((b.start, f"5xx burst in {b.scope} from {b.start:%H:%M}, {span_text(b.end - b.start)}"))
    for x in report.spikes:
        out.append(
            (x.start, f"latency spike in {x.scope} from {x.start:%H:%M}, {span_text(x.end - x.start)}")
        )
    return [text for _, text in sorted(out)]


def action_items(report: Report) -> list[str]:
    """One line per kind of finding that needs an owner: bursts, spikes, gaps and each ledger kind found."""
    items = []
    if report.bursts:
        items.append(f"5xx bursts ({len(report.bursts)}): find and fix the cause")
    if report.spikes:
        items.append(f"latency spikes ({len(report.spikes)}): find and fix the cause")
    if report.gaps:
        items.append(f"log gaps ({len(report.gaps)}): find why the gateway lines are missing")
    rec = report.reconciliation
    for kind, total in sorted(rec.by_kind.items()) if rec else ():
        if kind != "ok" and total.count:
            items.append(f"{kind} ({total.count:,}: {KIND_MEANING.get(kind, kind)}): fix and settle")
    return items


def background_rows(report: Report) -> list[list[str]]:
    """Per background kind: what it means, its entries, per day and hourly rates inside and outside."""
    return [
        [
            escape(b.kind),
            KIND_MEANING.get(b.kind, ""),
            f"{b.count:,}",
            f"{b.per_day:,.1f}",
            f"{b.rate_inside:,.2f} / {b.rate_outside:,.2f}",
        ]
        for b in report.incident.background
    ]


# --- the Markdown sections ---------------------------------------------------------------------


def summary_md(report: Report, clock: Clock) -> list[str]:
    """Summary: three sentences, what moved first and the milestones."""
    out = ["## Summary", ""]
    out += [" ".join(escape(x) for x in summary_sentences(report, clock)), ""]
    out += [escape(report.summary["what_moved_first"]), ""]
    return out


def detection_md(report: Report, clock: Clock) -> list[str]:
    """Detection and response: TTD, TTM, TTR and the burn-rate page."""
    out = ["## Detection and response", ""]
    out += table(["Milestone", "Time", "After the first symptom"], response_rows(report, clock))
    return out + [escape(page_sentence(report, clock)), "", DEFINITIONS, ""]


def factors_md(report: Report, clock: Clock) -> list[str]:
    """Contributing factors: the fault patterns and windows of trouble, and what moved first."""
    lines = factors(report)
    out = ["## Contributing factors", "", escape(report.summary["what_moved_first"]), ""]
    if not lines:
        return [*out, "No fault pattern or window of trouble was found.", ""]
    return out + [f"- {escape(x)}" for x in lines] + [""]


def background_md(report: Report, clock: Clock) -> list[str]:
    """Background: finding kinds that ran at about the same rate all day, not part of the incident."""
    out = ["## Background", ""]
    rows = background_rows(report)
    if not rows:
        return [
            *out,
            "No finding kind ran at the same rate before and outside the incident as inside it.",
            "",
        ]
    out += [
        f"Finding kinds already present before the first symptom, at most "
        f"{report.settings.postmortem.background_ratio:g}× as frequent inside the incident window as "
        "outside it: not in the incident's timeline and window, but still counted and refunded.",
        "",
    ]
    head = ["Kind", "Meaning", "Entries", "Per day", "Per 1,000 requests inside / outside"]
    return out + table(head, rows, right=("Entries", "Per day", "Per 1,000 requests inside / outside"))


def actions_md(report: Report, clock: Clock) -> list[str]:
    """Action items: one line per finding kind, with the owner left for the team to fill."""
    items = action_items(report)
    out = ["## Action items", ""]
    if not items:
        return [*out, "Nothing found needs an owner.", ""]
    out += ["| Item | Owner | Due |", "|---|---|---|"]
    return out + [f"| {escape(i)} | (to fill) | (to fill) |" for i in items] + [""]


def impact_extra(report: Report) -> list[list[str]]:
    """Rows the Impact table adds: the share of active accounts hit and the error budget consumed."""
    s = report.summary
    rows = []
    rec = report.reconciliation
    if rec is not None and rec.accounts.height:
        hit = cast(int, s["accounts_hit_by_errors"])
        rows.append(
            [
                "Active accounts hit by errors",
                f"{hit:,} of {rec.accounts.height:,} ({percent(hit / rec.accounts.height)})",
            ]
        )
    limits = report.rate_limits
    if limits is not None:
        wrong, throttled = limits.counts.get("wrong", 0), limits.counts.get("throttled", 0)
        rows.append(["429s wrongly given (rate-limit audit)", f"{wrong:,} of {throttled:,} 429s"])
    rows.append(["Error budget consumed", budget_text(report)])
    return rows
