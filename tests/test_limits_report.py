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
# Each test reads what the CLI writes of one analysis: the sample is analyzed once per configuration.
pytestmark = pytest.mark.usefixtures("shared_analysis")


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


def _wrong_times() -> list[str]:
    return [r["ts"] for r in TRUTH["throttled_requests"] if r["class"] == "wrong"]


def test_markdown_and_terminal_have_the_rate_limits_section(sample: Path, tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    result = runner.invoke(
        app, ["report", str(sample), "--config", str(sample / "limits.toml"), "--markdown", str(md)]
    )
    assert result.exit_code == 0, result.stderr
    text = md.read_text()
    section = text[text.index("## Rate limits") : text.index("## Data quality")]
    assert (
        f"{TRUTH['throttled']} 429s: {TRUTH['justified']} justified, 0 ambiguous, {TRUTH['wrong']} wrong;"
        in section
    )
    first, last = _wrong_times()[0][11:19], _wrong_times()[-1][11:19]
    expected = (
        f"- kimi-k2.6 429s from {first} to {last} fit a limiter charging 262,144 tokens per request against "
        f"TPM (100% of the wrong 429s, {TRUTH['wrong']} of {TRUTH['wrong']}; fixed_minute window)"
    )
    assert expected in section.splitlines()
    top = max(TRUTH["wrong_by_account"].values())
    assert any(line.startswith("| acct-") and f"| {top} |" in line for line in section.splitlines())
    # The timeline has the wrong 429s from first to last as one row, and the explanation's span as one.
    assert f"| {first}–{last} | Wrong 429s (kimi-k2.6) | {TRUTH['wrong']}× wrong 429 on " in text
    assert f"| {first}–{last} | Limiter fits fixed_cost (kimi-k2.6) |" in text
    assert "Rate limits" in result.stdout and "262,144 tokens per request" in result.stdout


def test_without_limits_the_report_says_the_limits_were_observed(sample: Path, tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    assert runner.invoke(app, ["report", str(sample), "--quiet", "--markdown", str(md)]).exit_code == 0
    assert "No limits section in the config: each account is held to its own observed peak" in md.read_text()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_throttled_writes_every_wrong_or_ambiguous_429(sample: Path, tmp_path: Path, suffix: str) -> None:
    import polars as pl

    path = tmp_path / f"throttled{suffix}"
    result = runner.invoke(
        app,
        ["report", str(sample), "--config", str(sample / "limits.toml"), "--quiet", "--throttled", str(path)],
    )
    assert result.exit_code == 0, result.stderr
    frame = pl.read_csv(path) if suffix == ".csv" else pl.read_parquet(path)
    wrong = {r["request_id"] for r in TRUTH["throttled_requests"] if r["class"] == "wrong"}
    assert set(frame["request_id"]) == wrong and set(frame["class"]) == {"wrong"}
    assert {"rpm_fixed_minute", "tpm_token_bucket", "concurrency", "limit_tpm"} <= set(frame.columns)


def test_the_tier_is_a_slice_for_bursts() -> None:
    import polars as pl

    from analyzer.config import Settings
    from analyzer.detect import detect
    from analyzer.limits.audit import TIER, with_tier
    from analyzer.simulate import SimSpec, generate
    from tests.test_limits_simulated import settings_of

    sim = generate(SimSpec(scenario="quiet", seed=4, rate=3.0, hours=4, accounts=60))
    limits = settings_of(sim)
    small = {a for a, t in limits.account_tiers.items() if t == "tier1"}
    t = pl.col("ts")
    window = (t >= pl.datetime(2026, 4, 22, 8, 0, time_zone="UTC")) & (
        t < pl.datetime(2026, 4, 22, 8, 20, time_zone="UTC")
    )
    failing = sim.gateway.with_columns(
        pl.when(window & pl.col("account_id").is_in(list(small)) & (pl.int_range(pl.len()) % 2 == 0))
        .then(503)
        .otherwise(pl.col("status"))
        .alias("status")
    )
    settings = Settings()
    sliced = Settings(bursts=type(settings.bursts)(slices=(*settings.bursts.slices, TIER)))
    scopes = [b.scope for b in detect(with_tier(failing.lazy(), limits), sliced).bursts]
    assert "tier=tier1" in scopes
    assert "tier=tier1" not in [b.scope for b in detect(failing.lazy(), settings).bursts]


def test_a_format_that_logs_completion_moves_arrivals_back_unless_the_setting_says(tmp_path: Path) -> None:
    from analyzer.pipeline import ReportRequest, run_report

    nginx = Path(__file__).resolve().parent / "fixtures" / "ingest" / "formats" / "docker_nginx.log"
    rl = run_report(ReportRequest(gateway=[nginx])).report.rate_limits
    assert rl is not None and rl.timestamp.value == "completion"
    config = tmp_path / "analyzer.toml"
    config.write_text('[limits]\ntimestamp = "arrival"\n[limits.tiers.t]\nrpm = 5\n', encoding="utf-8")
    rl = run_report(ReportRequest(gateway=[nginx], config=config)).report.rate_limits
    assert rl is not None and rl.timestamp.value == "arrival"
    jsonl = SAMPLE / "gateway" / "gateway-2026-04-22T06.jsonl.gz"
    rl = run_report(ReportRequest(gateway=[jsonl])).report.rate_limits
    assert rl is not None and rl.timestamp.value == "arrival"
