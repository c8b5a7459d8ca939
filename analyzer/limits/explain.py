"""What the limiter behaved as if it counted: the hypothesis that makes the most wrong 429s of a model
justified while keeping its admitted requests admitted.

For each model with wrong 429s, over the span of those 429s (plus the minute before, for the windows),
each hypothesis is replayed under the fixed minute and the sliding log (the windows a constant can be
fitted under; the bucket's running minimum is not linear in it) and scored as (wrong 429s it puts over
a limit) - (admitted requests of the model it puts over one):

    billed_tokens     TPM and TPD count the tokens the ledger deducted for each request, not those served
    fixed_cost        each request of the model costs a constant C tokens against TPM (the others their
                      served tokens); C is fitted by a sweep over the thresholds C > (TPM - 1 - others) / k,
                      k the model's earlier requests in the window, and a power of two is preferred
                      (a whole 262,144-token context reserved per request)
    tier:<name>       the limits of another tier
    requests_per_min  the limiter counted requests against a cap N per minute instead of tokens (N fitted)

The best is kept when it explains at least half (MIN_SHARE) of the model's wrong 429s; `share` is the
part it explains, the span runs from the first to the last of those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import polars as pl

from analyzer import schema as s
from analyzer.limits.audit import Explanation
from analyzer.limits.classify import THROTTLED, VERDICT, Verdict, over
from analyzer.limits.replay import REQ, TOK, Rule, limit_column, replay, usage_column
from analyzer.limits.settings import Limit, LimitSettings

# Columns of the threshold sweep: a 429 or admission's threshold, and its weight (+1 a wrong 429 it
# would justify, -1 an admitted request it would refuse).
_THR = "thr"
_W = "w"

LEAD: Final = timedelta(minutes=1)
FITTED: Final = (Rule.FIXED, Rule.SLIDING)  # the windows hypotheses are replayed under
MIN_SHARE: Final = 0.5  # an explanation of fewer of a model's wrong 429s is not reported


class Hypothesis(StrEnum):
    """What the limiter may have counted."""

    BILLED_TOKENS = "billed_tokens"
    FIXED_COST = "fixed_cost"
    OTHER_TIER = "other_tier"
    REQUESTS_PER_MINUTE = "requests_per_minute"


@dataclass(frozen=True)
class _Score:
    hypothesis: Hypothesis
    parameter: int | str
    rule: Rule
    explained: pl.Series  # bool per wrong row
    violations: int

    @property
    def score(self) -> int:
        return int(self.explained.sum()) - self.violations


def _over_any(rule: Rule) -> pl.Expr:
    return pl.any_horizontal(over(lim, rule) for lim in Limit)


def _judge(
    frame: pl.DataFrame, wrong: pl.Expr, admitted: pl.Expr, hypothesis: Hypothesis, parameter: int | str
) -> list[_Score]:
    """Score a replayed and limited frame under every rule."""
    out = []
    for rule in FITTED:
        explained = frame.filter(wrong).select(_over_any(rule)).to_series()
        violations = int(frame.select((_over_any(rule) & admitted).sum()).item())
        out.append(_Score(hypothesis, parameter, rule, explained, violations))
    return out


def _sweep(thresholds: pl.DataFrame) -> tuple[int, float, float | None]:
    """(best score, lower, upper): over every cut c, the weights (+1 wrong, -1 admitted) of the rows
    with threshold < c summed; the best cut lies in (lower, upper]."""
    grouped = (
        thresholds.group_by(_THR)
        .agg(pl.col(_W).sum())
        .sort(_THR)
        .with_columns(pl.col(_W).cum_sum().alias("c"))
    )
    if grouped.is_empty():
        return 0, 0.0, None
    best = grouped.with_row_index("i").sort(["c", "i"], descending=[True, False]).row(0, named=True)
    nxt = grouped[_THR].slice(int(best["i"]) + 1, 1)
    return int(best["c"]), float(best[_THR]), None if nxt.is_empty() else float(nxt[0])


def _pick(lower: float, upper: float | None) -> int:
    """A whole number in (lower, upper]: the smallest power of two there, else the upper end."""
    power = 1
    while power <= lower:
        power *= 2
    if upper is None or power <= upper:
        return power
    return int(upper)


def _fit(
    frame: pl.DataFrame, wrong: pl.Expr, admitted: pl.Expr, thr: pl.Expr, hyp: Hypothesis, rule: Rule
) -> tuple[_Score, float, float | None] | None:
    """Sweep a cut c: a row is over when its threshold < c; wrong rows should be, admitted ones not."""
    rows = frame.select(
        thr.alias(_THR),
        pl.when(wrong).then(1).when(admitted).then(-1).otherwise(0).alias(_W),
        wrong.alias("_w"),
    )
    usable = rows.filter((pl.col(_W) != 0) & pl.col(_THR).is_not_null() & pl.col(_THR).is_finite())
    score, lower, upper = _sweep(usable.select(_THR, _W))
    if score <= 0:
        return None
    explained = rows.filter(pl.col("_w")).select((pl.col(_THR) <= lower).fill_null(False)).to_series()
    violations = int(usable.filter((pl.col(_W) < 0) & (pl.col(_THR) <= lower)).height)
    return _Score(hyp, 0, rule, explained, violations), lower, upper


def _billed(ledger: pl.LazyFrame | None) -> pl.DataFrame | None:
    if ledger is None:
        return None
    return (
        ledger.filter((pl.col(s.KIND) == s.LEDGER_DEDUCT) & pl.col(s.REQUEST_ID).is_not_null())
        .group_by(s.REQUEST_ID)
        .agg(pl.col(s.TOKENS).sum().alias("_billed"))
        .collect()
    )


def explain(
    full: pl.DataFrame, ledger: pl.LazyFrame | None, settings: LimitSettings | None
) -> tuple[Explanation, ...]:
    """One explanation per model with wrong 429s that some hypothesis explains, by model name."""
    wrong_rows = full.filter(pl.col(VERDICT) == Verdict.WRONG.value)
    if wrong_rows.is_empty():
        return ()
    billed = _billed(ledger)
    out = []
    for model in sorted(m for m in wrong_rows[s.MODEL].unique().to_list() if m is not None):
        mine = wrong_rows.filter(pl.col(s.MODEL) == model)
        start, end = mine[s.TS].min(), mine[s.TS].max()
        span = full.filter(pl.col(s.TS).is_between(start - LEAD, end))  # type: ignore[operator]
        best = _best(span, model, billed, settings)
        if best is None or int(best.explained.sum()) < MIN_SHARE * len(best.explained):
            continue
        times = span.filter((pl.col(VERDICT) == Verdict.WRONG.value) & (pl.col(s.MODEL) == model))[s.TS]
        hit = times.filter(best.explained)
        out.append(
            Explanation(
                model=model,
                start=_instant(hit.min()),
                end=_instant(hit.max()),
                hypothesis=best.hypothesis.value,
                parameter=best.parameter,
                share=round(int(best.explained.sum()) / len(best.explained), 4),
                explained=int(best.explained.sum()),
                wrong=len(best.explained),
                rule=best.rule.value,
            )
        )
    return tuple(out)


def _instant(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value


def _best(
    span: pl.DataFrame, model: str, billed: pl.DataFrame | None, settings: LimitSettings | None
) -> _Score | None:
    of_model = pl.col(s.MODEL) == model
    wrong = (pl.col(VERDICT) == Verdict.WRONG.value) & of_model
    admitted = ~pl.col(THROTTLED) & of_model
    base = span.drop(*(c for c in span.columns if c.startswith("_use_")))
    scores: list[_Score] = []
    if billed is not None:
        tok = pl.when(pl.col(TOK) > 0).then(pl.col("_billed").fill_null(pl.col(TOK))).otherwise(0)
        frame = base.join(billed, on=s.REQUEST_ID, how="left", maintain_order="left").with_columns(
            tok.alias(TOK)
        )
        scores += _judge(replay(frame), wrong, admitted, Hypothesis.BILLED_TOKENS, "ledger")
    if settings is not None:
        # The span's usage as replayed, held to each tier's limits.
        for name, tier in sorted(settings.tiers.items()):
            swapped = span.with_columns(
                pl.lit(tier.limit(lim), dtype=pl.Int64).alias(limit_column(lim)) for lim in Limit
            )
            scores += _judge(swapped, wrong, admitted, Hypothesis.OTHER_TIER, name)
    # The model's requests counted apart from the rest's tokens, per window rule: k and `others`.
    split = replay(
        base.with_columns(
            (pl.col(REQ) * of_model.cast(pl.Int64)).alias(REQ),
            pl.when(of_model).then(0).otherwise(pl.col(TOK)).alias(TOK),
        )
    )
    counts = span  # requests of every model, as replayed
    tpm = pl.col(limit_column(Limit.TPM))
    for rule in FITTED:
        k = pl.col(usage_column(Limit.RPM, rule))
        # C x k + others + 1 > TPM  <=>  C > (TPM - 1 - others) / k  (k = 0: never over)
        room = (tpm - 1 - pl.col(usage_column(Limit.TPM, rule))).cast(pl.Float64)
        thr = pl.when((k > 0) & (tpm > 0)).then(room / k)
        fitted = _fit(split, wrong, admitted, thr, Hypothesis.FIXED_COST, rule)
        if fitted is not None:
            sc, lower, upper = fitted
            cost = _pick(lower, upper)
            scores.append(_Score(sc.hypothesis, cost, rule, sc.explained, sc.violations))
        # A cap of N requests: k_all + 1 > N  <=>  k_all >= N; as a cut on -k_all, N = -lower.
        counted = _fit(counts, wrong, admitted, -k.cast(pl.Float64), Hypothesis.REQUESTS_PER_MINUTE, rule)
        if counted is not None:
            sc, lower, _ = counted
            scores.append(_Score(sc.hypothesis, max(int(-lower), 1), rule, sc.explained, sc.violations))
    ranked = sorted(
        (sc for sc in scores if int(sc.explained.sum()) > 0 and sc.score > 0),
        key=lambda sc: (
            -sc.score,
            sc.violations,
            list(Hypothesis).index(sc.hypothesis),
            list(Rule).index(sc.rule),
        ),
    )
    return ranked[0] if ranked else None
