"""The explanation of wrong 429s names the rule the limiter applied, its parameter and its span."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from analyzer import schema as s
from analyzer.limits import LimitSettings, Tier, audit_limits
from analyzer.simulate import SimSpec, generate
from tests.test_limits_replay import frame
from tests.test_limits_simulated import settings_of

FIVE_MINUTES = timedelta(minutes=5)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(SimSpec(seed=11, rate=4.0, hours=12, accounts=60), id="seed11-rate4"),
        pytest.param(SimSpec(seed=2, rate=6.0, hours=12, accounts=80), id="seed2-rate6"),
    ],
)
def test_the_injected_legacy_limiter_is_named_with_its_cost_and_span(spec: SimSpec) -> None:
    sim = generate(spec)
    fault = sim.truth["rate_limits"]["fault"]
    result = audit_limits(sim.gateway.lazy(), sim.ledger.lazy(), settings_of(sim))
    [e] = result.explanations
    assert (e.model, e.hypothesis, e.parameter) == (fault["model"], fault["rule"], fault["parameter"])
    assert e.rule == "fixed_minute" and e.share == 1.0 and e.explained == result.counts["wrong"]
    assert abs(e.start - _at(fault["start"])) <= FIVE_MINUTES  # type: ignore[operator]
    assert abs(e.end - _at(fault["end"])) <= FIVE_MINUTES  # type: ignore[operator]


def test_the_sample_rate_names_the_rule_and_cost_too() -> None:
    sim = generate(SimSpec(seed=7, rate=0.5, hours=18, accounts=200))
    [e] = audit_limits(sim.gateway.lazy(), sim.ledger.lazy(), settings_of(sim)).explanations
    assert (e.hypothesis, e.parameter, e.share) == ("fixed_cost", 262_144, 1.0)


def test_quiet_has_nothing_to_explain() -> None:
    sim = generate(SimSpec(scenario="quiet", seed=5, rate=2.0, hours=12, accounts=100))
    assert audit_limits(sim.gateway.lazy(), sim.ledger.lazy(), settings_of(sim)).explanations == ()


def _minutes(pattern: list[tuple[float, int]], minutes: int) -> list[tuple[object, ...]]:
    return [(60 * m + sec, status, 100, 100) for m in range(minutes) for sec, status in pattern]


def test_another_tiers_limits() -> None:
    # Held to big's rpm 100, but every minute the third request was refused: small's rpm 2.
    settings = LimitSettings(tiers={"big": Tier(rpm=100), "small": Tier(rpm=2)}, default_tier="big")
    rows = _minutes([(1, 200), (2, 200), (3, 429), (50, 429)], 5)
    [e] = audit_limits(frame(rows), None, settings).explanations
    assert (e.hypothesis, e.parameter, e.share, e.explained) == ("other_tier", "small", 1.0, 10)


def test_requests_counted_per_minute() -> None:
    # TPM 1,000,000 is never near, yet the fourth request of each minute was refused, whatever the model
    # of the three before it: a cap of 3 requests (a cost per request of `m` alone explains only half).
    settings = LimitSettings(tiers={"t": Tier(tpm=1_000_000)}, default_tier="t")
    rows: list[tuple[object, ...]] = []
    for minute in range(6):
        before = "m" if minute % 2 else "o"
        rows += [(60 * minute + sec, 200, 100, 100, before) for sec in (1, 2, 3)]
        rows.append((60 * minute + 4, 429, 4, 0, "m"))
    [e] = audit_limits(frame(rows), None, settings).explanations
    assert (e.model, e.hypothesis, e.parameter, e.share) == ("m", "requests_per_minute", 3, 1.0)


def test_billed_tokens_from_the_ledger() -> None:
    # Served 100 tokens each, billed 600: TPM 1,000 is met by billed tokens at the third request.
    settings = LimitSettings(tiers={"t": Tier(tpm=1_000)}, default_tier="t")
    rows = _minutes([(1, 200), (2, 200), (3, 429)], 3)
    gateway = frame(rows)
    served = gateway.filter(pl.col(s.STATUS) == 200).collect()
    ledger = pl.DataFrame(
        {
            s.TS: served[s.TS],
            s.REQUEST_ID: served[s.REQUEST_ID],
            s.KIND: [s.LEDGER_DEDUCT] * served.height,
            s.TOKENS: [600] * served.height,
        }
    ).lazy()
    [e] = audit_limits(gateway, ledger, settings).explanations
    assert (e.hypothesis, e.parameter, e.share) == ("billed_tokens", "ledger", 1.0)
    # Without the ledger the same 429s fit a fixed cost per request instead.
    [e] = audit_limits(gateway, None, settings).explanations
    assert e.hypothesis == "fixed_cost" and 450 < int(e.parameter) <= 999


def test_an_explanation_of_fewer_than_half_the_wrong_429s_is_not_reported() -> None:
    settings = LimitSettings(tiers={"big": Tier(rpm=100), "small": Tier(rpm=2)}, default_tier="big")
    # The third request of minute 0 fits small's rpm 2; the lone 429s of minutes 1 and 2 fit nothing.
    rows: list[tuple[object, ...]] = [(1, 200), (2, 200), (3, 429), (61, 429), (121, 429)]
    assert audit_limits(frame(rows), None, settings).explanations == ()
    # Two of three explained is enough.
    rows += [(181, 200), (182, 200), (183, 429)]
    [e] = audit_limits(frame(rows), None, settings).explanations
    assert (e.hypothesis, e.parameter, e.explained, e.wrong) == ("other_tier", "small", 2, 4)
