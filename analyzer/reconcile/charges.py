"""The expected charge of a request from its usage and its model's weights, in integer arithmetic.

    charge = uncached prompt × prompt + cached × cached + image × image + completion × completion

(uncached prompt = prompt − cached − image). Weights are exact rationals (config.ModelWeights); per
model they are put over one common denominator D, so D × charge is a sum of Int64 products and the
rounding to whole tokens (`[reconcile] rounding`, ceil by default) is one integer division per
request. No float ever touches a charge.

Besides the right charge, the charges two known billing bugs produce, to name their deductions:
    FULL_PRICE  the cached tokens billed at the prompt weight (a discount never applied)
    TWICE       the reasoning tokens added to a completion that already counts them
They exist only when the gateway has the column they need (cached_tokens, reasoning_tokens).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from fractions import Fraction
from math import lcm
from typing import Final

import polars as pl

from analyzer.config import ModelPrice, ModelWeights
from analyzer.schema import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    IMAGE_TOKENS,
    MODEL,
    PROMPT_TOKENS,
    REASONING_TOKENS,
)

EXPECTED: Final = "expected"
PROMPT_PART: Final = "_prompt_part"  # the weighted prompt tokens of the expected charge
FULL_PRICE: Final = "_full_price"  # the charge with cached tokens at the prompt weight
TWICE: Final = "_reasoning_twice"  # the charge with reasoning counted again in the completion
EXPECTED_F: Final = "_expected_f"  # the charge in floats, only to tell how big the Int64 sums get
# Gateway columns the charge reads beyond prompt and completion, when the gateway has them.
USAGE_PARTS: Final = (CACHED_TOKENS, REASONING_TOKENS, IMAGE_TOKENS)
_PARTS: Final = ("prompt", "cached", "image", "completion")
_D: Final = "_w_d"


def _weights_frame(weights: Mapping[str, ModelWeights]) -> pl.LazyFrame:
    """Per model: the common denominator and each weight's numerator over it."""
    rows: dict[str, list[object]] = {MODEL: [], _D: [], **{f"_w_{p}": [] for p in _PARTS}}
    for model, w in weights.items():
        exact = {p: Fraction(w.of(p)) for p in _PARTS}
        d = lcm(*(f.denominator for f in exact.values()))
        rows[MODEL].append(model)
        rows[_D].append(d)
        for p, f in exact.items():
            rows[f"_w_{p}"].append(int(f * d))
    schema = {MODEL: pl.String(), _D: pl.Int64(), **{f"_w_{p}": pl.Int64() for p in _PARTS}}
    return pl.LazyFrame(rows, schema=schema)


def _rounded(num: pl.Expr, d: pl.Expr, rule: str) -> pl.Expr:
    if rule == "floor":
        return num // d
    if rule == "half_up":
        return (2 * num + d) // (2 * d)
    return -((-num) // d)  # ceil


def with_charges(
    requests: pl.LazyFrame, columns: Collection[str], weights: Mapping[str, ModelWeights], rounding: str
) -> pl.LazyFrame:
    """`requests` with EXPECTED, PROMPT_PART and EXPECTED_F; FULL_PRICE and TWICE when it has the parts.

    `columns` are the gateway columns `requests` holds (the optional usage parts among them).
    """
    exact = all(Fraction(w.of(p)).denominator == 1 for w in weights.values() for p in _PARTS)
    if weights:
        frame = requests.join(_weights_frame(weights), on=MODEL, how="left")
        d = pl.col(_D).fill_null(1)
        wp, wc, wi, wo = (pl.col(f"_w_{p}").fill_null(1) for p in _PARTS)
    else:
        frame, d = requests, pl.lit(1, pl.Int64)
        wp = wc = wi = wo = pl.lit(1, pl.Int64)

    def count(column: str) -> pl.Expr:
        return pl.col(column).fill_null(0) if column in columns else pl.lit(0, pl.Int64)

    prompt, completion = count(PROMPT_TOKENS), count(COMPLETION_TOKENS)
    cached, image, reasoning = count(CACHED_TOKENS), count(IMAGE_TOKENS), count(REASONING_TOKENS)

    def rounded(num: pl.Expr) -> pl.Expr:
        return num if exact else _rounded(num, d, rounding)

    if CACHED_TOKENS in columns or IMAGE_TOKENS in columns:
        uncached = (prompt - cached - image).clip(lower_bound=0)
        prompt_num = uncached * wp + cached * wc + image * wi
    else:
        prompt_num = prompt * wp
    num = prompt_num + completion * wo
    out = [
        rounded(num).alias(EXPECTED),
        rounded(prompt_num).alias(PROMPT_PART),
        # The same in floats, which do not wrap around: how big the integer sums get (see MAGNITUDE).
        ((prompt.cast(pl.Float64).abs() * wp + completion.cast(pl.Float64).abs() * wo) / d).alias(EXPECTED_F),
    ]
    if CACHED_TOKENS in columns:
        full = (prompt - image).clip(lower_bound=0) * wp + image * wi + completion * wo
        out.append(pl.when(cached > 0).then(rounded(full)).alias(FULL_PRICE))
    if REASONING_TOKENS in columns:
        out.append(pl.when(reasoning > 0).then(rounded(num + reasoning * wo)).alias(TWICE))
    dropped = [_D, *(f"_w_{p}" for p in _PARTS)] if weights else []
    return frame.with_columns(out).drop(dropped)


def price_weights(prices: Mapping[str, ModelPrice]) -> dict[str, ModelWeights]:
    """The price card as weights, for a ledger in micro-dollars: USD per million tokens is exactly
    micro-dollars per token (0.60 $/M: 3/5 µ$ a token)."""
    return {
        model: ModelWeights(
            prompt=Fraction(p.input_per_million),
            completion=Fraction(p.output_per_million),
            cached=None if p.cached_input_per_million is None else Fraction(p.cached_input_per_million),
        )
        for model, p in prices.items()
    }


def alternatives(columns: Collection[str]) -> list[str]:
    """The wrong-rule charges (FULL_PRICE, TWICE) among a request frame's columns."""
    return [c for c in (FULL_PRICE, TWICE) if c in columns]
