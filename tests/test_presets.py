"""Presets: LiteLLM spend logs read as the gateway and as a ledger in US dollars, checked against the
price card; detection from field names, `--preset`, `[<kind>] preset`, and dollars read exactly.

tests/fixtures/presets/litellm_spend.csv has the columns of LiteLLM's LiteLLM_SpendLogs table. Prices
of the card below: gpt-4o 2.50 / 10.00 $ per million, gpt-4o-mini 0.15 / 0.60. By hand:
    a1  100 × 2.5 + 20 × 10    = 450 µ$, spent 0.00045   -> ok
    a2  1000 × 2.5 + 50 × 10   = 3000 µ$, spent 0.0035    -> overcharge, 500 µ$ owed
    a3  4 × 0.15 + 3 × 0.60    = 2.4 -> 3 µ$ (ceil), spent 2.4e-06 -> 3 µ$: ok
    a4  a failure with spend 0.0                         -> ok (charged nothing): failed_free
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import Preset, app
from analyzer.config import ModelPrice, Settings, SourceConfig, settings_from_dict
from analyzer.errors import ConfigError
from analyzer.ingest import load
from analyzer.reconcile import reconcile
from analyzer.report.notes import sentences
from analyzer.schema import PresetName

SPEND = Path(__file__).parent / "fixtures" / "presets" / "litellm_spend.csv"
KEY_A = "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
KEY_B = "5b1e2cd2a4a0f0a5a5e0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f"
PRICES = {
    "gpt-4o-2024-08-06": ModelPrice(Decimal("2.50"), Decimal("10.00")),
    "gpt-4o-mini-2024-07-18": ModelPrice(Decimal("0.15"), Decimal("0.60")),
}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_litellm_spend_log_as_the_gateway() -> None:
    loaded = load("gateway", [SPEND], Settings())
    report = loaded.inputs[0]
    assert (report.preset, report.rows_rejected) == ("litellm", 0)
    columns = [
        "request_id",
        "ts",
        "latency_ms",
        "status",
        "account_id",
        "model",
        "model_requested",
        "upstream",
    ]
    rows = loaded.frame.sort("_line").select(columns).collect().rows()
    api = "https://api.openai.com/v1"
    assert rows == [
        ("chatcmpl-a1", _t("2026-04-22 09:00:00"), 1250.0, 200, KEY_A, "gpt-4o-2024-08-06", "gpt-4o", api),
        ("chatcmpl-a2", _t("2026-04-22 09:01:00"), 2000.0, 200, KEY_A, "gpt-4o-2024-08-06", "gpt-4o", api),
        (
            "chatcmpl-a3",
            _t("2026-04-22 09:02:00"),
            300.0,
            200,
            KEY_B,
            "gpt-4o-mini-2024-07-18",
            "gpt-4o-mini",
            api,
        ),
        ("chatcmpl-a4", _t("2026-04-22 09:03:00"), 30000.0, 500, KEY_B, "gpt-4o-2024-08-06", "gpt-4o", api),
    ]
    assert report.fields["latency_ms"] == "endTime - startTime"


def test_litellm_spend_log_as_json_lines(tmp_path: Path) -> None:
    # The same rows as JSON objects (numbers as numbers, the metadata nested): the same values.
    frame = pl.read_csv(SPEND, infer_schema=False).with_columns(
        pl.col("spend", "prompt_tokens", "completion_tokens", "total_tokens").cast(pl.Float64),
        pl.col("metadata").str.json_decode(pl.Struct({"user_api_key_alias": pl.String})),
    )
    path = tmp_path / "spend.jsonl"
    frame.write_ndjson(path)
    csv_rows = load("ledger", [SPEND], Settings()).frame.sort("_line").select("entry_id", "tokens").collect()
    loaded = load("ledger", [path], Settings())
    assert loaded.inputs[0].preset == "litellm"
    assert loaded.frame.sort("_line").select("entry_id", "tokens").collect().equals(csv_rows)
    gateway = load("gateway", [path], Settings()).frame.sort("_line").select("latency_ms", "prompt_tokens")
    assert gateway.collect().rows() == [(1250.0, 100), (2000.0, 1000), (300.0, 4), (30000.0, 0)]


def test_litellm_spend_log_as_a_ledger_in_micro_dollars() -> None:
    loaded = load("ledger", [SPEND], Settings())
    report = loaded.inputs[0]
    assert (report.preset, report.amounts, report.rows_rejected) == ("litellm", "usd", 0)
    rows = (
        loaded.frame.sort("_line").select("entry_id", "ts", "kind", "tokens", "account_id").collect().rows()
    )
    assert rows == [
        ("chatcmpl-a1", _t("2026-04-22 09:00:01.250"), "deduct", 450, KEY_A),
        ("chatcmpl-a2", _t("2026-04-22 09:01:02"), "deduct", 3500, KEY_A),
        ("chatcmpl-a3", _t("2026-04-22 09:02:00.300"), "deduct", 3, KEY_B),
        ("chatcmpl-a4", _t("2026-04-22 09:03:30"), "deduct", 0, KEY_B),
    ]
    assert report.fields["kind"] == "=deduct"
    assert report.fields["tokens"] == "spend (USD, as micro-dollars)"


def test_a_dollar_ledger_is_reconciled_against_the_price_card() -> None:
    settings = Settings(prices=PRICES)
    gateway = load("gateway", [SPEND], settings).frame
    ledger = load("ledger", [SPEND], settings).frame
    r = reconcile(gateway, ledger, settings, money=True)
    kinds = {k: v.count for k, v in r.by_kind.items() if v.count}
    assert kinds == {"ok": 3, "overcharge": 1}
    assert (r.request_buckets["charged_ok"], r.request_buckets["failed_free"]) == (2, 1)
    assert (r.tokens_expected, r.tokens_deducted, r.refund_tokens_total) == (450 + 3000 + 3, 3953, 500)
    assert r.refund_usd == "0.0005"
    assert r.accounts.filter(pl.col("refund_tokens") > 0).select("account_id", "refund_usd").rows() == [
        (KEY_A, "0.0005")
    ]
    assert any("micro-dollars" in n for n in sentences(r.notes))
    # Read as tokens (money=False) the same amounts are judged against 1 a token: a1 (120 tokens, 450
    # deducted) and a2 (1050, 3500) are overcharges, a3 (7, 3) an undercharge.
    as_tokens = reconcile(gateway, ledger, settings).by_kind
    assert (as_tokens["overcharge"].count, as_tokens["undercharge"].count) == (2, 1)


def test_an_unpriced_model_is_named() -> None:
    settings = Settings(prices={"gpt-4o-2024-08-06": PRICES["gpt-4o-2024-08-06"]})
    r = reconcile(
        load("gateway", [SPEND], settings).frame,
        load("ledger", [SPEND], settings).frame,
        settings,
        money=True,
    )
    assert any("no [prices.<model>] for gpt-4o-mini-2024-07-18" in n for n in sentences(r.notes))


def _without(tmp_path: Path, column: str) -> Path:
    frame = pl.read_csv(SPEND, infer_schema=False).drop(column)
    path = tmp_path / "spend.csv"
    frame.write_csv(path)
    return path


def test_detected_only_with_every_signature_field(tmp_path: Path) -> None:
    # Without `spend` it is not a spend log: read by aliases (no latency, no preset).
    report = load("gateway", [_without(tmp_path, "spend")], Settings()).inputs[0]
    assert report.preset is None
    assert report.fields["latency_ms"] is None


def test_a_named_preset_is_used_without_its_signature(tmp_path: Path) -> None:
    path = _without(tmp_path, "spend")
    settings = settings_from_dict({"gateway": {"preset": "litellm"}})
    assert load("gateway", [path], settings).inputs[0].preset == "litellm"
    assert load("gateway", [path], Settings().with_preset("litellm")).inputs[0].preset == "litellm"


def test_a_spend_log_without_status_is_all_answered(tmp_path: Path) -> None:
    loaded = load("gateway", [_without(tmp_path, "status")], Settings())
    assert loaded.frame.select("status").collect()["status"].to_list() == [200, 200, 200, 200]
    assert loaded.inputs[0].fields["status"] == "=200"


def test_the_mapping_wins_over_the_preset() -> None:
    settings = Settings(gateway=SourceConfig(fields={"account_id": "user"}))
    loaded = load("gateway", [SPEND], settings)
    accounts = loaded.frame.sort("_line").select("account_id").collect()["account_id"].to_list()
    assert accounts == ["alice", "alice", "bob", "bob"]
    # latency_ms mapped by hand is read as mapped: a timestamp is not a number of milliseconds.
    mapped = Settings(gateway=SourceConfig(fields={"latency_ms": "endTime"}))
    assert load("gateway", [SPEND], mapped).inputs[0].rejects_by_reason == {"bad_value:latency_ms": 4}


@pytest.mark.parametrize(
    ("spend", "micro"),
    [
        pytest.param("0.00045", 450, id="decimal"),
        pytest.param("1.2345e-05", 13, id="exponent-rounded-up"),
        pytest.param("2", 2_000_000, id="whole-dollars"),
        pytest.param("0.0000010", 1, id="exact-micro"),
        pytest.param("0.0000010000001", 1, id="beyond-12-decimals-ignored"),
        pytest.param("123456.789012", 123_456_789_012, id="large"),
    ],
)
def test_dollars_are_read_exactly(tmp_path: Path, spend: str, micro: int) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text(f"ts,account_id,kind,tokens\n2026-04-22T09:00:00Z,a,deduct,{spend}\n", encoding="utf-8")
    settings = settings_from_dict({"ledger": {"units": {"tokens": "usd"}}})
    loaded = load("ledger", [path], settings)
    assert loaded.frame.select("tokens").collect().item() == micro


def test_dollars_that_do_not_parse_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text("ts,account_id,kind,tokens\n2026-04-22T09:00:00Z,a,deduct,$3\n", encoding="utf-8")
    loaded = load("ledger", [path], settings_from_dict({"ledger": {"units": {"tokens": "usd"}}}))
    assert loaded.rejects["reason"].to_list() == ["bad_value:tokens"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param({"gateway": {"preset": "helicone"}}, "gateway.preset", id="unknown-preset"),
        pytest.param({"gateway": {"units": {"tokens": "usd"}}}, "gateway.fields.tokens", id="usd-on-gateway"),
        pytest.param(
            {"ledger": {"units": {"tokens": "eur"}}}, "ledger.units.tokens", id="unknown-amount-unit"
        ),
    ],
)
def test_bad_preset_settings_name_the_key(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict(raw)
    assert err.value.field == field


def test_the_cli_preset_choices_are_the_presets() -> None:
    assert [p.value for p in Preset] == [p.value for p in PresetName]


def test_cli_reconcile_and_inspect_of_a_spend_log(tmp_path: Path) -> None:
    config = tmp_path / "prices.toml"
    config.write_text(
        '[prices."gpt-4o-2024-08-06"]\ninput_per_million = "2.50"\noutput_per_million = "10.00"\n'
        '[prices."gpt-4o-mini-2024-07-18"]\ninput_per_million = "0.15"\noutput_per_million = "0.60"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    args = ["reconcile", "--gateway", str(SPEND), "--ledger", str(SPEND), "--config", str(config)]
    result = runner.invoke(app, [*args, "--preset", "litellm", "--json", "-", "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [i["preset"] for i in doc["inputs"]] == ["litellm", "litellm"]
    assert (doc["ledger"]["refund_tokens_total"], doc["ledger"]["refund_usd"]) == (500, "0.0005")
    shown = runner.invoke(app, ["inspect", str(SPEND), "--kind", "ledger"])
    assert shown.exit_code == 0, shown.output
    assert "(preset" in shown.output and "litellm)" in shown.output


USAGE_EXPORT = Path(__file__).parent / "fixtures" / "presets" / "openai_usage.csv"


def test_openai_usage_export_is_detected_and_read() -> None:
    loaded = load("usage", [USAGE_EXPORT], Settings())
    assert (loaded.inputs[0].preset, loaded.inputs[0].rows_rejected) == ("openai_usage", 0)
    rows = loaded.frame.sort("_line").select("ts", "model", "requests", "prompt_tokens", "cached_tokens")
    assert rows.collect().rows()[:2] == [
        (_t("2026-04-21 00:00:00"), "gpt-4o-2024-08-06", 40, 52000, 0),
        (_t("2026-04-22 00:00:00"), "gpt-4o-2024-08-06", 2, 1100, 0),
    ]


def test_usage_totals_against_the_gateway() -> None:
    from analyzer.reconcile.totals import usage_totals

    gateway = load("gateway", [SPEND], Settings()).frame
    export = load("usage", [USAGE_EXPORT], Settings()).frame
    got = usage_totals(gateway, export)
    # 2026-04-21 is not a day of the gateway's: left out. The failed a4 is not an answered request.
    assert got.select("model", "gateway_requests", "export_requests", "gateway_completion_tokens",
                      "export_completion_tokens", "match").rows() == [
        ("gpt-4o-2024-08-06", 2, 2, 70, 70, True),
        ("gpt-4o-mini-2024-07-18", 1, 1, 3, 5, False),
        ("o4-mini-2025-04-16", 0, 1, 0, 900, False),
    ]  # fmt: skip


def test_usage_totals_count_cached_tokens_when_the_gateway_has_them() -> None:
    from analyzer.reconcile.totals import usage_totals

    day = datetime(2026, 4, 22, 9, tzinfo=UTC)
    gateway = pl.LazyFrame(
        {"ts": [day, day], "model": ["m", "m"], "status": [200, 200], "prompt_tokens": [10, 20],
         "completion_tokens": [1, 2], "cached_tokens": [5, None]},
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )  # fmt: skip
    export = pl.LazyFrame(
        {"ts": [day.replace(hour=0)], "model": ["m"], "requests": [2], "prompt_tokens": [30],
         "completion_tokens": [3], "cached_tokens": [6]},
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )  # fmt: skip
    row = usage_totals(gateway, export).row(0, named=True)
    assert (row["gateway_cached_tokens"], row["export_cached_tokens"], row["match"]) == (5, 6, False)


def test_report_with_a_usage_export(tmp_path: Path) -> None:
    import jsonschema

    from analyzer.report.jsonreport import schema

    md = tmp_path / "report.md"
    args = ["report", "--gateway", str(SPEND), "--usage", str(USAGE_EXPORT), "--markdown", str(md)]
    result = CliRunner().invoke(app, [*args, "--json", "-", "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, schema())
    assert [r["match"] for r in doc["usage_totals"]] == [True, False, False]
    text = md.read_text(encoding="utf-8")
    assert "## Usage export" in text and "1 of 3 match" in text
    assert "| 2026-04-22 | o4-mini-2025-04-16 | 0 / 1 | 0 / 300 | 0 / 900 | 0 / 0 | **no** |" in text


def test_terminal_report_lists_the_usage_mismatches() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["report", "--gateway", str(SPEND), "--usage", str(USAGE_EXPORT)])
    assert shown.exit_code == 0, shown.output
    assert "Usage export: 1 of 3 days × models match" in shown.output
    assert "o4-mini-2025-04-16" in shown.output and "0 / 900" in shown.output
    plain = runner.invoke(app, ["report", "--gateway", str(SPEND)])
    assert plain.exit_code == 0, plain.output
    assert "Usage export" not in plain.output
