"""Fault patterns: what went wrong, in which model and window, and how much of it that explains.

Three families are searched on the flagged deductions:
- multipliers: overcharged entries whose amount fits `prompt + k × completion`, `k × prompt +
  completion` or `k × expected` for one integer k, in a run of time with no gap longer than the
  pattern window, explaining at least `min_pattern_share` of that model's overcharges in the run;
- bunches: duplicates (a sync failure) or charges on failures whose rate in consecutive pattern
  windows stands well above their mean over the ledger;
- wiped balances: overcharges that left an account at zero, per model.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from analyzer.config import ReconcileSettings, polars_every
from analyzer.findings import FaultPattern
from analyzer.reconcile.classify import EXPECTED, PROMPT_PART, WIPED
from analyzer.schema import KIND, MODEL, TOKENS
from analyzer.schema import TS as TS_COL

# (pattern kind, the formula shown, the integer k the amount implies or null when it does not fit)
_E_PROMPT = pl.col(PROMPT_PART)
_E_COMPLETION = pl.col(EXPECTED) - pl.col(PROMPT_PART)
_AMOUNT = pl.col(TOKENS)
_HYPOTHESES: tuple[tuple[str, str, pl.Expr, pl.Expr], ...] = (
    ("completion_multiplied", "prompt + {k} × completion", _AMOUNT - _E_PROMPT, _E_COMPLETION),
    ("prompt_multiplied", "{k} × prompt + completion", _AMOUNT - _E_COMPLETION, _E_PROMPT),
    ("charge_multiplied", "{k} × (prompt + completion)", _AMOUNT, pl.col(EXPECTED)),
)
_HOT_FACTOR = 4  # a window's count must be this many times the mean per window to be a bunch


def find_patterns(
    flagged: pl.DataFrame, first_ts: datetime | None, last_ts: datetime | None, rs: ReconcileSettings
) -> tuple[FaultPattern, ...]:
    """Every fault pattern in the flagged deductions, ordered by start then kind."""
    found = [
        *_multipliers(flagged, rs),
        *_bunches(flagged, "duplicate", "duplicate_burst", first_ts, last_ts, rs),
        *_bunches(flagged, "failed_charged", "failed_charged_in_burst", first_ts, last_ts, rs),
        *_wiped(flagged),
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
            pl.col(TS_COL).min().alias("start"),
            pl.col(TS_COL).max().alias("end"),
            pl.len().cast(pl.Int64).alias("entries"),
        )
    )


def _multipliers(flagged: pl.DataFrame, rs: ReconcileSettings) -> list[FaultPattern]:
    over = flagged.filter((pl.col(KIND) == "overcharge") & pl.col(MODEL).is_not_null())
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
        pl.col("entries") >= rs.min_pattern_entries
    )
    if runs.is_empty():
        return []
    # Share: of all the model's overcharges inside the run's window.
    in_window = (
        runs.join(over.select(MODEL, pl.col(TS_COL).alias("_t")), on=MODEL)
        .filter(pl.col("_t").is_between(pl.col("start"), pl.col("end")))
        .group_by(MODEL, "_h", "_k", "_run")
        .agg(pl.len().alias("_over"))
    )
    scored = (
        runs.join(in_window, on=[MODEL, "_h", "_k", "_run"])
        .with_columns((pl.col("entries") / pl.col("_over")).alias("share"))
        .filter(pl.col("share") >= rs.min_pattern_share)
        .sort(["entries", "_h", MODEL, "start"], descending=[True, False, False, False])
    )
    kept: list[FaultPattern] = []
    # One explanation per model and time: a weaker hypothesis overlapping a kept one is dropped.
    for row in scored.iter_rows(named=True):
        if any(p.model == row[MODEL] and p.start <= row["end"] and row["start"] <= p.end for p in kept):
            continue
        kind, formula, _, _ = _HYPOTHESES[row["_h"]]
        k = int(row["_k"])
        kept.append(
            FaultPattern(
                kind=kind,
                model=row[MODEL],
                start=row["start"],
                end=row["end"],
                entries=int(row["entries"]),
                share=float(row["share"]),
                description=(
                    f"amount = {formula.format(k=k)} for {_pct(row['share'])} of overcharged "
                    f"{row[MODEL]} entries from {_hm(row['start'])} to {_hm(row['end'])}"
                ),
                multiplier=k,
            )
        )
    return kept


def _bunches(
    flagged: pl.DataFrame,
    finding: str,
    pattern: str,
    first_ts: datetime | None,
    last_ts: datetime | None,
    rs: ReconcileSettings,
) -> list[FaultPattern]:
    hits = flagged.filter(pl.col(KIND) == finding).select(TS_COL).sort(TS_COL)
    if hits.height < rs.min_pattern_entries or first_ts is None or last_ts is None:
        return []
    windows = max(1, -(-(last_ts - first_ts) // rs.pattern_window))
    mean = hits.height / windows
    every = polars_every(rs.pattern_window)
    per_window = (
        hits.group_by_dynamic(TS_COL, every=every)
        .agg(pl.len().alias("_n"), pl.col(TS_COL).min().alias("_first"), pl.col(TS_COL).max().alias("_last"))
        .filter((pl.col("_n") >= _HOT_FACTOR * mean) & (pl.col("_n") >= 1))
    )
    if per_window.is_empty():
        return []
    # Hot windows one window apart or less form one bunch.
    new_run = (pl.col(TS_COL).diff() > 2 * rs.pattern_window).fill_null(True)
    bunches = (
        per_window.with_columns(new_run.cum_sum().alias("_run"))
        .group_by("_run")
        .agg(
            pl.col("_n").sum().alias("entries"),
            pl.col("_first").min().alias("start"),
            pl.col("_last").max().alias("end"),
        )
        .filter(pl.col("entries") >= rs.min_pattern_entries)
        .sort("start")
    )
    what = {"duplicate": "duplicate deductions", "failed_charged": "charges on failed requests"}[finding]
    return [
        FaultPattern(
            kind=pattern,
            model=None,
            start=row["start"],
            end=row["end"],
            entries=int(row["entries"]),
            share=row["entries"] / hits.height,
            description=(
                f"{row['entries']} {what} ({_pct(row['entries'] / hits.height)} of all) "
                f"bunched from {_hm(row['start'])} to {_hm(row['end'])}"
            ),
        )
        for row in bunches.iter_rows(named=True)
    ]


def _wiped(flagged: pl.DataFrame) -> list[FaultPattern]:
    over = flagged.filter(pl.col(KIND) == "overcharge")
    wiped = (
        over.filter(pl.col(WIPED))
        .group_by(MODEL)
        .agg(
            pl.col(TS_COL).min().alias("start"),
            pl.col(TS_COL).max().alias("end"),
            pl.len().cast(pl.Int64).alias("entries"),
        )
        .sort(MODEL, nulls_last=True)
    )
    if wiped.is_empty():
        return []
    # Share: of the model's overcharges inside the window.
    scored = (
        wiped.join(over.select(MODEL, pl.col(TS_COL).alias("_t")), on=MODEL, nulls_equal=True)
        .filter(pl.col("_t").is_between(pl.col("start"), pl.col("end")))
        .group_by(MODEL, "start", "end", "entries")
        .agg(pl.len().alias("_over"))
        .sort(MODEL, nulls_last=True)
    )
    return [
        FaultPattern(
            kind="balance_wiped",
            model=row[MODEL],
            start=row["start"],
            end=row["end"],
            entries=int(row["entries"]),
            share=row["entries"] / row["_over"],
            description=(
                f"{row['entries']} overcharges of {row[MODEL] or 'unknown model'} left the balance at 0 "
                f"from {_hm(row['start'])} to {_hm(row['end'])}"
            ),
        )
        for row in scored.iter_rows(named=True)
    ]


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _hm(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")
