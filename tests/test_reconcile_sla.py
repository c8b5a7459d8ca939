"""SLA credits computed by hand at each tier boundary (availability exactly at a threshold): integers only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from analyzer.config import ModelPrice, SlaSettings, SlaWindow, settings_from_dict
from analyzer.errors import ConfigError, InputError
from analyzer.ingest.accounts import read_accounts
from analyzer.reconcile.sla import SlaCredits, sla_credits, sla_window
from analyzer.schema import GATEWAY_COLUMNS, LEDGER

T0 = datetime(2026, 4, 22, 9, tzinfo=UTC)
PRICES = {"m": ModelPrice(input_per_million=Decimal("0.60"), output_per_million=Decimal("2.50"))}

# account: (requests, failed 5xx); default table: below 99.9% -> 10, below 99% -> 25, below 95% -> 100.
TRAFFIC = {
    "at-99.9": (1000, 1),  # exactly 99.9%: not below it -> 0
    "under-99.9": (1000, 2),  # 99.8% -> 10
    "at-99": (100, 1),  # exactly 99%: below 99.9 only -> 10
    "under-99": (100, 2),  # 98% -> 25
    "at-95": (20, 1),  # exactly 95% -> 25
    "under-95": (20, 2),  # 90% -> 100
    "all-good": (1000, 0),  # 100% -> 0
}
# Each account spends one deduction of 1,500 tokens for a request of 1,000 prompt tokens (+ 500 completion):
# 1,000 x 0.60 + 500 x 2.50 = 1,850 micro-dollars.
EXPECTED = {  # credit_percent, credit_tokens (1,500 x p // 100), credit_usd_micros (1,850 x p // 100)
    "at-99.9": (0, 0, 0),
    "under-99.9": (10, 150, 185),
    "at-99": (10, 150, 185),
    "under-99": (25, 375, 462),
    "at-95": (25, 375, 462),
    "under-95": (100, 1500, 1850),
    "all-good": (0, 0, 0),
    "idle": (0, 0, 0),
}


def _frames() -> tuple[pl.LazyFrame, pl.LazyFrame]:
    gw: dict[str, list[object]] = {c: [] for c in GATEWAY_COLUMNS}
    lg: dict[str, list[object]] = {c: [] for c in LEDGER}
    for account, (requests, failed) in TRAFFIC.items():
        for i in range(requests):
            ok = i >= failed
            gw["ts"].append(T0 + timedelta(seconds=i))
            gw["request_id"].append(f"{account}-{i}")
            gw["account_id"].append(account)
            gw["model"].append("m")
            gw["status"].append(200 if ok else 502)
            gw["prompt_tokens"].append(1000 if ok else None)
            gw["completion_tokens"].append(500 if ok else None)
            for c in ("endpoint", "region", "upstream"):
                gw[c].append(None)
            gw["latency_ms"].append(1.0)
        row = (
            T0 + timedelta(seconds=failed),
            f"{account}-e",
            account,
            f"{account}-{failed}",
            "deduct",
            1500,
            None,
        )
        for c, v in zip(LEDGER, row, strict=True):
            lg[c].append(v)
    return pl.DataFrame(gw, schema=GATEWAY_COLUMNS).lazy(), pl.DataFrame(lg, schema=LEDGER).lazy()


def _credits(
    settings: SlaSettings | None = None,
    prices: dict[str, ModelPrice] = PRICES,
    wrong_429: pl.DataFrame | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> SlaCredits:
    gw, lg = _frames()
    accounts = pl.DataFrame({"account_id": [*TRAFFIC, "idle"]})
    return sla_credits(gw, lg, accounts, settings or SlaSettings(), prices, window, wrong_429)


def _by_account(c: SlaCredits) -> dict[str, tuple[int, int, int | None]]:
    rows = c.accounts.select("account_id", "credit_percent", "credit_tokens", "credit_usd_micros").rows()
    return {a: (p, t, u) for a, p, t, u in rows}


def test_credits_at_each_tier_boundary() -> None:
    c = _credits()
    assert _by_account(c) == EXPECTED
    row = c.accounts.filter(pl.col("account_id") == "at-99").row(0, named=True)
    assert (row["requests"], row["failed"], row["spend_tokens"], row["spend_usd_micros"]) == (
        100,
        1,
        1500,
        1850,
    )
    assert c.credit_tokens_total == sum(t for _, t, _ in EXPECTED.values())
    assert c.credit_usd_micros_total == sum(u for _, _, u in EXPECTED.values())
    idle = c.accounts.filter(pl.col("account_id") == "idle").row(0, named=True)
    assert (idle["requests"], idle["availability"]) == (0, None)
    assert (
        c.accounts.schema["credit_tokens"] == pl.Int64 and c.accounts.schema["credit_usd_micros"] == pl.Int64
    )


def test_wrong_429s_count_as_failed_when_given() -> None:
    # at-99 is exactly 99% (10%); 4 wrong 429s in the window make it exactly 95% (25%); the fifth, an hour
    # before the window, would make it 94% (100%) if it counted.
    wrong = pl.DataFrame({"account_id": ["at-99"] * 5, "ts": [T0] * 4 + [T0 - timedelta(hours=1)]})
    inside = _credits(wrong_429=wrong, window=(T0, None))
    assert _by_account(inside)["at-99"] == (25, 375, 462) and inside.counts_wrong_429
    assert _by_account(_credits(wrong_429=wrong))["at-99"] == (100, 1500, 1850)
    off = _credits(SlaSettings(wrong_429=False), wrong_429=wrong)
    assert _by_account(off)["at-99"] == (10, 150, 185) and not off.counts_wrong_429


def test_a_table_of_one_tier_and_no_prices() -> None:
    c = _credits(SlaSettings(credits=((Decimal("0.99"), 50),)), prices={})
    got = _by_account(c)
    assert (
        got["under-99.9"] == (0, 0, None)
        and got["at-99"] == (0, 0, None)
        and got["under-99"] == (50, 750, None)
    )
    assert c.credit_usd_micros_total is None


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        pytest.param(SlaWindow.INCIDENT, (T0, T0 + timedelta(hours=2)), id="incident"),
        pytest.param(
            SlaWindow.MONTH, (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)), id="month"
        ),
        pytest.param(SlaWindow.REPORT, (None, None), id="report"),
    ],
)
def test_windows(window: SlaWindow, expected: tuple[datetime | None, datetime | None]) -> None:
    assert sla_window(window, T0, T0 + timedelta(hours=2)) == expected


def test_the_window_bounds_requests_and_spend() -> None:
    gw, lg = _frames()
    accounts = pl.DataFrame({"account_id": ["under-95"]})
    # [T0 + 1s, ...): 19 requests, one of the two failures, 18 / 19 = 94.7% -> 100; the deduction at T0 + 2s is
    # inside. Up to T0 + 2s: 2 requests both failed, the deduction outside: no spend.
    c = sla_credits(gw, lg, accounts, SlaSettings(), PRICES, (T0 + timedelta(seconds=1), None))
    row = c.accounts.row(0, named=True)
    assert (row["requests"], row["failed"], row["credit_percent"], row["spend_tokens"]) == (19, 1, 100, 1500)
    c = sla_credits(gw, lg, accounts, SlaSettings(), PRICES, (None, T0 + timedelta(seconds=2)))
    row = c.accounts.row(0, named=True)
    assert (row["requests"], row["failed"], row["credit_percent"], row["spend_tokens"]) == (2, 2, 100, 0)


def test_sla_config(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id,tier\nacct-1,enterprise\nacct-2,free\n")
    raw = {
        "sla": {"accounts": "accounts.csv", "tiers": ["enterprise"], "credits": [[0.95, 100], [0.999, 10]]}
    }
    s = settings_from_dict(raw, where=str(tmp_path / "analyzer.toml")).sla
    assert s.accounts == tmp_path / "accounts.csv" and s.tiers == ("enterprise",)
    assert s.credits == ((Decimal("0.999"), 10), (Decimal("0.95"), 100))
    assert read_accounts(tmp_path / "accounts.csv").rows() == [("acct-1", "enterprise"), ("acct-2", "free")]


@pytest.mark.parametrize(
    ("table", "field"),
    [
        pytest.param({"credits": [[1.5, 10]]}, "sla.credits[0]", id="threshold-above-1"),
        pytest.param({"credits": [[0.99, 101]]}, "sla.credits[0]", id="percent-above-100"),
        pytest.param({"credits": [[0.99, 10], [0.99, 20]]}, "sla.credits", id="same-threshold"),
        pytest.param({"window": "week"}, "sla.window", id="unknown-window"),
        pytest.param({"tiers": ["enterprise"]}, "sla.tiers", id="tiers-without-accounts"),
        pytest.param({"credit": []}, "sla.credit", id="unknown-key"),
    ],
)
def test_sla_config_errors_name_the_key(table: dict[str, object], field: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        settings_from_dict({"sla": table}, where=str(tmp_path / "analyzer.toml"))
    assert e.value.field == field


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("tier\nx\n", 1, id="no-account-column"),
        pytest.param('account_id\na\n""\n', 3, id="empty-id"),
        pytest.param("account_id\na\nb\na\n", 4, id="twice"),
    ],
)
def test_accounts_file_errors_name_the_line(text: str, line: int, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        read_accounts(path)
    assert e.value.line == line


def test_sla_tiers_alone_take_the_rate_limit_audits_accounts_file(tmp_path: Path) -> None:
    from analyzer.reconcile.compensation import sla_accounts

    (tmp_path / "accounts.csv").write_text("account_id,tier\nacct-1,tier2\nacct-2,tier0\nacct-3,tier2\n")
    raw = {
        "sla": {"tiers": ["tier2"]},
        "limits": {
            "accounts": str(tmp_path / "accounts.csv"),
            "tiers": {"tier0": {"rpm": 1}, "tier2": {"rpm": 9}},
        },
    }
    settings = settings_from_dict(raw, where=str(tmp_path / "analyzer.toml"))
    covered = sla_accounts(settings)
    assert covered is not None and sorted(covered["account_id"]) == ["acct-1", "acct-3"]
