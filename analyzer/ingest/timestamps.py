"""Timestamps of every source as Polars expressions, normalized to Datetime("us", "UTC").

Accepted text (unit "iso", the default):
  - ISO 8601 with any offset (`Z`, `+08:00`, `+0800`, `+08`), with or without fractions, `T` or space between
    date and time; offsets may differ from row to row. Without an offset the time is taken as UTC.
  - nginx `$time_local`: `22/Apr/2026:09:00:01 +0800`.
  - A bare number (`1776848401`, `1776848401123.5`): an epoch whose unit is guessed from its magnitude
    (seconds below 1e11, milliseconds below 1e14, microseconds below 1e17, else nanoseconds).
  - Less common forms, read only on the rows the ones above leave null: a comma before the fraction
    (`2026-04-22 09:00:00,123`, Python logging's default), `2026/04/22 09:00:00`, `... UTC`, an HTTP
    date (`Wed, 22 Apr 2026 09:00:00 GMT`), ISO without seconds (`2026-04-22T09:00Z`).
Units epoch_s, epoch_ms, epoch_us, epoch_ns read numbers (integer or fractional text) in that unit.
A unit holding `%` is a strftime format for text no reading above takes (`%d.%m.%Y %H:%M:%S`; UTC
unless it has `%z`).
A value that matches none of these is null; the caller turns a present-but-null value into
`bad_value:ts`.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from analyzer.schema import TS_DTYPE

_SCALE_TO_US: Final[dict[str, float]] = {
    "epoch_s": 1e6,
    "epoch_ms": 1e3,
    "epoch_us": 1.0,
    "epoch_ns": 1e-3,
}
# Tried in order; each attempt is strict=False so a non-matching row is null and the next one tries.
_TEXT_FORMATS: Final = (
    "%+",  # RFC 3339 / ISO 8601 with an offset, 'T' or space, optional fraction
    "%Y-%m-%dT%H:%M:%S%.f",  # no offset: UTC
    "%Y-%m-%d %H:%M:%S%.f",
    "%d/%b/%Y:%H:%M:%S %z",  # nginx $time_local
)
# Read after the forms above fail, on those rows only; all UTC (none of them carries an offset).
_RARER_FORMATS: Final = (
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f UTC",
    "%a, %d %b %Y %H:%M:%S GMT",  # HTTP date (RFC 1123)
    "%Y-%m-%dT%H:%MZ",
    "%Y-%m-%dT%H:%M",
)
_NUMBER: Final = r"^[+-]?\d+(\.\d*)?$"


def parse_ts(text: pl.Expr, unit: str = "iso") -> pl.Expr:
    """Parse a String expression of timestamps in `unit` to Datetime('us', 'UTC'); unparsable -> null."""
    if unit == "iso":
        # The common form first, on the text as it is; every other reading only sees the rows that one
        # left null (on a column of nulls each costs next to nothing), so a clean log pays for one parse.
        common = _to_datetime(text, _TEXT_FORMATS[0])
        rest = pl.when(common.is_null()).then(text.str.strip_chars())
        return pl.coalesce(common, _fallback(rest))
    if is_format(unit):
        return _to_datetime(text.str.strip_chars(), unit)
    if unit not in _SCALE_TO_US:
        raise ValueError(f"unknown timestamp unit {unit!r}")
    return _epoch_text(text.str.strip_chars(), unit)


def is_format(unit: str) -> bool:
    """A `ts` unit that is a strftime format of its own."""
    return "%" in unit


def with_parsed_ts(frame: pl.LazyFrame, text: str, out: str, unit: str = "iso") -> pl.LazyFrame:
    """`frame` plus column `out`: the String column `text` parsed as `parse_ts` does, in steps.

    The same values as `parse_ts`, cheaper on a whole file: within one expression the common parse
    and the leftover text are recomputed by every reading that uses them (eight times, about a third
    of a JSON log's load); as columns of their own each is computed once.
    """
    if unit != "iso":
        return frame.with_columns(parse_ts(pl.col(text), unit).alias(out))
    common, rest = f"{out}#common", f"{out}#rest"
    return (
        frame.with_columns(_to_datetime(pl.col(text), _TEXT_FORMATS[0]).alias(common))
        .with_columns(pl.when(pl.col(common).is_null()).then(pl.col(text).str.strip_chars()).alias(rest))
        .with_columns(pl.coalesce(pl.col(common), _fallback(pl.col(rest))).alias(out))
        .drop(common, rest)
    )


def _fallback(rest: pl.Expr) -> pl.Expr:
    # The readings after the common one, on the (stripped) text it left null.
    is_number = rest.str.contains(_NUMBER)
    number = epoch_to_ts(rest.cast(pl.Float64, strict=False), _guess_unit(rest))
    return pl.when(is_number).then(number).otherwise(_parse_text(rest))


def column_to_ts(value: pl.Expr, dtype: pl.DataType, unit: str = "iso") -> pl.Expr:
    """Convert a typed column (e.g. from Parquet) to Datetime('us', 'UTC')."""
    if dtype == TS_DTYPE:
        return value  # canonical already: a plain column, so filters on it reach the Parquet scan
    if isinstance(dtype, pl.Datetime):
        utc = (
            value.dt.replace_time_zone("UTC")
            if dtype.time_zone is None
            else value.dt.convert_time_zone("UTC")
        )
        return utc.cast(TS_DTYPE)
    if isinstance(dtype, pl.Date):
        return value.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric() and not is_format(unit):
        number = value.cast(pl.Float64)
        if unit == "iso":
            return epoch_to_ts(number, _guess_unit_number(number))
        return _epoch_number(value, dtype, unit)
    return parse_ts(value.cast(pl.String), unit)


def epoch_to_ts(number: pl.Expr, scale_to_us: pl.Expr | float) -> pl.Expr:
    """Float epoch times `scale_to_us` microseconds per unit -> Datetime('us', 'UTC')."""
    us = (number * scale_to_us).round(0).cast(pl.Int64, strict=False)
    return pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")


def _to_datetime(s: pl.Expr, fmt: str) -> pl.Expr:
    return s.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)


def _parse_text(s: pl.Expr) -> pl.Expr:
    attempts = [_to_datetime(s, f) for f in _TEXT_FORMATS]
    # ISO 8601 also allows an hours-only offset ("+08"), which chrono's %z does not read.
    attempts.append(_to_datetime(s.str.replace(r"([+-]\d\d)$", "${1}:00"), "%+"))
    # ... and a comma before the fraction (Python logging writes "09:00:00,123").
    dotted = s.str.replace(r"(\d\d:\d\d:\d\d),(\d)", "${1}.${2}")
    attempts += [_to_datetime(dotted, f) for f in _TEXT_FORMATS[:3]]
    attempts += [_to_datetime(s, f) for f in _RARER_FORMATS]
    return pl.coalesce(attempts)


def _epoch_text(s: pl.Expr, unit: str) -> pl.Expr:
    # Integers go through Int64 so epoch_ns and epoch_us keep every digit a Float64 would round.
    as_int = s.cast(pl.Int64, strict=False)
    exact = _int_epoch_us(as_int, unit)
    approx = epoch_to_ts(
        pl.when(s.str.contains(_NUMBER)).then(s.cast(pl.Float64, strict=False)), _SCALE_TO_US[unit]
    )
    return pl.coalesce(exact, approx)


def _epoch_number(value: pl.Expr, dtype: pl.DataType, unit: str) -> pl.Expr:
    if dtype.is_integer():
        return _int_epoch_us(value.cast(pl.Int64), unit)
    return epoch_to_ts(value.cast(pl.Float64), _SCALE_TO_US[unit])


def _int_epoch_us(as_int: pl.Expr, unit: str) -> pl.Expr:
    us = {
        "epoch_s": as_int * 1_000_000,
        "epoch_ms": as_int * 1_000,
        "epoch_us": as_int,
        "epoch_ns": as_int.floordiv(1_000),
    }[unit]
    return pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")


def _guess_unit(s: pl.Expr) -> pl.Expr:
    return _guess_unit_number(s.cast(pl.Float64, strict=False))


def _guess_unit_number(number: pl.Expr) -> pl.Expr:
    magnitude = number.abs()
    return (
        pl.when(magnitude < 1e11)
        .then(pl.lit(1e6))
        .when(magnitude < 1e14)
        .then(pl.lit(1e3))
        .when(magnitude < 1e17)
        .then(pl.lit(1.0))
        .otherwise(pl.lit(1e-3))
    )
