"""`simulate --cached`: cached and reasoning tokens in the logs, and the two wrong billing rules found
exactly, with the refunds truth.json gives."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer import schema as s
from analyzer.cli import app
from analyzer.config import ModelWeights, Settings, load_settings
from analyzer.findings import DEDUCTION_KINDS, OTHER_FINDINGS, Finding, Pattern
from analyzer.reconcile import reconcile
from analyzer.report.jsonreport import schema
from analyzer.simulate import SimSpec, generate, simulate
from analyzer.simulate.spec import CACHED_WEIGHT, MODELS

WRONG = (Finding.CACHED_AT_FULL_PRICE, Finding.REASONING_COUNTED_TWICE)
WEIGHTS = Settings(weights={m: ModelWeights(cached=CACHED_WEIGHT) for m in MODELS})


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("seed", [pytest.param(x, id=f"seed-{x}") for x in (1, 2)])
def test_the_two_wrong_rules_are_found_exactly(seed: int) -> None:
    sim = generate(SimSpec(seed=seed, hours=11, rate=1.0, accounts=60, cached=True))
    r = reconcile(sim.gateway.lazy(), sim.ledger.lazy(), WEIGHTS)
    truth = sim.truth["ledger"]
    # Every kind the simulator can produce (it writes no log gap, so in_log_gap is not in its truth).
    kinds = [k for k in (*DEDUCTION_KINDS, *OTHER_FINDINGS) if k != Finding.IN_LOG_GAP]
    assert {k: r.by_kind[k].count for k in kinds} == truth["findings_by_kind"]
    assert r.by_kind[Finding.IN_LOG_GAP].count == 0
    refunds = {k: r.by_kind[k].refund_tokens for k in DEDUCTION_KINDS if r.by_kind[k].refund_tokens}
    assert refunds == truth["refund_tokens_by_kind"]
    assert r.refund_tokens_total == truth["refund_tokens_total"]
    assert r.tokens_expected == truth["tokens_expected"]
    assert r.request_buckets == truth["request_buckets"]
    owed = {a: v for a, v in r.accounts.select("account_id", "refund_tokens").iter_rows() if v}
    assert owed == truth["refunds"]
    assert all(i.holds for i in r.invariants)
    for kind in WRONG:
        fault = sim.truth["faults"][kind]
        assert fault["count"] > 50 and fault["refund_tokens"] > 0
        named = [p for p in r.patterns if p.kind == Pattern(kind)]
        assert [(p.model, p.entries) for p in named] == [(fault["model"], fault["count"])]
        # Deductions trail their requests by the latency and up to two seconds.
        assert (
            _at(fault["start"]) <= named[0].start <= named[0].end < _at(fault["end"]) + timedelta(minutes=1)
        )


def test_without_the_cached_weight_the_wrong_rules_are_not_named() -> None:
    # Billed by 1 and 1, cached tokens are worth their full price: every discounted charge is an
    # undercharge and no deduction equals a wrong rule's charge unless it is one.
    sim = generate(SimSpec(seed=1, hours=11, rate=1.0, accounts=60, cached=True))
    r = reconcile(sim.gateway.lazy(), sim.ledger.lazy(), Settings())
    assert r.by_kind[Finding.CACHED_AT_FULL_PRICE].count == 0
    assert r.by_kind[Finding.UNDERCHARGE].count > sim.truth["ledger"]["findings_by_kind"]["undercharge"]


def test_usage_columns_and_weights_file(tmp_path: Path) -> None:
    spec = SimSpec(seed=1, hours=11, rate=0.3, accounts=40, cached=True)
    sim = simulate(tmp_path, spec)
    g = sim.gateway
    assert g.columns == [
        *s.GATEWAY_COLUMNS,
        s.UPSTREAM_STATUS,
        s.TTFT_MS,
        s.STREAM,
        s.CACHED_TOKENS,
        s.REASONING_TOKENS,
    ]
    served = g.filter(pl.col(s.STATUS).is_between(200, 299))
    assert (served[s.CACHED_TOKENS] <= served[s.PROMPT_TOKENS]).all()
    assert (served[s.REASONING_TOKENS] <= served[s.COMPLETION_TOKENS]).all()
    assert served[s.CACHED_TOKENS].gt(0).mean() > 0.2  # type: ignore[operator]
    failed = g.filter(~pl.col(s.STATUS).is_between(200, 299))
    assert failed[s.CACHED_TOKENS].null_count() == failed.height
    settings = load_settings(tmp_path / "analyzer.toml")
    assert {m: w.of("cached") for m, w in settings.weights.items()} == {m: CACHED_WEIGHT for m in MODELS}
    # A simulation without usage detail removes the weights it wrote, and only those.
    simulate(tmp_path, SimSpec(seed=1, hours=11, rate=0.3, accounts=40))
    assert not (tmp_path / "analyzer.toml").exists()
    (tmp_path / "analyzer.toml").write_text("[bursts]\nmin_errors = 7\n", encoding="utf-8")
    simulate(tmp_path, SimSpec(seed=1, hours=11, rate=0.3, accounts=40))
    assert (tmp_path / "analyzer.toml").read_text(encoding="utf-8") == "[bursts]\nmin_errors = 7\n"


def test_the_default_simulation_is_unchanged_by_the_option(tmp_path: Path) -> None:
    # The same spec without `cached` writes the same gateway bytes as before the option existed:
    # the usage generator is a fifth child of the seed, the first four draw as they did.
    spec = SimSpec(seed=1, hours=2, rate=0.5, accounts=20)
    plain, cached = generate(spec), generate(SimSpec(seed=1, hours=2, rate=0.5, accounts=20, cached=True))
    assert cached.gateway.drop(s.CACHED_TOKENS, s.REASONING_TOKENS).equals(plain.gateway)
    assert "cached_at_full_price" not in plain.truth["ledger"]["findings_by_kind"]


def test_sample_logs_gateway_and_ledger_are_what_the_simulator_writes(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_logs"
    simulate(tmp_path, SimSpec(seed=7, hours=18, rate=0.5, accounts=200))
    names = [p.relative_to(sample) for p in sorted(sample.rglob("*")) if p.is_file() and p.suffix != ".md"]
    names = [n for n in names if n.name != "truth.json"]
    digest = {n: hashlib.sha256((sample / n).read_bytes()).hexdigest() for n in names}
    again = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in names}
    assert digest == again
    truth = json.loads((sample / "truth.json").read_text())
    assert truth["ledger"] == sim_truth_ledger(tmp_path)


def sim_truth_ledger(folder: Path) -> object:
    return json.loads((folder / "truth.json").read_text())["ledger"]


def test_report_finds_the_weights_and_the_two_kinds(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sim"
    made = runner.invoke(
        app, ["simulate", str(out), "--cached", "--hours", "11", "--rate", "0.3", "--accounts", "40"]
    )
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["report", str(out), "--json", "-", "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, schema())
    ledger = doc["ledger"]
    truth = json.loads((out / "truth.json").read_text())["ledger"]
    for kind in WRONG:
        assert ledger["findings_by_kind"][kind] == truth["findings_by_kind"][kind] > 0
    assert ledger["refund_tokens_total"] == truth["refund_tokens_total"]
    assert {p["kind"] for p in ledger["patterns"]} >= set(WRONG)
    # The schema requires both kinds in findings_by_kind.
    del ledger["findings_by_kind"][Finding.REASONING_COUNTED_TWICE]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())
