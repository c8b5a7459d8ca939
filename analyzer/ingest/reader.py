"""Read one input to canonical rows with their reject reasons, and account for it.

Text inputs: one streaming pass per input (sniff, pick the format, map fields, parse) sinks every row
(good and rejected) with `_file`, `_line`, `_reject` to a staging Parquet file. Parquet inputs are
already columnar: they are not copied, their canonical rows are a lazy query on the source files
(`FileRead.plan`), and each later scan reads only the columns it needs. Either way the InputReport is
one aggregation over the rows, and rows_read = rows analyzed + rows rejected holds by construction
(asserted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from analyzer.config import SourceConfig
from analyzer.errors import InputError, MappingError
from analyzer.findings import InputReport
from analyzer.ingest import duplicates, formats, mapping
from analyzer.ingest.sources import SRC, Sniff, decompress_readable, sniff
from analyzer.schema import REJECT_REASON, ROW_REQUIRED, SCHEMAS, SOURCE_FILE, TS

# The format read where it lies (columnar already): its rows are a lazy query, never a staged copy.
IN_PLACE: Final = "parquet"


@dataclass(frozen=True)
class FileRead:
    """One input after its pass: its report and where its rows are (a staged sink or a lazy plan)."""

    report: InputReport
    sink: Path | None  # staged rows (good and rejected); None: read in place through `plan`
    notes: tuple[str, ...] = ()
    # Parquet read in place: `_file`, `_line`, `_reject`, `_raw`, canonical columns (and line hashes).
    plan: pl.LazyFrame | None = None

    def rows(self) -> pl.LazyFrame:
        """Every row of the input, good and rejected, with its reject reason."""
        if self.plan is not None:
            return self.plan
        assert self.sink is not None
        # The file's name is not staged on every row (writing it cost ~15% of a JSON log's pass).
        return pl.scan_parquet(self.sink).with_columns(pl.lit(self.report.path).alias(SOURCE_FILE))


def read_file(kind: str, path: Path, config: SourceConfig, sink: Path) -> FileRead:
    """Parse `path` as a `kind` input and sink its canonical rows (good and rejected) to `sink`."""
    label = str(path)
    sniffed = sniff(path)
    fmt = formats.choose(path, sniffed, config)
    if fmt.name == IN_PLACE:
        try:
            fields, unverified, plan = _plan(kind, path, label, fmt, sniffed, config)
            report = _report(kind, label, fmt.name, sniffed.compression, fields, unverified, plan)
        except pl.exceptions.PolarsError as e:
            raise InputError(f"cannot be parsed as {fmt.name}: {e}", path=label) from None
        return FileRead(report, None, (), plan)
    try:
        fields, unverified, notes = _parse(kind, path, label, fmt, sniffed, config, sink)
    except OSError as e:
        if sniffed.compression not in ("gzip", "zstd"):
            raise InputError(f"cannot read: {e}", path=label) from None
        # A compressed log cut off mid-write (the incident!) still holds every line before the cut.
        readable = sink.with_suffix(".readable")
        decompress_readable(path, sniffed.compression, readable)
        fields, unverified, notes = _parse(kind, readable, label, fmt, sniffed, config, sink)
        readable.unlink()
        notes += (
            f"{kind}: {label} is a truncated or damaged {sniffed.compression} stream; read up to the break",
        )
    report = _report(kind, label, fmt.name, sniffed.compression, fields, unverified, pl.scan_parquet(sink))
    return FileRead(report, sink, notes)


def _plan(
    kind: str, path: Path, label: str, fmt: formats.Format, sniffed: Sniff, config: SourceConfig
) -> tuple[dict[str, str | None], list[str], pl.LazyFrame]:
    """The mapping of `path` and the lazy query of its canonical rows (plan 0: Parquet has one)."""
    _, fields, unverified, plan = _source_plan(kind, path, label, fmt, sniffed, config)
    return fields, unverified, plan(0)


def _source_plan(
    kind: str, path: Path, label: str, fmt: formats.Format, sniffed: Sniff, config: SourceConfig
) -> tuple[formats.Source, dict[str, str | None], list[str], Callable[[int], pl.LazyFrame]]:
    source = fmt.open(path, sniffed, config)
    fields = mapping.resolve(
        kind,
        list(source.fields),
        config.fields,
        source.defaults,
        path=label,
        complete=source.complete,
    )
    unverified = [c for c, name in fields.items() if c in config.fields and name not in source.fields]
    units = mapping.units_for(fields, config.units, source.units)
    wanted = sorted({name for name in fields.values() if name is not None})

    # Gateway rows carry a hash of their raw line, to find lines a shipper delivered twice.
    hashes = duplicates.HASHES if kind == "gateway" else ()

    def plan(attempt: int) -> pl.LazyFrame:
        scanned = source.scan(wanted, attempt)
        if hashes and not source.hashed:
            names = [] if source.raw_is_record else scanned.collect_schema().names()
            scanned = scanned.with_columns(duplicates.line_hashes([n for n in names if n.startswith(SRC)]))
        return mapping.canonicalize(
            scanned,
            kind,
            fields,
            source.fields,
            units,
            file=label,
            clock_offset=config.clock_offset,
            text=source.text,
            check_seen=unverified,
            keep=hashes,
        )

    return source, fields, unverified, plan


def _parse(
    kind: str,
    path: Path,
    label: str,
    fmt: formats.Format,
    sniffed: Sniff,
    config: SourceConfig,
    sink: Path,
) -> tuple[dict[str, str | None], list[str], tuple[str, ...]]:
    source, fields, unverified, plan = _source_plan(kind, path, label, fmt, sniffed, config)
    notes: tuple[str, ...] = ()
    # A plan stops with a ComputeError on rows it cannot take (a broken JSON object inside braces, a
    # row whose shape differs from the sample's, unbalanced quotes): the next plan reads them.
    for attempt in range(source.plans):
        try:
            # lz4: written in about 80% of zstd's time, read in 60%; twice the size, but only for this run.
            plan(attempt).drop(SOURCE_FILE).sink_parquet(sink, compression="lz4")
            break
        except pl.exceptions.ComputeError as e:
            if attempt == source.plans - 1:
                raise InputError(f"cannot be parsed as {fmt.name}: {e}", path=label) from None
        except pl.exceptions.PolarsError as e:
            raise InputError(f"cannot be parsed as {fmt.name}: {e}", path=label) from None
    if attempt and attempt == source.plans - 1 and source.robust_note:
        notes = (f"{kind}: {label}: {source.robust_note}",)
    return fields, unverified, notes


def _report(
    kind: str,
    label: str,
    fmt: str,
    compression: str,
    fields: dict[str, str | None],
    unverified: list[str],
    rows: pl.LazyFrame,
) -> InputReport:
    # One pass: a group per reject reason (null: the analyzed rows) with what the report needs.
    counts = (
        rows.group_by(REJECT_REASON)
        .agg(
            pl.len().alias("len"),
            pl.col(TS).min().alias("first"),
            pl.col(TS).max().alias("last"),
            pl.all_horizontal(pl.col(c).is_not_null() for c in ROW_REQUIRED[kind]).all().alias("complete"),
            *[pl.col(f"_seen:{c}").any().alias(f"_seen:{c}") for c in unverified],
        )
        .collect()
    )
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
        format=fmt,
        compression="none" if compression == "parquet" else compression,
        rows_read=rows_read,
        rows_rejected=rejected,
        rejects_by_reason=dict(sorted(by_reason.items())),
        fields={c: fields.get(c) for c in SCHEMAS[kind]},
        first_ts=None if good.is_empty() else good["first"][0],
        last_ts=None if good.is_empty() else good["last"][0],
    )
