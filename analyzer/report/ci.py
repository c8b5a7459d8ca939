"""What CI systems show of a report: JUnit XML (GitHub, GitLab, Jenkins, Buildkite render it) and GitHub
Actions workflow commands (annotations on the run's page).

One test suite per report; one test case per `--fail-on` rule (a failure when the rule holds) and one per
reconciliation invariant (a failure when it is broken). The failure's message is the finding's one-line
text, so the CI view says what was found without opening the report. The XML follows the JUnit schema
Jenkins' xUnit plugin ships (junit-10.xsd) and GitLab parses: `testsuites` > `testsuite` (name, tests,
failures, errors, skipped) > `properties`, `testcase` (name, classname) > `failure` (message, type).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.findings import Burst, LatencySpike
from analyzer.report.formatting import percent
from analyzer.report.gate import failing_rules
from analyzer.report.jsonreport import iso
from analyzer.report.model import Report
from analyzer.report.timeline import clock, span_text

SUITE = "analyzer report"
RULES_CLASS = "analyzer.fail_on"
INVARIANTS_CLASS = "analyzer.invariants"
# Characters XML 1.0 cannot hold at all, even escaped: a log string with one would make the file unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Case:
    """One JUnit test case: passed when `failure` is None, else failed with that message and detail."""

    classname: str
    name: str
    failure: str | None = None
    detail: tuple[str, ...] = ()
    kind: str = "fail-on"


def burst_line(b: Burst) -> str:
    """A burst in one line: scope, span and peak."""
    return (
        f"5xx burst ({b.scope}) from {iso(b.start)} to {iso(b.end)} ({span_text(b.end - b.start)}): "
        f"peak {percent(b.peak_error_rate)} at {clock(b.peak_at)} UTC, {b.errors:,} of {b.requests:,} "
        "requests failed"
    )


def spike_line(s: LatencySpike) -> str:
    """A latency spike in one line: scope, span and peak."""
    return (
        f"latency spike ({s.scope}) from {iso(s.start)} to {iso(s.end)} ({span_text(s.end - s.start)}): "
        f"peak p95 {s.peak_p95_ms:,.0f} ms at {clock(s.peak_at)} UTC, {s.factor:.1f}x the expected "
        f"{s.baseline_p95_ms:,.0f} ms"
    )


def _rule_detail(report: Report, rule: str) -> tuple[str, ...]:
    """The findings behind a rule that holds, one line each (none when its reason says it all)."""
    name = rule.strip().replace(" ", "")
    if name == "bursts":
        return tuple(burst_line(b) for b in report.bursts)
    if name == "spikes":
        return tuple(spike_line(s) for s in report.spikes)
    rec = report.reconciliation
    if name.startswith("refunds") and rec is not None:
        top = report.summary.get("top_accounts")
        owed = (
            f"{rec.refund_tokens_total:,} tokens owed to {report.summary.get('accounts_owed', 0):,} accounts"
        )
        if isinstance(top, list) and top:
            owed += f"; the largest refund {top[0]['refund_tokens']:,} tokens ({top[0]['account_id']})"
        return (owed,)
    return ()


def cases(report: Report, rules: Sequence[str]) -> list[Case]:
    """The test cases of a report: each rule (failed when it holds), then each invariant (failed when broken)."""
    out: list[Case] = []
    # A rule given twice is one test case: GitLab keys cases by classname and name, and drops repeats.
    for rule in dict.fromkeys(r.strip() for r in rules):
        held = failing_rules(report, [rule])
        detail = _rule_detail(report, rule) if held else ()
        out.append(Case(RULES_CLASS, rule, held[0] if held else None, detail))
    invariants = () if report.reconciliation is None else report.reconciliation.invariants
    for inv in invariants:
        failure = None if inv.holds else f"{inv.name}: {inv.detail}"
        out.append(Case(INVARIANTS_CLASS, inv.name, failure, kind="invariant"))
    return out


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def render_junit(report: Report, rules: Sequence[str]) -> str:
    """The report as one JUnit test suite; the counts on `testsuites` and `testsuite` add up over the cases."""
    found = cases(report, rules)
    failures = sum(c.failure is not None for c in found)
    counts = {"tests": str(len(found)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": "analyzer", **counts})
    gateway = [i for i in report.inputs if i.kind == "gateway"]
    firsts = [i.first_ts for i in gateway if i.first_ts is not None]
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts, "skipped": "0"})
    if firsts:
        suite.set("timestamp", iso(min(firsts)) or "")
    props = ET.SubElement(suite, "properties")
    lasts = [i.last_ts for i in gateway if i.last_ts is not None]
    for name, value in (
        ("schema_version", report.schema_version),
        ("requests", report.summary.get("requests", 0)),
        ("first_ts", iso(min(firsts)) if firsts else None),
        ("last_ts", iso(max(lasts)) if lasts else None),
    ):
        if value is not None:
            ET.SubElement(props, "property", {"name": name, "value": _xml_text(str(value))})
    for case in found:
        element = ET.SubElement(
            suite, "testcase", {"name": _xml_text(case.name), "classname": case.classname}
        )
        if case.failure is not None:
            failure = ET.SubElement(
                element, "failure", {"message": _xml_text(case.failure), "type": case.kind}
            )
            failure.text = _xml_text("\n".join((case.failure, *case.detail)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def github_data(text: str) -> str:
    """A workflow command's message escaped as GitHub's runner unescapes it (`%`, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """A workflow command's property value (title=...) escaped: as a message, plus `:` and `,`."""
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, title: str, message: str) -> str:
    return f"::{level} title={github_property(title)}::{github_data(message)}"


def github_annotations(report: Report, rules: Sequence[str]) -> list[str]:
    """GitHub Actions workflow commands: an error per rule that holds, a warning per 5xx burst."""
    lines = [
        _command("error", f"analyzer fail-on {c.name}", "\n".join((c.failure, *c.detail)))
        for c in cases(report, rules)
        if c.failure is not None and c.kind == "fail-on"
    ]
    lines += [_command("warning", f"5xx burst {b.scope}", burst_line(b)) for b in report.bursts]
    return lines
