"""From source fields to canonical columns: which field feeds each column, strict casts, reject reasons.

Which field feeds a canonical column, in order: the mapping of `[<kind>.fields]`; the format's own
default (nginx, ALB); the first name of ALIASES the source has. None of them: the column is null.

Values: an absent value (null, missing key, empty cell, "" or "-") is null. A present value that does
not parse as the column's dtype rejects the row as `bad_value:<col>`; an absent row-required value
(schema.ROW_REQUIRED) rejects it as `missing_field:<col>`. The first reason in canonical column order
wins, after any reason the reader gave (`malformed_json`, `too_many_fields`, `invalid_utf8`, ...).

Derived values: a ledger without an entry id gets "<file>:<line>"; ledger kinds are lower-cased (and
renamed by `[ledger.kinds]`); an event without a kind is a "note". Each InputReport.fields says which
source field fed each column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl

from analyzer import objstore
from analyzer.errors import MappingError
from analyzer.ingest import presets, usage
from analyzer.ingest.sources import RAW, RAW_LIMIT, SRC
from analyzer.ingest.timestamps import column_to_ts, with_parsed_ts
from analyzer.schema import (
    ACCOUNT_ID,
    BALANCE_AFTER,
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    ENDPOINT,
    ENTRY_ID,
    IMAGE_TOKENS,
    KIND,
    LATENCY_MS,
    MAX_TOKENS,
    MODEL,
    MODEL_REQUESTED,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    REGION,
    REJECT_REASON,
    REQUEST_ID,
    REQUESTS,
    RESPONSE_FLAGS,
    ROW_REQUIRED,
    SCHEMAS,
    SOURCE_FILE,
    SOURCE_LINE,
    STATUS,
    STREAM,
    TITLE,
    TOKENS,
    TS,
    TTFT_MS,
    UPSTREAM,
    UPSTREAM_ATTEMPTS,
    UPSTREAM_STATUS,
)

INVALID_UTF8: Final = "invalid_utf8"
# No log line of an LLM service is older than this: an earlier time (a clock reset to 1970) is no time.
TS_FLOOR: Final = datetime(2000, 1, 1, tzinfo=UTC)
_TS_NAMES: Final = ("timestamp", "time", "@timestamp", "start_time", "ts")
_ACCOUNT_NAMES: Final = (
    "account_id",
    "user",
    "user_id",
    "customer",
    "customer_id",
    "api_key_id",
    "metadata.user_api_key_user_id",
)
_REQUEST_NAMES: Final = ("request_id", "x-request-id", "req_id")

# Source names recognized without a mapping, per kind and canonical column, first match wins.
ALIASES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "gateway": {
        TS: _TS_NAMES,
        REQUEST_ID: (*_REQUEST_NAMES, "id"),
        ACCOUNT_ID: _ACCOUNT_NAMES,
        MODEL: ("model", "gen_ai.request.model", "gen_ai.response.model", "model_name"),
        ENDPOINT: ("endpoint", "path", "route", "url.path"),
        REGION: ("region", "cloud.region", "aws_region"),
        UPSTREAM: ("upstream", "upstream_addr", "backend", "target", "api_base"),
        STATUS: ("status", "status_code", "http.status_code", "response.status"),
        LATENCY_MS: ("latency_ms", "duration_ms", "duration", "request_time", "response_time_ms"),
        PROMPT_TOKENS: (
            "prompt_tokens",
            "usage.prompt_tokens",
            "input_tokens",
            "usage.input_tokens",
            "gen_ai.usage.input_tokens",
        ),
        COMPLETION_TOKENS: (
            "completion_tokens",
            "usage.completion_tokens",
            "output_tokens",
            "usage.output_tokens",
            "gen_ai.usage.output_tokens",
        ),
        UPSTREAM_STATUS: ("upstream_status", "upstream_status_code"),
        TTFT_MS: ("ttft_ms", "time_to_first_token_ms"),
        STREAM: ("stream", "is_stream", "streaming"),
        RESPONSE_FLAGS: ("response_flags",),
        UPSTREAM_ATTEMPTS: ("upstream_attempts",),
        # Usage detail as OpenAI (chat, then Responses), Moonshot and Anthropic write it (ingest/usage.py).
        CACHED_TOKENS: (
            "cached_tokens",
            "usage.prompt_tokens_details.cached_tokens",
            "prompt_tokens_details.cached_tokens",
            "usage.input_tokens_details.cached_tokens",
            "input_tokens_details.cached_tokens",
            "usage.cached_tokens",
            "usage.cache_read_input_tokens",
            "cache_read_input_tokens",
        ),
        REASONING_TOKENS: (
            "reasoning_tokens",
            "usage.completion_tokens_details.reasoning_tokens",
            "completion_tokens_details.reasoning_tokens",
            "usage.output_tokens_details.reasoning_tokens",
            "output_tokens_details.reasoning_tokens",
        ),
        IMAGE_TOKENS: (
            "image_tokens",
            "usage.prompt_tokens_details.image_tokens",
            "prompt_tokens_details.image_tokens",
            "usage.input_tokens_details.image_tokens",
            "input_tokens_details.image_tokens",
        ),
        MAX_TOKENS: (
            "max_tokens",
            "max_completion_tokens",
            "max_output_tokens",
            "request.max_tokens",
            "request.max_completion_tokens",
            "gen_ai.request.max_tokens",
        ),
        MODEL_REQUESTED: ("model_requested", "requested_model", "model_group", "request.model"),
    },
    "ledger": {
        TS: _TS_NAMES,
        ENTRY_ID: ("entry_id", "id", "txn_id"),
        ACCOUNT_ID: _ACCOUNT_NAMES,
        REQUEST_ID: _REQUEST_NAMES,
        KIND: ("kind", "type", "entry_type"),
        TOKENS: ("tokens", "amount", "delta_tokens"),
        BALANCE_AFTER: ("balance_after", "balance"),
    },
    "usage": {
        TS: ("start_time", "start_time_iso", "date", *_TS_NAMES),
        MODEL: ("model",),
        ACCOUNT_ID: ("project_id", "api_key_id", "user_id"),
        REQUESTS: ("num_model_requests", "requests"),
        PROMPT_TOKENS: ("input_tokens", "prompt_tokens"),
        COMPLETION_TOKENS: ("output_tokens", "completion_tokens"),
        CACHED_TOKENS: ("input_cached_tokens", "cached_tokens"),
    },
    "events": {
        TS: _TS_NAMES,
        KIND: ("kind", "type"),
        TITLE: ("title", "message", "text"),
    },
}
# Units implied by an alias when `[<kind>.units]` says nothing (`duration` is taken as seconds).
ALIAS_UNITS: Final[dict[str, str]] = {"duration": "s", "request_time": "s"}
_DURATION_TO_MS: Final[dict[str, float]] = {"ms": 1.0, "s": 1000.0, "us": 0.001}
_ABSENT: Final = ("", "-")
_PRESENT: Final = "_present:"
_VALUE: Final = "_value:"
_PARSED_TS: Final = "_parsed:ts"
_PARSED_END: Final = "_parsed:end"  # a preset's second time, the end of a latency span
_MICRO: Final = 1_000_000  # micro-dollars per US dollar
_MONEY: Final = pl.Decimal(38, 12)  # dollars read exactly to 12 decimals, then rounded up to micro-dollars
_TRUE: Final = ("true", "t", "1", "yes", "y")
_FALSE: Final = ("false", "f", "0", "no", "n")


def resolve(
    kind: str,
    available: Sequence[str],
    explicit: Mapping[str, str],
    defaults: Mapping[str, str],
    *,
    path: str,
    complete: bool,
) -> dict[str, str | None]:
    """Canonical column -> the source field feeding it (None: absent).

    `complete` says `available` lists every field of the source (a header, a schema); otherwise (a JSON
    sample) a mapped field not seen is kept and checked after reading.
    """
    have = set(available)
    out: dict[str, str | None] = {}
    for canonical in SCHEMAS[kind]:
        if canonical in explicit:
            name = explicit[canonical]
            if complete and name not in have:
                raise MappingError(
                    f"[{kind}.fields] {canonical} = '{name}' but the data has no such field",
                    path=path,
                    field=name,
                )
            out[canonical] = name
            continue
        candidates: tuple[str, ...] = (defaults[canonical],) if canonical in defaults else ()
        candidates += ALIASES[kind].get(canonical, ())
        out[canonical] = next((c for c in candidates if c in have), None)
    if kind == "gateway":
        out.update(usage.addends(out, available, explicit))
    return out


def units_for(
    fields: Mapping[str, str | None], units: Mapping[str, str], defaults: Mapping[str, str]
) -> dict[str, str]:
    """The unit of each timed or measured column: configured, else the format's, else the alias's."""
    out: dict[str, str] = {}
    for canonical, fallback in ((TS, "iso"), (LATENCY_MS, "ms"), (TTFT_MS, "ms")):
        source = fields.get(canonical)
        implied = ALIAS_UNITS.get(source, fallback) if source is not None else fallback
        out[canonical] = units.get(canonical, defaults.get(canonical, implied))
    if TOKENS in units or TOKENS in defaults:  # a ledger's amounts: tokens, or US dollars
        out[TOKENS] = units.get(TOKENS, defaults.get(TOKENS, "tokens"))
    return out


def canonicalize(
    frame: pl.LazyFrame,
    kind: str,
    fields: Mapping[str, str | None],
    dtypes: Mapping[str, pl.DataType],
    units: Mapping[str, str],
    *,
    file: str | None,
    clock_offset: timedelta = timedelta(0),
    text: bool = True,
    check_seen: Sequence[str] = (),
    keep: Sequence[str] = (),
    kinds: Mapping[str, str] | None = None,
    shape: presets.Shape = presets.NO_SHAPE,
    ts_ceiling: datetime | None = None,
) -> pl.LazyFrame:
    """Source columns (`src:<field>`) -> `_file`, `_line`, `_reject`, `_raw` and every canonical column.

    A time before TS_FLOOR or after `ts_ceiling` cannot be real: it is a `bad_value:ts`.

    `shape` is what a preset adds: constant columns, status words, a latency between two times.

    `file` is the input's name; None when `frame` is a batch of files whose rows have their `_file`.
    `kinds` maps a ledger's own entry kinds (lower-cased) to the canonical ones.

    `_raw` is kept (up to RAW_LIMIT characters) only on rejected rows. For each canonical column in
    `check_seen`, a `_seen:<col>` flag tells whether its source value was present on the row. The
    columns named in `keep` are passed through as they are.
    """
    schema = SCHEMAS[kind]
    required = ROW_REQUIRED[kind]
    # Stage 0 makes each source value (absent ones null) a column once: an expression read by several
    # others is recomputed by each of them. A text timestamp is parsed in steps of its own. Stage 1
    # computes each value and its presence once as columns; stage 2 reads them for the reasons.
    mapped = {c: s for c in schema if (s := fields.get(c)) is not None}
    summed = {c: usage.addends_of(fields, c) for c in mapped}
    constants = dict(shape.constants)
    frame = frame.with_columns(
        *(
            _absent_to_null(pl.col(SRC + s), dtypes.get(s, pl.String())).alias(_VALUE + c)
            for c, s in [*mapped.items(), *((k, s) for extra in summed.values() for k, s in extra.items())]
        ),
        *(pl.lit(v, pl.String).alias(_VALUE + c) for c, v in constants.items()),
    )
    if shape.statuses and STATUS in mapped and dtypes.get(mapped[STATUS], pl.String()) == pl.String():
        words = pl.col(_VALUE + STATUS).str.to_lowercase().replace(dict(shape.statuses))
        frame = frame.with_columns(words.alias(_VALUE + STATUS))
    text_ts = TS in mapped and dtypes.get(mapped[TS], pl.String()) == pl.String()
    if text_ts:
        frame = with_parsed_ts(frame, _VALUE + TS, _PARSED_TS, units.get(TS, "iso"))
    span = shape.latency_from is not None and text_ts and LATENCY_MS in mapped
    if span:
        frame = with_parsed_ts(frame, _VALUE + LATENCY_MS, _PARSED_END, "iso")
    staged: list[pl.Expr] = []
    reasons: list[pl.Expr] = [pl.col(REJECT_REASON)]
    if text:
        reasons.append(pl.when(pl.col(RAW).str.contains("\ufffd", literal=True)).then(pl.lit(INVALID_UTF8)))
    for canonical, dtype in schema.items():
        source = fields.get(canonical)
        if source is None and canonical in constants:
            source = f"={constants[canonical]}"  # a preset's value of every row, read as text
        if source is None:
            staged.append(pl.lit(None, dtype).alias(canonical))
            staged.append(pl.lit(False).alias(_PRESENT + canonical))
            continue
        src_dtype = dtypes.get(source, pl.String())
        raw_value = pl.col(_VALUE + canonical)
        if canonical == TS and text_ts:
            value = pl.col(_PARSED_TS)
        elif canonical == LATENCY_MS and span:
            # A preset's latency: the time from the row's ts (as read, before any clock offset) to this one.
            value = (pl.col(_PARSED_END) - pl.col(_PARSED_TS)).dt.total_microseconds() / 1000.0
        else:
            value = _convert(raw_value, src_dtype, dtype, canonical, units)
        if canonical == TS and clock_offset:
            value = value + pl.lit(clock_offset)
        if canonical == TS and ts_ceiling is not None:
            value = pl.when(value.is_between(pl.lit(TS_FLOOR), pl.lit(ts_ceiling))).then(value)
        present_expr = raw_value.is_not_null()
        if summed.get(canonical):
            # A sum (Anthropic's prompt): absent addends count 0; one that does not parse nulls the sum.
            raw_parts = [pl.col(_VALUE + k) for k in summed[canonical]]
            parts = [
                (raw, _convert(raw, dtypes.get(s, pl.String()), dtype, canonical, units))
                for raw, s in zip(raw_parts, summed[canonical].values(), strict=True)
            ]
            unparsed = pl.any_horizontal(
                (raw_value.is_not_null() & value.is_null()),
                *[raw.is_not_null() & part.is_null() for raw, part in parts],
            )
            present_expr = pl.any_horizontal(present_expr, *[raw.is_not_null() for raw in raw_parts])
            total = pl.sum_horizontal(value.fill_null(0), *[part.fill_null(0) for _, part in parts])
            value = pl.when(present_expr & ~unparsed).then(total)
        staged.append(value.cast(dtype).alias(canonical))
        staged.append(present_expr.alias(_PRESENT + canonical))
    contradicts = usage.contradictions({c: pl.col(_PRESENT + c) for c in schema}) if kind == "gateway" else {}
    for canonical in schema:
        present = pl.col(_PRESENT + canonical)
        if canonical in required:
            reasons.append(pl.when(~present).then(pl.lit(f"missing_field:{canonical}")))
        bad = present & pl.col(canonical).is_null()
        if canonical in contradicts:
            bad = bad | contradicts[canonical].fill_null(False)
        reasons.append(pl.when(bad).then(pl.lit(f"bad_value:{canonical}")))
    return (
        frame.with_columns(staged)
        .with_columns(pl.coalesce(reasons).alias(REJECT_REASON))
        .select(
            _file(file).alias(SOURCE_FILE),
            pl.col(SOURCE_LINE),
            pl.col(REJECT_REASON),
            pl.when(pl.col(REJECT_REASON).is_not_null()).then(pl.col(RAW).str.slice(0, RAW_LIMIT)).alias(RAW),
            *[_derived(kind, c, fields, file, kinds).cast(dtype).alias(c) for c, dtype in schema.items()],
            *[pl.col(_PRESENT + c).alias(f"_seen:{c}") for c in check_seen],
            *keep,
        )
    )


def _file(file: str | None) -> pl.Expr:
    # A batch's paths as scanned; a local copy of an object is named by its URL.
    return objstore.labelled(pl.col(SOURCE_FILE)) if file is None else pl.lit(file)


def _derived(
    kind: str,
    canonical: str,
    fields: Mapping[str, str | None],
    file: str | None,
    kinds: Mapping[str, str] | None,
) -> pl.Expr:
    # Never rejects: a derived value fills a column the source does not have at all.
    if kind == "ledger" and canonical == ENTRY_ID and fields.get(ENTRY_ID) is None:
        return pl.format("{}:{}", _file(file), pl.col(SOURCE_LINE))
    if kind == "ledger" and canonical == KIND:
        spelled = pl.col(KIND).str.strip_chars().str.to_lowercase()
        return spelled.replace(dict(kinds)) if kinds else spelled
    if kind == "events" and canonical == KIND:
        return pl.col(KIND).fill_null("note")
    return pl.col(canonical)


def _absent_to_null(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String():
        return pl.when(col.is_in(_ABSENT)).then(None).otherwise(col)
    return col


def _convert(
    value: pl.Expr, src: pl.DataType, dtype: pl.DataType, canonical: str, units: Mapping[str, str]
) -> pl.Expr:
    if canonical == TS:
        return column_to_ts(value, src, units.get(TS, "iso"))
    text = src == pl.String()
    if canonical == TOKENS and units.get(TOKENS) == presets.USD:
        # Dollars with decimals (or in exponent form, as a float-typed exporter writes 1.2345e-05) to
        # whole micro-dollars, exactly: a fraction of a micro-dollar is rounded up, as charges are.
        dollars = (value if text else value.cast(pl.String)).cast(_MONEY, strict=False)
        return (dollars * _MICRO).ceil().cast(pl.Int64, strict=False)
    if dtype == pl.Int64():
        if not text:
            return (
                _integral(value.cast(pl.Float64, strict=False))
                if src.is_float()
                else value.cast(pl.Int64, strict=False)
            )
        # "12" and "12.0" are 12; "12.5" and "OK?" do not parse. The float try only runs where needed.
        as_int = value.cast(pl.Int64, strict=False)
        return (
            pl.when(as_int.is_null()).then(_integral(value.cast(pl.Float64, strict=False))).otherwise(as_int)
        )
    if dtype == pl.Float64():
        number = value.cast(pl.Float64, strict=False)
        scale = _DURATION_TO_MS[units.get(canonical, "ms")] if canonical in (LATENCY_MS, TTFT_MS) else 1.0
        # NaN and infinities (pandas writes NaN for a missing value; "inf" parses) measure nothing.
        return pl.when(number.is_finite()).then(number * scale)
    if dtype == pl.Boolean():
        if src == pl.Boolean():
            return value
        spelled = value if text else value.cast(pl.String)
        # "true"/"false" as they are; only other spellings are stripped and lower-cased (a new string
        # a row: done on the whole column it cost ~5% of a JSON log's load).
        plain = spelled.is_in(["true", "false"])
        word = pl.when(~plain).then(spelled).str.strip_chars().str.to_lowercase()
        return (
            pl.when(spelled == "true")
            .then(True)
            .when(spelled == "false")
            .then(False)
            .when(word.is_in(_TRUE))
            .then(True)
            .when(word.is_in(_FALSE))
            .then(False)
        )
    return value.cast(pl.String)


def _integral(number: pl.Expr) -> pl.Expr:
    # An integrality test, not a token comparison: 12.0 (JSON written by a float-typed client, Parquet
    # written by pandas with nulls) is 12 exactly; 12.5 is not a token count.
    return pl.when(number.floor() == number).then(number).cast(pl.Int64, strict=False)
