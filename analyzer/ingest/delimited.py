"""CSV and TSV with a header line; every column read as text, cast strictly later by the mapping.

Line numbers are record numbers + 1 (the header): a quoted field spanning lines shifts them.
A record with more fields than the header is `too_many_fields`. A record with fewer fields cannot be
told from one whose last cells are empty (the reader pads both), so its missing cells are absent
values: required ones make it `missing_field:<col>`. A record whose every cell is empty is a blank line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import polars as pl

from analyzer.errors import InputError
from analyzer.ingest.sources import RAW, SRC, numbered
from analyzer.schema import REJECT_REASON, SOURCE_FILE, SOURCE_LINE

TOO_MANY: Final = "too_many_fields"
SAMPLE_RECORD_LINES: Final = 400  # sampled lines parsed as records when lines alone do not fit
_EXTRA: Final = "_extra"


def header(sample: Sequence[str], separator: str) -> list[str]:
    """Column names from the first sampled line (empty or repeated names made unique)."""
    if not sample:
        return []
    names = _cells(sample[0], separator)
    out: list[str] = []
    for i, name in enumerate(n.strip() for n in names):
        base = name or f"column_{i + 1}"
        unique = base
        while unique in out:
            unique = f"{unique}_{i + 1}"
        out.append(unique)
    return out


def _cells(line: str, separator: str) -> list[str]:
    """One line split as a CSV record. A cell may be as long as its line (a logged prompt): Python's
    csv module refuses cells over 128 KiB unless told, so its limit is raised for the call."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(line) + 1))
    try:
        return next(csv.reader([line], delimiter=separator))
    finally:
        csv.field_size_limit(limit)


def looks_like(sample: Sequence[str], separator: str) -> bool:
    """A header of two or more fields and following lines of about as many fields."""
    if len(sample) < 1 or sample[0].lstrip().startswith(("{", "[")):
        return False
    width = len(header(sample, separator))
    if width < 2:
        return False
    # Line by line, so one unbalanced quote does not swallow the rest of the sample.
    rows = [_cells(line, separator) for line in sample[1:50]]
    fitting = sum(1 for row in rows if len(row) == width)
    return not rows or fitting * 2 > len(rows) or _records_fit(sample, separator, width)


def _records_fit(sample: Sequence[str], separator: str, width: int) -> bool:
    """Record by record (RFC 4180: a quoted cell may hold line breaks, as exported chat messages do),
    most records of the sample have the header's width. The last one may be cut by the sample's end."""
    text = "\n".join(sample[:SAMPLE_RECORD_LINES])
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=separator))[1:-1]
    except csv.Error:
        return False
    finally:
        csv.field_size_limit(limit)
    multiline = len(records) < len(sample[1:SAMPLE_RECORD_LINES]) - 1
    fitting = sum(1 for row in records if len(row) == width)
    return multiline and bool(records) and fitting * 2 > len(records)


def looks_like_csv(sample: Sequence[str]) -> bool:
    """Comma-separated with a header."""
    return looks_like(sample, ",")


def looks_like_tsv(sample: Sequence[str]) -> bool:
    """Tab-separated with a header."""
    return looks_like(sample, "\t")


def padded(sample: Sequence[str], separator: str) -> bool:
    """Cells padded with spaces (`2026-04-22T09:00:01Z, 200, r1`: a separator and a space), in the sample."""
    return any(cell != cell.strip(" ") for line in sample[:50] for cell in _cells(line, separator))


def scan_delimited(
    paths: Path | Sequence[Path],
    names: Sequence[str],
    separator: str,
    *,
    quoted: bool = True,
    strip: bool = False,
) -> pl.LazyFrame:
    """`_line`, `_raw`, `_reject` and one String column per header name (`src:<name>`); blank records dropped.

    `quoted=False` reads a file whose quotes are unbalanced (the reader cannot resync after one): every
    line is a record, a cell wrapped in quotes is unwrapped, a quoted separator makes `too_many_fields`.
    `strip`: spaces around each cell are dropped (see `padded`); else " 200" is no status and " r1" no
    match for "r1". The raw text keeps them.
    """
    if not names:
        raise InputError("no header line", path=str(paths if isinstance(paths, Path) else paths[0]))
    names = [SRC + name for name in names]
    schema = {name: pl.String() for name in names} | {_EXTRA: pl.String()}
    lf = pl.scan_csv(
        paths if isinstance(paths, Path) else list(paths),
        has_header=False,
        skip_rows=1,  # the header: names come from `names`, matched by position
        separator=separator,
        quote_char='"' if quoted else None,
        schema=schema,
        encoding="utf8-lossy",
        empty_string_is_null=False,
        truncate_ragged_lines=True,
        missing_columns="insert",
        extra_columns="ignore",
        row_index_name=SOURCE_LINE,
        row_index_offset=2,
        glob=False,
        include_file_paths=None if isinstance(paths, Path) else SOURCE_FILE,
    )
    lf = numbered(lf, paths, first=2)
    cells = [pl.col(n).fill_null("") for n in names]
    extra = pl.col(_EXTRA).fill_null("")
    return (
        lf.with_columns(
            pl.concat_str([*cells, extra], separator=separator).str.strip_chars_end(separator).alias(RAW),
            pl.when(extra != "")
            .then(pl.lit(TOO_MANY))
            .otherwise(pl.lit(None, pl.String))
            .alias(REJECT_REASON),
            *[_empty_to_null(_cell(pl.col(n), quoted=quoted, strip=strip)).alias(n) for n in names],
        )
        .filter(pl.any_horizontal([c != "" for c in [*cells, extra]]))
        .drop(_EXTRA)
    )


def _cell(cell: pl.Expr, *, quoted: bool, strip: bool) -> pl.Expr:
    if strip:
        cell = cell.str.strip_chars(" ")
    return cell if quoted else _unquote(cell)


def _empty_to_null(cell: pl.Expr) -> pl.Expr:
    # Not `replace("", None)`: that held the whole column in memory (1.9 GB peak on an 812 MB ledger).
    return pl.when(cell != "").then(cell)


def _unquote(cell: pl.Expr) -> pl.Expr:
    wrapped = cell.str.starts_with('"') & cell.str.ends_with('"') & (cell.str.len_chars() >= 2)
    inner = cell.str.slice(1, cell.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    return pl.when(wrapped).then(inner).otherwise(cell)
