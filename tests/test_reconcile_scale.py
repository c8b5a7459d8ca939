"""Reconciliation in passes over hash partitions, hash-keyed joins, and the patterns that use them."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_reconcile import _gateway, _ledger, _t  # the hand-made frames of the rule tests

import analyzer.reconcile.partitions as partitions
from analyzer.config import ReconcileSettings, Settings
from analyzer.findings import Reconciliation
from analyzer.reconcile import classify as cls
from analyzer.reconcile import reconcile
from analyzer.reconcile.patterns import _count_between
from analyzer.report.notes import sentences

simulate = pytest.importorskip("analyzer.simulate")


@pytest.fixture(scope="module")
def outage() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Four hours of the launch story from 09:00: the token bug, the failure burst, the sync failure."""
    spec = simulate.SimSpec(
        scenario="launch", seed=5, hours=4, rate=1.0, accounts=30, start=datetime(2026, 4, 22, 9, tzinfo=UTC)
    )
    sim = simulate.generate(spec)
    return sim.gateway, sim.ledger


def _same(a: Reconciliation, b: Reconciliation) -> None:
    assert (a.deductions, a.tokens_deducted, a.tokens_expected, a.refund_tokens_total) == (
        b.deductions,
        b.tokens_deducted,
        b.tokens_expected,
        b.refund_tokens_total,
    )
    assert a.by_kind == b.by_kind
    assert a.request_buckets == b.request_buckets
    assert_frame_equal(a.findings, b.findings)
    assert_frame_equal(a.accounts, b.accounts)
    assert_frame_equal(a.spans, b.spans)
    assert a.patterns == b.patterns
    assert a.invariants == b.invariants
    assert (a.resets, a.notes) == (b.resets, b.notes)


@pytest.mark.parametrize(
    ("rows", "lose_ids"),
    [
        pytest.param(4000, 0, id="4-passes"),
        pytest.param(1500, 0, id="10-passes"),
        pytest.param(1500, 7, id="10-passes-every-7th-id-lost"),
    ],
)
def test_passes_over_partitions_give_the_single_pass_answer(
    outage: tuple[pl.DataFrame, pl.DataFrame], rows: int, lose_ids: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, ledger = outage
    if lose_ids:  # rows without a request_id are spread over the partitions by time
        lost = pl.when(pl.int_range(pl.len()) % lose_ids != 0).then(pl.col("request_id"))
        gateway, ledger = gateway.with_columns(lost), ledger.with_columns(lost)
    whole = reconcile(gateway.lazy(), ledger.lazy(), Settings())
    assert whole.request_buckets["overcharged"] > 0 and whole.by_kind["duplicate"].count > 0
    monkeypatch.setattr(partitions, "ROWS_PER_PASS", rows)
    split = reconcile(gateway.lazy(), ledger.lazy(), Settings())
    _same(whole, split)


def test_hashed_keys_join_as_the_ids_do(outage: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    gateway, ledger = outage
    requests = cls.requests(gateway.lazy(), Settings())
    span = (gateway["ts"].min(), gateway["ts"].max())
    columns = [c for c in cls.FINDING_COLUMNS if c != cls.KEY] + [cls.POSITION, cls.LINES, cls.GW_ID]
    hashed, exact = (
        cls.joined(requests, ledger.lazy(), Settings(), span, exact=e)  # type: ignore[arg-type]
        .select(columns)
        .sort(columns, nulls_last=True)
        .collect()
        for e in (False, True)
    )
    assert_frame_equal(hashed, exact)


def test_account_expected_tokens_add_up_to_the_total(outage: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    gateway, ledger = outage
    r = reconcile(gateway.lazy(), ledger.lazy(), Settings())
    assert int(r.accounts["tokens_expected"].sum()) == r.tokens_expected > 0
    ok = gateway.filter(pl.col("status").is_between(200, 299))
    by_gateway = ok.group_by("account_id").agg(
        (pl.col("prompt_tokens").fill_null(0) + pl.col("completion_tokens").fill_null(0)).sum().alias("e")
    )
    got = dict(r.accounts.select("account_id", "tokens_expected").iter_rows())
    assert {a: e for a, e in by_gateway.iter_rows() if e} == {a: e for a, e in got.items() if e}


def _deductions(rows: list[tuple[float, str, str, str | None, int]]) -> pl.LazyFrame:
    """(minute, entry_id, account, request_id, tokens) deductions, balances not checked."""
    return _ledger([(m, e, a, r, "deduct", t, None) for m, e, a, r, t in rows])


def test_a_request_logged_twice_counts_each_line_in_its_bucket() -> None:
    # r1 twice and charged once: both lines are overcharged. r2 twice, a 502 then a served retry,
    # never charged: one line failed_free, one unbilled (and one unbilled finding, from its first line).
    gw = _gateway(
        [
            (10, "r1", "a", "m", 200, 10, 5),
            (10.5, "r1", "a", "m", 200, 10, 5),
            (20, "r2", "b", "m", 502, 0, 0),
            (20.5, "r2", "b", "m", 200, 7, 3),
            (30, None, "c", "m", 200, 4, 4),
        ]
    )
    r = reconcile(gw, _deductions([(11, "e1", "a", "r1", 20)]), Settings())
    assert r.request_buckets == {
        "charged_ok": 2,
        "overcharged": 2,
        "undercharged": 0,
        "charged_on_failure": 0,
        "unbilled": 2,
        "failed_free": 1,
    }
    unbilled = r.findings.filter(pl.col("kind") == "unbilled")
    assert unbilled.select("request_id", "account_id").rows() == [("r2", "b"), (None, "c")]
    assert any("1 gateway lines repeat" in n for n in sentences(r.notes)) is False
    assert any("2 gateway lines repeat a request_id" in n for n in sentences(r.notes))
    assert r.tokens_expected == 15 + 15 + 10 + 8


@pytest.mark.parametrize(
    ("entries", "duplicate"),
    [
        pytest.param([(11, "e2", 15), (11, "e1", 15)], ("e2", 15), id="same-ts-entry-id-orders"),
        pytest.param([(12, "e1", 15), (11, "e9", 15)], ("e1", 15), id="ts-orders-first"),
        pytest.param([(11, "e1", 40), (11, "e1", 15)], ("e1", 40), id="identical-keys-larger-second"),
    ],
)
def test_the_duplicate_is_the_later_deduction(
    entries: list[tuple[float, str, int]], duplicate: tuple[str, int]
) -> None:
    gw = _gateway([(10, "r1", "a", "m", 200, 10, 5)])
    r = reconcile(gw, _deductions([(m, e, "a", "r1", t) for m, e, t in entries]), Settings())
    dup = r.findings.filter(pl.col("kind") == "duplicate")
    assert dup.select("entry_id", "tokens").rows() == [duplicate]
    assert r.by_kind["duplicate"].count == 1


def _bunch_rows(model_of: dict[str, str]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Requests r0..r117, one a minute, each charged right; a second charge of every r60..r69."""
    models = list(model_of.values())
    rows = [(i + 1, f"r{i}", "a", models[i % len(models)], 200, 1, 1) for i in range(118)]
    firsts = [(i + 1, f"e{i}", "a", f"r{i}", 2) for i in range(118)]
    dups = [(i + 1.5, f"d{i}", "a", f"r{i}", 2) for i in range(60, 70)]
    return _gateway(rows), _deductions([*firsts, *dups])


@pytest.mark.parametrize(
    ("models", "named"),
    [
        pytest.param({"x": "k2"}, "k2", id="one-model-named"),
        pytest.param({"x": "k2", "y": "k1"}, None, id="two-models-all"),
    ],
)
def test_duplicate_bunch_is_named_after_its_model(models: dict[str, str], named: str | None) -> None:
    gw, lg = _bunch_rows(models)
    r = reconcile(gw, lg, Settings(reconcile=ReconcileSettings(min_pattern_entries=5)))
    [p] = [p for p in r.patterns if p.kind == "duplicate_burst"]
    assert (p.model, p.entries, p.start, p.end) == (named, 10, _t(61.5), _t(70.5))


def test_a_models_own_failure_bunch_is_found_against_its_mean() -> None:
    # Charged failures: model q, 6 of them in minutes 91-96 (one 15-minute window); model p, one
    # every 2 minutes all along. Among all models no window stands out 4x; against q's own mean,
    # q's does.
    p_rows = [(i * 2 + 1, f"p{i}", "a", "p", 500, 0, 0) for i in range(59)]
    q_rows = [(91 + i, f"q{i}", "a", "q", 500, 0, 0) for i in range(6)]
    charges = [(m + 0.1, f"e-{rid}", "a", rid, 5) for m, rid, *_ in [*p_rows, *q_rows]]
    s = Settings(reconcile=ReconcileSettings(min_pattern_entries=5))
    r = reconcile(_gateway([*p_rows, *q_rows]), _deductions(charges), s)
    bunches = [(p.model, p.entries, p.share) for p in r.patterns if p.kind == "failed_charged_in_burst"]
    assert bunches == [("q", 6, 1.0)]


def test_count_between_counts_events_inside_each_window_per_key() -> None:
    events = pl.DataFrame({"model": ["a", "a", "a", "b", "a"], "ts": [_t(1), _t(2), _t(2), _t(2), _t(5)]})
    windows = pl.DataFrame(
        {
            "model": ["a", "b", "a", "a"],
            "start": [_t(2), _t(0), _t(3), _t(1)],
            "end": [_t(5), _t(9), _t(4), _t(1)],
        }
    )
    assert _count_between(events, windows, ["model"]).to_list() == [3, 1, 0, 1]


def test_balances_do_not_depend_on_the_order_entries_come_in(
    outage: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    # In time order, balances use per-account windows as they come; out of order, a sort first.
    gateway, ledger = outage
    broken = ledger.with_columns(  # two breaks: balances that do not follow
        pl.when(pl.int_range(pl.len()).is_in([100, 2000]))
        .then(pl.col("balance_after") + 1)
        .otherwise(pl.col("balance_after"))
    )
    in_order, reversed_ = (
        reconcile(gateway.lazy(), lg.lazy(), Settings()) for lg in (broken, broken.reverse())
    )
    assert in_order.by_kind["balance_break"].count >= 2
    _same(in_order, reversed_)
