"""What CI systems show: JUnit XML checked against the JUnit schema, GitHub workflow commands escaped,
the Markdown added to $GITHUB_STEP_SUMMARY rather than written over it.

The schema checks follow the JUnit XSD that Jenkins' xUnit plugin publishes (junit-10.xsd, the format
GitLab's unit test reports parse too): which elements may hold which, which attributes each may carry and
which are required, and that the counts on a suite add up over its test cases.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fixtures.report.records import detection, events, inputs, reconciliation
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.config import Settings
from analyzer.findings import Invariant
from analyzer.report import build_report
from analyzer.report.ci import github_annotations, github_data, github_property, render_junit
from analyzer.report.model import Report

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
runner = CliRunner()
# The CLI runs here only to show what CI sees: one analysis of the sample serves every command line.
pytestmark = pytest.mark.usefixtures("shared_analysis")

# junit-10.xsd: element -> (required attributes, optional attributes, allowed children).
_SCHEMA: dict[str, tuple[set[str], set[str], set[str]]] = {
    "testsuites": (set(), {"name", "time", "tests", "failures", "errors"}, {"testsuite"}),
    "testsuite": (
        {"name", "tests", "failures", "errors"},
        {"group", "time", "skipped", "timestamp", "hostname", "id", "package", "file", "log", "url"},
        {"testsuite", "properties", "testcase", "system-out", "system-err"},
    ),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, set(), set()),
    "testcase": (
        {"name"},
        {"time", "classname", "group"},
        {"skipped", "error", "failure", "system-out", "system-err"},
    ),
    "failure": (set(), {"type", "message"}, set()),
    "error": (set(), {"type", "message"}, set()),
    "skipped": (set(), {"type", "message"}, set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}
_COUNTS = ("tests", "failures", "errors", "skipped")
_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")  # the XSD's SUREFIRE_TIME


def check_junit(text: str) -> ET.Element:
    """Parse JUnit XML and check it against the schema; return the root."""
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    for element in root.iter():
        assert element.tag in _SCHEMA, element.tag
        required, optional, children = _SCHEMA[element.tag]
        attrs = set(element.attrib)
        assert required <= attrs, (element.tag, required - attrs)
        assert attrs <= required | optional, (element.tag, attrs - required - optional)
        assert {c.tag for c in element} <= children, (element.tag, [c.tag for c in element])
        for name in _COUNTS:
            if name in element.attrib:
                assert element.attrib[name].isdigit(), (element.tag, name, element.attrib[name])
        if "time" in element.attrib:
            assert _TIME.fullmatch(element.attrib["time"])
    totals = dict.fromkeys(_COUNTS, 0)
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        got = {
            "tests": len(cases),
            "failures": sum(c.find("failure") is not None for c in cases),
            "errors": sum(c.find("error") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
        }
        for name in _COUNTS:
            if name in suite.attrib or name != "skipped":
                assert int(suite.attrib[name]) == got[name], (name, suite.attrib[name], got[name])
            totals[name] += got[name]
        # GitLab keys a test case by classname and name: a duplicate would be dropped from its view.
        keys = [(c.get("classname"), c.get("name")) for c in cases]
        assert len(keys) == len(set(keys))
    for name in ("tests", "failures", "errors"):
        if name in root.attrib:
            assert int(root.attrib[name]) == totals[name]
    return root


def _cases(root: ET.Element) -> dict[tuple[str, str], ET.Element | None]:
    return {(c.get("classname", ""), c.get("name", "")): c.find("failure") for c in root.iter("testcase")}


def _report(scope_value: str = "kimi-k2.6", **rec_changes: object) -> Report:
    rec = dataclasses.replace(reconciliation(), **rec_changes)  # type: ignore[arg-type]
    det = detection(scope_value=scope_value)
    return build_report(inputs(), det, rec, events(), Settings())


def test_the_checker_rejects_what_the_schema_does_not_allow() -> None:
    good = render_junit(_report(), ["bursts"])
    check_junit(good)
    assert good.count("<testsuite ") == 1
    for bad in (
        good.replace('<testsuites name="analyzer" tests="2"', '<testsuites name="analyzer" tests="3"'),
        good.replace('report" tests="2"', 'report" tests="3"'),  # counts that do not add up
        good.replace('report" tests="2" failures="1"', 'report" tests="2"'),  # a required attribute missing
        good.replace("<testcase ", '<testcase bogus="1" ', 1),  # an attribute the schema does not know
        good.replace("<properties>", "<properties><testcase name='x' />", 1),  # misplaced
    ):
        with pytest.raises(AssertionError):
            check_junit(bad)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("ci") / "sample_logs"
    shutil.copytree(SAMPLE, target)
    return target


def test_junit_on_the_sample_fails_the_rules_that_hold(sample: Path) -> None:
    junit = sample.parent / "junit.xml"
    rules = ["bursts", "refunds>0", "refunds>10000000", "rejects>5%"]
    args = ["report", str(sample), "--quiet", "--junit", str(junit)]
    for rule in rules:
        args += ["--fail-on", rule]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.stderr
    root = check_junit(junit.read_text(encoding="utf-8"))
    suite = root.find("testsuite")
    assert suite is not None
    # Four rules and the seven invariants; two rules hold (3 bursts; 9,171,231 tokens owed) and every
    # invariant holds on the sample.
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("11", "2", "0")
    cases = _cases(root)
    assert [name for (cls, name) in cases if cls == "analyzer.fail_on"] == rules
    assert len([1 for (cls, _) in cases if cls == "analyzer.invariants"]) == 7
    failed = {name: f for (_, name), f in cases.items() if f is not None}
    assert set(failed) == {"bursts", "refunds>0"}
    bursts = failed["bursts"]
    assert bursts.get("message") == "bursts: 3 5xx burst(s)"
    lines = (bursts.text or "").splitlines()
    assert lines[0] == "bursts: 3 5xx burst(s)"
    assert [line.split(")")[0] for line in lines[1:]] == [
        "5xx burst (model=kimi-k2.6",
        "5xx burst (region=eu-west-1",
        "5xx burst (model=kimi-k2.6",
    ]
    assert (
        "from 2026-04-22T09:39:00Z to 2026-04-22T10:06:00Z" in lines[1] and "peak 61.5% at 10:01" in lines[1]
    )
    assert failed["refunds>0"].get("message") == "refunds>0: 9,171,231 tokens owed"
    assert "190 accounts" in (failed["refunds>0"].text or "")


def test_junit_fails_a_broken_invariant_and_passes_those_that_hold() -> None:
    broken = Invariant("refunds over accounts add up to the total", False, "740 over accounts, 750 in total")
    held = Invariant("every deduction classified once", True, "100 of 100")
    root = check_junit(render_junit(_report(invariants=(held, broken)), ["spikes", "refunds>1000"]))
    cases = _cases(root)
    assert cases[("analyzer.fail_on", "spikes")] is not None  # one spike in the records
    assert cases[("analyzer.fail_on", "refunds>1000")] is None  # 750 tokens owed
    assert cases[("analyzer.invariants", "every deduction classified once")] is None
    failure = cases[("analyzer.invariants", "refunds over accounts add up to the total")]
    assert failure is not None and failure.get("type") == "invariant"
    assert (
        failure.get("message") == "refunds over accounts add up to the total: 740 over accounts, 750 in total"
    )
    assert root.get("failures") == "2"


def test_junit_without_rules_or_ledger_is_an_empty_valid_suite() -> None:
    report = build_report(inputs(), detection(), None, events(), Settings())
    root = check_junit(render_junit(report, []))
    assert (root.get("tests"), root.get("failures")) == ("0", "0")


HOSTILE_MODEL = "kimi%0A\r\nk2.6,x:y\x01"


def _unescape_data(text: str) -> str:
    """What GitHub's runner does to a command's message (the reverse of its escaping)."""
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return _unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def test_annotations_escape_a_hostile_model_name() -> None:
    report = _report(scope_value=HOSTILE_MODEL)
    lines = github_annotations(report, ["bursts", "refunds>0", "refunds>1000"])
    assert all("\n" not in line and "\r" not in line for line in lines)
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(errors) == 2 and len(warnings) == 1  # two rules hold; one burst
    head, message = warnings[0].removeprefix("::warning ").split("::", 1)
    assert head.startswith("title=")
    title = head.removeprefix("title=")
    # Properties end at `,` and `::`: both escaped, so the title is one property and decodes whole.
    assert "," not in title and ":" not in title
    assert title == "5xx burst model=kimi%250A%0D%0Ak2.6%2Cx%3Ay\x01"
    assert _unescape_property(title) == f"5xx burst model={HOSTILE_MODEL}"
    assert _unescape_data(message).startswith(f"5xx burst (model={HOSTILE_MODEL}) from 2026-04-22T09:13:00Z")
    assert "peak 20.0%25 at 09:20 UTC" in message


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        pytest.param("50%", "50%25", "50%25", id="percent"),
        pytest.param("a\r\nb", "a%0D%0Ab", "a%0D%0Ab", id="crlf"),
        pytest.param("a:b,c", "a:b,c", "a%3Ab%2Cc", id="colon-comma"),
        pytest.param("%0A", "%250A", "%250A", id="an-escape-already"),
    ],
)
def test_github_escaping(raw: str, data: str, prop: str) -> None:
    assert (github_data(raw), github_property(raw)) == (data, prop)


def test_junit_of_a_hostile_model_name_is_valid_xml() -> None:
    root = check_junit(render_junit(_report(scope_value=HOSTILE_MODEL), ["bursts"]))
    failure = _cases(root)[("analyzer.fail_on", "bursts")]
    assert failure is not None
    # XML 1.0 cannot hold \x01 even escaped: replaced. A parser reads CR LF in text as one LF.
    assert "model=kimi%0A\nk2.6,x:y\ufffd" in (failure.text or "")


def test_cli_writes_annotations_on_stderr(sample: Path) -> None:
    result = runner.invoke(
        app, ["report", str(sample), "--quiet", "--fail-on", "bursts", "--annotations", "github"]
    )
    assert result.exit_code == 1
    commands = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert [c.split("::")[1] for c in commands] == [
        "error title=analyzer fail-on bursts",
        "warning title=5xx burst model=kimi-k2.6",
        "warning title=5xx burst region=eu-west-1",
        "warning title=5xx burst model=kimi-k2.6",
    ]
    plain = runner.invoke(app, ["report", str(sample), "--quiet", "--fail-on", "bursts"])
    assert "::" not in plain.stderr


def test_markdown_is_added_to_the_step_summary(sample: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## Earlier step\n", encoding="utf-8")
    args = ["report", str(sample), "--quiet", "--markdown", str(summary)]
    assert runner.invoke(app, args, env={"GITHUB_STEP_SUMMARY": str(summary)}).exit_code == 0
    once = summary.read_text(encoding="utf-8")
    assert once.startswith("## Earlier step\n# ")
    runner.invoke(app, args, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text(encoding="utf-8") == once + once.removeprefix("## Earlier step\n")
    # Another path than the step summary is written over, as always.
    elsewhere = tmp_path / "postmortem.md"
    elsewhere.write_text("old\n", encoding="utf-8")
    other = ["report", str(sample), "--quiet", "--markdown", str(elsewhere)]
    runner.invoke(app, other, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert elsewhere.read_text(encoding="utf-8") == once.removeprefix("## Earlier step\n")


def test_a_rule_given_twice_is_one_test_case() -> None:
    root = check_junit(render_junit(_report(), ["bursts", " bursts", "spikes"]))
    names = [c.get("name") for c in root.iter("testcase") if c.get("classname") == "analyzer.fail_on"]
    assert names == ["bursts", "spikes"]
