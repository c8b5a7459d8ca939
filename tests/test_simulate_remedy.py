"""The remedy scenario end to end: the reset's coverage and the SLA credits exactly as the simulator's truth."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest

from analyzer.pipeline import ReportRequest, run_report
from analyzer.reconcile.compensation import Compensation
from analyzer.simulate import SimSpec, generate, simulate


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Compensation, dict[str, Any], dict[str, Any]]:
    out = tmp_path_factory.mktemp("remedy")
    simulate(out, SimSpec(scenario="remedy", seed=11, hours=18, rate=0.3, accounts=200))
    report = run_report(ReportRequest(directory=out)).report
    assert report.compensation is not None and report.reconciliation is not None
    truth = json.loads((out / "truth.json").read_text())
    breaks = report.reconciliation.by_kind["balance_break"].count
    assert breaks == truth["ledger"]["findings_by_kind"]["balance_break"]  # the tokens-0 resets break nothing
    return report.compensation, truth, json.loads((out / "truth.json").read_text())["sla"]


def test_every_account_is_made_whole_or_not_exactly_as_the_truth(
    day: tuple[Compensation, dict[str, Any], Any],
) -> None:
    comp, truth, _ = day
    remedy = comp.remedy
    assert remedy is not None
    columns = [
        "resets",
        "owed_before_reset",
        "owed_after_reset",
        "restored_by_reset",
        "not_covered",
        "made_whole",
    ]
    got = {row["account_id"]: {c: row[c] for c in columns} for row in remedy.accounts.iter_rows(named=True)}
    expected = truth["remedy"]["accounts"]
    assert got == expected
    assert (remedy.accounts_made_whole, remedy.accounts_not_made_whole) == (
        truth["remedy"]["accounts_made_whole"],
        truth["remedy"]["accounts_not_made_whole"],
    )
    assert remedy.tokens_owed_after_reset == truth["remedy"]["tokens_owed_after_reset"]
    assert remedy.tokens_not_covered == truth["remedy"]["tokens_not_covered"]
    assert remedy.tokens_restored_beyond_owed == truth["remedy"]["tokens_restored_beyond_owed"]
    # The day holds every case: owed after the reset, not covered by it, two resets, no reset.
    values = list(expected.values())
    assert any(a["owed_after_reset"] and a["resets"] for a in values)
    assert any(a["not_covered"] for a in values)
    assert any(a["resets"] == 2 and a["made_whole"] for a in values)
    assert [(e.accounts, e.start.strftime("%H:%M")) for e in remedy.events][0] == (197, "11:20")


def test_accounts_the_reset_missed_are_still_owed_everything(
    day: tuple[Compensation, dict[str, Any], Any],
) -> None:
    comp, truth, _ = day
    assert comp.remedy is not None
    missed = truth["remedy"]["accounts_without_reset"]
    rows = comp.remedy.accounts.filter(pl.col("account_id").is_in(missed))
    assert rows["account_id"].sort().to_list() == sorted(missed) and len(missed) == 3
    assert rows["resets"].to_list() == [0, 0, 0] and not any(rows["made_whole"])
    owed = truth["ledger"]["refunds"]
    assert {a: r for a, r in zip(rows["account_id"], rows["owed_after_reset"], strict=True)} == {
        a: owed[a] for a in missed
    }


def test_sla_credits_are_the_truths(day: tuple[Compensation, dict[str, Any], dict[str, Any]]) -> None:
    comp, _, sla = day
    assert comp.sla is not None and comp.sla.counts_wrong_429
    columns = [
        "requests",
        "failed",
        "credit_percent",
        "spend_tokens",
        "spend_usd_micros",
        "credit_tokens",
        "credit_usd_micros",
    ]
    got = {row["account_id"]: {c: row[c] for c in columns} for row in comp.sla.accounts.iter_rows(named=True)}
    expected = {a: {c: v for c, v in row.items() if c != "wrong_429"} for a, row in sla["accounts"].items()}
    assert got == expected
    assert any(row["wrong_429"] for row in sla["accounts"].values())  # the audit's wrong 429s are in `failed`
    assert len({a["credit_percent"] for a in got.values()}) >= 2  # more than one tier of the table is used


def test_the_launch_scenario_has_no_remedy() -> None:
    truth = generate(SimSpec(hours=1, rate=0.2, accounts=20)).truth
    assert "remedy" not in truth and "sla" not in truth
