"""Each counting rule on hand-built sequences whose answers were worked out by hand.

Limits are `usage + 1 > limit` (a request costs at least one request, token or slot); the bucket holds
`limit` and refills limit / 60 s; the sliding log counts (t - 60 s, t].
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer import schema as s
from analyzer.limits import Limit, LimitSettings, Rule, Tier, audit, classified
from analyzer.limits.replay import usage_column
from analyzer.limits.settings import Stamp

T0 = datetime(2026, 4, 22, 10, 0, tzinfo=UTC)
Row = tuple[float, int]  # seconds after T0, status; or with latency_ms, tokens, model, account


def frame(rows: list[tuple[object, ...]]) -> pl.LazyFrame:
    out = []
    for i, row in enumerate(rows):
        sec, status, latency, tokens, model, account = (
            (*row, 100.0, 0, "m", "a")[:6]
            if len(row) == 2
            else (
                *row,
                *("m", "a")[len(row) - 4 :],
            )
        )
        out.append(
            {
                s.TS: T0 + timedelta(seconds=float(sec)),  # type: ignore[arg-type]
                s.REQUEST_ID: f"r{i}",
                s.ACCOUNT_ID: account,
                s.MODEL: model,
                s.STATUS: status,
                s.LATENCY_MS: float(latency),  # type: ignore[arg-type]
                s.PROMPT_TOKENS: tokens if 200 <= int(status) < 300 else None,  # type: ignore[call-overload]
                s.COMPLETION_TOKENS: 0 if 200 <= int(status) < 300 else None,  # type: ignore[call-overload]
            }
        )
    schema = {k: s.GATEWAY[k] for k in out[0]}
    return pl.DataFrame(out, schema=schema).lazy()


def limits(tier: Tier, **kw: object) -> LimitSettings:
    return LimitSettings(tiers={"t": tier}, default_tier="t", **kw)  # type: ignore[arg-type]


def classes(rows: list[tuple[object, ...]], settings: LimitSettings) -> dict[str, str | None]:
    full = classified(frame(rows), settings)
    return dict(zip(full[s.REQUEST_ID], full["class"], strict=True))


def usage(rows: list[tuple[object, ...]], settings: LimitSettings, column: str) -> list[float]:
    full = classified(frame(rows), settings)
    return full.sort(s.REQUEST_ID)[column].to_list()


RPM3 = limits(Tier(rpm=3))


def test_exactly_at_the_limit_is_admitted_and_one_over_is_not() -> None:
    # Three admitted in the first seconds of a minute: the third met 2 (2 + 1 = 3, not over 3).
    rows: list[tuple[object, ...]] = [(1, 200), (2, 200), (3, 200), (4, 429)]
    assert classes(rows, RPM3) == {"r0": None, "r1": None, "r2": None, "r3": "justified"}
    # Bucket before r3: 3 taken, 3 s x 3/60 refilled = 2.85 > 3 - 1: over under every rule.
    assert usage(rows, RPM3, usage_column(Limit.RPM, Rule.BUCKET))[3] == pytest.approx(2.85)
    assert classes([*rows[:3], (4, 200)], RPM3)["r3"] == "admitted_over_limit"


def test_the_clock_minute_edge_splits_the_rules() -> None:
    # 3 admitted at 10:00:59.5, a 429 at 10:01:00: a new fixed window, but 3 in the sliding log and a
    # bucket refilled by only 0.025 -> ambiguous.
    rows: list[tuple[object, ...]] = [(59.5, 200), (59.5, 200), (59.5, 200), (60, 429)]
    assert classes(rows, RPM3)["r3"] == "ambiguous"
    assert [usage(rows, RPM3, usage_column(Limit.RPM, r))[3] for r in (Rule.FIXED, Rule.SLIDING)] == [0, 3]


def test_the_sliding_log_drops_a_request_exactly_60_s_old() -> None:
    one = limits(Tier(rpm=1))
    # 60 s after the admitted one it has left the log (t - 60 s, t]; the bucket is full again: wrong.
    assert classes([(30, 200), (90, 429)], one)["r1"] == "wrong"
    # One microsecond earlier it is still in the log (over), while the fixed window is a new minute.
    assert classes([(30, 200), (89.999999, 429)], one)["r1"] == "ambiguous"


def test_the_bucket_remembers_a_burst_from_before_a_quiet_spell() -> None:
    # rpm 2 refills one request per 30 s. Admitted at 0, 100, 101; a 429 at 102. The request at 0 is
    # fully refilled by 100, so the bucket holds 2 - 2 + 2/30 = 0.067 at 102: usage 1.933 > 1, over.
    # (Without the running minimum, usage would be 3 - 102/30 = -0.4: under.)
    two = limits(Tier(rpm=2))
    rows: list[tuple[object, ...]] = [(0, 200), (100, 200), (101, 200), (102, 429)]
    assert usage(rows, two, usage_column(Limit.RPM, Rule.BUCKET))[3] == pytest.approx(2 - 2 / 30)
    assert classes(rows, two)["r3"] == "justified"


def test_tokens_count_what_admitted_requests_were_served() -> None:
    tpm = limits(Tier(tpm=1000))
    # 600 + 399 before: 999 + 1 = 1000, not over; 600 + 400: over in the minute and the log, but the
    # bucket refilled 1000 x 2/60 = 33.3 -> ambiguous.
    rows: list[tuple[object, ...]] = [(0, 200, 100, 600), (1, 200, 100, 399), (2, 429, 5, 0)]
    assert classes(rows, tpm)["r2"] == "wrong"
    rows = [(0, 200, 100, 600), (1, 200, 100, 400), (2, 429, 5, 0)]
    assert classes(rows, tpm)["r2"] == "ambiguous"
    assert usage(rows, tpm, usage_column(Limit.TPM, Rule.BUCKET))[2] == pytest.approx(1000 - 1000 * 2 / 60)
    # Within the same second the bucket has not refilled enough: justified.
    rows = [(0, 200, 100, 600), (0.01, 200, 100, 400), (0.02, 429, 5, 0)]
    assert classes(rows, tpm)["r2"] == "justified"


def test_the_daily_count_resets_at_day_reset() -> None:
    tpd = limits(Tier(tpd=1000), day_reset=timedelta(hours=10, minutes=1))
    # Reset at 10:01: 600 + 400 before 10:01, then a 429 at 10:00:50 (over, every rule) and one exactly
    # at 10:01:00 (a new day: 0 used, wrong).
    rows: list[tuple[object, ...]] = [
        (0, 200, 100, 600),
        (30, 200, 100, 400),
        (50, 429, 5, 0),
        (60, 429, 5, 0),
    ]
    got = classes(rows, tpd)
    assert (got["r2"], got["r3"]) == ("justified", "wrong")
    assert usage(rows, tpd, usage_column(Limit.TPD)) == [0, 600, 1000, 0]


def test_concurrency_is_the_exact_number_in_flight_at_arrival() -> None:
    conc = limits(Tier(concurrency=2))
    # A 0-10 s, B 1-3 s: at 2 s both in flight (over 2); at 3 s B has just ended (1 in flight: wrong).
    rows: list[tuple[object, ...]] = [(0, 200, 10_000, 1), (1, 200, 2_000, 1), (2, 429, 4, 0), (3, 429, 4, 0)]
    assert usage(rows, conc, usage_column(Limit.CONCURRENCY)) == [0, 1, 2, 1]
    got = classes(rows, conc)
    assert (got["r2"], got["r3"]) == ("justified", "wrong")


def test_completion_stamps_are_moved_back_by_the_latency() -> None:
    conc = limits(Tier(concurrency=1), timestamp=Stamp.COMPLETION)
    # Logged at completion: A ended at 10 s after 10 s (arrived 0), the 429 logged at 5 s arrived at 5 s.
    rows: list[tuple[object, ...]] = [(10, 200, 10_000, 1), (5, 429, 0, 0)]
    assert classes(rows, conc)["r1"] == "justified"
    assert classes(rows, replace(conc, timestamp=Stamp.ARRIVAL))["r1"] == "wrong"


def test_rejected_requests_count_only_with_count_rejected() -> None:
    two = limits(Tier(rpm=2))
    rows: list[tuple[object, ...]] = [(0, 200), (0.1, 429), (0.2, 429)]
    assert classes(rows, two)["r2"] == "wrong"
    assert classes(rows, replace(two, count_rejected=True))["r2"] == "justified"


def test_per_model_limits_each_model_apart() -> None:
    one = limits(Tier(rpm=1))
    rows: list[tuple[object, ...]] = [(0, 200, 100, 1, "a"), (1, 429, 4, 0, "b")]
    assert classes(rows, one)["r1"] == "justified"
    assert classes(rows, replace(one, per_model=True))["r1"] == "wrong"


def test_the_tolerance_keeps_a_429_near_the_limit_from_being_wrong() -> None:
    four = limits(Tier(rpm=4))
    rows: list[tuple[object, ...]] = [(0, 200), (0.1, 200), (0.2, 429)]
    assert classes(rows, four)["r2"] == "wrong"
    # 2 + 1 = 3 > 4 x (1 - 0.5): within the tolerance, so not wrong (nor over): ambiguous.
    assert classes(rows, replace(four, tolerance=0.5))["r2"] == "ambiguous"


def test_zero_is_unlimited() -> None:
    assert classes([(0, 200), (0.1, 200), (0.2, 429)], limits(Tier()))["r2"] == "wrong"


def test_accounts_are_counted_apart_and_the_deciding_limit_named() -> None:
    rows: list[tuple[object, ...]] = [
        (1, 200, 100, 1, "m", "a"),
        (2, 200, 100, 1, "m", "a"),
        (3, 429, 4, 0, "m", "a"),
        (4, 429, 4, 0, "m", "b"),
    ]
    result = audit(frame(rows), limits(Tier(rpm=2, tpm=100)))
    assert result.counts == {
        "throttled": 2,
        "justified": 1,
        "ambiguous": 0,
        "wrong": 1,
        "admitted_over_limit": 0,
    }
    assert result.by_limit["rpm"]["justified"] == 1
    assert result.accounts.select("account_id", "throttled", "wrong").rows() == [("b", 1, 1), ("a", 1, 0)]


def test_without_limits_each_account_is_held_to_its_own_peak() -> None:
    # Account a was admitted 3 in a minute (peak 3) and got a 429 at 2 in the next: wrong; its 429 after
    # 3 in a minute is justified against the same peak.
    rows: list[tuple[object, ...]] = [(0, 200), (1, 200), (2, 200), (3, 429), (120, 200), (121, 429)]
    result, full = audit(frame(rows), None), classified(frame(rows), None)
    got = dict(zip(full[s.REQUEST_ID], full["class"], strict=True))
    assert (got["r3"], got["r5"]) == ("justified", "wrong")
    assert result.source.value == "observed_peak"


def test_the_packed_search_and_the_join_fallback_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.limits import replay as r
    from analyzer.simulate import SimSpec, generate
    from tests.test_limits_simulated import settings_of

    sim = generate(SimSpec(seed=9, rate=1.0, hours=3, accounts=40))
    packed = classified(sim.gateway.lazy(), settings_of(sim))
    monkeypatch.setattr(r, "_packed", lambda frame: (0, 0))
    joined = classified(sim.gateway.lazy(), settings_of(sim))
    assert packed.height == sim.gateway.height
    from polars.testing import assert_frame_equal

    assert_frame_equal(packed, joined)
