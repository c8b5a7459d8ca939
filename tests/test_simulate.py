"""The simulator's files load back, agree with truth.json, and are byte-identical across runs."""

from __future__ import annotations

import hashlib
import json
from datetime import time
from pathlib import Path

import polars as pl
import pytest

from analyzer import schema as s
from analyzer.errors import ConfigError
from analyzer.simulate import SimSpec, generate, simulate

SPEC = SimSpec(rate=2.0, hours=8.0, accounts=40, seed=3)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sim")
    simulate(d, SPEC)
    return d


def _gateway(d: Path) -> pl.DataFrame:
    return pl.concat([pl.read_ndjson(p) for p in sorted((d / "gateway").glob("*.jsonl.gz"))])


def _hashes(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_files_read_back_with_canonical_columns(out: Path) -> None:
    truth = json.loads((out / "truth.json").read_text())
    g = _gateway(out)
    assert g.columns == [*s.GATEWAY_COLUMNS, s.UPSTREAM_STATUS, s.TTFT_MS, s.STREAM]
    storms = sum(st["requests"] for st in truth["rate_limits"]["storms"])
    assert g.height == truth["requests"] == SPEC.requests + storms
    led = pl.read_csv(out / "ledger.csv")
    assert led.columns == list(s.LEDGER)


def test_duplicates_unbilled_and_refunds_agree_with_truth(out: Path) -> None:
    truth = json.loads((out / "truth.json").read_text())["ledger"]
    g = _gateway(out)
    led = pl.read_csv(out / "ledger.csv", schema_overrides={"request_id": pl.String}).sort("ts", "entry_id")
    ded = led.filter(pl.col("kind") == "deduct")
    dup = ded.filter(pl.col("request_id").is_not_null()).with_columns(
        (pl.int_range(pl.len()).over("request_id") > 0).alias("dup")
    )
    assert dup["dup"].sum() == truth["findings_by_kind"]["duplicate"]
    served = g.filter(
        pl.col("status").is_between(200, 299), (pl.col("prompt_tokens") + pl.col("completion_tokens")) > 0
    )
    unbilled = served.join(ded, on="request_id", how="anti").height
    assert unbilled == truth["findings_by_kind"]["unbilled"]
    assert ded.height == truth["deductions"]


def test_error_rate_inside_burst_exceeds_outside(out: Path) -> None:
    truth = json.loads((out / "truth.json").read_text())
    g = _gateway(out).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    b = truth["bursts"][0]
    col, val = b["scope"].split("=")
    scoped = g.filter(pl.col(col) == val)
    inside = pl.col("ts").is_between(
        pl.lit(b["start"]).str.to_datetime(time_zone="UTC"),
        pl.lit(b["end"]).str.to_datetime(time_zone="UTC"),
        closed="left",
    )
    rate = (
        scoped.group_by(inside.alias("inside")).agg(pl.col("status").is_in([502, 504]).mean()).sort("inside")
    )
    assert rate["status"][1] > 0.25 > 0.02 > rate["status"][0]


def test_two_runs_are_byte_identical(out: Path, tmp_path: Path) -> None:
    simulate(tmp_path / "again", SPEC)
    assert _hashes(out) == _hashes(tmp_path / "again")


def test_quiet_has_no_incident_and_an_all_ok_ledger() -> None:
    truth = generate(SimSpec(scenario="quiet", rate=2.0, hours=4.0, accounts=20)).truth
    assert truth["bursts"] == [] and truth["latency_spikes"] == []
    kinds = truth["ledger"]["findings_by_kind"]
    assert kinds["ok"] == truth["ledger"]["deductions"] > 0
    assert sum(kinds.values()) == kinds["ok"]
    assert truth["ledger"]["tokens_deducted"] == truth["ledger"]["tokens_expected"]


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(SimSpec(scenario="nope"), id="unknown-scenario"),
        pytest.param(SimSpec(rate=-1.0), id="negative-rate"),
        pytest.param(SimSpec(format="xml"), id="unknown-format"),
        pytest.param(SimSpec(sync_window=(time(14), time(10))), id="sync-ends-before-it-starts"),
    ],
)
def test_bad_arguments_raise_config_error(spec: SimSpec) -> None:
    with pytest.raises(ConfigError):
        generate(spec)


def test_loader_reads_every_file_with_zero_rejects(out: Path) -> None:
    from analyzer.config import Settings
    from analyzer.ingest import find_inputs, load

    truth = json.loads((out / "truth.json").read_text())
    inputs = find_inputs(out)
    rows = {}
    for kind in ("gateway", "ledger", "events"):
        loaded = load(kind, inputs[kind], Settings())
        assert loaded.rejects.height == 0, kind
        rows[kind] = loaded.frame.select(pl.len()).collect().item()
    assert rows["gateway"] == truth["requests"]
    assert rows["events"] == len(truth["events"])


def test_refunds_of_three_accounts_recomputed_from_the_files(out: Path) -> None:
    truth = json.loads((out / "truth.json").read_text())["ledger"]["refunds"]
    g = _gateway(out).select(
        "request_id",
        pl.col("status").alias("st"),
        (pl.col("prompt_tokens").fill_null(0) + pl.col("completion_tokens").fill_null(0)).alias("exp"),
    )
    led = pl.read_csv(out / "ledger.csv", schema_overrides={"request_id": pl.String}).sort("ts", "entry_id")
    ded = led.filter(pl.col("kind") == "deduct").join(g, on="request_id", how="left")
    nth = pl.int_range(pl.len()).over("request_id")
    refund = (
        pl.when(pl.col("request_id").is_not_null() & (nth > 0))
        .then(pl.col("tokens"))
        .when(pl.col("st").is_null())
        .then(0)
        .when(~pl.col("st").is_between(200, 299))
        .then(pl.col("tokens"))
        .otherwise((pl.col("tokens") - pl.col("exp")).clip(lower_bound=0))
    )
    got = ded.group_by("account_id").agg(refund.sum().alias("r")).filter(pl.col("r") > 0)
    got_map = dict(zip(got["account_id"], got["r"], strict=True))
    top3 = sorted(truth, key=lambda a: (-truth[a], a))[:3]
    assert {a: got_map.get(a) for a in top3} == {a: truth[a] for a in top3}
    assert got_map == truth


def test_every_429_is_in_truth_with_its_class_and_the_limits_files_cover_every_account(out: Path) -> None:
    truth = json.loads((out / "truth.json").read_text())["rate_limits"]
    g = _gateway(out)
    throttled = g.filter(pl.col(s.STATUS) == 429)
    listed = truth["throttled_requests"]
    assert throttled[s.REQUEST_ID].to_list() == [r["request_id"] for r in listed]
    assert truth["throttled"] == len(listed) == truth["justified"] + truth["wrong"]
    fault = truth["fault"]
    for row in listed:
        if row["class"] == "wrong":
            assert row["model"] == fault["model"] and fault["start"] <= row["ts"] < fault["end"]
        else:
            assert row["class"] == "justified" and row["limit"] in ("rpm", "tpm")
    assert sum(truth["wrong_by_account"].values()) == truth["wrong"] > 0
    assert sum(st["rejected"] for st in truth["storms"]) == truth["justified"] > 0
    accounts = pl.read_csv(out / "accounts.csv")
    assert accounts.columns == ["account_id", "tier"] and accounts.height == SPEC.accounts
    assert set(accounts["tier"]) <= set(truth["tiers"])
    assert "[limits]" in (out / "limits.toml").read_text()


def test_quiet_429s_are_all_genuine() -> None:
    truth = generate(SimSpec(scenario="quiet", rate=2.0, hours=18.0, accounts=200)).truth["rate_limits"]
    assert truth["fault"] is None and truth["wrong"] == 0 and truth["wrong_by_account"] == {}
    assert truth["justified"] == truth["throttled"] > 0


def test_sync_window_and_full_quota_reset_options() -> None:
    spec = SimSpec(
        rate=0.5, hours=16.0, accounts=60, seed=3, sync_window=(time(10), time(14)), quota_reset=time(20, 30)
    )
    sim = generate(spec)
    sync = sim.truth["faults"]["sync_failure"]
    assert (sync["start"], sync["end"]) == ("2026-04-22T10:00:00Z", "2026-04-22T14:00:00Z")
    assert "2026-04-22T20:30:00Z" in sim.truth["resets"]
    resets = sim.ledger.filter(pl.col(s.KIND) == s.LEDGER_RESET)
    # Every account once, within five seconds, as tokens 0 with the new quota in balance_after.
    assert resets.height == 60 and resets[s.ACCOUNT_ID].n_unique() == 60
    assert (resets[s.TS].max() - resets[s.TS].min()).total_seconds() < 5  # type: ignore[operator]
    assert (resets[s.TOKENS] == 0).all() and (resets[s.BALANCE_AFTER] >= 1_000_000).all()
    # The default story is unchanged by the options' existence: sync 12:00-12:30, no mid-day reset.
    default = generate(SimSpec(rate=0.5, hours=16.0, accounts=60, seed=3))
    assert default.truth["faults"]["sync_failure"]["start"] == "2026-04-22T12:00:00Z"
    assert default.ledger.filter(pl.col(s.KIND) == s.LEDGER_RESET).is_empty()
