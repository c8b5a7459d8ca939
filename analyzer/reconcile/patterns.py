"""Fault patterns: what went wrong, in which model and window, and how much of it that explains.

Three families are searched on the flagged deductions:
- multipliers: overcharged entries whose amount fits `prompt + k × completion`, `k × prompt +
  completion` or `k × expected` for one integer k, in a run of time with no gap longer than the
  pattern window, explaining at least `min_pattern_share` of that model's overcharges in the run;
- bunches: duplicates (a sync failure) or charges on failures whose rate in consecutive pattern
  windows stands well above their mean over the ledger; a bunch is named after a model when that
  model holds `min_pattern_share` of it, and a model's own bunch, hidden among all models, is
  found against that model's mean;
- wiped balances: overcharges that left an account at zero, per model;
- wrong rules: runs of deductions that equal what a known billing bug charges (cached tokens at the
  full prompt price, reasoning counted twice), per model, with their share of its overcharges.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from analyzer.config import ReconcileSettings, polars_every
from analyzer.findings import OVERCHARGE_KINDS, FaultPattern, Finding, Pattern
from analyzer.reconcile.classify import EXPECTED, PROMPT_PART, WIPED
from analyzer.schema import KIND, MODEL, TOKENS
from analyzer.schema import TS as TS_COL

# (pattern kind, the formula shown, the integer k the amount implies or null when it does not fit)
_E_PROMPT = pl.col(PROMPT_PART)
_E_COMPLETION = pl.col(EXPECTED) - pl.col(PROMPT_PART)
_AMOUNT = pl.col(TOKENS)
_HYPOTHESES: tuple[tuple[str, str, pl.Expr, pl.Expr], ...] = (
    (Pattern.COMPLETION_MULTIPLIED, "prompt + {k} × completion", _AMOUNT - _E_PROMPT, _E_COMPLETION),
    (Pattern.PROMPT_MULTIPLIED, "{k} × prompt + completion", _AMOUNT - _E_COMPLETION, _E_PROMPT),
    (Pattern.CHARGE_MULTIPLIED, "{k} × (prompt + completion)", _AMOUNT, pl.col(EXPECTED)),
)
_HOT_FACTOR = 4  # a window's count must be this many times the baseline per window to be a bunch
_BASELINE_ROUNDS = 3  # re-estimates of the baseline without the hot windows
_NO_MODEL = "\x00"  # stands for a null model where a key cannot be null
# What a bunch of each finding kind is, in the pattern's description.
_BUNCHED: dict[str, str] = {
    Finding.DUPLICATE: "duplicate deductions",
    Finding.FAILED_CHARGED: "charges on failed requests",
}
# Columns of a run of findings (`_runs`, `_hot_runs`, `_wiped`): its first and last time, its entries.
_START, _END, _ENTRIES, _SHARE = "start", "end", "entries", "share"


def find_patterns(
    flagged: pl.DataFrame, first_ts: datetime | None, last_ts: datetime | None, rs: ReconcileSettings
) -> tuple[FaultPattern, ...]:
    """Every fault pattern in the flagged deductions, ordered by start then kind."""
    found = [
        *_multipliers(flagged, rs),
        *_bunches(flagged, Finding.DUPLICATE, Pattern.DUPLICATE_BURST, first_ts, last_ts, rs),
        *_bunches(flagged, Finding.FAILED_CHARGED, Pattern.FAILED_CHARGED_IN_BURST, first_ts, last_ts, rs),
        *_wiped(flagged),
        *_wrong_rules(flagged, rs),
    ]
    return tuple(sorted(found, key=lambda p: (p.start, p.kind, p.model or "")))


def _runs(df: pl.DataFrame, keys: list[str], gap: timedelta) -> pl.DataFrame:
    """Group rows into runs per key where consecutive times are at most `gap` apart."""
    gap_us = int(gap / timedelta(microseconds=1))
    new_run = (pl.col(TS_COL).diff().dt.total_microseconds() > gap_us).fill_null(True)
    return (
        df.sort([*keys, TS_COL])
        .with_columns(new_run.cum_sum().over(keys).alias("_run"))
        .group_by([*keys, "_run"])
        .agg(
            pl.col(TS_COL).min().alias(_START),
            pl.col(TS_COL).max().alias(_END),
            pl.len().cast(pl.Int64).alias(_ENTRIES),
        )
    )


def _multipliers(flagged: pl.DataFrame, rs: ReconcileSettings) -> list[FaultPattern]:
    over = flagged.filter((pl.col(KIND) == Finding.OVERCHARGE) & pl.col(MODEL).is_not_null())
    if over.is_empty():
        return []
    fits = pl.concat(
        [
            over.filter((den > 0) & (num % den == 0) & (num // den >= 2)).select(
                TS_COL,
                MODEL,
                pl.lit(i).alias("_h"),
                (num // den).alias("_k"),
            )
            for i, (_, _, num, den) in enumerate(_HYPOTHESES)
        ]
    )
    runs = _runs(fits, [MODEL, "_h", "_k"], rs.pattern_window).filter(
        pl.col(_ENTRIES) >= rs.min_pattern_entries
    )
    if runs.is_empty():
        return []
    # Share: of all the model's overcharges inside the run's window.
    scored = (
        runs.with_columns(_count_between(over.select(MODEL, TS_COL), runs, [MODEL]).alias("_over"))
        .with_columns((pl.col(_ENTRIES) / pl.col("_over")).alias(_SHARE))
        .filter(pl.col(_SHARE) >= rs.min_pattern_share)
        .sort([_ENTRIES, "_h", MODEL, _START], descending=[True, False, False, False])
    )
    kept: list[FaultPattern] = []
    # One explanation per model and time: a weaker hypothesis overlapping a kept one is dropped.
    for row in scored.iter_rows(named=True):
        if any(p.model == row[MODEL] and p.start <= row[_END] and row[_START] <= p.end for p in kept):
            continue
        kind, formula, _, _ = _HYPOTHESES[row["_h"]]
        k = int(row["_k"])
        kept.append(
            FaultPattern(
                kind=kind,
                model=row[MODEL],
                start=row[_START],
                end=row[_END],
                entries=int(row[_ENTRIES]),
                share=float(row[_SHARE]),
                description=(
                    f"amount = {formula.format(k=k)} for {_pct(row[_SHARE])} of overcharged "
                    f"{row[MODEL]} entries {_span(row[_START], row[_END])}"
                ),
                multiplier=k,
            )
        )
    return kept


def _count_between(events: pl.DataFrame, windows: pl.DataFrame, keys: list[str]) -> pl.Series:
    """For each window (keys, start, end), how many events (keys, ts) fall in [start, end].

    Counts come from cumulative counts looked up with two as-of joins, not from joining every
    window to every event of its key (windows x events rows: gigabytes at 10M deductions).
    """
    cum = (
        events.group_by(*keys, TS_COL)
        .agg(pl.len().alias("_n"))
        .sort(TS_COL)
        .with_columns(pl.col("_n").cum_sum().over(keys).alias("_c") if keys else pl.col("_n").cum_sum())
        .select(*keys, TS_COL, "_c")
    )
    w = windows.select(*keys, _START, _END).with_row_index("_w")

    def upto(on: str, exact: bool) -> pl.DataFrame:
        return (
            w.sort(on)
            # Both sides are sorted by time (within each key too); Polars cannot verify it with `by`.
            .join_asof(
                cum,
                left_on=on,
                right_on=TS_COL,
                by=keys or None,
                allow_exact_matches=exact,
                check_sortedness=False,
            )
            .select("_w", pl.col("_c").fill_null(0))
        )

    counts = upto(_END, True).join(upto(_START, False), on="_w", suffix="_before").sort("_w")
    return (counts["_c"] - counts["_c_before"]).cast(pl.Int64)


def _hot(hits: pl.DataFrame, keys: list[str], windows: int, rs: ReconcileSettings) -> pl.DataFrame:
    """Per key, runs of pattern windows whose count departs from the key's baseline per window.

    The baseline is the mean count of the windows that are not hot, re-estimated (a fault running for
    hours would otherwise raise its own bar and break into fragments); a window is hot at HOT_FACTOR
    times it. Hot windows one window apart or less form one bunch."""
    every = polars_every(rs.pattern_window)

    def over(e: pl.Expr) -> pl.Expr:
        return e.over(keys) if keys else e

    per_window = (
        hits.sort(TS_COL)
        .group_by_dynamic(TS_COL, every=every, group_by=keys or None)
        .agg(pl.len().alias("_n"), pl.col(TS_COL).min().alias("_first"), pl.col(TS_COL).max().alias("_last"))
        .with_columns(over(pl.col("_n").sum()).alias("_total"))
        .with_columns((pl.col("_n") >= _HOT_FACTOR * pl.col("_total") / windows).alias("_hot"))
    )
    for _ in range(_BASELINE_ROUNDS):
        hot_n = over(pl.col("_n").filter(pl.col("_hot")).sum())
        hot_w = over(pl.col("_hot").sum())
        base = (pl.col("_total") - hot_n) / pl.max_horizontal(pl.lit(windows) - hot_w, pl.lit(1))
        per_window = per_window.with_columns(
            ((pl.col("_n") >= _HOT_FACTOR * base) & (pl.col("_n") > base)).alias("_hot")
        )
    per_window = per_window.filter(pl.col("_hot")).sort(*keys, TS_COL)
    gap = pl.col(TS_COL).diff() > 2 * rs.pattern_window
    new_run = (gap.over(keys) if keys else gap).fill_null(True)
    return (
        per_window.with_columns(new_run.cum_sum().alias("_run"))
        .group_by(*keys, "_run")
        .agg(
            pl.col("_n").sum().alias(_ENTRIES),
            pl.col("_first").min().alias(_START),
            pl.col("_last").max().alias(_END),
            pl.col("_total").first(),
        )
        .filter(pl.col(_ENTRIES) >= rs.min_pattern_entries)
        .sort(_START, *keys)
    )


def _bunches(
    flagged: pl.DataFrame,
    finding: str,
    pattern: str,
    first_ts: datetime | None,
    last_ts: datetime | None,
    rs: ReconcileSettings,
) -> list[FaultPattern]:
    """Bunches of one finding kind: over all models, named after one model when it holds nearly all
    of a bunch; and per model, where a model's own bunch does not show among all models."""
    hits = flagged.filter(pl.col(KIND) == finding).select(TS_COL, pl.col(MODEL).fill_null(_NO_MODEL))
    if hits.height < rs.min_pattern_entries or first_ts is None or last_ts is None:
        return []
    windows = max(1, -(-(last_ts - first_ts) // rs.pattern_window))
    what = _BUNCHED[finding]
    totals = dict(hits.group_by(MODEL).len().iter_rows())
    found: list[FaultPattern] = []
    overall = _hot(hits, [], windows, rs)
    for row in overall.iter_rows(named=True):
        inside = hits.filter(pl.col(TS_COL).is_between(row[_START], row[_END]))
        top, top_n = inside.group_by(MODEL).len().sort(["len", MODEL], descending=[True, False]).row(0)
        if top_n >= rs.min_pattern_share * row[_ENTRIES] and top != _NO_MODEL:
            found.append(_bunch(pattern, what, top, row[_START], row[_END], top_n, totals[top]))
        else:
            found.append(_bunch(pattern, what, None, row[_START], row[_END], row[_ENTRIES], hits.height))
    for row in _hot(hits, [MODEL], windows, rs).iter_rows(named=True):
        if any(p.start <= row[_END] and row[_START] <= p.end for p in found):
            continue  # already told, among all models
        model = None if row[MODEL] == _NO_MODEL else row[MODEL]
        found.append(_bunch(pattern, what, model, row[_START], row[_END], row[_ENTRIES], row["_total"]))
    return found


def _bunch(
    pattern: str, what: str, model: str | None, start: datetime, end: datetime, entries: int, of: int
) -> FaultPattern:
    whose = f"{model} " if model else ""
    scope = f"of {model}'s" if model else "of all"
    rate = round(entries / max((end - start) / timedelta(hours=1), 1 / 60), 1)
    return FaultPattern(
        kind=pattern,
        model=model,
        start=start,
        end=end,
        entries=int(entries),
        share=entries / of,
        description=(
            f"{entries} {whose}{what} ({_pct(entries / of)} {scope}) bunched {_span(start, end)}, {rate:g} an hour"
        ),
        rate_per_hour=rate,
    )


def _wiped(flagged: pl.DataFrame) -> list[FaultPattern]:
    over = flagged.filter(pl.col(KIND) == Finding.OVERCHARGE)
    wiped = (
        over.filter(pl.col(WIPED))
        .group_by(MODEL)
        .agg(
            pl.col(TS_COL).min().alias(_START),
            pl.col(TS_COL).max().alias(_END),
            pl.len().cast(pl.Int64).alias(_ENTRIES),
        )
        .sort(MODEL, nulls_last=True)
    )
    if wiped.is_empty():
        return []
    # Share: of the model's overcharges inside the window.
    filled = pl.col(MODEL).fill_null(_NO_MODEL)
    scored = wiped.with_columns(
        _count_between(over.select(filled, TS_COL), wiped.with_columns(filled), [MODEL]).alias("_over")
    )
    return [
        FaultPattern(
            kind=Pattern.BALANCE_WIPED,
            model=row[MODEL],
            start=row[_START],
            end=row[_END],
            entries=int(row[_ENTRIES]),
            share=row[_ENTRIES] / row["_over"],
            description=(
                f"{row[_ENTRIES]} overcharge{'' if row[_ENTRIES] == 1 else 's'} of "
                f"{row[MODEL] or 'unknown model'} left the balance at 0 {_span(row[_START], row[_END])}"
            ),
        )
        for row in scored.iter_rows(named=True)
    ]


# Finding kinds named after the wrong rule that produced them: their pattern and what the rule did.
_WRONG_RULES = (
    (
        Finding.CACHED_AT_FULL_PRICE,
        Pattern.CACHED_AT_FULL_PRICE,
        "cached prompt tokens charged at the full prompt price",
    ),
    (
        Finding.REASONING_COUNTED_TWICE,
        Pattern.REASONING_COUNTED_TWICE,
        "reasoning tokens charged twice (added to a completion that holds them)",
    ),
)


def _wrong_rules(flagged: pl.DataFrame, rs: ReconcileSettings) -> list[FaultPattern]:
    """Per model, runs of deductions a known wrong rule explains, with their share of its overcharges."""
    over = flagged.filter(pl.col(KIND).is_in(OVERCHARGE_KINDS) & pl.col(MODEL).is_not_null())
    found: list[FaultPattern] = []
    for finding, pattern, what in _WRONG_RULES:
        hits = over.filter(pl.col(KIND) == finding)
        if hits.is_empty():
            continue
        runs = _runs(hits, [MODEL], rs.pattern_window).filter(pl.col(_ENTRIES) >= rs.min_pattern_entries)
        if runs.is_empty():
            continue
        scored = runs.with_columns(_count_between(over.select(MODEL, TS_COL), runs, [MODEL]).alias("_over"))
        for row in scored.sort(MODEL, _START).iter_rows(named=True):
            share = row[_ENTRIES] / row["_over"]
            found.append(
                FaultPattern(
                    kind=pattern,
                    model=row[MODEL],
                    start=row[_START],
                    end=row[_END],
                    entries=int(row[_ENTRIES]),
                    share=share,
                    description=(
                        f"{what} in {row[_ENTRIES]} {row[MODEL]} entries ({_pct(share)} of its "
                        f"overcharges) {_span(row[_START], row[_END])}"
                    ),
                )
            )
    return found


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _span(start: datetime, end: datetime) -> str:
    """'on 2026-04-22 from 09:01 to 11:30 UTC', the date written once; 'at …' for a single minute."""
    if start.strftime("%Y%m%d%H%M") == end.strftime("%Y%m%d%H%M"):
        return f"at {start:%Y-%m-%d %H:%M} UTC"
    if start.date() == end.date():
        return f"on {start:%Y-%m-%d} from {start:%H:%M} to {end:%H:%M} UTC"
    return f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
