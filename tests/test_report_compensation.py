"""The Compensation section end to end: JSON keys (a contract), the sentence, --compensation, --fail-on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.report import schema

runner = CliRunner()
T0 = datetime(2026, 4, 22, 9, tzinfo=UTC)


def _iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def day(tmp_path: Path) -> Path:
    """Account a: overcharged 20 before the 30-minute reset (restored 40) and 5 after it. Account b: no
    reset, overcharged 7. Account ent (SLA): 1,000 requests over 100 minutes, 2 failed (99.8%: 10%)."""
    gw = [
        {
            "ts": _iso(m),
            "request_id": rid,
            "account_id": acct,
            "model": "m",
            "status": 200,
            "prompt_tokens": 10,
            "completion_tokens": 0,
            "latency_ms": 5.0,
        }
        for m, rid, acct in ((10, "r1", "a"), (20, "r2", "a"), (40, "r3", "a"), (15, "b1", "b"))
    ]
    for i in range(1000):
        gw.append(
            {
                "ts": _iso(i / 10),
                "request_id": f"e{i}",
                "account_id": "ent",
                "model": "m",
                "status": 502 if i in (500, 501) else 200,
                "prompt_tokens": 1000 if i == 0 else 0,
                "completion_tokens": 500 if i == 0 else 0,
                "latency_ms": 5.0,
            }
        )
    folder = tmp_path / "day"
    folder.mkdir()
    (folder / "gateway.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gw))
    ledger = [
        ("a0", 1, "a", "", "grant", 1000, 1000),
        ("a1", 10, "a", "r1", "deduct", 30, 970),
        ("a2", 20, "a", "r2", "deduct", 10, 960),
        ("a3", 30, "a", "", "reset", 0, 1000),
        ("a4", 40, "a", "r3", "deduct", 15, 985),
        ("b0", 1, "b", "", "grant", 500, 500),
        ("b2", 15, "b", "b1", "deduct", 17, 483),
        ("e0", 0.05, "ent", "e0", "deduct", 1500, 98500),
    ]
    lines = ["entry_id,ts,account_id,request_id,kind,tokens,balance_after"]
    lines += [f"{e},{_iso(m)},{a},{r},{k},{t},{b}" for e, m, a, r, k, t, b in ledger]
    (folder / "ledger.csv").write_text("\n".join(lines) + "\n")
    (folder / "accounts.csv").write_text("account_id,tier\nent,enterprise\nfree1,free\n")
    (folder / "analyzer.toml").write_text(
        '[sla]\naccounts = "accounts.csv"\ntiers = ["enterprise"]\nwindow = "report"\n'
        '[prices.m]\ninput_per_million = "0.60"\noutput_per_million = "2.50"\n'
    )
    return folder


def test_compensation_json_markdown_file_and_fail_on(day: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(
        app,
        [
            "report",
            str(day),
            "--json",
            "-",
            "--markdown",
            str(out / "pm.md"),
            "--compensation",
            str(out / "comp.csv"),
            "--fail-on",
            "not_whole>1",
            "--quiet",
        ],
    )
    assert result.exit_code == 1, result.output  # a and b are not whole: 2 > 1
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, schema())
    comp = doc["compensation"]
    assert set(comp) == {
        "resets",
        "accounts_made_whole",
        "accounts_not_made_whole",
        "tokens_owed_after_reset",
        "tokens_restored_beyond_owed",
        "accounts",
        "sla",
    }
    assert (comp["accounts_made_whole"], comp["accounts_not_made_whole"]) == (0, 2)
    assert (comp["tokens_owed_after_reset"], comp["tokens_restored_beyond_owed"]) == (5 + 7, 20)
    by_id = {a["account_id"]: a for a in comp["accounts"]}
    assert list(by_id) == ["b", "a", "ent"]  # most still owed first, then the credits
    assert by_id["a"] == {
        "account_id": "a",
        "owed_before_reset": 20,
        "owed_after_reset": 5,
        "restored_by_reset": 40,
        "made_whole": False,
        "availability": None,
        "credit_percent": None,
        "credit_tokens": None,
        "credit_usd_micros": None,
    }
    # 1,500 tokens spent: 1,000 prompt x 0.60 + 500 x 2.50 = 1,850 micro-dollars; 10% of each, rounded down.
    assert by_id["ent"] == {
        "account_id": "ent",
        "owed_before_reset": 0,
        "owed_after_reset": 0,
        "restored_by_reset": 0,
        "made_whole": True,
        "availability": 0.998,
        "credit_percent": 10,
        "credit_tokens": 150,
        "credit_usd_micros": 185,
    }
    assert comp["sla"]["credits"] == [
        {"below": "0.999", "percent": 10},
        {"below": "0.99", "percent": 25},
        {"below": "0.95", "percent": 100},
    ]
    assert (comp["sla"]["accounts"], comp["sla"]["credit_usd_micros_total"]) == (1, 185)
    md = (out / "pm.md").read_text()
    assert md.index("## Impact") < md.index("## Compensation") < md.index("## Timeline")
    assert (
        "The 09:30 reset made 0 of 2 accounts whole; 1 was overcharged after it and is owed 5 tokens; "
        "1 had no reset and is owed 7 tokens. It restored 20 tokens beyond what was owed."
    ) in md
    assert "1 of 1 SLA accounts are credited 150 tokens (USD 0.000185)" in md
    table = pl.read_csv(out / "comp.csv")
    assert table["account_id"].to_list() == ["b", "a", "ent"]
    assert table.filter(pl.col("account_id") == "a")["still_owed"].item() == 5


@pytest.mark.parametrize(("rule", "code"), [("not_whole>1", 1), ("not_whole>2", 0)])
def test_fail_on_not_whole_threshold(day: Path, rule: str, code: int) -> None:
    result = runner.invoke(app, ["report", str(day), "--quiet", "--fail-on", rule])
    assert result.exit_code == code, result.output


def test_terminal_shows_the_compensation(day: Path) -> None:
    result = runner.invoke(app, ["report", str(day)])
    assert "The 09:30 reset made 0 of 2 accounts whole" in result.stdout
    assert "Compensation (3 accounts still owed or credited)" in result.stdout


def test_compensation_file_needs_a_ledger_or_an_sla(tmp_path: Path, day: Path) -> None:
    (day / "ledger.csv").unlink()
    (day / "analyzer.toml").unlink()
    result = runner.invoke(app, ["report", str(day), "--quiet", "--compensation", str(tmp_path / "c.csv")])
    assert result.exit_code == 2 and "no compensation to write" in result.output


def test_a_missing_accounts_file_is_one_line_and_exit_2_before_the_logs_are_read(day: Path) -> None:
    (day / "accounts.csv").unlink()
    result = runner.invoke(app, ["report", str(day), "--quiet"])
    assert result.exit_code == 2 and "accounts.csv: cannot read the accounts file" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_compensation_file_as_parquet_keeps_integer_types(day: Path, tmp_path: Path) -> None:
    path = tmp_path / "comp.parquet"
    result = runner.invoke(app, ["report", str(day), "--quiet", "--compensation", str(path)])
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(path)
    assert table["account_id"].to_list() == ["b", "a", "ent"]
    assert table.schema["credit_usd_micros"] == pl.Int64 and table.schema["made_whole"] == pl.Boolean
    assert table.filter(pl.col("account_id") == "ent")["credit_usd_micros"].item() == 185
