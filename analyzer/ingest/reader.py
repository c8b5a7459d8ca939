"""Read one input to canonical rows with their reject reasons, and account for it.

Text inputs: one streaming pass per input (sniff, pick the format, map fields, parse) sinks every row
(good and rejected) with `_line`, `_reject` to a staging Parquet file; runs of small inputs read alike
are staged together by one pass into one file, each row with its `_file` (`batches`). Parquet inputs
are already columnar: they are not copied, their canonical rows are a lazy query on the source files
(`FileRead.plan`; one query for a batch of files of one schema), and each later scan reads only the
columns it needs. Either way the InputReport is one aggregation over the rows, and rows_read = rows
analyzed + rows rejected holds by construction (asserted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from analyzer import objstore
from analyzer.config import SourceConfig
from analyzer.errors import InputError, MappingError
from analyzer.findings import InputReport
from analyzer.ingest import duplicates, formats, mapping, presets, usage
from analyzer.ingest.sources import DAMAGED, SRC, decompress_readable, sniff
from analyzer.notes import Note, NoteCode
from analyzer.schema import REJECT_REASON, ROW_REQUIRED, SCHEMAS, SOURCE_FILE, TOKENS, TS

# The format read where it lies (columnar already): its rows are a lazy query, never a staged copy.
IN_PLACE: Final = "parquet"
# Small text inputs read alike are staged in batches (see `batches`): a file of at most
# BATCH_FILE_BYTES of text, a batch of at most BATCH_BYTES (held in memory while it is numbered).
# Parquet files of one schema form a batch whatever their size (read in place, nothing is held).
BATCH_FILE_BYTES: Final = 4 << 20
BATCH_BYTES: Final = 32 << 20
# A line may be stamped by a clock a little ahead of the one that set the file's modification time.
TS_SLACK: Final = timedelta(days=1)


@dataclass(frozen=True)
class FileRead:
    """One input after its pass: its report and where its rows are (a staged sink or a lazy plan)."""

    report: InputReport
    sink: Path | None  # staged rows (good and rejected); None: read in place through `plan`
    notes: tuple[Note, ...] = ()
    # Parquet read in place: `_file`, `_line`, `_reject`, `_raw`, canonical columns (and line hashes).
    plan: pl.LazyFrame | None = None
    # The sink (or plan) holds a batch of inputs, each row with its `_file`; else this input's rows only.
    batched: bool = False

    def rows(self) -> pl.LazyFrame:
        """Every row of the input, good and rejected, with its reject reason."""
        mine = pl.col(SOURCE_FILE) == self.report.path
        if self.plan is not None:
            return self.plan.filter(mine) if self.batched else self.plan
        assert self.sink is not None
        if self.batched:
            return pl.scan_parquet(self.sink).filter(mine)
        # The file's name is not staged on every row (writing it cost ~15% of a JSON log's pass).
        return pl.scan_parquet(self.sink).with_columns(pl.lit(self.report.path).alias(SOURCE_FILE))


@dataclass(frozen=True)
class Opened:
    """One input with its format detected and its fields mapped, not read yet."""

    path: Path
    compression: str
    fmt: formats.Format
    source: formats.Source
    fields: dict[str, str | None]
    unverified: list[str]  # canonical columns mapped by the config to a field the sample lacks
    units: dict[str, str]
    text_bytes: int  # about how much text the input holds (Parquet read in place: 0)
    batch: Hashable  # equal (not None) for small inputs that one scan can read together
    shape: presets.Shape = presets.NO_SHAPE  # a preset's constants, status words and latency span
    ts_ceiling: datetime | None = None  # later times cannot be real (see `batches`)
    wrapper: str | None = None  # the container wrapper taken off its lines (module wrappers)

    @property
    def label(self) -> str:
        return objstore.label(self.path)


def open_input(kind: str, path: Path, config: SourceConfig) -> Opened:
    """Detect the format of `path` and map its fields (reads a sample, not the rows)."""
    label = str(path)
    sniffed = formats.unwrap(sniff(path), config)
    fmt = formats.choose(path, sniffed, config)
    try:
        source = fmt.open(path, sniffed, config)
        preset = presets.choose(kind, config.preset, list(source.fields))
        fields = mapping.resolve(
            kind,
            list(source.fields),
            config.fields,
            presets.defaults(preset, kind, source.defaults),
            path=label,
            complete=source.complete,
        )
    except pl.exceptions.PolarsError as e:
        raise InputError(f"cannot be parsed as {fmt.name}: {e}", path=label) from None
    for canonical, name in fields.items():
        dtype = source.fields.get(name) if name is not None else None
        if dtype is not None and dtype.is_nested():
            raise MappingError(
                f"a {dtype} column cannot be read as {canonical}; map {canonical} to another field "
                f"in [{kind}.fields]",
                path=label,
                field=name,
            )
    unverified = [c for c, name in fields.items() if c in config.fields and name not in source.fields]
    units = mapping.units_for(fields, config.units, presets.units(preset, kind, source.units))
    shape = presets.shape(preset, kind, fields, config.fields)
    text = 0 if fmt.name == IN_PLACE else _text_bytes(path, sniffed.compression)
    batch: Hashable = None
    if source.batch is not None and text <= BATCH_FILE_BYTES:
        frozen = map(_frozen, (fields, unverified, units))
        batch = (fmt.name, sniffed.compression, source.batch, *frozen, shape)
    opened = Opened(path, sniffed.compression, fmt, source, fields, unverified, units, text, batch, shape)
    return dataclasses.replace(opened, wrapper=sniffed.wrapper)


def _text_bytes(path: Path, compression: str) -> int:
    """What a batch holds in memory for an input: its text. Compressed logs: ~8x their size, more when
    a gzip trailer says so (the size of the last member's text, mod 4 GiB). Gzip cannot shrink text
    more than ~1032x: a larger figure is not a trailer (a file cut short) and is not believed."""
    size = path.stat().st_size
    if compression == "none":
        return size
    if compression == "gzip" and size >= 18:
        with path.open("rb") as f:
            f.seek(-4, 2)
            trailer = int.from_bytes(f.read(4), "little")
        return max(8 * size, trailer if trailer <= 1032 * size else 0)
    return 8 * size


def batches(kind: str, paths: Sequence[Path], config: SourceConfig) -> Iterator[list[Opened]]:
    """The inputs opened in path order, runs of small ones read alike grouped into batches.

    A query has a fixed cost of ~5 ms whatever its size, and a small file costs about three (staging,
    report, rejects): over thousands of small rotated logs that cost is most of the time.
    """
    batch: list[Opened] = []
    text = 0
    ceiling = _ts_ceiling(paths)
    for path in paths:
        opened = dataclasses.replace(open_input(kind, path, config), ts_ceiling=ceiling)
        full = text + opened.text_bytes > BATCH_BYTES
        if batch and (opened.batch is None or opened.batch != batch[0].batch or full):
            yield batch
            batch, text = [], 0
        batch.append(opened)
        text += opened.text_bytes
    if batch:
        yield batch


def _ts_ceiling(paths: Sequence[Path]) -> datetime | None:
    """A day after the newest input's modification time: no line can be written later than that."""
    stamps = [f.stat().st_mtime for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return datetime.fromtimestamp(max(stamps), UTC) + TS_SLACK if stamps else None


def _frozen(value: object) -> Hashable:
    if isinstance(value, dict):
        return tuple(value.items())
    return tuple(value) if isinstance(value, list) else value


def read_batch(kind: str, batch: Sequence[Opened], config: SourceConfig, sink: Path) -> list[FileRead]:
    """Read a batch (see `batches`): text inputs by one scan into `sink`, Parquet as one lazy query.

    A batch the fastest plan cannot read (a broken object, unbalanced quotes, a damaged stream) is
    read again file by file, so that each file gets the plan, notes and errors it would get alone.
    """
    if batch[0].fmt.name == IN_PLACE:
        return _in_place(kind, batch, config)
    if batch[0].fmt is formats.EMPTY:
        # A fresh rotation (no line but blank ones): nothing to stage, its report is all zeros.
        return [_in_place(kind, [opened], config)[0] for opened in batch]
    if len(batch) == 1:
        return [_staged(kind, batch[0], config, sink)]
    first = batch[0]
    try:
        _plan_of(kind, first, [o.path for o in batch], config, file=None)(0).sink_parquet(
            sink, compression="lz4"
        )
    except (pl.exceptions.PolarsError, OSError):
        sink.unlink(missing_ok=True)
        return [
            _staged(kind, opened, config, sink.with_name(f"{sink.stem}-{i:05d}.parquet"))
            for i, opened in enumerate(batch)
        ]
    counts = _counts(kind, pl.scan_parquet(sink), first.unverified, by_file=True)
    mine = {o.label: counts.filter(pl.col(SOURCE_FILE) == o.label) for o in batch}
    return [
        FileRead(_report(kind, o, mine[o.label]), sink, _input_notes(kind, o, mine[o.label]), batched=True)
        for o in batch
    ]


def _in_place(kind: str, batch: Sequence[Opened], config: SourceConfig) -> list[FileRead]:
    """Parquet read where it lies: one lazy query (several files: each row with its `_file`)."""
    first = batch[0]
    if len(batch) == 1:
        try:
            plan = _plan_of(kind, first, first.path, config, file=first.label)(0)
            report = _report(kind, first, _counts(kind, plan, first.unverified))
        except pl.exceptions.PolarsError as e:
            raise InputError(f"cannot be parsed as {first.fmt.name}: {e}", path=first.label) from None
        return [FileRead(report, None, (), plan)]
    try:
        plan = _plan_of(kind, first, [o.path for o in batch], config, file=None)(0)
        counts = _counts(kind, plan, first.unverified, by_file=True)
    except (pl.exceptions.PolarsError, OSError, ValueError):  # ValueError: pyarrow reading a footer
        return [read for opened in batch for read in _in_place(kind, [opened], config)]  # each says why
    return [
        FileRead(
            _report(kind, o, counts.filter(pl.col(SOURCE_FILE) == o.label)), None, (), plan, batched=True
        )
        for o in batch
    ]


def _staged(kind: str, opened: Opened, config: SourceConfig, sink: Path) -> FileRead:
    """Parse one text input and sink its canonical rows (good and rejected) to `sink`."""
    label = opened.label
    try:
        notes = _parse(kind, opened, opened.path, config, sink)
    except OSError as e:
        if opened.compression not in ("gzip", "zstd"):
            raise InputError(f"cannot read: {e}", path=label) from None
        # A compressed log cut off mid-write (the incident!) still holds every line before the cut.
        readable = sink.with_suffix(".readable")
        decompress_readable(opened.path, opened.compression, readable)
        notes = _parse(kind, opened, readable, config, sink)
        readable.unlink()
        notes += (Note(NoteCode.TRUNCATED_STREAM, kind=kind, file=label, compression=opened.compression),)
    counts = _counts(kind, pl.scan_parquet(sink), opened.unverified)
    return FileRead(_report(kind, opened, counts), sink, notes + _input_notes(kind, opened, counts))


def _plan_of(
    kind: str, opened: Opened, files: Path | Sequence[Path], config: SourceConfig, *, file: str | None
) -> Callable[[int], pl.LazyFrame]:
    """The query of `files`' canonical rows with plan number `attempt` (`file`: their `_file`)."""
    source = opened.source
    wanted = sorted({name for name in opened.fields.values() if name is not None})
    # Gateway rows carry a hash of their raw line, to find lines a shipper delivered twice.
    hashes = duplicates.HASHES if kind == "gateway" else ()

    def plan(attempt: int) -> pl.LazyFrame:
        scanned = source.scan(files, wanted, attempt)
        damage = [DAMAGED] if DAMAGED in scanned.collect_schema() else []
        if hashes and not source.hashed:
            names = [] if source.raw_is_record else scanned.collect_schema().names()
            scanned = scanned.with_columns(duplicates.line_hashes([n for n in names if n.startswith(SRC)]))
        return mapping.canonicalize(
            scanned,
            kind,
            opened.fields,
            source.fields,
            opened.units,
            file=file,
            clock_offset=config.clock_offset,
            text=source.text,
            check_seen=opened.unverified,
            keep=(*hashes, *damage),
            kinds=config.kinds,
            shape=opened.shape,
            ts_ceiling=opened.ts_ceiling,
        )

    return plan


def _parse(kind: str, opened: Opened, path: Path, config: SourceConfig, sink: Path) -> tuple[Note, ...]:
    """Sink the rows of `path` (the input, or its readable part) with the first plan that takes them."""
    source, label = opened.source, opened.label
    plan = _plan_of(kind, opened, path, config, file=label)
    notes: tuple[Note, ...] = ()
    # A plan stops with a ComputeError on rows it cannot take (a broken JSON object inside braces, a
    # row whose shape differs from the sample's, unbalanced quotes): the next plan reads them.
    for attempt in range(source.plans):
        # Each plan sinks to a file of its own: a plan that stopped may still be writing its file for
        # a moment, and the next plan's rows written over it made the staged file unreadable.
        trial = sink.with_name(f"{sink.stem}.plan{attempt}{sink.suffix}")
        try:
            # lz4: written in about 80% of zstd's time, read in 60%; twice the size, but only for this run.
            plan(attempt).drop(SOURCE_FILE).sink_parquet(trial, compression="lz4")
            trial.replace(sink)
            break
        except pl.exceptions.ComputeError as e:
            if attempt == source.plans - 1:
                raise InputError(f"cannot be parsed as {opened.fmt.name}: {e}", path=label) from None
        except pl.exceptions.PolarsError as e:
            raise InputError(f"cannot be parsed as {opened.fmt.name}: {e}", path=label) from None
    if attempt and attempt == source.plans - 1 and source.robust_note is not None:
        notes = (Note(source.robust_note, kind=kind, file=label),)
    return notes


def _counts(
    kind: str, rows: pl.LazyFrame, unverified: Sequence[str], *, by_file: bool = False
) -> pl.DataFrame:
    """One pass: a group per reject reason (null: the analyzed rows), per file in a batch."""
    damaged = DAMAGED in rows.collect_schema()
    return (
        rows.group_by(*([SOURCE_FILE] if by_file else []), REJECT_REASON)
        .agg(
            pl.len().alias("len"),
            *([pl.col(DAMAGED).is_not_null().sum().alias("_damaged_rows")] if damaged else []),
            pl.col(TS).min().alias("first"),
            pl.col(TS).max().alias("last"),
            pl.all_horizontal(pl.col(c).is_not_null() for c in ROW_REQUIRED[kind]).all().alias("complete"),
            *[pl.col(f"_seen:{c}").any().alias(f"_seen:{c}") for c in unverified],
            *([pl.col(DAMAGED).drop_nulls().unique().sort().alias(DAMAGED)] if damaged else []),
        )
        .collect()
    )


def _input_notes(kind: str, opened: Opened, counts: pl.DataFrame) -> tuple[Note, ...]:
    """What `inspect` and the report say of how an input was read: its wrapper, its damaged lines."""
    wrapped = (
        (
            Note(
                NoteCode.WRAPPED, kind=kind, file=opened.label, format=opened.fmt.name, wrapper=opened.wrapper
            ),
        )
        if opened.wrapper
        else ()
    )
    return wrapped + _damage_notes(kind, opened.label, counts)


def _damage_notes(kind: str, label: str, counts: pl.DataFrame) -> tuple[Note, ...]:
    """A note for the analyzed lines that were read although a field nothing needs was damaged."""
    if DAMAGED not in counts.columns:
        return ()
    good = counts.filter(pl.col(REJECT_REASON).is_null())
    fields = sorted({f for cell in good[DAMAGED].to_list() for f in cell})
    if not fields:
        return ()
    n = int(good["_damaged_rows"].sum())
    return (Note(NoteCode.DAMAGED_FIELDS, kind=kind, file=label, count=n, names=tuple(fields)),)


def _report(kind: str, opened: Opened, counts: pl.DataFrame) -> InputReport:
    label, fields, unverified = opened.label, opened.fields, opened.unverified
    good = counts.filter(pl.col(REJECT_REASON).is_null())
    by_reason = {r: n for r, n in counts.select(REJECT_REASON, "len").iter_rows() if r is not None}
    rows_read = int(counts["len"].sum())
    rejected = sum(by_reason.values())
    # Every row that was not rejected must hold its row-required values: else a reason was missed.
    assert good.is_empty() or good["complete"][0], f"{label}: an analyzed row lacks a required value"
    for canonical in unverified:
        if rows_read and not counts[f"_seen:{canonical}"].any():
            name = fields[canonical]
            raise MappingError(
                f"[{kind}.fields] {canonical} = '{name}' but no row has that field", path=label, field=name
            )
    return InputReport(
        kind=kind,
        path=label,
        format=opened.fmt.name,
        compression="none" if opened.compression == "parquet" else opened.compression,
        rows_read=rows_read,
        rows_rejected=rejected,
        rejects_by_reason=dict(sorted(by_reason.items())),
        fields=opened.shape.described(usage.described(fields, list(SCHEMAS[kind])), opened.units),
        preset=opened.shape.preset,
        amounts=opened.units.get(TOKENS, "tokens"),
        first_ts=None if good.is_empty() else good["first"][0],
        last_ts=None if good.is_empty() else good["last"][0],
    )
