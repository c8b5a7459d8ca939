"""Latency spikes: each window's p95 per prompt-size bucket against that bucket's own baseline.

Requests are bucketed by log2(prompt tokens), so a wave of 200K-token prompts is compared with what
200K-token prompts usually take, not with the short ones. A bucket's baseline is the median of its
per-window p95s over the windows not flagged (re-estimated twice), so a long incident cannot drag it
along. A window scores the request-weighted ratio of its bucket p95s to their baselines; only 2xx
requests count. Spikes open at `factor`, stay open at `factor_stay`.

Shadows: a slice spike is kept only when its column discriminates, i.e. some other value of that
column was scored at the same time and spiked in fewer than half of those windows; the global spike is kept only when no
discriminating slice spike overlaps it. Of overlapping discriminating slice spikes, the one with the
highest factor is kept.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analyzer import schema as s
from analyzer.config import Settings
from analyzer.detect.islands import END_IDX, START_IDX, episode_summary, episode_windows, islands
from analyzer.detect.windows import (
    ALL_SIZES,
    BUCKET,
    COLUMN,
    GLOBAL_COLUMN,
    IDX,
    OK,
    P95,
    P99,
    SCOPE,
    VALUE,
    WINDOW,
    smoothed,
)
from analyzer.findings import GLOBAL, LatencySpike


def score(table: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per scope and window: the weighted p95 ratio to baselines, expected p95, and open/stay flags."""
    lat = settings.latency
    per_size = table.filter((pl.col(BUCKET) != ALL_SIZES) & (pl.col(OK) > 0) & pl.col(P95).is_not_null())
    per_size = per_size.select(WINDOW, IDX, COLUMN, VALUE, SCOPE, BUCKET, OK, P95).with_columns(
        pl.lit(False).alias("_flagged")
    )
    # A slice too thin for one window (a model at 1 request/s) is scored on 3 or 5 centred windows.
    typical = pl.col("_ok1").median().over(SCOPE)
    windows = pl.DataFrame()
    for _ in range(3):
        base = (
            per_size.filter(~pl.col("_flagged"))
            .group_by(SCOPE, BUCKET)
            .agg(pl.col(P95).median().alias("_base"))
        )
        joined = per_size.drop("_base", strict=False).join(base, on=[SCOPE, BUCKET], how="left")
        windows = (
            joined.filter(pl.col("_base") > 0)
            .group_by(SCOPE, WINDOW, IDX)
            .agg(
                pl.col(COLUMN).first(),
                pl.col(VALUE).first(),
                pl.col(OK).sum().alias("_ok1"),
                (pl.col(OK) * pl.col(P95) / pl.col("_base")).sum().alias("_ratio_sum"),
                (pl.col(OK) * pl.col("_base")).sum().alias("_base_sum"),
                (pl.col(OK) * pl.col(P95)).sum().alias("_p95_sum"),
            )
            .sort(SCOPE, WINDOW)
            .with_columns(
                *[
                    smoothed(c, typical, lat.min_requests, pl.lit(False)).alias(c)
                    for c in ("_ratio_sum", "_base_sum", "_p95_sum")
                ],
                smoothed("_ok1", typical, lat.min_requests, pl.lit(False)).alias("ok"),
            )
            .with_columns(
                (pl.col("_ratio_sum") / pl.col("ok")).alias("ratio"),
                (pl.col("_base_sum") / pl.col("ok")).alias("expected_p95_ms"),
                (pl.col("_p95_sum") / pl.col("ok")).alias("weighted_p95_ms"),
                (pl.col("ok") >= lat.min_requests).alias("_scorable"),
            )
            .drop("_ratio_sum", "_base_sum", "_p95_sum")
        )
        flagged = windows.filter(pl.col("_scorable") & (pl.col("ratio") >= lat.factor_stay)).select(
            SCOPE, WINDOW, pl.lit(True).alias("_flagged")
        )
        per_size = (
            joined.drop("_flagged")
            .join(flagged, on=[SCOPE, WINDOW], how="left")
            .with_columns(pl.col("_flagged").fill_null(False))
        )
    if windows.height == 0:
        return windows
    return windows.with_columns(
        (pl.col("_scorable") & (pl.col("ratio") >= lat.factor)).alias("open"),
        (pl.col("_scorable") & (pl.col("ratio") >= lat.factor_stay)).alias("stay"),
    ).sort(SCOPE, WINDOW)


def _discriminates(scored: pl.DataFrame, column: str, value: str, first: int, last: int) -> bool:
    """Whether another value of `column` was scored in [first, last] and mostly did not spike."""
    others = scored.filter(
        (pl.col(COLUMN) == column)
        & (pl.col(VALUE) != value)
        & pl.col(IDX).is_between(first, last)
        & pl.col("_scorable")
    )
    calm = others.group_by(VALUE).agg(pl.col("stay").mean() < 0.5)["stay"]
    return bool(calm.any())


def find_spikes(table: pl.DataFrame, gateway: pl.LazyFrame, settings: Settings) -> tuple[LatencySpike, ...]:
    """Latency spikes of every scope, shadows removed; a slice's peak quantiles from its peak window's rows."""
    lat = settings.latency
    scored = score(table, settings)
    if scored.height == 0:
        return ()
    episodes = islands(scored, close_after=lat.close_after, merge_gap=lat.merge_gap)
    if episodes.height == 0:
        return ()
    peaks = (
        episode_windows(scored, episodes, "ratio")
        .group_by(SCOPE, START_IDX, maintain_order=True)
        .agg(
            *episode_summary("ratio"),
            pl.col("expected_p95_ms").first(),
            pl.col("weighted_p95_ms").first(),
            pl.col("_ok1").sum().alias("ok"),
        )
    )
    glob = table.filter((pl.col(COLUMN) == GLOBAL_COLUMN) & (pl.col(BUCKET) == ALL_SIZES))
    observed = {r[IDX]: (r[P95], r[P99]) for r in glob.select(IDX, P95, P99).iter_rows(named=True)}
    rows = list(peaks.iter_rows(named=True))
    slice_rows = [
        r
        for r in rows
        if r[COLUMN] != GLOBAL_COLUMN
        and _discriminates(scored, r[COLUMN], r[VALUE], r[START_IDX], r[END_IDX])
    ]
    # On a tie (a slice mirrored by another column) the column listed first in settings wins.
    order = {c: i for i, c in enumerate(settings.bursts.slices)}
    kept = []
    for r in rows:
        overlapping = [o for o in slice_rows if o[START_IDX] <= r[END_IDX] and r[START_IDX] <= o[END_IDX]]
        if r[COLUMN] == GLOBAL_COLUMN:
            if not overlapping:
                kept.append(r)
        elif (
            r in slice_rows and max(overlapping, key=lambda o: (round(o["peak"], 9), -order[o[COLUMN]])) is r
        ):
            kept.append(r)
    peak_q = _slice_peaks(gateway, [r for r in kept if r[COLUMN] != GLOBAL_COLUMN], settings)
    spikes = []
    for r in kept:
        is_global = r[COLUMN] == GLOBAL_COLUMN
        p95, p99 = observed.get(r["peak_idx"]) if is_global else peak_q.get(r[SCOPE], (None, None))  # type: ignore[misc]
        spikes.append(
            LatencySpike(
                start=r["start"],
                end=r["last"] + settings.bursts.window,
                peak_at=r["peak_at"],
                baseline_p95_ms=float(r["expected_p95_ms"]),
                peak_p95_ms=float(p95 if p95 is not None else r["weighted_p95_ms"]),
                peak_p99_ms=float(p99 if p99 is not None else r["weighted_p95_ms"]),
                factor=float(r["peak"]),
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
    ok = pl.col(s.STATUS).is_between(200, 299) & pl.col(s.LATENCY_MS).is_not_null()
    conds = [
        ok
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
