"""Reconciliation rules on small hand-made ledgers with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from analyzer.config import ModelPrice, ModelWeights, ReconcileSettings, Settings
from analyzer.reconcile import reconcile
from analyzer.report.notes import sentences
from analyzer.schema import GATEWAY_COLUMNS, LEDGER

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)


def _t(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _gateway(rows: list[tuple[float, str | None, str, str, int, int | None, int | None]]) -> pl.LazyFrame:
    """Rows of (minute, request_id, account, model, status, prompt, completion), framed by edge requests."""
    rows = [(0, "edge0", "z", "m", 200, 0, 0), *rows, (120, "edge1", "z", "m", 200, 0, 0)]
    n = len(rows)
    return pl.DataFrame(
        {
            "ts": [_t(r[0]) for r in rows],
            "request_id": [r[1] for r in rows],
            "account_id": [r[2] for r in rows],
            "model": [r[3] for r in rows],
            "endpoint": [None] * n,
            "region": [None] * n,
            "upstream": [None] * n,
            "status": [r[4] for r in rows],
            "latency_ms": [1.0] * n,
            "prompt_tokens": [r[5] for r in rows],
            "completion_tokens": [r[6] for r in rows],
        },
        schema=GATEWAY_COLUMNS,
    ).lazy()


def _ledger(rows: list[tuple[float, str, str, str | None, str, int, int | None]]) -> pl.LazyFrame:
    """Rows of (minute, entry_id, account, request_id, kind, tokens, balance_after)."""
    return pl.DataFrame(
        {
            "ts": [_t(r[0]) for r in rows],
            "entry_id": [r[1] for r in rows],
            "account_id": [r[2] for r in rows],
            "request_id": [r[3] for r in rows],
            "kind": [r[4] for r in rows],
            "tokens": [r[5] for r in rows],
            "balance_after": [r[6] for r in rows],
        },
        schema=LEDGER,
    ).lazy()


def _kinds(gw: pl.LazyFrame, lg: pl.LazyFrame, settings: Settings | None = None) -> dict[str, int]:
    r = reconcile(gw, lg, settings or Settings())
    assert all(i.holds for i in r.invariants), r.invariants
    return {k: v.count for k, v in r.by_kind.items() if v.count}


@pytest.mark.parametrize(
    ("amount", "tolerance", "kind"),
    [
        pytest.param(15, 0, "ok", id="exact"),
        pytest.param(16, 0, "overcharge", id="one-over"),
        pytest.param(16, 1, "ok", id="within-tolerance-over"),
        pytest.param(14, 1, "ok", id="within-tolerance-under"),
        pytest.param(13, 1, "undercharge", id="beyond-tolerance-under"),
    ],
)
def test_tolerance(amount: int, tolerance: int, kind: str) -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 5)])
    lg = _ledger([(10, "e1", "a", "r1", "deduct", amount, 100)])
    s = Settings(reconcile=ReconcileSettings(tolerance_tokens=tolerance))
    assert _kinds(gw, lg, s) == {kind: 1}


def test_model_weights_set_expected() -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 5)])
    lg = _ledger([(10, "e1", "a", "r1", "deduct", 25, 100)])
    assert _kinds(gw, lg) == {"overcharge": 1}
    s = Settings(weights={"m": ModelWeights(prompt=1, completion=3)})
    assert _kinds(gw, lg, s) == {"ok": 1}


def test_duplicate_of_overcharge_refunds_whole_and_excess() -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 5)])
    lg = _ledger([(10, "e1", "a", "r1", "deduct", 25, 75), (11, "e2", "a", "r1", "deduct", 25, 50)])
    r = reconcile(gw, lg, Settings())
    assert r.by_kind["overcharge"].refund_tokens == 10
    assert r.by_kind["duplicate"].refund_tokens == 25
    assert r.request_buckets["overcharged"] == 1
    assert r.accounts.filter(pl.col("account_id") == "a")["refund_tokens"].item() == 35


def test_orphans_out_of_span_and_null_request_id() -> None:
    gw = _gateway([])
    lg = _ledger(
        [
            (60, "e1", "a", None, "deduct", 5, 90),
            (60, "e2", "a", "gone", "deduct", 5, 85),
            (2, "e3", "a", "gone2", "deduct", 5, 95),
            (200, "e4", "a", "later", "deduct", 5, 80),
        ]
    )
    assert _kinds(gw, lg) == {"orphan": 2, "out_of_span": 2}
    r = reconcile(gw, lg, Settings(reconcile=ReconcileSettings(refund_orphans=True)))
    assert r.by_kind["orphan"].refund_tokens == 10
    assert r.by_kind["out_of_span"].refund_tokens == 0


@pytest.mark.parametrize(
    ("statuses", "refund"),
    [pytest.param((), 7, id="every-non-2xx"), pytest.param((503,), 0, id="only-503")],
)
def test_refundable_statuses_policy(statuses: tuple[int, ...], refund: int) -> None:
    gw = _gateway([(10, "r1", "a", "m", 502, None, None)])
    lg = _ledger([(10, "e1", "a", "r1", "deduct", 7, 93)])
    r = reconcile(gw, lg, Settings(reconcile=ReconcileSettings(refundable_statuses=statuses)))
    assert r.by_kind["failed_charged"] == type(r.by_kind["ok"])(1, 7, refund)
    assert r.request_buckets["charged_on_failure"] == 1


def test_request_buckets_zero_tokens_unbilled_and_failed_free() -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 3, 2), (11, "r2", "a", "m", 500, None, None)])
    r = reconcile(gw, _ledger([]), Settings())
    # Two edge requests with zero tokens are charged_ok without a deduction.
    assert r.request_buckets == {
        "charged_ok": 2,
        "overcharged": 0,
        "undercharged": 0,
        "charged_on_failure": 0,
        "unbilled": 1,
        "failed_free": 1,
    }
    assert r.findings["kind"].to_list() == ["unbilled"]
    assert r.findings["expected"].to_list() == [5]


def test_balance_break_reset_refund_and_null_balance() -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 0), (20, "r2", "a", "m", 200, 10, 0)])
    lg = _ledger(
        [
            (5, "g1", "a", None, "grant", 100, 100),
            (10, "e1", "a", "r1", "deduct", 10, 90),
            (15, "f1", "a", None, "refund", 4, 94),
            (20, "e2", "a", "r2", "deduct", 10, 80),  # should be 84: a break
            (30, "x1", "a", None, "reset", 500, 500),
            (40, "x2", "a", None, "grant", 5, None),
        ]
    )
    r = reconcile(gw, lg, Settings())
    assert r.findings.filter(pl.col("kind") == "balance_break")["entry_id"].to_list() == ["e2"]
    assert r.accounts.filter(pl.col("account_id") == "a")["already_refunded"].item() == 4
    assert r.resets == (_t(30),)
    assert any("balance_after" in n for n in sentences(r.notes))


@pytest.mark.parametrize(
    ("reset_tokens", "reset_after"),
    [
        pytest.param(500, 500, id="new-balance-in-tokens-and-balance_after"),
        pytest.param(500, None, id="new-balance-in-tokens-only"),
        pytest.param(0, 500, id="tokens-0-balance_after-set"),
    ],
)
def test_each_reset_convention_follows_without_a_break(reset_tokens: int, reset_after: int | None) -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 0), (40, "r2", "a", "m", 200, 10, 0)])
    lg = _ledger(
        [
            (5, "g1", "a", None, "grant", 100, 100),
            (10, "e1", "a", "r1", "deduct", 10, 90),
            (30, "x1", "a", None, "reset", reset_tokens, reset_after),
            (40, "e2", "a", "r2", "deduct", 10, 490),
        ]
    )
    r = reconcile(gw, lg, Settings())
    assert r.by_kind["balance_break"].count == 0
    assert not any("resets have tokens" in n for n in sentences(r.notes))
    replay = next(i for i in r.invariants if i.name.startswith("balances replay"))
    assert replay.holds and replay.detail.startswith("1 accounts replayed"), replay.detail


@pytest.mark.parametrize(
    ("reset_tokens", "reset_after"),
    [pytest.param(500, None, id="tokens-only"), pytest.param(0, 500, id="balance_after-only")],
)
def test_an_entry_after_a_reset_is_checked_against_the_balance_it_set(
    reset_tokens: int, reset_after: int | None
) -> None:
    gw = _gateway([(40, "r2", "a", "m", 200, 10, 0)])
    lg = _ledger(
        [
            (5, "g1", "a", None, "grant", 100, 100),
            (30, "x1", "a", None, "reset", reset_tokens, reset_after),
            (40, "e2", "a", "r2", "deduct", 10, 80),  # 490 follows from the reset
        ]
    )
    r = reconcile(gw, lg, Settings())
    breaks = r.findings.filter(pl.col("kind") == "balance_break")
    assert breaks["entry_id"].to_list() == ["e2"] and breaks["expected"].to_list() == [490]


def test_resets_whose_tokens_and_balance_after_disagree_are_one_note_not_breaks() -> None:
    gw = _gateway([(40, "r2", "a", "m", 200, 10, 0)])
    rows: list[tuple[float, str, str, str | None, str, int, int | None]] = [
        (5, "g1", "a", None, "grant", 100, 100),
        (30, "x1", "a", None, "reset", 400, 500),  # tokens the amount restored, balance_after the balance
        (40, "e2", "a", "r2", "deduct", 10, 490),
    ]
    rows += [(5, f"g{i}", f"b{i}", None, "grant", 100, 100) for i in range(3)]
    rows += [(30, f"x{i}", f"b{i}", None, "reset", 7, 500) for i in range(3)]
    r = reconcile(gw, _ledger(rows), Settings())
    assert r.by_kind["balance_break"].count == 0
    assert [n for n in sentences(r.notes) if "resets have tokens" in n] == [
        "reconcile: 4 resets have tokens other than 0 and other than their balance_after; "
        "balance_after is taken as the balance each reset set"
    ]


def test_balance_wiped_flag() -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 5)])
    lg = _ledger([(5, "g", "a", None, "grant", 40, 40), (10, "e1", "a", "r1", "deduct", 40, 0)])
    r = reconcile(gw, lg, Settings())
    assert r.findings.filter(pl.col("kind") == "overcharge")["balance_wiped"].to_list() == [True]


def test_prices_give_exact_decimal_usd() -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 5)])
    lg = _ledger([(10, "e1", "a", "r1", "deduct", 15, 85), (11, "e2", "a", "r1", "deduct", 15, 70)])
    prices = {"m": ModelPrice(input_per_million=Decimal("0.6"), output_per_million=Decimal("2.5"))}
    r = reconcile(gw, lg, Settings(prices=prices))
    # The duplicate is refunded whole: 10 prompt tokens at 0.6/M and 5 completion at 2.5/M.
    assert r.refund_usd == str(Decimal(10) * Decimal("0.0000006") + Decimal(5) * Decimal("0.0000025"))
    assert r.accounts["refund_usd"].to_list() == [r.refund_usd]


def test_completion_multiplier_pattern() -> None:
    rows = [(10 + i, f"r{i}", "a", "k", 200, 100 + i, 10 + i) for i in range(20)]
    gw = _gateway(rows)
    lg = _ledger([(10 + i, f"e{i}", "a", f"r{i}", "deduct", 100 + i + 3 * (10 + i), None) for i in range(20)])
    r = reconcile(gw, lg, Settings())
    [p] = r.patterns
    assert (p.kind, p.model, p.multiplier, p.entries, p.start, p.end) == (
        "completion_multiplied",
        "k",
        3,
        20,
        _t(10),
        _t(29),
    )


def test_duplicates_bunched_in_a_window_are_a_sync_failure() -> None:
    rows = [(i, f"r{i}", "a", "m", 200, 1, 1) for i in range(1, 119)]
    gw = _gateway(rows)
    firsts = [(i, f"e{i}", "a", f"r{i}", "deduct", 2, None) for i in range(1, 119)]
    dups = [(60 + i + 0.5, f"d{i}", "a", f"r{60 + i}", "deduct", 2, None) for i in range(8)]
    r = reconcile(gw, _ledger([*firsts, *dups]), Settings())
    [p] = [p for p in r.patterns if p.kind == "duplicate_burst"]
    assert (p.start, p.end, p.entries, p.share) == (_t(60.5), _t(67.5), 8, 1.0)


def test_empty_inputs_reconcile_to_zero() -> None:
    from analyzer.schema import empty

    r = reconcile(empty("gateway").lazy(), empty("ledger").lazy(), Settings())
    assert (r.deductions, r.refund_tokens_total, r.accounts.height, r.findings.height) == (0, 0, 0, 0)
    assert all(i.holds for i in r.invariants)


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        pytest.param(
            "2026-04-22T23:09:31", "2026-04-22T23:09:50", "at 2026-04-22 23:09 UTC", id="one-minute"
        ),
        pytest.param(
            "2026-04-22T09:01:53",
            "2026-04-22T11:30:05",
            "on 2026-04-22 from 09:01 to 11:30 UTC",
            id="one-day",
        ),
        pytest.param(
            "2026-04-22T23:50:00",
            "2026-04-23T00:10:00",
            "from 2026-04-22 23:50 to 2026-04-23 00:10 UTC",
            id="two-days",
        ),
    ],
)
def test_pattern_windows_are_written_with_the_date_once(start: str, end: str, text: str) -> None:
    from analyzer.reconcile.patterns import _span

    assert _span(datetime.fromisoformat(start), datetime.fromisoformat(end)) == text


@pytest.mark.parametrize(
    ("prompt", "amount", "fits"),
    [
        pytest.param(10**18, 10**18, True, id="large-but-fits"),
        pytest.param(10**18, 4 * 10**18, False, id="ledger-past-2^63"),  # 3 x 4e18 deducted
        pytest.param(5 * 10**18, 1, False, id="one-request-past-2^63"),  # prompt + completion wraps
    ],
)
def test_token_totals_past_64_bits_are_a_broken_invariant(prompt: int, amount: int, fits: bool) -> None:
    # Int64 sums wrap around without an error: the totals would be silently wrong, so it is said.
    gw = _gateway([(10 + i, f"r{i}", "a", "m", 200, prompt, prompt) for i in range(3)])
    lg = _ledger([(10 + i, f"e{i}", "a", f"r{i}", "deduct", amount, None) for i in range(3)])
    r = reconcile(gw, lg, Settings())
    (check,) = [i for i in r.invariants if i.name == "token totals fit in 64-bit integers"]
    assert check.holds is fits
    others = [i.holds for i in r.invariants if i is not check]
    assert fits is False or all(others)
    if not fits:
        assert check.detail.startswith("ledger and gateway tokens add up to about ")


def test_negative_deductions_are_said_in_a_note() -> None:
    # Some ledgers write debits as negative numbers: read as positive amounts they would be undercharges
    # and negative refunds without a word.
    gw = _gateway([(10 + i, f"r{i}", "a", "m", 200, 100, 20) for i in range(3)])
    lg = _ledger([(10 + i, f"e{i}", "a", f"r{i}", "deduct", -120 if i else 120, None) for i in range(3)])
    notes = [n for n in sentences(reconcile(gw, lg, Settings()).notes) if "negative tokens" in n]
    assert notes == [
        "reconcile: 2 of 3 deductions have negative tokens; a deduction is read as a positive amount, so "
        "their kinds, refunds and balances are not meaningful (a ledger that writes debits as negative "
        "numbers needs its sign flipped first)"
    ]
    positive = _ledger([(10 + i, f"e{i}", "a", f"r{i}", "deduct", 120, None) for i in range(3)])
    assert not [n for n in sentences(reconcile(gw, positive, Settings()).notes) if "negative tokens" in n]


def test_a_ledgers_own_kind_words_are_mapped_or_named_in_a_note(tmp_path: Path) -> None:
    # "debit"/"credit" ledgers: unmapped, nothing is reconciled and the note names the words and the fix;
    # mapped in [ledger.kinds], they reconcile as deduct/refund.
    from analyzer.config import load_settings
    from analyzer.ingest import load

    (tmp_path / "ledger.csv").write_text(
        "ts,entry_id,account_id,request_id,kind,tokens\n"
        "2026-01-01T09:10:00Z,e1,a,r1,Debit,120\n"
        "2026-01-01T09:11:00Z,e2,a,r1,debit,120\n"
        "2026-01-01T09:12:00Z,e3,a,,CREDIT,120\n"
    )
    gw = _gateway([(10, "r1", "a", "m", 200, 100, 20)])
    plain = load("ledger", [tmp_path / "ledger.csv"], Settings())
    r = reconcile(gw, plain.frame, Settings())
    assert r.deductions == 0
    assert [n for n in sentences(r.notes) if "unknown kind" in n] == [
        "reconcile: 3 ledger entries of an unknown kind are kept but not reconciled (debit: 2, credit: 1); "
        "map them to deduct, refund, grant or reset in [ledger.kinds]"
    ]
    (tmp_path / "a.toml").write_text('[ledger.kinds]\ndebit = "deduct"\nCredit = "refund"\n')
    settings = load_settings(tmp_path / "a.toml")
    mapped = load("ledger", [tmp_path / "ledger.csv"], settings)
    r = reconcile(gw, mapped.frame, settings)
    assert (r.deductions, r.by_kind["duplicate"].count, r.refund_tokens_total) == (2, 1, 120)
    assert not [n for n in sentences(r.notes) if "unknown kind" in n]


def test_ledger_kinds_map_only_to_known_kinds(tmp_path: Path) -> None:
    from analyzer.config import load_settings
    from analyzer.errors import ConfigError

    (tmp_path / "a.toml").write_text('[ledger.kinds]\ndebit = "charge"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "a.toml")
    assert "ledger.kinds.debit" in caught.value.one_line() and "not a ledger kind" in caught.value.one_line()
    (tmp_path / "b.toml").write_text('[gateway.kinds]\ndebit = "deduct"\n')
    with pytest.raises(ConfigError, match="only the ledger"):
        load_settings(tmp_path / "b.toml")


def test_a_deduction_missing_inside_a_log_gap_is_in_log_gap_not_orphan() -> None:
    from analyzer.findings import LogGap

    gw = _gateway([(10, "r1", "a", "m", 200, 10, 5)])
    lg = _ledger(
        [
            (10, "e1", "a", "r1", "deduct", 15, 85),
            (40, "e2", "a", "lost-in-gap", "deduct", 5, 80),  # inside the gap: the gateway's line is missing
            (70, "e3", "a", "gone", "deduct", 5, 70),  # after the gap: an orphan
            (45, "e4", "a", None, "deduct", 5, 75),  # no request id at all: an orphan even in the gap
        ]
    )
    gap = LogGap(start=_t(30), end=_t(60), expected_requests=30.0)
    r = reconcile(gw, lg, Settings(reconcile=ReconcileSettings(refund_orphans=True)), gaps=(gap,))
    assert {k: v.count for k, v in r.by_kind.items() if v.count} == {"ok": 1, "in_log_gap": 1, "orphan": 2}
    assert r.by_kind["in_log_gap"].refund_tokens == 0  # not judged, even when orphans are refunded
    assert all(i.holds for i in r.invariants), r.invariants
    # Without the gap (the gate), the same deduction is an orphan.
    assert _kinds(gw, lg) == {"ok": 1, "orphan": 3}
