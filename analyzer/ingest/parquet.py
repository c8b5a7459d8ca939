"""Parquet: one file, or a folder of files (hive partitions such as `region=eu/` become columns).

Files named one by one that share a schema are read as one batch (one query, `_file` per row).

Columns keep their types; nested structs are reached by dotted paths. Line numbers are row numbers
(1-based) within the file or folder. A rejected row's raw text is the row as JSON; a row's line hashes
(to find rows a shipper delivered twice) are hashes of the whole row's values, not of that JSON text,
which would cost a JSON encoding of every row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import accumulate
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # (no type stubs)

from analyzer.errors import InputError
from analyzer.ingest.duplicates import HASHES
from analyzer.ingest.sources import RAW
from analyzer.schema import REJECT_REASON, SOURCE_FILE, SOURCE_LINE

KeyPath = tuple[str, ...]


def scan(path: Path) -> pl.LazyFrame:
    """Lazy scan of a Parquet file or (hive-partitioned) folder."""
    source = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    return pl.scan_parquet(source, hive_partitioning=path.is_dir())


def fields(path: Path) -> dict[str, tuple[KeyPath, pl.DataType]]:
    """Every leaf column: dotted name -> (key path, dtype)."""
    if path.is_dir():
        _same_types(path)
    try:
        schema = scan(path).collect_schema()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(f"cannot read Parquet: {e}", path=str(path)) from None
    out: dict[str, tuple[KeyPath, pl.DataType]] = {}
    for name, dtype in schema.items():
        _leaves((name,), dtype, out)
    return out


def _same_types(folder: Path) -> None:
    """A folder is read as one table: its files must agree on each column's type (else say which)."""
    first: dict[str, tuple[pl.DataType, Path]] = {}
    for file in sorted(folder.rglob("*.parquet")):
        try:
            schema = pl.read_parquet_schema(file)
        except (pl.exceptions.PolarsError, OSError) as e:
            raise InputError(f"cannot read Parquet: {e}", path=str(file)) from None
        for name, dtype in schema.items():
            seen, where = first.setdefault(name, (dtype, file))
            if seen != dtype:
                raise InputError(
                    f"column is {seen} in {where.relative_to(folder)} but {dtype} in "
                    f"{file.relative_to(folder)}; give the files as separate inputs",
                    path=str(folder),
                    field=name,
                )


def _leaves(path: KeyPath, dtype: pl.DataType, out: dict[str, tuple[KeyPath, pl.DataType]]) -> None:
    if isinstance(dtype, pl.Struct):
        for f in dtype.fields:
            _leaves((*path, f.name), f.dtype() if isinstance(f.dtype, type) else f.dtype, out)
    else:
        out[".".join(path)] = (path, dtype)


def scan_parquet(
    paths: Path | Sequence[Path], wanted: Mapping[str, KeyPath], top: Sequence[str]
) -> pl.LazyFrame:
    """`_line`, `_raw`, `_reject` (null), the line hashes and one typed column per wanted field.

    Several files (of one schema) are one scan, each row with its `_file`; their row numbers run on
    from file to file, so each file's first row number, known from the files' footers, is subtracted.
    """
    columns = []
    for name, key_path in wanted.items():
        expr = pl.col(key_path[0])
        for key in key_path[1:]:
            expr = expr.struct.field(key)
        columns.append(expr.alias(name))
    record = pl.struct([pl.col(c) for c in top])
    raw = record.struct.json_encode() if top else pl.lit(None, pl.String)
    hashes = [
        (record.hash(seed=seed) if top else pl.lit(seed, pl.UInt64)).alias(name)
        for seed, name in enumerate(HASHES)
    ]
    line = pl.col(SOURCE_LINE).cast(pl.Int64)
    if isinstance(paths, Path):
        lf, batch = scan(paths), []
    else:
        files = list(paths)
        lf = pl.scan_parquet(files, hive_partitioning=False, include_file_paths=SOURCE_FILE)
        counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
        starts = [0, *accumulate(counts)][:-1]
        line -= pl.col(SOURCE_FILE).replace_strict([str(f) for f in files], starts, return_dtype=pl.Int64)
        batch = [pl.col(SOURCE_FILE)]
    return lf.with_row_index(SOURCE_LINE, offset=1).select(
        line.alias(SOURCE_LINE),
        raw.alias(RAW),
        pl.lit(None, pl.String).alias(REJECT_REASON),
        *hashes,
        *columns,
        *batch,
    )
