"""Loading as map and merge: each batch of inputs read on its own (anywhere), the parts merged in order.

    plan_parts("gateway", paths, settings)  -> the batches `load` reads (small files grouped), in path order
    read_part("gateway", batch, config)     -> Part: the batch's analyzed rows, rejects, reports, notes
    merge_parts("gateway", parts, config)   -> Loaded, the same as `load(kind, paths, settings)` gives

A part holds its rows in memory as Arrow tables (not a lazy query on a staged file), so that it can be
made in another process or on another machine and handed back through a shared object store; the
merge does what `load` does across files: the rows in path order, a line a shipper delivered twice in
two files counted once, the notes that compare files (skew, missing columns). Reading the parts one
after the other in one process gives the report `load` gives, byte for byte (tests/test_engine.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

from analyzer.config import Settings, SourceConfig
from analyzer.findings import InputReport
from analyzer.ingest import (
    RAW_ROWS,
    Loaded,
    _columns,
    _encoding_notes,
    _goods,
    _notes,
    _raw_note,
    _rejects,
    duplicates,
    skew,
)
from analyzer.ingest.reader import IN_PLACE, Opened, batches, read_batch
from analyzer.ingest.sources import resolve
from analyzer.notes import Note
from analyzer.schema import REJECT_RAW, REJECTS, SCHEMAS, SOURCE_FILE, SOURCE_LINE

_N = "_n"


@dataclass(frozen=True)
class Part:
    """One batch of inputs read: what `load` keeps of each file, with the rows held in Arrow tables."""

    kind: str
    inputs: tuple[InputReport, ...]  # one per file, in path order
    rows: pa.Table  # analyzed rows: canonical columns, `_file`, `_line` (and gateway line hashes)
    rejects: pa.Table  # file, line, reason, raw
    notes: tuple[Note, ...]

    @property
    def rows_read(self) -> int:
        """Lines read from the part's files, analyzed or rejected."""
        return sum(r.rows_read for r in self.inputs)


def plan_parts(kind: str, paths: Sequence[str | Path], settings: Settings) -> list[list[Opened]]:
    """The batches `load` reads, in path order, a part made of each (reads samples, not rows)."""
    from analyzer.ingest import _decoded

    if kind not in SCHEMAS:
        raise ValueError(f"unknown kind {kind!r}")
    config = settings.source(kind)
    out: list[list[Opened]] = []
    for batch in batches(kind, _decoded(resolve(paths), config.encoding), config):
        # `load` reads Parquet files of one schema by one lazy query whatever their sizes; as parts,
        # each file is a task of its own (its rows are the same, in the same order).
        out += [[o] for o in batch] if batch[0].fmt.name == IN_PLACE else [batch]
    return out


def read_part(kind: str, batch: Sequence[Opened], config: SourceConfig) -> Part:
    """Read one batch (see `plan_parts`) into memory: its analyzed rows, rejects, reports and notes."""
    with tempfile.TemporaryDirectory(prefix=f"analyzer-{kind}-") as folder:
        reads = read_batch(kind, batch, config, Path(folder) / "00000.parquet")
        rejects = _rejects(reads)
        goods = _goods(kind, reads, rejects)
        # Collected before the staging folder goes: the part outlives it.
        rows = pl.concat(goods, how="vertical_relaxed").collect() if goods else pl.DataFrame()
    compat = pl.CompatLevel.newest()  # string views: taken back by pl.from_arrow without a copy
    return Part(
        kind,
        tuple(r.report for r in reads),
        rows.to_arrow(compat_level=compat),
        rejects.to_arrow(compat_level=compat),
        tuple(n for r in reads for n in r.notes),
    )


def merge_parts(kind: str, parts: Sequence[Part], config: SourceConfig) -> Loaded:
    """The parts of one kind, in path order, as one Loaded: what `load` gives for all their inputs."""
    inputs = tuple(r for p in parts for r in p.inputs)
    schema = _columns(kind, inputs)
    provenance = {SOURCE_FILE: pl.String(), SOURCE_LINE: pl.Int64()}
    goods = [rows.lazy() for p in parts if (rows := _table(p.rows)).height]
    rejects = _merged_rejects(parts)
    if goods:
        # A part whose files all lack an optional column has none: null for its rows, as in `load`.
        frame = pl.concat(goods, how="diagonal_relaxed").select(*schema, *provenance)
    else:
        frame = pl.LazyFrame(schema=schema | provenance)
    if kind == "gateway" and inputs:
        order = [r.path for r in inputs]
        copies = duplicates.find(goods, order, sum(r.rows_analyzed for r in inputs))
        frame = duplicates.drop(frame, copies)
        rejects = duplicates.with_rejects(rejects, copies, order)
        inputs = duplicates.counted(inputs, copies)
    return Loaded(
        kind=kind,
        frame=frame,
        inputs=inputs,
        rejects=rejects,
        notes=(
            _notes(kind, inputs)
            + tuple(n for p in parts for n in p.notes)
            + skew.skew_notes(kind, inputs)
            + _encoding_notes(kind, inputs, config.encoding)
            + _raw_note(inputs)
        ),
    )


def _merged_rejects(parts: Sequence[Part]) -> pl.DataFrame:
    """Every part's rejects in order; the raw text of the first RAW_ROWS of them all, as `load` keeps."""
    frames = [rejected for p in parts if (rejected := _table(p.rejects)).height]
    if not frames:
        return pl.DataFrame(schema=REJECTS)
    return (
        pl.concat(frames, how="vertical_relaxed")
        .with_row_index(_N)
        .with_columns(pl.when(pl.col(_N) < RAW_ROWS).then(pl.col(REJECT_RAW)).alias(REJECT_RAW))
        .drop(_N)
    )


def _table(table: pa.Table) -> pl.DataFrame:
    # Arrow string views and fixed-width buffers are taken as they are (no copy): from the object store.
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
