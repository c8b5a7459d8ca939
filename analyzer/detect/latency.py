"""Latency spikes: each window's latency against what its requests' model and sizes usually take.

Requests are classed by model and log2(prompt tokens), so a wave of 200K-token prompts is compared
with what 200K-token prompts usually take, and a shift of the traffic towards a slower model is not a
slowdown. Within a class, latency is expected from the output size too: decoding time grows with the
completion, so a cluster of long answers is not a spike either. On a log scale (only 2xx requests
count) each class gets a least-squares fit, ln latency = mu + beta (ln(completion + 1) - mo), over its
scope's windows that are not flagged (re-estimated three times, so a long incident cannot drag it
along). A window scores the mean, over its requests, of log latency above its fitted expectation:
`factor` = exp(that mean), the typical slowdown for the sizes served. The sums the one pass keeps give
the fit and the score exactly and merge across windows, so thin scopes are scored on 3 or 5 centred
windows. Its z is that mean over its standard error (the scope's pooled residual spread): a window
opens a spike when factor >= `factor` and z >= `z_open` and stays in one at `factor_stay` and `z_stay`, so
a handful of slow requests in a thin slice is not a spike. Medians or p95s of tiny groups (biased
upwards, and noisy) are never compared.

Shadows: a slice spike is kept only when its column discriminates, i.e. some other value of that
column was scored at the same time and spiked in fewer than half of those windows; the global spike is
kept only when no discriminating slice spike overlaps it. Of overlapping discriminating slice spikes,
the one with the highest factor is kept. Reported p95/p99 are those of the peak window (the series'
for the global scope, the peak window's own rows for a slice); the baseline p95 is the p95 those
requests would have had at their usual speed: the observed p95 over the factor.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analyzer import schema as s
from analyzer.config import Settings
from analyzer.detect.islands import END_IDX, OPEN, START_IDX, STAY, episode_summary, episode_windows, islands
from analyzer.detect.windows import (
    BUCKET,
    CLASS,
    COLUMN,
    CROSS,
    GLOBAL_COLUMN,
    IDX,
    LOG_SQ,
    LOG_SQ_UNIT,
    LOG_SUM,
    LOG_UNIT,
    MOMENTS,
    OK,
    OK_LATENCY,
    OUT_SQ,
    OUT_SUM,
    P95,
    P99,
    SCOPE,
    VALUE,
    WINDOW,
    smoothed,
)
from analyzer.findings import GLOBAL, LatencySpike

# Columns of the scored windows: the slowdown against what the requests were expected to take, and its
# significance in standard deviations.
_RATIO = "ratio"
_Z = "z"

# Rounds of fitting the expectations on the windows not flagged in the round before (a spike's own
# windows would otherwise raise the baseline it is judged against).
_ROUNDS = 3
EXCESS_SHARE = 0.8  # of the largest excess: what a slice must hold to explain overlapping spikes
_MIN_VAR = 1e-3  # variance of ln(output tokens + 1) below which no slope is fitted
_MAX_SLOPE = 2.0


def _expectations(clean: pl.DataFrame) -> pl.DataFrame:
    """Per (scope, class, bucket): least-squares l = mu + beta (o - mo) over the clean windows, and the
    residual sum of squares (l: ln latency, o: ln(completion tokens + 1))."""
    n = pl.col(OK)
    mu, mo = pl.col(LOG_SUM) / n, pl.col(OUT_SUM) / n
    var_o = pl.col(OUT_SQ) / n - mo**2
    cov = pl.col(CROSS) / n - mu * mo
    # Without spread in output sizes (embeddings, one request) there is no slope to fit.
    beta = pl.when(var_o > _MIN_VAR).then(cov / var_o).otherwise(0.0).clip(0.0, _MAX_SLOPE)
    var_l = pl.col(LOG_SQ) / n - mu**2
    return (
        clean.group_by(SCOPE, CLASS, BUCKET)
        .agg(pl.col(OK, *MOMENTS).sum())
        .with_columns(
            *[pl.col(c) * LOG_UNIT for c in (LOG_SUM, OUT_SUM)],
            *[pl.col(c) * LOG_SQ_UNIT for c in (LOG_SQ, OUT_SQ, CROSS)],
        )
        .with_columns(mu.alias("_mu"), mo.alias("_mo"), beta.alias("_beta"), var_l.alias("_var_l"))
        .with_columns(
            (n * (pl.col("_var_l") - 2 * pl.col("_beta") * cov + pl.col("_beta") ** 2 * var_o))
            .clip(0.0, None)
            .alias("_rss")
        )
        .select(SCOPE, CLASS, BUCKET, OK, "_mu", "_mo", "_beta", "_rss")
        .sort(SCOPE, CLASS, BUCKET)  # float sums over it then add up in the same order every run
    )


def score(table: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per scope and window: the slowdown `ratio` for the request sizes, its z, and open/stay flags."""
    lat = settings.latency
    cells = table.filter(pl.col(OK) > 0).select(
        WINDOW, IDX, COLUMN, VALUE, SCOPE, CLASS, BUCKET, OK, *MOMENTS
    )
    if cells.height == 0:
        return pl.DataFrame()
    flagged = cells.select(SCOPE, WINDOW).clear()
    windows = pl.DataFrame()
    for _ in range(_ROUNDS):
        fit = _expectations(cells.join(flagged, on=[SCOPE, WINDOW], how="anti"))
        # Residual spread pooled over the scope's classes (two parameters fitted per class).
        spread = fit.group_by(SCOPE).agg(
            (pl.col("_rss").sum() / (pl.col(OK).sum() - 2 * pl.len()).clip(1, None))
            .clip(1e-6, None)
            .alias("_var")
        )
        # A window's excess: its requests' log latency above what their class and output size predict.
        excess = (
            pl.col(LOG_SUM) * LOG_UNIT
            - pl.col(OK) * pl.col("_mu")
            - pl.col("_beta") * (pl.col(OUT_SUM) * LOG_UNIT - pl.col(OK) * pl.col("_mo"))
        )
        windows = (
            cells.join(fit.drop(OK, "_rss"), on=[SCOPE, CLASS, BUCKET], how="inner", maintain_order="left")
            .group_by(SCOPE, WINDOW, IDX)
            .agg(
                pl.col(COLUMN).first(),
                pl.col(VALUE).first(),
                pl.col(OK).sum().alias("_ok1"),
                excess.sum().alias("_dev1"),
            )
            .join(spread, on=SCOPE, how="left")
            .sort(SCOPE, WINDOW)
            .with_columns(
                smoothed("_dev1", pl.col("_ok1"), lat.min_requests, pl.lit(False)).alias("_dev"),
                smoothed("_ok1", pl.col("_ok1"), lat.min_requests, pl.lit(False)).alias("ok"),
            )
            .with_columns(
                (pl.col("_dev") / pl.col(OK)).exp().alias(_RATIO),
                (pl.col("_dev") / (pl.col(OK) * pl.col("_var")).sqrt()).alias(_Z),
                (pl.col(OK) >= lat.min_requests).alias("_scorable"),
            )
        )
        stay = pl.col("_scorable") & (pl.col(_RATIO) >= lat.factor_stay) & (pl.col(_Z) >= lat.z_stay)
        windows = windows.with_columns(stay.alias(STAY))
        flagged = windows.filter(STAY).select(SCOPE, WINDOW)
    return windows.with_columns(
        (pl.col(STAY) & (pl.col(_RATIO) >= lat.factor) & (pl.col(_Z) >= lat.z_open)).alias(OPEN)
    ).drop("_dev", "_var")


def _culprit(overlapping: list[dict[str, Any]], slices: tuple[str, ...]) -> dict[str, Any]:
    """The slice spike that explains overlapping ones: it holds (nearly) all their excess slowness.

    The slice that is the cause holds every slow request; one of another column holds only those of
    the cause that fall in it (a thin endpoint can peak higher by chance, but holds less excess). Of
    those holding at least EXCESS_SHARE of the largest excess (the cause and a slice containing it),
    the purest (highest peak factor) wins; on a tie (a slice mirrored by another column) the column
    listed first in settings.
    """
    order = {c: i for i, c in enumerate(slices)}
    most = max(o["excess"] for o in overlapping)
    holding = [o for o in overlapping if o["excess"] >= EXCESS_SHARE * most]
    return max(holding, key=lambda o: (round(o["peak"], 9), -order[o[COLUMN]]))


def _discriminating(scored: pl.DataFrame, rows: list[dict[str, Any]]) -> list[bool]:
    """For each slice spike in `rows`: whether another value of its column was scored during it (from
    its first to its last window) and mostly did not spike. One query for all of them."""
    if not rows:
        return []
    spans = pl.DataFrame(
        {
            "_row": list(range(len(rows))),
            COLUMN: [r[COLUMN] for r in rows],
            "_own": [r[VALUE] for r in rows],
            "_first": [r[START_IDX] for r in rows],
            "_last": [r[END_IDX] for r in rows],
        },
        schema={
            "_row": pl.Int64(),
            COLUMN: scored.schema[COLUMN],
            "_own": scored.schema[VALUE],
            "_first": scored.schema[IDX],
            "_last": scored.schema[IDX],
        },
    )
    calm = (
        scored.filter(pl.col("_scorable"))
        .select(COLUMN, VALUE, IDX, STAY)
        .join(spans, on=COLUMN)
        .filter((pl.col(VALUE) != pl.col("_own")) & pl.col(IDX).is_between("_first", "_last"))
        .group_by("_row", VALUE)
        .agg((pl.col(STAY).mean() < 0.5).alias("_calm"))
        .group_by("_row")
        .agg(pl.col("_calm").any())
    )
    found = dict(calm.iter_rows())
    return [bool(found.get(i, False)) for i in range(len(rows))]


def find_spikes(
    table: pl.DataFrame, series: pl.DataFrame, gateway: pl.LazyFrame, settings: Settings
) -> tuple[LatencySpike, ...]:
    """Latency spikes of every scope, shadows removed; a slice's peak quantiles from its peak window's rows."""
    lat = settings.latency
    scored = score(table, settings)
    if scored.height == 0:
        return ()
    episodes = islands(scored, close_after=lat.close_after, merge_gap=lat.merge_gap)
    if episodes.height == 0:
        return ()
    peaks = (
        episode_windows(scored, episodes, _RATIO)
        .group_by(SCOPE, START_IDX, maintain_order=True)
        .agg(
            *episode_summary(_RATIO),
            pl.col("_ok1").sum().alias("ok"),
            pl.col("_dev1").filter(STAY).sum().alias("excess"),
        )
    )
    observed = {r[WINDOW]: (r[P95], r[P99]) for r in series.select(WINDOW, P95, P99).iter_rows(named=True)}
    rows = list(peaks.iter_rows(named=True))
    sliced = [r for r in rows if r[COLUMN] != GLOBAL_COLUMN]
    slice_rows = [r for r, d in zip(sliced, _discriminating(scored, sliced), strict=True) if d]
    kept = []
    for r in rows:
        overlapping = [o for o in slice_rows if o[START_IDX] <= r[END_IDX] and r[START_IDX] <= o[END_IDX]]
        if r[COLUMN] == GLOBAL_COLUMN:
            if not overlapping:
                kept.append(r)
        elif r in slice_rows and _culprit(overlapping, settings.bursts.slices) is r:
            kept.append(r)
    peak_q = _slice_peaks(gateway, [r for r in kept if r[COLUMN] != GLOBAL_COLUMN], settings)
    spikes = []
    for r in kept:
        is_global = r[COLUMN] == GLOBAL_COLUMN
        p95, p99 = (
            observed.get(r["peak_at"], (None, None)) if is_global else peak_q.get(r[SCOPE], (None, None))
        )
        factor = float(r["peak"])
        p95 = float(p95) if p95 is not None else float("nan")
        spikes.append(
            LatencySpike(
                start=r["start"],
                end=r["last"] + settings.bursts.window,
                peak_at=r["peak_at"],
                baseline_p95_ms=p95 / factor,
                peak_p95_ms=p95,
                peak_p99_ms=float(p99) if p99 is not None else float("nan"),
                factor=factor,
                scope=GLOBAL if is_global else r[SCOPE],
                requests=int(r["ok"]),
            )
        )
    return tuple(sorted(spikes, key=lambda x: (x.start, x.scope)))


def _slice_peaks(
    gateway: pl.LazyFrame, rows: list[dict[str, Any]], settings: Settings
) -> dict[str, tuple[float | None, float | None]]:
    """p95 and p99 of each slice spike's peak window, from those rows only (the table keeps per-size ones)."""
    if not rows:
        return {}
    conds = [
        OK_LATENCY
        & pl.col(s.TS).is_between(
            pl.lit(r["peak_at"]), pl.lit(r["peak_at"] + settings.bursts.window), closed="left"
        )
        & (pl.col(r[COLUMN]).cast(pl.String) == r[VALUE])
        for r in rows
    ]
    tag = pl.concat_list([pl.when(c).then(pl.lit(r[SCOPE])) for c, r in zip(conds, rows, strict=True)])
    lat = pl.col(s.LATENCY_MS)
    q = (
        gateway.filter(pl.any_horizontal(conds))
        .select(tag.list.drop_nulls().alias("_scope"), lat)
        .explode("_scope")
        .group_by("_scope")
        .agg(
            lat.quantile(0.95, interpolation="linear").alias(P95),
            lat.quantile(0.99, interpolation="linear").alias(P99),
        )
        .collect()
    )
    return {r["_scope"]: (r[P95], r[P99]) for r in q.iter_rows(named=True)}
