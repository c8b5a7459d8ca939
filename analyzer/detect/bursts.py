"""5xx bursts: per-window error rates scored against a robust per-scope baseline, then attributed.

Baseline: the pooled error rate of the scope's windows that are not themselves flagged, found by
re-estimating three times, so a long incident cannot drag it along; capped at `baseline_cap` so that
data failing throughout still stands out. Score: the binomial z of the window's errors against that
rate, its variance floored at 1 so that a baseline of zero (most minutes without 5xx) is not a
division by zero and a single error is not a burst.

Shadows: one incident shows in several scopes (global, its region, every model the region serves).
Within a burst, a slice value's risk ratio is its error rate over the error rate of the rest of the
burst's traffic. A burst is dropped as a shadow of an overlapping slice burst `c=v` when, inside the
burst, `c=v` holds most (>= half) of the errors at a risk ratio of at least `attribution_lift`
(the rest of the traffic was not failing much); a slice burst is dropped as a shadow of a kept global
burst when its risk ratio there is below that (it failed no more than the rest). So a global burst is
kept only when no single slice accounts for most of its errors. When two slice bursts explain each
other (a model served by one upstream), the higher peak rate wins, then the column listed first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from analyzer import schema as s
from analyzer.config import BurstSettings, Settings, polars_every
from analyzer.detect.islands import OPEN, START_IDX, STAY, episode_summary, episode_windows, islands
from analyzer.detect.windows import (
    COLUMN,
    ERRORS,
    GLOBAL_COLUMN,
    REQUESTS,
    SCOPE,
    VALUE,
    WINDOW,
    smoothed,
)
from analyzer.findings import GLOBAL, AlertFiring, BurnRateAlert, Burst, Contributor

# Columns of the scored windows: the error rate expected from the scope's baseline, and how far above it
# the window stands in standard deviations.
_BASELINE = "baseline"
_Z = "z"


def score(counts: pl.DataFrame, b: BurstSettings) -> pl.DataFrame:
    """Per scope and window: rate, baseline, z, and whether it opens (`open`) or keeps (`stay`) a burst.

    A slice too thin for one window to say anything (a region at 1 request/s) is scored on the sums
    of 3 or 5 centred windows; `rate` (for the peak) stays the window's own.
    """
    # Chosen per window, not per scope: a scope of ~20 requests a minute has windows of 15.
    own = pl.col(REQUESTS)
    is_global = pl.col(COLUMN) == GLOBAL_COLUMN
    df = (
        counts.sort(SCOPE, WINDOW)
        .with_columns(
            (pl.col(ERRORS) / pl.col(REQUESTS)).fill_nan(0.0).alias("rate"),
            smoothed(REQUESTS, own, b.min_slice_requests, is_global).alias("_n"),
            smoothed(ERRORS, own, b.min_slice_requests, is_global).alias("_e"),
        )
        .with_columns(
            (pl.col("_e") / pl.col("_n")).fill_nan(0.0).alias("_r"),
            # The global scope is scored however thin (its rows all hold requests); a slice needs
            # min_slice_requests in its window or in the 3 or 5 around it.
            (is_global | (pl.col("_n") >= b.min_slice_requests)).alias("_scorable"),
            pl.lit(True).alias("_clean"),
        )
    )
    for _ in range(3):
        clean = pl.col("_clean") & pl.col("_scorable")
        base = pl.when(clean).then(ERRORS).otherwise(0).sum().over(SCOPE) / pl.when(clean).then(
            REQUESTS
        ).otherwise(0).sum().over(SCOPE)
        df = df.with_columns(
            base.fill_nan(None).fill_null(b.baseline_cap).clip(0.0, b.baseline_cap).alias(_BASELINE)
        )
        expected = pl.col("_n") * pl.col(_BASELINE)
        sd = (expected * (1 - pl.col(_BASELINE))).clip(1.0, None).sqrt()
        df = df.with_columns(((pl.col("_e") - expected) / sd).alias(_Z))
        df = df.with_columns(~((pl.col(_Z) >= b.z_stay) & (pl.col("_r") >= b.rate_floor)).alias("_clean"))
    return df.with_columns(
        (
            pl.col("_scorable")
            & (pl.col("_e") >= b.min_errors)
            & (pl.col("_r") >= b.rate_floor)
            & (pl.col("_r") >= b.baseline_multiple * pl.col(_BASELINE))
            & (pl.col(_Z) >= b.z_open)
        ).alias(OPEN),
        (pl.col("_scorable") & (pl.col(_Z) >= b.z_stay) & (pl.col("_r") >= b.rate_floor)).alias(STAY),
    ).drop("_clean", "_scorable", "_n", "_e", "_r")


@dataclass(frozen=True)
class _Candidate:
    scope: str
    column: str | None
    value: str | None
    start: datetime
    end: datetime
    peak_at: datetime
    peak_error_rate: float
    requests: int
    errors: int
    status_counts: dict[str, int]
    baseline: float


def _candidates(scored: pl.DataFrame, b: BurstSettings, status_cols: list[str]) -> list[_Candidate]:
    episodes = islands(scored, close_after=b.close_after, merge_gap=b.merge_gap)
    if episodes.height == 0:
        return []
    rows = (
        episode_windows(scored, episodes, "rate")
        .group_by(SCOPE, START_IDX, maintain_order=True)
        .agg(
            *episode_summary("rate"),
            pl.col(REQUESTS).sum(),
            pl.col(ERRORS).sum(),
            pl.col(_BASELINE).first(),
            *[pl.col(c).sum() for c in status_cols],
        )
    )
    out = []
    for r in rows.iter_rows(named=True):
        is_global = r[COLUMN] == GLOBAL_COLUMN
        out.append(
            _Candidate(
                scope=r[SCOPE],
                column=None if is_global else r[COLUMN],
                value=None if is_global else r[VALUE],
                start=r["start"],
                end=r["last"] + b.window,
                peak_at=r["peak_at"],
                peak_error_rate=float(r["peak"]),
                requests=int(r[REQUESTS]),
                errors=int(r[ERRORS]),
                status_counts={c.removeprefix("status_"): int(r[c]) for c in status_cols if int(r[c]) > 0},
                baseline=float(r[_BASELINE]),
            )
        )
    return out


def _inside(gateway: pl.LazyFrame, cands: list[_Candidate], settings: Settings) -> pl.DataFrame:
    """Requests and errors of every candidate's scope and span by slice values and account (one pass).

    A candidate spans whole windows: it becomes a small table of (window, value, candidate), and the
    rows of the candidates' span are joined to it on their window and value, one join per slice
    column (and one on the window alone for global candidates). Grouped in the query, so only a small
    table is collected whatever the size of the bursts.
    """
    slices = list(settings.bursts.slices)
    every = polars_every(settings.bursts.window)
    spans = pl.DataFrame(
        {
            "_bid": list(range(len(cands))),
            COLUMN: [c.column for c in cands],
            VALUE: [c.value for c in cands],
            "_start": [c.start for c in cands],
            "_end": [c.end for c in cands],
        },
        schema={
            "_bid": pl.Int64(),
            COLUMN: pl.String(),
            VALUE: pl.String(),
            "_start": s.TS_DTYPE,
            "_end": s.TS_DTYPE,
        },
    )
    windows = spans.select(
        "_bid",
        COLUMN,
        VALUE,
        pl.datetime_ranges("_start", "_end", every, closed="left").alias(WINDOW),
    ).explode(WINDOW)
    # The span of all candidates first: a plain range the scan can prune row groups with.
    span = pl.col(s.TS).is_between(
        pl.lit(min(c.start for c in cands)), pl.lit(max(c.end for c in cands)), closed="left"
    )
    rows = gateway.filter(span).select(
        pl.col(s.TS).dt.truncate(every).alias(WINDOW),
        pl.col(s.STATUS).is_in(list(settings.bursts.statuses)).alias("_err"),
        pl.col(s.ACCOUNT_ID),
        *[pl.col(c).cast(pl.String) for c in slices],
    )
    parts = []
    for column in sorted({c.column or "" for c in cands}):
        table = windows.filter(pl.col(COLUMN).fill_null("") == column)
        if column:
            keys = table.select(WINDOW, pl.col(VALUE).alias(column), "_bid").lazy()
            parts.append(rows.join(keys, on=[WINDOW, column]))
        else:
            parts.append(rows.join(table.select(WINDOW, "_bid").lazy(), on=WINDOW))
    return (
        pl.concat(parts)
        .group_by("_bid", s.ACCOUNT_ID, *slices)
        .agg(pl.col("_err").sum().cast(pl.Int64).alias(ERRORS), pl.len().cast(pl.Int64).alias(REQUESTS))
        .collect()
    )


def _contributors(inside: pl.DataFrame, slices: list[str]) -> pl.DataFrame:
    """Per candidate, slice column and value: errors, requests and their shares."""
    long = (
        inside.group_by("_bid", *slices)
        .agg(pl.col(ERRORS, REQUESTS).sum())
        .unpivot(on=slices, index=["_bid", ERRORS, REQUESTS], variable_name=COLUMN, value_name=VALUE)
        .filter(pl.col(VALUE).is_not_null())
    )
    return (
        long.group_by("_bid", COLUMN, VALUE)
        .agg(pl.col(ERRORS, REQUESTS).sum())
        .with_columns(
            (pl.col(ERRORS) / pl.col(ERRORS).sum().over("_bid", COLUMN)).fill_nan(0.0).alias("error_share"),
            (pl.col(REQUESTS) / pl.col(REQUESTS).sum().over("_bid", COLUMN)).alias("traffic_share"),
        )
        .sort("_bid", COLUMN, ERRORS, VALUE, descending=[False, False, True, False])
    )


def _overlap(a: _Candidate, b: _Candidate) -> bool:
    return a.start < b.end and b.start < a.end


def _shares(contrib: pl.DataFrame) -> dict[tuple[int, str, str], tuple[float, float]]:
    return {
        (int(r["_bid"]), r[COLUMN], r[VALUE]): (float(r["error_share"]), float(r["traffic_share"]))
        for r in contrib.iter_rows(named=True)
    }


def _risk_ratio(error_share: float, traffic_share: float) -> float:
    """Error rate inside a slice over the rate outside it, from its shares of errors and traffic."""
    inside = error_share * (1.0 - traffic_share)
    outside = traffic_share * (1.0 - error_share)
    if outside <= 0.0:
        return 1.0 if inside <= 0.0 else float("inf")
    return inside / outside


def _keep(cands: list[_Candidate], contrib: pl.DataFrame, lift: float, slices: list[str]) -> list[int]:
    """Indexes of the candidates that are not the shadow of another (see the module docstring)."""
    shares = _shares(contrib)
    order = {c: k for k, c in enumerate(slices)}

    def explains(i: int, j: int) -> bool:
        a, b = cands[i], cands[j]
        if i == j or b.column is None or b.column == a.column or not _overlap(a, b):
            return False
        err, traffic = shares.get((i, b.column, b.value or ""), (0.0, 0.0))
        return err >= 0.5 and _risk_ratio(err, traffic) >= lift

    def rank(i: int) -> tuple[float, int]:
        # On a tie (a slice mirrored by another column) the column listed first in settings wins.
        return (round(cands[i].peak_error_rate, 9), -order.get(cands[i].column or "", -1))

    idx = range(len(cands))
    kept = [
        i for i in idx if not any(explains(i, j) and not (explains(j, i) and rank(i) > rank(j)) for j in idx)
    ]
    kept_global = [i for i in kept if cands[i].column is None]

    def carried_by_global(i: int) -> bool:
        c = cands[i]
        for g in kept_global:
            if _overlap(c, cands[g]):
                err, traffic = shares.get((g, c.column or "", c.value or ""), (0.0, 0.0))
                if _risk_ratio(err, traffic) < lift:
                    return True
        return False

    def mirrors(i: int, j: int) -> bool:
        a, b = cands[i], cands[j]
        if i == j or a.column is None or b.column is None or a.column == b.column or not _overlap(a, b):
            return False
        within_a = shares.get((i, b.column, b.value or ""), (0.0, 0.0))[1]
        within_b = shares.get((j, a.column, a.value or ""), (0.0, 0.0))[1]
        return within_a >= 0.99 and within_b >= 0.99

    kept = [i for i in kept if cands[i].column is None or not carried_by_global(i)]
    # Two slices carrying the same traffic (a model served by one upstream pool) are one burst.
    return [i for i in kept if not any(mirrors(i, j) and rank(j) > rank(i) for j in kept)]


def _severity(c: _Candidate, alerts: tuple[BurnRateAlert, ...], end_of_data: datetime) -> str | None:
    found: set[str] = set()
    for alert in alerts:
        for f in alert.firings:
            resolved = f.resolved_at or end_of_data + timedelta(days=1)
            if _fired_during(f, resolved, c):
                found.add(alert.severity)
    for level in ("page", "ticket"):
        if level in found:
            return level
    return None


def _fired_during(f: AlertFiring, resolved: datetime, c: _Candidate) -> bool:
    return f.fired_at < c.end and c.start < resolved


def find_bursts(
    counts: pl.DataFrame,
    gateway: pl.LazyFrame,
    settings: Settings,
    alerts: tuple[BurnRateAlert, ...] = (),
) -> tuple[tuple[Burst, ...], int]:
    """Bursts from the all-sizes window counts, attributed with a second pass over the burst rows only.

    Also returns the number of distinct accounts with at least one error inside any kept burst.
    """
    b = settings.bursts
    status_cols = sorted(c for c in counts.columns if c.startswith("status_"))
    scored = score(counts, b)
    cands = _candidates(scored, b, status_cols)
    if not cands:
        return (), 0
    slices = list(b.slices)
    inside = _inside(gateway, cands, settings)
    contrib = _contributors(inside, slices)
    failed = inside.filter(pl.col(ERRORS) > 0).filter(pl.col(s.ACCOUNT_ID).is_not_null())
    accounts = dict(failed.group_by("_bid").agg(pl.col(s.ACCOUNT_ID).n_unique()).iter_rows())
    end_of_data = max(c.end for c in cands)
    kept = _keep(cands, contrib, b.attribution_lift, slices)
    accounts_hit = failed.filter(pl.col("_bid").is_in(kept))[s.ACCOUNT_ID].n_unique()
    bursts = []
    for i in kept:
        c = cands[i]
        top = tuple(
            Contributor(
                column=r[COLUMN],
                value=r[VALUE],
                errors=int(r[ERRORS]),
                requests=int(r[REQUESTS]),
                error_share=float(r["error_share"]),
                traffic_share=float(r["traffic_share"]),
            )
            for r in contrib.filter((pl.col("_bid") == i) & (pl.col(COLUMN) != (c.column or "")))
            .group_by(COLUMN, maintain_order=True)
            .head(b.top_n)
            .iter_rows(named=True)
        )
        bursts.append(
            Burst(
                start=c.start,
                end=c.end,
                peak_at=c.peak_at,
                peak_error_rate=c.peak_error_rate,
                requests=c.requests,
                errors=c.errors,
                status_counts=c.status_counts,
                accounts_affected=int(accounts.get(i, 0)),
                scope=c.scope if c.column is not None else GLOBAL,
                top=top,
                baseline_error_rate=c.baseline,
                severity=_severity(c, alerts, end_of_data),
            )
        )
    return tuple(sorted(bursts, key=lambda x: (x.start, x.scope))), int(accounts_hit)
