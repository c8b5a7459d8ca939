"""Every way a file becomes a canonical LazyFrame, plus an account of what could not be read.

    load("gateway", ["logs/access.log.gz", "logs/2026-04-22/"], settings)
        -> Loaded(frame=<canonical good rows>, inputs=<InputReport per file>, rejects=<bad rows>, notes)

One input, from the path given to the rows the analyses read, in the order the steps run:

    paths ──sources.resolve──▶ files (folders and globs expanded, in name order: rotations are one stream)
      │
      ▼ reader.open_input, once per file (reads a sample, never the rows)
    sources.sniff            compression, the first lines, whether it is Parquet
    formats.unwrap           a container wrapper taken off the sample (module wrappers)
    formats.choose           the format whose detector takes the sample (the formats table)
    Format.open ─▶ Source    the format's fields, and how to scan its rows (jsonl, delimited, nginx, ...)
    presets, mapping.resolve the source field of each canonical column (mapping file, aliases, preset)
      │                      ──▶ Opened: the input, its format and field mapping
      ▼ reader.batches       small inputs read alike grouped, to be read by one scan
      ▼ reader.read_batch ──▶ FileRead: an InputReport and where the rows are (concurrent.read_batches:
                             two batches at a time, in path order, as a serial read)
    Source.scan              the raw rows, every one with its file and line number
    mapping.canonicalize     fields cast to the canonical dtypes (times by `timestamps`), each row that
                             cannot be read given its reject reason
    sink                     text: the rows (good and rejected) staged once to Parquet;
                             Parquet inputs: a lazy query on the files themselves
      │
      ▼ load (here)
    _rejects / _goods        the rejected rows with their reasons; the canonical good rows
    duplicates               a gateway line delivered twice by a log shipper: analyzed once, each later
                             copy a `duplicate_line` reject of its file
    skew, notes              files whose clocks look shifted; what the reader noticed
      ▼
    Loaded(frame, inputs, rejects, notes)

Nothing is lost: for every input, rows_read = rows analyzed + rows rejected. Blank lines (only
whitespace and the \\x1f unit separator) are not rows and are not counted. A time that cannot be
real (before 2000, or more than a day after the newest input was last written: a clock reset to 1970)
is a `bad_value:ts`; rows far in time from the others are analyzed like any (detection works on the
stretches that hold data).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from analyzer import objstore
from analyzer.config import Settings
from analyzer.findings import InputReport
from analyzer.ingest import duplicates, skew, sources
from analyzer.ingest.concurrent import read_batches
from analyzer.ingest.mapping import INVALID_UTF8
from analyzer.ingest.reader import FileRead, batches
from analyzer.ingest.sources import RAW, find_inputs, resolve
from analyzer.notes import Note, NoteCode
from analyzer.schema import (
    GATEWAY_OPTIONAL,
    REJECT_FILE,
    REJECT_LINE,
    REJECT_RAW,
    REJECT_REASON,
    REJECT_REASON_COLUMN,
    REJECTS,
    SCHEMAS,
    SOURCE_FILE,
    SOURCE_LINE,
)

__all__ = ["Loaded", "find_inputs", "load"]

REJECT_COLUMNS = REJECTS
RAW_ROWS = 200_000  # rejected rows whose raw text is kept (about 200 MB at most); the rest: null
_REJECT_SOURCE = (SOURCE_FILE, SOURCE_LINE, REJECT_REASON, RAW)


@dataclass(frozen=True)
class Loaded:
    """The canonical rows of one kind of input, and what happened to every row of every file."""

    kind: str  # gateway | ledger | events
    # Good rows only: every canonical column of the kind with its dtype (gateway: plus the optional
    # columns some input has), then `_file` and `_line` for provenance.
    frame: pl.LazyFrame
    inputs: tuple[InputReport, ...]  # one per file, in path order
    # file, line, reason, raw (first 1000 characters; null for a duplicate_line and beyond RAW_ROWS rows)
    rejects: pl.DataFrame
    notes: tuple[Note, ...]
    # The temporary folder of the Parquet sinks (also kept in _STAGING until the process exits).
    _workdir: object = field(default=None, repr=False, compare=False)


# Staging folders made by load() without a workdir live until the process exits (their finalizers
# clean them up then): `load(...).frame.collect()` must work even though the Loaded is dropped first.
_STAGING: list[tempfile.TemporaryDirectory[str]] = []


def load(
    kind: str, paths: Sequence[str | Path], settings: Settings, *, workdir: Path | None = None
) -> Loaded:
    """Read every input of `kind` (gateway, ledger, events) once into canonical rows and rejects."""
    if kind not in SCHEMAS:
        raise ValueError(f"unknown kind {kind!r}")
    keep: tempfile.TemporaryDirectory[str] | None = None
    if workdir is None:
        keep = tempfile.TemporaryDirectory(prefix="analyzer-")
        _STAGING.append(keep)
        workdir = Path(keep.name)
    workdir.mkdir(parents=True, exist_ok=True)
    # A folder per call: a second load into the same workdir must not overwrite the first one's rows.
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=workdir))
    config = settings.source(kind)
    with objstore.named_by_url():
        reads = read_batches(
            kind, batches(kind, _decoded(resolve(paths), config.encoding), config), config, folder
        )
    inputs = tuple(r.report for r in reads)
    rejects = _rejects(reads)
    goods = _goods(kind, reads, rejects)
    frame = _frame(kind, reads, goods)
    order = [r.report.path for r in reads]
    if kind == "gateway" and reads:
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
            + tuple(n for r in reads for n in r.notes)
            + skew.skew_notes(kind, inputs)
            + _encoding_notes(kind, inputs, config.encoding)
            + _raw_note(inputs)
        ),
        _workdir=keep,
    )


def _decoded(paths: list[Path], encoding: str | None) -> list[Path]:
    """The inputs, each decoded from `encoding` into a UTF-8 file when one is set (Parquet is binary)."""
    if encoding is None:
        return paths
    return [p if p.is_dir() or sources.is_parquet_file(p) else sources.transcoded(p, encoding) for p in paths]


def _columns(kind: str, inputs: Sequence[InputReport]) -> dict[str, pl.DataType]:
    schema = dict(SCHEMAS[kind])
    for optional in GATEWAY_OPTIONAL if kind == "gateway" else ():
        if all(r.fields.get(optional) is None for r in inputs):
            del schema[optional]
    return schema


def _goods(kind: str, reads: Sequence[FileRead], rejects: pl.DataFrame) -> list[pl.LazyFrame]:
    """The analyzed rows of the inputs in path order: canonical columns, provenance, line hashes."""
    columns = [*_columns(kind, [r.report for r in reads]), SOURCE_FILE, SOURCE_LINE]
    columns += duplicates.HASHES if kind == "gateway" else ()
    out: list[pl.LazyFrame] = []
    for group in _groups(reads):
        if not any(r.report.rows_analyzed for r in group):
            continue  # empty files (fresh rotations) add nothing but a scan to every later query
        rows = _rows(group[0])
        if group[0].sink is not None:
            # A scan per staged file (a file's name is a literal, a batch's a column): every staged file
            # has every canonical column (mapping.canonicalize writes them all).
            out.append(rows.filter(pl.col(REJECT_REASON).is_null()).select(columns))
            continue
        # Read in place: rejected rows are dropped by line number, not by their reasons (no scan has
        # to read every column to compute them).
        rows = rows.select(columns)
        rejected = [r.report.path for r in group if r.report.rows_rejected]
        if len(group) == 1 and rejected:
            lines = rejects.filter(pl.col(REJECT_FILE) == rejected[0])[REJECT_LINE]
            rows = rows.filter(~pl.col(SOURCE_LINE).is_in(lines.implode()))
        elif rejected:
            bad = rejects.filter(pl.col(REJECT_FILE).is_in(rejected)).select(
                pl.col(REJECT_FILE).alias(SOURCE_FILE), pl.col(REJECT_LINE).alias(SOURCE_LINE)
            )
            rows = rows.join(bad.lazy(), on=[SOURCE_FILE, SOURCE_LINE], how="anti", maintain_order="left")
        out.append(rows)
    return out


def _frame(kind: str, reads: Sequence[FileRead], goods: Sequence[pl.LazyFrame]) -> pl.LazyFrame:
    schema = _columns(kind, [r.report for r in reads])
    provenance = {SOURCE_FILE: pl.String(), SOURCE_LINE: pl.Int64()}
    if not goods:
        return pl.LazyFrame(schema=schema | provenance)
    rows = pl.concat(goods, how="vertical_relaxed") if len(goods) > 1 else goods[0]
    return rows.select(*schema, *provenance)


def _rejects(reads: Sequence[FileRead]) -> pl.DataFrame:
    # Only inputs with rejected rows are scanned again (a query over thousands of small staged files
    # costs ~15 ms a file even when it finds nothing); their reports already count the rejects.
    rows = [_rows(g[0]) for g in _groups(reads) if any(r.report.rows_rejected for r in g)]
    if not rows:
        return pl.DataFrame(schema=REJECT_COLUMNS)
    return (
        pl.concat(
            [r.filter(pl.col(REJECT_REASON).is_not_null()).select(*_REJECT_SOURCE) for r in rows],
            how="vertical_relaxed",
        )
        .with_row_index("_n")
        .select(
            pl.col(SOURCE_FILE).alias(REJECT_FILE),
            pl.col(SOURCE_LINE).alias(REJECT_LINE),
            pl.col(REJECT_REASON).alias(REJECT_REASON_COLUMN),
            # Bounded memory when a whole input is rejected (a wrong mapping on 10M lines).
            pl.when(pl.col("_n") < RAW_ROWS).then(pl.col(RAW)).alias(REJECT_RAW),
        )
        .collect()
    )


def _groups(reads: Sequence[FileRead]) -> list[list[FileRead]]:
    """The reads as they were read: each input alone, a batch's inputs together (in path order)."""
    out: list[list[FileRead]] = []
    for read in reads:
        if out and read.batched and out[-1][0].batched and _same_store(out[-1][0], read):
            out[-1].append(read)
        else:
            out.append([read])
    return out


def _same_store(a: FileRead, b: FileRead) -> bool:
    # What a batch's inputs share: the one sink, or the one plan of Parquet files read in place.
    return a.sink == b.sink if a.sink is not None else a.plan is b.plan


def _rows(read: FileRead) -> pl.LazyFrame:
    """Every row of `read`'s group (see `_groups`): a batch's whole sink or plan, else the input's."""
    if not read.batched:
        return read.rows()
    return pl.scan_parquet(read.sink) if read.sink is not None else read.plan  # type: ignore[return-value]


def _raw_note(inputs: Sequence[InputReport]) -> tuple[Note, ...]:
    # Rows rejected after staging (copies) never had their raw text kept.
    later = (duplicates.DUPLICATE,)
    rejected = sum(r.rows_rejected - sum(r.rejects_by_reason.get(x, 0) for x in later) for r in inputs)
    if rejected <= RAW_ROWS:
        return ()
    return (Note(NoteCode.RAW_TEXT_CAPPED, count=RAW_ROWS, total=rejected),)


def _encoding_notes(kind: str, inputs: Sequence[InputReport], encoding: str | None) -> tuple[Note, ...]:
    """For each input with lines that are not UTF-8: the legacy encoding that would read them."""
    if encoding is not None:
        return ()
    return tuple(
        Note(
            NoteCode.NOT_UTF8,
            kind=kind,
            file=r.path,
            count=r.rejects_by_reason[INVALID_UTF8],
            encoding=sources.suggest_encoding(objstore.local_path(r.path)),
        )
        for r in inputs
        if r.rejects_by_reason.get(INVALID_UTF8) and objstore.local_path(r.path).is_file()
    )


def _notes(kind: str, inputs: Sequence[InputReport]) -> tuple[Note, ...]:
    notes: list[Note] = []
    if not inputs:
        return (Note(NoteCode.NO_INPUT, kind=kind),)
    for column in SCHEMAS[kind]:
        if kind == "gateway" and column in GATEWAY_OPTIONAL:
            continue
        missing = [r.path for r in inputs if r.fields.get(column) is None]
        if len(missing) == len(inputs):
            if kind == "ledger" and column == "entry_id":
                notes.append(Note(NoteCode.NO_ENTRY_ID, kind=kind, column=column))
            elif kind == "events" and column == "kind":
                notes.append(Note(NoteCode.NO_EVENT_KIND, kind=kind, column=column))
            else:
                notes.append(Note(NoteCode.NO_COLUMN, kind=kind, column=column))
        elif missing:
            notes.append(Note(NoteCode.COLUMN_MISSING_IN, kind=kind, column=column, names=tuple(missing)))
    return tuple(notes)
