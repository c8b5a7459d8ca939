"""What the limiter behaved as if it counted: the hypothesis that makes the most wrong 429s of a model
justified while keeping its admitted requests admitted.

For each model with wrong 429s, each hypothesis is replayed over each partition of accounts (the whole
of each account's day, one partition at a time: a cumulative sum and a gather over the windows the
audit found, `replay.usage`) under the fixed minute and the sliding log (the windows a constant can be
fitted under; the bucket's running minimum is not linear in it), and scored over the span of those 429s
(from the minute before the first) as (wrong 429s it puts over a limit) - (admitted requests of the
model it puts over one); the partitions' scored rows are concatenated, then swept:

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

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

import polars as pl

from analyzer import schema as s
from analyzer.limits.audit import ORDER, Explanation, Requests
from analyzer.limits.classify import THROTTLED, VERDICT, Verdict, over_cap
from analyzer.limits.replay import DAY_FIRST, REQ, START, TOK, Rule, limit_column, usage, usage_column
from analyzer.limits.settings import Limit, LimitSettings, Tier

# Columns of the threshold sweep: a 429 or admission's threshold, and its weight (+1 a wrong 429 it
# would justify, -1 an admitted request it would refuse).
_THR = "thr"
_W = "w"

LEAD_US: Final = 60_000_000  # the span's admitted requests are scored from a minute before
_BILLED: Final = "_billed"
_RID: Final = "_rid"
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
    explained: int  # of the model's wrong 429s, those it puts over a limit
    wrong: int
    first: int | None  # ts (us) of the first and last of them
    last: int | None
    violations: int

    @property
    def score(self) -> int:
        return self.explained - self.violations


@dataclass(frozen=True)
class _Judged:
    """A hypothesis with no constant to fit: a column of `scored` saying the row is over a limit."""

    hypothesis: Hypothesis
    parameter: str
    rule: Rule
    column: str


@dataclass(frozen=True)
class _Fitted:
    """A hypothesis with a constant: a column of `scored` holding each row's threshold."""

    hypothesis: Hypothesis
    rule: Rule
    column: str


_TS, _WRONG = "_ts", "_wrong"  # columns of the scored rows: logged ts (us), a wrong 429 (else admitted)


def _over_any(use: dict[Limit, pl.Expr]) -> pl.Expr:
    """Over some limit of the row (LIMIT_* columns) with these usages."""
    return pl.any_horizontal(over_cap(use[lim], pl.col(limit_column(lim))) for lim in Limit)


def _base(rule: Rule) -> dict[Limit, pl.Expr]:
    """The usage of each limit under `rule`, as replayed."""
    return {
        Limit.CONCURRENCY: pl.col(usage_column(Limit.CONCURRENCY)),
        Limit.RPM: pl.col(usage_column(Limit.RPM, rule)),
        Limit.TPM: pl.col(usage_column(Limit.TPM, rule)),
        Limit.TPD: pl.col(usage_column(Limit.TPD)),
    }


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


def _tally(scored: pl.DataFrame, hit: pl.Expr) -> tuple[int, int | None, int | None, int]:
    """(wrong 429s hit, first and last ts of them, admitted requests hit) of the scored rows."""
    explained = pl.col(_WRONG) & hit
    row = scored.select(
        explained.sum().alias("n"),
        pl.col(_TS).filter(explained).min().alias("first"),
        pl.col(_TS).filter(explained).max().alias("last"),
        (~pl.col(_WRONG) & hit).sum().alias("v"),
    ).row(0)
    return int(row[0]), row[1], row[2], int(row[3])


def _judge(scored: pl.DataFrame, wrong: int, h: _Judged) -> _Score:
    n, first, last, violations = _tally(scored, pl.col(h.column))
    return _Score(h.hypothesis, h.parameter, h.rule, n, wrong, first, last, violations)


def _fit(scored: pl.DataFrame, wrong: int, h: _Fitted) -> tuple[_Score, float, float | None] | None:
    """Sweep a cut c: a row is over when its threshold < c; wrong rows should be, admitted ones not."""
    thr = pl.col(h.column)
    usable = scored.filter(thr.is_not_null() & thr.is_finite()).select(
        thr.alias(_THR), pl.when(pl.col(_WRONG)).then(1).otherwise(-1).alias(_W)
    )
    score, lower, upper = _sweep(usable)
    if score <= 0:
        return None
    n, first, last, violations = _tally(scored, (thr <= lower).fill_null(False))
    return _Score(h.hypothesis, 0, h.rule, n, wrong, first, last, violations), lower, upper


def _billed(gateway: pl.LazyFrame, ledger: pl.LazyFrame | None) -> pl.Series | None:
    """The tokens the ledger deducted for each gateway row (null: none), by its row (ORDER)."""
    if ledger is None:
        return None
    # Joined on the ids' 64-bit hashes (2-4x faster than on the strings at 1M requests): two of n ids
    # share one with odds about n^2 / 2^65 (3e-6 at 10M), and would only pool two requests' billed tokens
    # in this hypothesis, never a count of the audit.
    rid = pl.col(s.REQUEST_ID).hash().alias(_RID)
    deducted = (
        ledger.filter((pl.col(s.KIND) == s.LEDGER_DEDUCT) & pl.col(s.REQUEST_ID).is_not_null())
        .group_by(rid)
        .agg(pl.col(s.TOKENS).sum().alias(_BILLED))
    )
    return (
        gateway.select(pl.when(pl.col(s.REQUEST_ID).is_not_null()).then(rid))
        .join(deducted, on=_RID, how="left", maintain_order="left")
        .select(_BILLED)
        .collect()
        .to_series()
    )


def explain(
    rows: Requests,
    flagged: pl.DataFrame,
    gateway: pl.LazyFrame,
    ledger: pl.LazyFrame | None,
    settings: LimitSettings | None,
) -> tuple[Explanation, ...]:
    """One explanation per model with wrong 429s that some hypothesis explains, by model name.
    `flagged`: the partitions' `classify_part` rows; each partition is replayed again, one at a time."""
    wrong_rows = flagged.filter(pl.col(VERDICT) == Verdict.WRONG.value).with_columns(
        rows.ts().alias(_TS), pl.col(s.MODEL).cast(pl.String)
    )
    models = sorted(m for m in wrong_rows[s.MODEL].unique().to_list() if m is not None)
    if not models:
        return ()
    ends = wrong_rows.group_by(s.MODEL).agg(pl.col(_TS).min().alias("a"), pl.col(_TS).max().alias("b"))
    spans = {m: (int(a), int(b)) for m, a, b in ends.iter_rows() if m is not None}
    billed = _billed(gateway, ledger)
    wrong_orders = wrong_rows[ORDER].implode()
    tiers = sorted(settings.tiers.items()) if settings is not None else []
    scored: dict[str, list[pl.DataFrame]] = {m: [] for m in models}
    hypotheses: list[_Judged | _Fitted] = []
    for frame in rows.limited(settings):
        if billed is not None:
            frame = frame.with_columns(billed.gather(frame[ORDER]).alias(_BILLED))
        for model in models:
            got, hypotheses = _scored(
                frame, model, spans[model], rows, wrong_orders, tiers, billed is not None
            )
            scored[model].append(got)
    out = []
    for model in models:
        every = pl.concat(scored[model])
        wrong = int(every[_WRONG].sum())
        best = _best(every, wrong, hypotheses)
        if best is None or best.explained < MIN_SHARE * wrong:
            continue
        out.append(
            Explanation(
                model=model,
                start=_instant(best.first),
                end=_instant(best.last),
                hypothesis=best.hypothesis.value,
                parameter=best.parameter,
                share=round(best.explained / wrong, 4),
                explained=best.explained,
                wrong=wrong,
                rule=best.rule.value,
            )
        )
    return tuple(out)


def _instant(us: int | None) -> datetime:
    assert us is not None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _scored(
    frame: pl.DataFrame,
    model: str,
    span: tuple[int, int],
    rows: Requests,
    wrong_orders: pl.Series,
    tiers: list[tuple[str, Tier]],
    billed: bool,
) -> tuple[pl.DataFrame, list[_Judged | _Fitted]]:
    """The model's wrong 429s and admitted requests over its span (from the minute before its first
    wrong 429), each with whether each hypothesis puts it over a limit or, for a fitted one, its
    threshold; and the hypotheses, in the order they are ranked on ties."""
    of_model = pl.col(s.MODEL) == model
    columns: dict[str, pl.Expr] = {}
    hypotheses: list[_Judged | _Fitted] = []
    for rule in FITTED:
        base, start = _base(rule), START[rule]
        if billed:
            tok = pl.when(pl.col(TOK) > 0).then(pl.col(_BILLED).fill_null(pl.col(TOK))).otherwise(0)
            use = base | {Limit.TPM: usage(tok, start), Limit.TPD: usage(tok, DAY_FIRST)}
            hypotheses.append(_Judged(Hypothesis.BILLED_TOKENS, "ledger", rule, f"_billed_{rule.value}"))
            columns[hypotheses[-1].column] = _over_any(use)
        for name, tier in tiers:
            caps = {lim: pl.lit(tier.limit(lim), dtype=pl.Int64) for lim in Limit}
            hypotheses.append(_Judged(Hypothesis.OTHER_TIER, name, rule, f"_tier_{name}_{rule.value}"))
            columns[hypotheses[-1].column] = pl.any_horizontal(
                over_cap(base[lim], caps[lim]) for lim in Limit
            )
        # The model's requests counted apart from the rest's tokens: k and `others`.
        # C x k + others + 1 > TPM  <=>  C > (TPM - 1 - others) / k  (k = 0: never over)
        k = usage(pl.col(REQ) * of_model.cast(pl.Int64), start)
        others = usage(pl.when(of_model).then(0).otherwise(pl.col(TOK)), start)
        tpm = pl.col(limit_column(Limit.TPM))
        room = (tpm - 1 - others).cast(pl.Float64)
        hypotheses.append(_Fitted(Hypothesis.FIXED_COST, rule, f"_cost_{rule.value}"))
        columns[hypotheses[-1].column] = pl.when((k > 0) & (tpm > 0)).then(room / k)
        # A cap of N requests: k_all + 1 > N  <=>  k_all >= N; as a cut on -k_all, N = -lower.
        hypotheses.append(_Fitted(Hypothesis.REQUESTS_PER_MINUTE, rule, f"_count_{rule.value}"))
        columns[hypotheses[-1].column] = -base[Limit.RPM].cast(pl.Float64)
    wrong = pl.col(ORDER).is_in(wrong_orders) & of_model
    admitted = ~pl.col(THROTTLED) & of_model
    ts = rows.ts()
    # Over the whole partition, then filtered: a window's sum starts at its account's first row.
    got = (
        frame.lazy()
        .with_columns(**columns)
        .collect()
        .filter(ts.is_between(span[0] - LEAD_US, span[1]) & (wrong | admitted))
        .select(ts.alias(_TS), wrong.alias(_WRONG), *columns)
    )
    return got, hypotheses


def _best(scored: pl.DataFrame, wrong: int, hypotheses: list[_Judged | _Fitted]) -> _Score | None:
    scores: list[_Score] = []
    for h in hypotheses:
        if isinstance(h, _Judged):
            scores.append(_judge(scored, wrong, h))
            continue
        fitted = _fit(scored, wrong, h)
        if fitted is None:
            continue
        sc, lower, upper = fitted
        parameter = _pick(lower, upper) if h.hypothesis == Hypothesis.FIXED_COST else max(int(-lower), 1)
        scores.append(replace(sc, parameter=parameter))
    ranked = sorted(
        (sc for sc in scores if sc.explained > 0 and sc.score > 0),
        key=lambda sc: (
            -sc.score,
            sc.violations,
            list(Hypothesis).index(sc.hypothesis),
            list(Rule).index(sc.rule),
        ),
    )
    return ranked[0] if ranked else None
