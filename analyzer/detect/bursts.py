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


def _risk_ratio_expr(error_share: pl.Expr, traffic_share: pl.Expr) -> pl.Expr:
    """Error rate inside a slice over the rate outside it, from its shares of errors and traffic."""
    inside = error_share * (1.0 - traffic_share)
    outside = traffic_share * (1.0 - error_share)
    tie = pl.when(inside <= 0.0).then(pl.lit(1.0)).otherwise(pl.lit(float("inf")))
    return pl.when(outside <= 0.0).then(tie).otherwise(inside / outside)


# Columns of the shadowing query: a candidate `i` and another `j`, each with its span and rank.
_I, _J = "_i", "_j"


def _ranks(cands: list[_Candidate], slices: list[str]) -> list[int]:
    """Each candidate's place in (peak rate to 9 decimals, column listed first): equal keys, equal ranks.

    On a tie (a slice mirrored by another column) the column listed first in settings wins. Kept in
    Python (`round` to 9 decimals is Python's, exactly as before), one integer per candidate.
    """
    order = {c: k for k, c in enumerate(slices)}
    keys = [(round(c.peak_error_rate, 9), -order.get(c.column or "", -1)) for c in cands]
    place = {key: rank for rank, key in enumerate(sorted(set(keys)))}
    return [place[key] for key in keys]


def _side(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """The candidates as one side of a pair: `_i`/`_j` and their column, span and rank suffixed."""
    return frame.select(
        pl.col("_bid").alias(name),
        pl.col(COLUMN).alias(f"{COLUMN}{name}"),
        pl.col(VALUE).alias(f"{VALUE}{name}"),
        pl.col("_start").alias(f"_start{name}"),
        pl.col("_end").alias(f"_end{name}"),
        pl.col("_rank").alias(f"_rank{name}"),
    )


def _pairs(shares: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """Overlapping candidates (i, j) of different columns, j a slice, with j's value's shares in i.

    A pair is made only where i holds some traffic of j's slice value (without it no test below can
    pass, except `carried`, which is asked of the kept globals directly).
    """
    own = pl.col(f"{COLUMN}{_I}")
    return (
        shares.rename({"_bid": _I})
        .join(
            _side(frame.filter(pl.col(COLUMN).is_not_null()), _J),
            left_on=[COLUMN, VALUE],
            right_on=[f"{COLUMN}{_J}", f"{VALUE}{_J}"],
        )
        .join(_side(frame, _I), on=_I)
        .filter(
            (pl.col(_I) != pl.col(_J))
            & own.ne_missing(pl.col(COLUMN))
            & (pl.col(f"_start{_I}") < pl.col(f"_end{_J}"))
            & (pl.col(f"_start{_J}") < pl.col(f"_end{_I}"))
        )
    )


def _mutual(pairs: pl.DataFrame) -> pl.DataFrame:
    """The pairs (i, j) whose reverse (j, i) is a pair too."""
    back = pairs.select(pl.col(_J).alias(_I), pl.col(_I).alias(_J))
    return pairs.join(back, on=[_I, _J], how="semi")


def _keep(cands: list[_Candidate], contrib: pl.DataFrame, lift: float, slices: list[str]) -> list[int]:
    """Indexes of the candidates that are not the shadow of another (see the module docstring).

    One query over pairs of candidates: a candidate i is dropped when some slice candidate j explains
    it (j's value holds >= half of i's errors at a risk ratio >= lift) unless j is explained by i in
    turn and i ranks higher; a kept slice is dropped when a kept global burst it overlaps carries it
    (its risk ratio there is below lift); of two kept slices that mirror each other (>= 99% of each
    one's traffic is in the other) the lower-ranked is dropped.
    """
    frame = pl.DataFrame(
        {
            "_bid": list(range(len(cands))),
            COLUMN: [c.column for c in cands],
            VALUE: [c.value for c in cands],
            "_start": [c.start for c in cands],
            "_end": [c.end for c in cands],
            "_rank": _ranks(cands, slices),
        },
        schema={
            "_bid": pl.Int64(),
            COLUMN: pl.String(),
            VALUE: pl.String(),
            "_start": s.TS_DTYPE,
            "_end": s.TS_DTYPE,
            "_rank": pl.Int64(),
        },
    )
    shares = contrib.select("_bid", COLUMN, VALUE, "error_share", "traffic_share")
    err, traffic = pl.col("error_share"), pl.col("traffic_share")
    pairs = _pairs(shares, frame)
    explains = pairs.filter((err >= 0.5) & (_risk_ratio_expr(err, traffic) >= lift))
    wins = pl.col(f"_rank{_I}") > pl.col(f"_rank{_J}")
    # Explained by j, unless i explains j too and ranks higher.
    shadowed = explains.join(_mutual(explains).filter(wins), on=[_I, _J], how="anti")[_I]
    kept = frame.filter(~pl.col("_bid").is_in(shadowed.implode()))
    # A kept slice overlapping a kept global burst that it failed no more than the rest of.
    globals_ = _side(kept.filter(pl.col(COLUMN).is_null()), _J).select(_J, f"_start{_J}", f"_end{_J}")
    carried = (
        kept.filter(pl.col(COLUMN).is_not_null())
        .join(globals_, how="cross")
        .filter((pl.col("_start") < pl.col(f"_end{_J}")) & (pl.col(f"_start{_J}") < pl.col("_end")))
        .join(shares.rename({"_bid": _J}), on=[_J, COLUMN, VALUE], how="left")
        .filter(_risk_ratio_expr(err.fill_null(0.0), traffic.fill_null(0.0)) < lift)["_bid"]
    )
    kept = kept.filter(~pl.col("_bid").is_in(carried.implode()))
    # Two slices carrying the same traffic (a model served by one upstream pool) are one burst.
    sliced = kept.filter(pl.col(COLUMN).is_not_null())
    mirrored = _mutual(_pairs(shares, sliced).filter(traffic >= 0.99))
    lower = mirrored.filter(pl.col(f"_rank{_J}") > pl.col(f"_rank{_I}"))[_I]
    return kept.filter(~pl.col("_bid").is_in(lower.implode()))["_bid"].sort().to_list()


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


def _top(
    contrib: pl.DataFrame, cands: list[_Candidate], kept: list[int], top_n: int
) -> dict[int, tuple[Contributor, ...]]:
    """Each kept candidate's `top_n` contributors per slice column other than its own (one query)."""
    own = pl.DataFrame(
        {"_bid": kept, "_own": [cands[i].column or "" for i in kept]},
        schema={"_bid": pl.Int64(), "_own": pl.String()},
    )
    rows = (
        contrib.join(own, on="_bid", maintain_order="left")
        .filter(pl.col(COLUMN) != pl.col("_own"))
        .group_by("_bid", COLUMN, maintain_order=True)
        .head(top_n)
    )
    out: dict[int, list[Contributor]] = {}
    for r in rows.iter_rows(named=True):
        out.setdefault(int(r["_bid"]), []).append(
            Contributor(
                column=r[COLUMN],
                value=r[VALUE],
                errors=int(r[ERRORS]),
                requests=int(r[REQUESTS]),
                error_share=float(r["error_share"]),
                traffic_share=float(r["traffic_share"]),
            )
        )
    return {bid: tuple(found) for bid, found in out.items()}


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
    top = _top(contrib, cands, kept, b.top_n)
    bursts = []
    for i in kept:
        c = cands[i]
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
                top=top.get(i, ()),
                baseline_error_rate=c.baseline,
                severity=_severity(c, alerts, end_of_data),
            )
        )
    return tuple(sorted(bursts, key=lambda x: (x.start, x.scope))), int(accounts_hit)
