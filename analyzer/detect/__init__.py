"""Detection over the gateway frame: 5xx bursts, latency spikes, burn-rate alert replay, log gaps.

One streaming group-by (`windows.aggregate`) builds a small window x slice values x size table, rolled
up into scopes by sums; every detector works on it (latency on a second such table when
`latency.window` differs from `bursts.window`). Other queries only ever collect small results:
the row count (which picks exact or approximate quantiles), the global per-window quantiles, the
attribution of candidate bursts (grouped by slice values and account inside them) and the quantiles of
a slice spike's peak window. No query collects the rows themselves, so memory stays bounded by the
table, not the input (0.6-0.8 GiB at 10M requests).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Final

import polars as pl

from analyzer.config import Settings, polars_every
from analyzer.detect.burnrate import replay
from analyzer.detect.bursts import find_bursts
from analyzer.detect.gaps import find_gaps
from analyzer.detect.latency import find_spikes
from analyzer.detect.scopes import empty_slices, scope_totals
from analyzer.detect.windows import (
    BUCKET,
    COLUMN,
    ERRORS,
    FIRST_TS,
    GLOBAL_COLUMN,
    IDX,
    LAST_TS,
    OK,
    P95,
    P99,
    REQUESTS,
    SCOPE,
    UNKNOWN_SIZE,
    VALUE,
    WINDOW,
    aggregate,
    all_sizes,
    window_index,
)
from analyzer.findings import SERIES_ERROR_RATE, Detection, LatencySpike
from analyzer.notes import Note, NoteCode

__all__ = ["detect"]

SERIES_SCHEMA: dict[str, pl.DataType] = {
    WINDOW: pl.Datetime("us", "UTC"),
    REQUESTS: pl.Int64(),
    ERRORS: pl.Int64(),
    SERIES_ERROR_RATE: pl.Float64(),
    P95: pl.Float64(),
    P99: pl.Float64(),
}


def detect(
    gateway: pl.LazyFrame, settings: Settings, *, bursts: bool = True, spikes: bool = True
) -> Detection:
    """Find bursts, latency spikes, burn-rate firings and log gaps in the canonical gateway frame.

    `bursts=False` leaves out the bursts (and their attribution pass over the rows), `spikes=False` the
    latency spikes: `analyzer latency` and `analyzer bursts` compute only what they show. With neither,
    nothing is read: the detection is empty.
    """
    if not bursts and not spikes:
        return Detection((), (), (), (), pl.DataFrame(schema=SERIES_SCHEMA))
    settings, crowded = _without_crowded_slices(gateway, settings)
    agg = aggregate(gateway, settings)
    method = "approximate" if agg.approximate else "exact"
    table = agg.table
    counts = all_sizes(table)
    glob = _grid(counts.filter(pl.col(COLUMN) == GLOBAL_COLUMN), agg.quantiles, settings)
    series = _series(glob)
    notes = crowded + _notes(table, settings)
    alerts = replay(glob, settings.slo, settings.bursts.window)
    if table.height == 0:
        return Detection((), (), alerts, (), series, method, notes)
    found, accounts_hit = find_bursts(counts, gateway, settings, alerts) if bursts else ((), 0)
    slow: tuple[LatencySpike, ...] = ()
    if not spikes or not bool((table[OK] > 0).any()):
        pass
    elif settings.latency.window == settings.bursts.window:
        slow = find_spikes(table, series, gateway, settings)
    else:
        slow = _spikes_on_latency_window(gateway, settings)
    gaps = find_gaps(glob, settings.gaps)
    # Each scope's day (the report's slices) is a pass of its own: only for the whole report.
    whole = bursts and spikes
    scopes = scope_totals(counts, gateway, settings, approximate=agg.approximate) if whole else empty_slices()
    return Detection(found, slow, alerts, gaps, series, method, notes, accounts_hit, scopes)


def _without_crowded_slices(gateway: pl.LazyFrame, settings: Settings) -> tuple[Settings, tuple[Note, ...]]:
    """`settings` without the slice columns of more than `max_slice_values` distinct values, and a note
    for each. An id in every value (`/v1/threads/thread_8f2a/runs`) makes each request a scope of its
    own: at 1M requests detection took 20 s and 1.7 GB instead of 1.2 s. The distinct values are
    counted with a HyperLogLog sketch (`approx_n_unique`: one streaming pass, bounded memory)."""
    present = [c for c in settings.bursts.slices if c in gateway.collect_schema()]
    if not present:
        return settings, ()
    counts = gateway.select(pl.col(c).approx_n_unique() for c in present).collect().row(0, named=True)
    limit = settings.bursts.max_slice_values
    crowded = [c for c in present if counts[c] > limit]
    if not crowded:
        return settings, ()
    kept = tuple(c for c in settings.bursts.slices if c not in crowded)
    notes = tuple(Note(NoteCode.CROWDED_SLICE, column=c, count=counts[c], limit=limit) for c in crowded)
    return replace(settings, bursts=replace(settings.bursts, slices=kept)), notes


def _series(glob: pl.DataFrame) -> pl.DataFrame:
    """The per-window global series of the report, from the global grid."""
    return glob.select(
        WINDOW,
        REQUESTS,
        ERRORS,
        pl.when(pl.col(REQUESTS) > 0).then(pl.col(ERRORS) / pl.col(REQUESTS)).alias(SERIES_ERROR_RATE),
        P95,
        P99,
    ).cast(SERIES_SCHEMA)  # type: ignore[arg-type]


def _spikes_on_latency_window(gateway: pl.LazyFrame, settings: Settings) -> tuple[LatencySpike, ...]:
    """Latency scored on windows of its own (`latency.window`): a second grouped pass over the gateway,
    made only when the two windows differ."""
    own = replace(settings, bursts=replace(settings.bursts, window=settings.latency.window))
    agg = aggregate(gateway, own)
    glob = _grid(all_sizes(agg.table).filter(pl.col(COLUMN) == GLOBAL_COLUMN), agg.quantiles, own)
    return find_spikes(agg.table, _series(glob), gateway, own)


# A silence longer than this splits the grid: its windows are not made (one line stamped a year away
# must not cost a year of empty windows; a file spanning years is analyzed stretch by stretch).
SILENCE: Final = timedelta(days=1)


def _grid(glob: pl.DataFrame, quantiles: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """The global rows on every window of each stretch of data, empty ones zero, with the quantiles.

    Stretches are split at silences longer than SILENCE: the grid's size follows the time that holds
    data, not the span from the first line to the last.
    """
    if glob.height == 0:
        return glob.join(quantiles, on=WINDOW, how="left")
    stretch = (pl.col(WINDOW).diff() > SILENCE).fill_null(False).cum_sum()
    windows = (
        glob.select(pl.col(WINDOW).unique().sort())
        .group_by(stretch.alias("_stretch"))
        .agg(pl.col(WINDOW).min().alias("_first"), pl.col(WINDOW).max().alias("_last"))
        .select(pl.datetime_ranges("_first", "_last", polars_every(settings.bursts.window)).alias(WINDOW))
        .explode(WINDOW)
    )
    counts = [c for c in glob.columns if c not in (WINDOW, IDX, COLUMN, VALUE, SCOPE, FIRST_TS, LAST_TS)]
    return (
        windows.join(glob.drop(IDX), on=WINDOW, how="left")
        .join(quantiles, on=WINDOW, how="left")
        .with_columns(pl.col(counts).fill_null(0), window_index(settings.bursts.window))
        .sort(WINDOW)
    )


def _notes(table: pl.DataFrame, settings: Settings) -> tuple[Note, ...]:
    notes = []
    if table.height and not (table[OK] > 0).any():
        notes.append(Note(NoteCode.NO_LATENCY))
    buckets = table[BUCKET]
    if table.height and buckets.len() and (buckets == UNKNOWN_SIZE).all():
        notes.append(Note(NoteCode.NO_PROMPT_TOKENS))
    present = set(table[COLUMN].unique().to_list()) if table.height else set()
    for col in settings.bursts.slices:
        if table.height and col not in present:
            notes.append(Note(NoteCode.EMPTY_SLICE, column=col))
    return tuple(notes)
