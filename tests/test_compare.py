"""`analyzer compare` on simulated days with known answers, and on small hand-built reports.

Three simulated days of the same traffic (seed 7, 06:00-11:00 UTC, 0.5 requests a second): the quiet
one, the launch one (its truth: one 5xx burst, model=kimi-k2.6 from 09:40 to 10:05, and one latency
spike, model=kimi-k2.6 from 10:30 to 10:50, inside those five hours) and the launch again a day later.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.compare import Comparison, compare, held_rules, parse_rules
from analyzer.errors import ConfigError, InputError
from analyzer.pipeline import ReportRequest, run_report
from analyzer.report.comparison import comparison_schema, render_comparison_json, render_comparison_markdown
from analyzer.report.jsonreport import render_json
from analyzer.simulate import SimSpec, simulate

runner = CliRunner()
SPEC = SimSpec(hours=5, rate=0.5, accounts=40)
CONTRACT = {
    "schema_version", "base", "new", "new_bursts", "gone_bursts", "new_spikes", "gone_spikes", "slices",
    "ledger", "rate_limits",
}  # fmt: skip


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """JSON reports of the quiet day, the launch day and the launch a day later; and their truths."""
    root = tmp_path_factory.mktemp("compare")
    specs = {
        "quiet": replace(SPEC, scenario="quiet"),
        "launch": SPEC,
        "launch_next_day": replace(SPEC, start=SPEC.start + timedelta(days=1)),
    }
    out = {}
    for name, spec in specs.items():
        folder = root / name
        sim = simulate(folder, spec)
        report = run_report(ReportRequest(directory=folder)).report
        out[name] = root / f"{name}.json"
        out[name].write_text(render_json(report), encoding="utf-8")
        (root / f"{name}.truth.json").write_text(json.dumps(sim.truth), encoding="utf-8")
    return out


def _doc(days: dict[str, Path], name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(days[name].read_text(encoding="utf-8"))
    return loaded


def _truth(days: dict[str, Path], name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((days[name].parent / f"{name}.truth.json").read_text())
    return loaded


def _scopes(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["scope"], i["start"][11:16]) for i in items]


def test_the_launch_day_against_the_quiet_one_has_the_injected_burst_and_spike(days: dict[str, Path]) -> None:
    truth = _truth(days, "launch")
    assert [(b["scope"], b["start"][11:16]) for b in truth["bursts"]] == [("model=kimi-k2.6", "09:40")]
    c = compare(_doc(days, "quiet"), _doc(days, "launch"))
    # Detection finds the burst within a minute of the truth's window; compare says it is new.
    assert _scopes(c.new_bursts) == [("model=kimi-k2.6", "09:40")]
    assert _scopes(c.new_spikes) == [("model=kimi-k2.6", "10:30")]
    assert c.gone_bursts == [] and c.gone_spikes == []
    assert c.ledger is not None
    assert c.ledger["refund_tokens_total"] == {
        "base": 0,
        "new": truth["ledger"]["refund_tokens_total"],
        "change": truth["ledger"]["refund_tokens_total"],
    }
    kimi = next(r for r in c.slices if r["scope"] == "model=kimi-k2.6")
    assert kimi["base"]["requests"] == kimi["new"]["requests"]  # the same traffic, seeded alike
    assert kimi["new"]["errors"] > kimi["base"]["errors"]
    # Both reports have the rate-limit audit (observed peaks: no [limits]); the quiet day has no wrong 429.
    assert c.rate_limits is not None and c.rate_limits["wrong"]["base"] == 0 < c.rate_limits["wrong"]["new"]


def test_the_quiet_day_against_the_launch_one_has_them_gone(days: dict[str, Path]) -> None:
    c = compare(_doc(days, "launch"), _doc(days, "quiet"))
    assert c.new_bursts == [] and c.new_spikes == []
    assert _scopes(c.gone_bursts) == [("model=kimi-k2.6", "09:40")]
    assert _scopes(c.gone_spikes) == [("model=kimi-k2.6", "10:30")]
    assert c.ledger is not None and c.ledger["refund_tokens_total"]["new"] == 0


@pytest.mark.parametrize("name", ["quiet", "launch"])
def test_a_day_against_itself_has_nothing_new_or_gone(days: dict[str, Path], name: str) -> None:
    c = compare(_doc(days, name), _doc(days, name))
    jsonschema.validate(json.loads(render_comparison_json(c)), comparison_schema())
    assert (c.new_bursts, c.gone_bursts, c.new_spikes, c.gone_spikes) == ([], [], [], [])
    assert c.new["days_after_base"] == 0
    assert all(r["base"] == r["new"] for r in c.slices)
    assert {r["error_rate_change"] for r in c.slices} <= {0.0, None}  # None: no 5xx on either day
    assert c.ledger is not None and all(v["change"] == 0 for v in c.ledger["findings_by_kind"].values())


def test_the_same_incident_a_day_later_is_not_new(days: dict[str, Path]) -> None:
    base, new = _doc(days, "launch"), _doc(days, "launch_next_day")
    c = compare(base, new)
    assert c.new["days_after_base"] == 1
    assert (c.new_bursts, c.gone_bursts, c.new_spikes, c.gone_spikes) == ([], [], [], [])
    # The gate: were the base not moved by a day, yesterday's burst would be gone and today's new.
    moved = copy.deepcopy(new)
    for item in moved["inputs"]:
        item["first_ts"] = base["inputs"][0]["first_ts"]
    c = compare(base, moved)
    assert c.new["days_after_base"] == 0
    assert len(c.new_bursts) == 1 and len(c.gone_bursts) == 1


def _cli(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["compare", *map(str, args)])
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("base", "new", "rule", "code"),
    [
        pytest.param("quiet", "launch", "new_bursts>0", 1, id="new-burst"),
        pytest.param("launch", "quiet", "new_bursts>0", 0, id="no-new-burst-on-the-quiet-day"),
        pytest.param("launch", "launch", "new_bursts>0", 0, id="itself"),
        pytest.param("quiet", "launch", "new_bursts>1", 0, id="one-new-burst-is-not-more-than-one"),
        pytest.param("launch", "quiet", "gone_bursts>0", 1, id="gone-burst"),
        pytest.param("quiet", "launch", "new_spikes>0", 1, id="new-spike"),
        pytest.param("quiet", "launch", "error_rate_up>50%", 1, id="error-rate-up"),
        pytest.param("quiet", "launch", "error_rate_up>100000%", 0, id="error-rate-up-less-than-that"),
        pytest.param("launch", "quiet", "error_rate_up>50%", 0, id="error-rate-down"),
        pytest.param("quiet", "launch", "refunds_up>0", 1, id="refunds-up"),
        pytest.param("launch", "quiet", "refunds_up>0", 0, id="refunds-down"),
        pytest.param("launch", "launch_next_day", "new_bursts>0", 0, id="same-incident-next-day"),
    ],
)
def test_rules_exit_codes(days: dict[str, Path], base: str, new: str, rule: str, code: int) -> None:
    got, _, stderr = _cli(days[base], days[new], "--quiet", "--fail-on", rule)
    assert got == code, stderr
    assert (f"fail-on: {rule}:" in stderr) == (code == 1)


def test_cli_writes_json_with_exactly_the_contract_keys_and_markdown(
    days: dict[str, Path], tmp_path: Path
) -> None:
    out, md = tmp_path / "cmp.json", tmp_path / "cmp.md"
    code, stdout, stderr = _cli(days["quiet"], days["launch"], "--json", out, "--markdown", md)
    assert code == 0, stderr
    doc = json.loads(out.read_text())
    assert set(doc) == CONTRACT == {f.name for f in fields(Comparison)}
    jsonschema.validate(doc, comparison_schema())
    assert doc["schema_version"] == 1 and doc["base"]["path"] == str(days["quiet"])
    assert doc["new_bursts"][0]["scope"] == "model=kimi-k2.6"
    assert "New 5xx bursts" in stdout and "model=kimi-k2.6" in stdout
    text = md.read_text()
    assert text.startswith("# What changed\n") and "## Slices" in text and "| model=kimi-k2.6 |" in text
    again = tmp_path / "again.json"
    _cli(days["quiet"], days["launch"], "--json", again)
    assert again.read_bytes() == out.read_bytes()
    code, stdout, _ = _cli(days["quiet"], days["launch"], "--json", "-")
    assert json.loads(stdout) == doc


def test_another_schema_version_is_one_error(days: dict[str, Path], tmp_path: Path) -> None:
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**_doc(days, "quiet"), "schema_version": 2}))
    code, stdout, stderr = _cli(days["quiet"], future)
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines() == [
        f"error: {future}: field 'schema_version': a report of schema_version 2; this analyzer compares "
        "schema_version 1 (make both reports with the same analyzer version)"
    ]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param("{not json", "not a JSON report", id="not-json"),
        pytest.param("[1, 2]", "the top level is not an object", id="a-list"),
        pytest.param('{"bursts": []}', "schema_version None", id="no-version"),
    ],
)
def test_a_file_that_is_not_a_report_is_one_error(tmp_path: Path, content: str, needle: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, stderr = _cli(bad, bad)
    assert code == 2 and needle in stderr and len(stderr.strip().splitlines()) == 1


def test_a_bad_rule_fails_before_any_file_is_read(tmp_path: Path) -> None:
    code, _, stderr = _cli(tmp_path / "missing.json", tmp_path / "missing.json", "--fail-on", "bursts")
    assert code == 2 and "unknown --fail-on rule of compare" in stderr and "missing.json" not in stderr


@pytest.mark.parametrize(
    "rule",
    ["new_bursts", "new_bursts>x", "error_rate_up>50", "new_bursts>1%", "refunds_up>1.5", "bursts>0"],
)
def test_malformed_rules(rule: str) -> None:
    with pytest.raises(ConfigError):
        parse_rules([rule])


# --- small hand-built reports --------------------------------------------------------------------


def _report(
    errors: int = 10,
    requests: int = 1000,
    bursts: tuple[tuple[str, str, str], ...] = (),
    p95: float | None = 1000.0,
    **extra: Any,
) -> dict[str, Any]:
    """A JSON report of 2026-04-22 with the global slice and bursts given as (scope, start, end) HH:MM."""
    day = "2026-04-22T"
    return {
        "schema_version": 1,
        "inputs": [{"kind": "gateway", "first_ts": f"{day}06:00:00Z", "last_ts": f"{day}11:00:00Z"}],
        "summary": {"requests": requests, "failed_requests": errors, "error_rate": errors / requests},
        "bursts": [
            {"scope": s, "start": f"{day}{a}:00Z", "end": f"{day}{b}:00Z", "peak_error_rate": 0.5}
            for s, a, b in bursts
        ],
        "latency_spikes": [],
        "slices": [
            {
                "scope": "global",
                "requests": requests,
                "errors": errors,
                "error_rate": errors / requests,
                "p95_ms": p95,
            }
        ],
        "ledger": None,
        **extra,
    }


@pytest.mark.parametrize(
    ("new_errors", "holds"),
    [
        pytest.param(15, False, id="exactly-50pct-up-does-not-hold"),
        pytest.param(16, True, id="60pct-up-holds"),
    ],
)
def test_error_rate_up_is_exact_at_the_threshold(new_errors: int, holds: bool) -> None:
    c = compare(_report(errors=10), _report(errors=new_errors))
    assert bool(held_rules(c, parse_rules(["error_rate_up>50%"]))) == holds


def test_error_rate_up_from_none_holds() -> None:
    c = compare(_report(errors=0), _report(errors=1))
    (held,) = held_rules(c, parse_rules(["error_rate_up>1000%"]))
    assert held.observed is None


def test_p95_up() -> None:
    c = compare(_report(p95=1000.0), _report(p95=1500.0))
    assert held_rules(c, parse_rules(["p95_up>49%"])) and not held_rules(c, parse_rules(["p95_up>50%"]))
    assert c.slices[0]["p95_change"] == 0.5


@pytest.mark.parametrize(
    ("base", "new", "new_bursts", "gone_bursts"),
    [
        pytest.param(("model=a", "09:00", "09:30"), ("model=a", "09:20", "09:50"), 0, 0, id="overlap"),
        pytest.param(("model=a", "09:00", "09:30"), ("model=a", "09:30", "09:50"), 1, 1, id="touching"),
        pytest.param(("model=a", "09:00", "09:30"), ("model=b", "09:00", "09:30"), 1, 1, id="other-scope"),
    ],
)
def test_bursts_match_by_scope_and_overlap(
    base: tuple[str, str, str], new: tuple[str, str, str], new_bursts: int, gone_bursts: int
) -> None:
    c = compare(_report(bursts=(base,)), _report(bursts=(new,)))
    assert (len(c.new_bursts), len(c.gone_bursts)) == (new_bursts, gone_bursts)


LIMITS = {
    "throttled": 40,
    "justified": 30,
    "ambiguous": 4,
    "wrong": 6,
    "admitted_over_limit": 2,
    "by_limit": {},
}


def test_rate_limits_are_compared_when_both_reports_have_them() -> None:
    more = {**LIMITS, "wrong": 9}
    c = compare(_report(rate_limits=LIMITS), _report(rate_limits=more))
    jsonschema.validate(json.loads(render_comparison_json(c)), comparison_schema())
    assert c.rate_limits is not None
    assert c.rate_limits["wrong"] == {"base": 6, "new": 9, "change": 3}
    assert set(c.rate_limits) == {"throttled", "justified", "ambiguous", "wrong", "admitted_over_limit"}
    assert held_rules(c, parse_rules(["wrong_429_up>2"])) and not held_rules(
        c, parse_rules(["wrong_429_up>3"])
    )


def test_rate_limit_counts_of_another_shape_are_left_out() -> None:
    odd = {**LIMITS, "wrong": {"count": 9}}
    c = compare(_report(rate_limits=LIMITS), _report(rate_limits=odd))
    assert c.rate_limits is not None and "wrong" not in c.rate_limits and "throttled" in c.rate_limits
    with pytest.raises(InputError, match="needs a rate_limits section"):
        held_rules(c, parse_rules(["wrong_429_up>0"]))


@pytest.mark.parametrize(
    ("base", "new"),
    [
        pytest.param(_report(), _report(rate_limits=LIMITS), id="only-new"),
        pytest.param(_report(rate_limits=None), _report(rate_limits=LIMITS), id="null-in-base"),
    ],
)
def test_rate_limits_are_null_unless_in_both(base: dict[str, Any], new: dict[str, Any]) -> None:
    c = compare(base, new)
    assert c.rate_limits is None
    with pytest.raises(InputError, match="needs a rate_limits section in both reports"):
        held_rules(c, parse_rules(["wrong_429_up>0"]))


def test_a_report_without_slices_compares_its_summary_as_global() -> None:
    old = _report(errors=10)
    del old["slices"]
    c = compare(old, _report(errors=20))
    assert c.slices[0]["base"] == {"requests": 1000, "errors": 10, "error_rate": 0.01, "p95_ms": None}
    assert c.slices[0]["error_rate_change"] == 1.0


def test_markdown_escapes_a_hostile_scope() -> None:
    c = compare(_report(), _report(bursts=(("model=<b>|x", "09:00", "09:30"),)))
    text = render_comparison_markdown(c)
    assert "| model=&lt;b&gt;&#124;x |" in text
    assert json.loads(render_comparison_json(c))["new_bursts"][0]["scope"] == "model=<b>|x"
    assert asdict(c)["new_bursts"][0]["scope"] == "model=<b>|x"


def test_the_comparison_schema_can_fail() -> None:
    doc = json.loads(render_comparison_json(compare(_report(), _report())))
    jsonschema.validate(doc, comparison_schema())
    for broken in (
        {**doc, "extra": 1},
        {k: v for k, v in doc.items() if k != "rate_limits"},
        {**doc, "ledger": {}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, comparison_schema())
