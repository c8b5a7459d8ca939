"""The audit against the simulator's truth: every wrong 429 found and none invented, per account."""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any

import polars as pl
import pytest

from analyzer import schema as s
from analyzer.limits import LimitSettings, Tier, audit, classified
from analyzer.simulate import SimSpec, Simulation, generate

SPECS = [
    pytest.param(SimSpec(seed=7, rate=0.5, hours=18, accounts=200), id="sample-seed7-rate0.5"),
    pytest.param(SimSpec(seed=3, rate=2.0, hours=12, accounts=100), id="seed3-rate2"),
    pytest.param(SimSpec(seed=11, rate=4.0, hours=12, accounts=60), id="seed11-rate4"),
]


def settings_of(sim: Simulation) -> LimitSettings:
    tiers = {name: Tier(**limits) for name, limits in sim.truth["rate_limits"]["tiers"].items()}
    pairs = sim.accounts.rows()
    return LimitSettings(tiers=tiers, account_tiers=dict(pairs), default_tier=None)


def _classes(sim: Simulation) -> tuple[dict[str, str], Any]:
    result, full = (
        audit(sim.gateway.lazy(), settings_of(sim)),
        classified(sim.gateway.lazy(), settings_of(sim)),
    )
    flagged = full.filter(full["class"].is_not_null())
    return dict(zip(flagged[s.REQUEST_ID], flagged["class"], strict=True)), result


@pytest.mark.parametrize("spec", SPECS)
def test_every_429_gets_the_class_the_simulator_gave_it(spec: SimSpec) -> None:
    sim = generate(spec)
    truth = sim.truth["rate_limits"]
    got, result = _classes(sim)
    expected = {r["request_id"]: r["class"] for r in truth["throttled_requests"]}
    wrong_truth = {k for k, v in expected.items() if v == "wrong"}
    wrong_found = {k for k, v in got.items() if v == "wrong"}
    assert wrong_truth and wrong_found == wrong_truth  # precision and recall 100%
    assert got == expected  # storms justified, nothing ambiguous, no admitted request over a limit
    assert result.counts["wrong"] == truth["wrong"] and result.counts["justified"] == truth["justified"]
    per_account = {a: w for a, w in result.accounts.select("account_id", "wrong").rows() if w}
    assert per_account == truth["wrong_by_account"]
    by_limit = Counter(r["limit"] for r in truth["throttled_requests"] if r["class"] == "justified")
    assert {k: v["justified"] for k, v in result.by_limit.items() if v["justified"]} == dict(by_limit)


def test_quiet_has_only_genuine_429s_and_none_is_wrong() -> None:
    sim = generate(SimSpec(scenario="quiet", seed=5, rate=2.0, hours=18, accounts=150))
    got, result = _classes(sim)
    assert result.counts["wrong"] == 0 == result.counts["ambiguous"]
    assert result.counts["justified"] == sim.truth["rate_limits"]["justified"] > 0
    assert set(got.values()) == {"justified"}


def test_partitions_and_the_unpacked_sort_give_the_same_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Accounts replayed a few at a time (about 300 requests a partition, whole accounts each), and sorted
    # by the columns instead of one packed key: the same classes, usage, counts and explanation.
    from polars.testing import assert_frame_equal

    from analyzer.limits import audit_limits

    sim = generate(SimSpec(seed=3, rate=2.0, hours=12, accounts=100))
    settings = settings_of(sim)
    one = classified(sim.gateway.lazy(), settings)
    whole = audit_limits(sim.gateway.lazy(), sim.ledger.lazy(), settings)
    module = importlib.import_module("analyzer.limits.audit")
    monkeypatch.setattr(module, "PART_ROWS", 300)
    rows = module.requests(sim.gateway.lazy(), settings)
    assert len(rows.bounds) > 10 and sum(n for _, n in rows.bounds) == rows.frame.height
    accounts = rows.frame[s.ACCOUNT_ID].cast(pl.String)
    assert all(accounts[a - 1] != accounts[a] for a, _ in rows.bounds[1:])  # no account cut in two
    assert accounts.n_unique() == sum(accounts.slice(a, n).n_unique() for a, n in rows.bounds)
    assert_frame_equal(classified(sim.gateway.lazy(), settings), one)
    parted = audit_limits(sim.gateway.lazy(), sim.ledger.lazy(), settings)
    assert parted.counts == whole.counts and parted.explanations == whole.explanations
    assert_frame_equal(parted.flagged, whole.flagged)
    monkeypatch.setattr(module, "PACK_BITS", 0)
    assert_frame_equal(classified(sim.gateway.lazy(), settings), one)
