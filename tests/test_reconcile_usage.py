"""Charges with cached, image and reasoning tokens: exact weights, rounding, and the two wrong rules.

Every expected figure is worked out by hand in the comment beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import polars as pl
import pytest

from analyzer.config import ModelWeights, ReconcileSettings, Settings, settings_from_dict
from analyzer.errors import ConfigError
from analyzer.reconcile import reconcile
from analyzer.schema import CACHED_TOKENS, GATEWAY_COLUMNS, IMAGE_TOKENS, LEDGER, REASONING_TOKENS

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
# prompt 1000 of which 800 cached, completion 300 of which 100 reasoning, 0 image tokens.
CACHED_WEIGHTS = {"m": ModelWeights(prompt=Fraction(1), completion=Fraction(4), cached=Fraction(1, 10))}
# Right: 200 × 1 + 800 × 1/10 + 300 × 4 = 200 + 80 + 1200 = 1480.
RIGHT = 1480
FULL_PRICE = 1000 + 1200  # the 800 cached at the prompt weight: 2200
TWICE = RIGHT + 100 * 4  # the 100 reasoning tokens again at the completion weight: 1880


def _t(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


Row = tuple[float, str, str, int, int, int, int | None, int | None, int | None]


def _gateway(rows: list[Row], parts: tuple[str, ...] = (CACHED_TOKENS, REASONING_TOKENS)) -> pl.LazyFrame:
    """Rows of (minute, request_id, model, prompt, completion, status, cached, reasoning, image)."""
    rows = [
        (0, "edge0", "z", 0, 0, 200, None, None, None),
        *rows,
        (120, "edge1", "z", 0, 0, 200, None, None, None),
    ]
    n = len(rows)
    frame = pl.DataFrame(
        {
            "ts": [_t(r[0]) for r in rows],
            "request_id": [r[1] for r in rows],
            "account_id": ["a"] * n,
            "model": [r[2] for r in rows],
            "endpoint": [None] * n,
            "region": [None] * n,
            "upstream": [None] * n,
            "status": [r[5] for r in rows],
            "latency_ms": [1.0] * n,
            "prompt_tokens": [r[3] for r in rows],
            "completion_tokens": [r[4] for r in rows],
        },
        schema=GATEWAY_COLUMNS,
    )
    values = {CACHED_TOKENS: 6, REASONING_TOKENS: 7, IMAGE_TOKENS: 8}
    return frame.with_columns(
        pl.Series(p, [r[values[p]] for r in rows], dtype=pl.Int64) for p in parts
    ).lazy()


def _ledger(amounts: list[tuple[float, str, int]]) -> pl.LazyFrame:
    return pl.DataFrame(
        {
            "ts": [_t(m) for m, _, _ in amounts],
            "entry_id": [f"e{i}" for i in range(len(amounts))],
            "account_id": ["a"] * len(amounts),
            "request_id": [r for _, r, _ in amounts],
            "kind": ["deduct"] * len(amounts),
            "tokens": [a for _, _, a in amounts],
            "balance_after": [None] * len(amounts),
        },
        schema=LEDGER,
    ).lazy()


def _one(
    amount: int, settings: Settings, parts: tuple[str, ...] = (CACHED_TOKENS, REASONING_TOKENS)
) -> tuple[str, int, int]:
    gw = _gateway([(10, "r1", "m", 1000, 300, 200, 800, 100, 0)], parts)
    r = reconcile(gw, _ledger([(10, "r1", amount)]), settings)
    assert all(i.holds for i in r.invariants), r.invariants
    row = r.findings.filter(pl.col("request_id") == "r1")
    if row.is_empty():
        return "ok", r.tokens_expected, 0
    return row["kind"].item(), row["expected"].item(), row["refund_tokens"].item()


@pytest.mark.parametrize(
    ("amount", "kind", "refund"),
    [
        pytest.param(RIGHT, "ok", 0, id="right-charge"),
        pytest.param(FULL_PRICE, "cached_at_full_price", FULL_PRICE - RIGHT, id="cached-at-full-price"),
        pytest.param(TWICE, "reasoning_counted_twice", TWICE - RIGHT, id="reasoning-counted-twice"),
        pytest.param(
            FULL_PRICE + 1, "overcharge", FULL_PRICE + 1 - RIGHT, id="near-full-price-is-overcharge"
        ),
        pytest.param(TWICE - 1, "overcharge", TWICE - 1 - RIGHT, id="near-twice-is-overcharge"),
        pytest.param(RIGHT - 1, "undercharge", 0, id="under"),
    ],
)
def test_wrong_rules_are_named_with_their_refund(amount: int, kind: str, refund: int) -> None:
    got_kind, expected, got_refund = _one(amount, Settings(weights=CACHED_WEIGHTS))
    assert (got_kind, got_refund) == (kind, refund)
    assert expected == RIGHT


def test_tolerance_widens_the_wrong_rule_match() -> None:
    s = Settings(weights=CACHED_WEIGHTS, reconcile=ReconcileSettings(tolerance_tokens=2))
    assert _one(FULL_PRICE + 2, s)[0] == "cached_at_full_price"
    assert _one(FULL_PRICE + 3, s)[0] == "overcharge"


def test_without_the_usage_columns_there_is_no_wrong_rule() -> None:
    # No cached_tokens column: the prompt is all at the prompt weight, 1000 + 1200 is right.
    assert _one(FULL_PRICE, Settings(weights=CACHED_WEIGHTS), parts=()) == ("ok", FULL_PRICE, 0)
    # Reasoning column only: 2200 + 400 is counted twice.
    assert _one(FULL_PRICE + 400, Settings(weights=CACHED_WEIGHTS), parts=(REASONING_TOKENS,))[0] == (
        "reasoning_counted_twice"
    )


def test_cached_weight_defaults_to_the_prompt_weight() -> None:
    # Same prompt weight for cached tokens: full price is the right price, nothing to name.
    s = Settings(weights={"m": ModelWeights(prompt=Fraction(1), completion=Fraction(4))})
    assert _one(FULL_PRICE, s) == ("ok", FULL_PRICE, 0)


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        # prompt 7 (3 cached), completion 0: 4 × 1 + 3 × 1/4 = 4.75 tokens.
        pytest.param("ceil", 5, id="ceil"),
        pytest.param("floor", 4, id="floor"),
        pytest.param("half_up", 5, id="half-up"),
    ],
)
def test_rounding_per_request(rounding: str, expected: int) -> None:
    s = Settings(
        weights={"m": ModelWeights(cached=Fraction(1, 4))}, reconcile=ReconcileSettings(rounding=rounding)
    )
    gw = _gateway([(10, "r1", "m", 7, 0, 200, 3, 0, 0)])
    assert reconcile(gw, _ledger([]), s).tokens_expected == expected


def test_half_up_at_exactly_one_half() -> None:
    # prompt 2, 1 cached at 1/2: 1 + 0.5 = 1.5 -> 2 (half up), 1 (floor).
    weights = {"m": ModelWeights(cached=Fraction(1, 2))}
    gw = _gateway([(10, "r1", "m", 2, 0, 200, 1, 0, 0)])
    got = {
        r: reconcile(
            gw, _ledger([]), Settings(weights=weights, reconcile=ReconcileSettings(rounding=r))
        ).tokens_expected
        for r in ("half_up", "floor")
    }
    assert got == {"half_up": 2, "floor": 1}


def test_image_weight() -> None:
    # prompt 1000 with 600 image tokens at 1/2, 100 cached at 0: 300 + 0 + 300 + completion 10 = 610.
    weights = {"m": ModelWeights(cached=Fraction(0), image=Fraction(1, 2))}
    gw = _gateway([(10, "r1", "m", 1000, 10, 200, 100, 0, 600)], (CACHED_TOKENS, IMAGE_TOKENS))
    assert reconcile(gw, _ledger([]), Settings(weights=weights)).tokens_expected == 610


def test_wrong_rule_pattern_names_its_run() -> None:
    # Five at full price from minute 10 to 14; one counted twice inside that run, at 12.5.
    rows: list[Row] = [(10 + i, f"r{i}", "m", 1000, 300, 200, 800, 100, 0) for i in range(5)]
    rows.append((12.5, "r5", "m", 1000, 300, 200, 800, 100, 0))
    amounts = [(10 + i, f"r{i}", FULL_PRICE) for i in range(5)] + [(12.5, "r5", TWICE)]
    r = reconcile(_gateway(rows), _ledger(amounts), Settings(weights=CACHED_WEIGHTS))
    assert r.by_kind["cached_at_full_price"].count == 5
    assert r.by_kind["cached_at_full_price"].refund_tokens == 5 * (FULL_PRICE - RIGHT)
    assert r.request_buckets["overcharged"] == 6
    named = [(p.kind, p.model, p.entries, round(p.share, 4)) for p in r.patterns]
    # Five entries make a pattern (min_pattern_entries); the one reasoning entry does not.
    assert named == [("cached_at_full_price", "m", 5, round(5 / 6, 4))]
    fewer = Settings(weights=CACHED_WEIGHTS, reconcile=ReconcileSettings(min_pattern_entries=6))
    assert reconcile(_gateway(rows), _ledger(amounts), fewer).patterns == ()


@pytest.mark.parametrize(
    ("value", "weight"),
    [
        pytest.param("1/10", Fraction(1, 10), id="rational"),
        pytest.param("0.125", Fraction(1, 8), id="decimal-text"),
        pytest.param(3, Fraction(3), id="integer"),
        pytest.param(0.1, Fraction(1, 10), id="toml-float-by-its-text"),
    ],
)
def test_weights_are_exact(value: object, weight: Fraction) -> None:
    s = settings_from_dict({"weights": {"m": {"cached": value}}})
    assert s.weights["m"].of("cached") == weight


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param({"weights": {"m": {"cached": "1/0"}}}, "weights.m.cached", id="zero-denominator"),
        pytest.param({"weights": {"m": {"image": "lots"}}}, "weights.m.image", id="not-a-number"),
        pytest.param({"weights": {"m": {"cached": "-1/2"}}}, "weights.m", id="negative"),
        pytest.param({"reconcile": {"rounding": "bankers"}}, "reconcile.rounding", id="unknown-rounding"),
    ],
)
def test_bad_weights_name_the_key(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict(raw)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("amount", "kind", "bucket"),
    [
        pytest.param(0, "ok", "failed_free", id="failure-charged-nothing"),
        pytest.param(1, "failed_charged", "charged_on_failure", id="failure-charged-one"),
    ],
)
def test_a_failure_charged_nothing_is_billed_right(amount: int, kind: str, bucket: str) -> None:
    gw = _gateway([(10, "r1", "m", 0, 0, 502, None, None, None)])
    r = reconcile(gw, _ledger([(10, "r1", amount)]), Settings())
    assert {k: v.count for k, v in r.by_kind.items() if v.count} == {kind: 1}
    assert r.request_buckets[bucket] == 1
    assert all(i.holds for i in r.invariants), r.invariants
