"""Every 429 justified, ambiguous or wrong; admitted requests over every rule; the limit that decides.

A request is over a limit under a rule when its usage + 1 (it costs at least one request, one token, one
slot) exceeds the limit, and under it when usage + 1 <= limit x (1 - tolerance); 0 is unlimited. A 429 is

    justified   over some limit under every rule
    wrong       under every limit under every rule
    ambiguous   neither (over under some rules only, or within the tolerance)

and an admitted request over some limit under every rule is `admitted_over_limit`. The deciding limit is
the one most over (highest usage / limit at its least under the rules) for a justified 429 or an
over-limit admission, else the one nearest its limit under any rule.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import polars as pl

from analyzer.limits.replay import WINDOWED, Rule, limit_column, usage_column
from analyzer.limits.settings import Limit

THROTTLED: Final = "_throttled"  # input: the request was answered 429
VERDICT: Final = "class"
DECIDING: Final = "limit"


class Verdict(StrEnum):
    """What the audit says of a request."""

    JUSTIFIED = "justified"
    AMBIGUOUS = "ambiguous"
    WRONG = "wrong"
    ADMITTED_OVER_LIMIT = "admitted_over_limit"


CLASSES: Final = (Verdict.JUSTIFIED, Verdict.AMBIGUOUS, Verdict.WRONG)


def _usage(limit: Limit, rule: Rule) -> pl.Expr:
    return pl.col(usage_column(limit, rule) if limit in WINDOWED else usage_column(limit))


def over_cap(usage: pl.Expr, cap: pl.Expr) -> pl.Expr:
    """A request that met `usage` is over the limit `cap` (0: unlimited)."""
    return (cap > 0) & (usage + 1 > cap)


def over(limit: Limit, rule: Rule) -> pl.Expr:
    """The request is over `limit` under `rule`."""
    return over_cap(_usage(limit, rule), pl.col(limit_column(limit)))


def under(limit: Limit, rule: Rule, tolerance: float) -> pl.Expr:
    """The request is under `limit` under `rule`, with the tolerance's margin."""
    cap = pl.col(limit_column(limit))
    return (cap == 0) | (_usage(limit, rule) + 1 <= cap.cast(pl.Float64) * (1.0 - tolerance))


def _share(limit: Limit, rule: Rule) -> pl.Expr:
    cap = pl.col(limit_column(limit))
    return pl.when(cap > 0).then((_usage(limit, rule) + 1) / cap).otherwise(0.0)


def classify(frame: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """`frame` (replayed, with THROTTLED) plus VERDICT (null for an admitted request under a limit) and
    DECIDING."""
    limits, rules = tuple(Limit), tuple(Rule)
    over_all = pl.all_horizontal(pl.any_horizontal(over(lim, r) for lim in limits) for r in rules)
    under_all = pl.all_horizontal(under(lim, r, tolerance) for lim in limits for r in rules)
    verdict = (
        pl.when(pl.col(THROTTLED) & over_all)
        .then(pl.lit(Verdict.JUSTIFIED.value))
        .when(pl.col(THROTTLED) & under_all)
        .then(pl.lit(Verdict.WRONG.value))
        .when(pl.col(THROTTLED))
        .then(pl.lit(Verdict.AMBIGUOUS.value))
        .when(over_all)
        .then(pl.lit(Verdict.ADMITTED_OVER_LIMIT.value))
    )
    least = {lim: pl.min_horizontal(_share(lim, r) for r in rules) for lim in limits}
    most = {lim: pl.max_horizontal(_share(lim, r) for r in rules) for lim in limits}
    # Lazy, so the over/under/share expressions shared by the columns are computed once (CSE).
    out = frame.lazy().with_columns(verdict.alias(VERDICT))
    decided = pl.col(VERDICT).is_in([Verdict.JUSTIFIED.value, Verdict.ADMITTED_OVER_LIMIT.value])
    score = {lim: pl.when(decided).then(least[lim]).otherwise(most[lim]) for lim in limits}
    best = pl.max_horizontal(score.values())
    first, *rest = limits
    chain = pl.when(score[first] == best).then(pl.lit(first.value))
    for lim in rest:
        chain = chain.when(score[lim] == best).then(pl.lit(lim.value))  # type: ignore[assignment]
    deciding = chain
    return out.with_columns(pl.when(pl.col(VERDICT).is_not_null()).then(deciding).alias(DECIDING)).collect()
