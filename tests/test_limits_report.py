"""The rate-limit audit in the report: the JSON `rate_limits` contract and --fail-on 'wrong_429>0'."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.report.jsonreport import schema

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
TRUTH = json.loads((SAMPLE / "truth.json").read_text())["rate_limits"]
KEYS = {
    "throttled",
    "justified",
    "ambiguous",
    "wrong",
    "admitted_over_limit",
    "by_limit",
    "accounts",
    "explanations",
    "rules",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("limits") / "sample_logs"
    shutil.copytree(SAMPLE, target)
    return target


def _report(*args: str | Path) -> tuple[int, dict[str, object], str]:
    result = runner.invoke(app, ["report", *map(str, args), "--quiet", "--json", "-"])
    assert "Traceback" not in result.stdout + result.stderr
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, schema())
    return result.exit_code, doc, result.stderr


def test_rate_limits_has_exactly_the_contract_keys_and_the_truth(sample: Path) -> None:
    code, doc, stderr = _report(sample, "--config", sample / "limits.toml")
    assert code == 0, stderr
    rl = doc["rate_limits"]
    assert isinstance(rl, dict) and set(rl) == KEYS
    assert (rl["throttled"], rl["justified"], rl["wrong"], rl["ambiguous"]) == (
        TRUTH["throttled"],
        TRUTH["justified"],
        TRUTH["wrong"],
        0,
    )
    assert set(rl["by_limit"]) == {"concurrency", "rpm", "tpm", "tpd"}
    assert all(
        set(v) == {"justified", "ambiguous", "wrong", "admitted_over_limit"} for v in rl["by_limit"].values()
    )
    accounts = rl["accounts"]
    assert all(
        set(a) == {"account_id", "tier", "throttled", "wrong", "ambiguous", "admitted_over_limit"}
        for a in accounts
    )
    assert {a["account_id"]: a["wrong"] for a in accounts if a["wrong"]} == TRUTH["wrong_by_account"]
    assert rl["rules"]["limits"] == "config"
    assert rl["rules"]["windows"] == ["fixed_minute", "sliding_60s", "token_bucket"]


def test_without_a_limits_section_the_audit_holds_accounts_to_their_own_peaks(sample: Path) -> None:
    code, doc, _ = _report(sample)
    rl = doc["rate_limits"]
    assert code == 0 and isinstance(rl, dict) and rl["rules"]["limits"] == "observed_peak"  # type: ignore[index]
    assert rl["throttled"] == TRUTH["throttled"]  # type: ignore[index]


def test_fail_on_wrong_429(sample: Path) -> None:
    config = sample / "limits.toml"
    code, _, stderr = _report(sample, "--config", config, "--fail-on", "wrong_429>0")
    assert code == 1 and f"wrong_429>0: {TRUTH['wrong']} wrong 429(s)" in stderr
    code, _, _ = _report(sample, "--config", config, "--fail-on", f"wrong_429>{TRUTH['wrong']}")
    assert code == 0
