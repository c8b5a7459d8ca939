"""AWS Application Load Balancer access logs: one regex over every line at once.

Fields, in the order of the AWS "Access log entries" page (names with ':' and '-' turned into '_'):
    type time elb client_port target_port request_processing_time target_processing_time
    response_processing_time elb_status_code target_status_code received_bytes sent_bytes "request"
    "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" | "domain_name" "chosen_cert_arn"
    matched_rule_priority request_creation_time "actions_executed" "redirect_url" "error_reason"
    "target_port_list" "target_status_code_list" "classification" "classification_reason" conn_trace_id
Fields after `trace_id` were added over the years: an older line may stop after any of them (the rest
are null), and trailing fields newer than `conn_trace_id` are accepted and ignored. The three
processing times must be numbers (ALB writes -1 when the target did not answer); anything else is
`unparsable_line`. Values stay text, `-` and "" become null, as in the nginx parser.

Derived columns:
    latency_s       request + target + response processing time, exact decimal text ("0.123"); null
                    when any of them is -1 (a 502 or 504: the latency is unknown, not negative)
    request_method, request_url, request_protocol   split from "request"
                    ("GET https://api.example.com:443/v1/chat/completions?x HTTP/1.1")
    request_path    the path of request_url, without scheme, host, query or fragment: the endpoint

Default mapping: ts <- time (ISO), status <- elb_status_code, upstream_status <- target_status_code,
latency_ms <- latency_s (unit s), upstream <- target_port (the target's ip:port), endpoint <-
request_path, request_id <- trace_id (the X-Amzn-Trace-Id). ALB knows no model, account or region.
"""

from __future__ import annotations

import re
from typing import Final

import polars as pl

from analyzer.ingest.nginx import (
    QUOTED,
    RAW,
    REJECT,
    UNQUOTED,
    clean_value,
    reject_reason,
    split_request,
    url_path,
)

# (name, quoted) in log order; the first _REQUIRED of them are in every ALB log ever written.
_FIELDS: Final[tuple[tuple[str, bool], ...]] = (
    ("type", False),
    ("time", False),
    ("elb", False),
    ("client_port", False),
    ("target_port", False),
    ("request_processing_time", False),
    ("target_processing_time", False),
    ("response_processing_time", False),
    ("elb_status_code", False),
    ("target_status_code", False),
    ("received_bytes", False),
    ("sent_bytes", False),
    ("request", True),
    ("user_agent", True),
    ("ssl_cipher", False),
    ("ssl_protocol", False),
    ("target_group_arn", False),
    ("trace_id", True),
    ("domain_name", True),
    ("chosen_cert_arn", True),
    ("matched_rule_priority", False),
    ("request_creation_time", False),
    ("actions_executed", True),
    ("redirect_url", True),
    ("error_reason", True),
    ("target_port_list", True),
    ("target_status_code_list", True),
    ("classification", True),
    ("classification_reason", True),
    ("conn_trace_id", False),
)
_REQUIRED: Final = 18  # through trace_id
_TIMES: Final = ("request_processing_time", "target_processing_time", "response_processing_time")
_NUMBER: Final = r"-?[0-9]+(?:\.[0-9]*)?"
_OK: Final = "_ok"
_DERIVED: Final = ("latency_s", "request_method", "request_url", "request_protocol", "request_path")

ALB_FIELD_NAMES: Final = tuple(name for name, _ in _FIELDS)
ALB_FIELDS: Final[dict[str, str]] = {
    "ts": "time",
    "status": "elb_status_code",
    "upstream_status": "target_status_code",
    "latency_ms": "latency_s",
    "upstream": "target_port",
    "endpoint": "request_path",
    "request_id": "trace_id",
}
ALB_UNITS: Final[dict[str, str]] = {"latency_ms": "s"}


def _field(name: str, quoted: bool) -> str:
    value = _NUMBER if name in _TIMES else QUOTED if quoted else UNQUOTED.replace("*", "+")
    return f'"(?P<{name}>{value})"' if quoted else f"(?P<{name}>{value})"


def _alb_regex() -> str:
    parts = [_field(n, q) for n, q in _FIELDS]
    optional = ""
    # Each later field is optional, but only after the one before it: `(?: a(?: b(?: c)?)?)?`.
    for part in reversed(parts[_REQUIRED:]):
        optional = f"(?: {part}{optional})?"
    return rf"^(?P<{_OK}>){' '.join(parts[:_REQUIRED])}{optional}(?:\s.*)?$"


ALB_REGEX: Final = _alb_regex()
_ALB_RE: Final = re.compile(ALB_REGEX)
_DECIMAL: Final = pl.Decimal(38, 6)


def latency_sum(times: list[pl.Expr]) -> pl.Expr:
    """Exact decimal sum of the three times as text, trailing zeros cut; null when one is -1."""
    total = pl.sum_horizontal(t.cast(_DECIMAL, strict=False) for t in times).cast(pl.String)
    trimmed = total.str.replace(r"(\.[0-9]*?)0+$", "${1}").str.strip_suffix(".")
    unknown = pl.any_horizontal(t.str.starts_with("-") for t in times) | pl.any_horizontal(
        t.is_null() for t in times
    )
    return pl.when(unknown).then(pl.lit(None, dtype=pl.String)).otherwise(trimmed)


def parse_alb(lines: pl.LazyFrame) -> pl.LazyFrame:
    """Split each `_raw` ALB line into its fields (strings) plus derived columns and `_reject`."""
    m = pl.col("_m")
    request = split_request(pl.col("request"))
    order = [c for c in lines.collect_schema().names() if c != REJECT]
    return (
        lines.with_columns(pl.col(RAW).str.extract_groups(ALB_REGEX).alias("_m"))
        .with_columns(
            *(clean_value(m.struct.field(name)).alias(name) for name in ALB_FIELD_NAMES),
            reject_reason(pl.col(RAW), m.struct.field(_OK)).alias(REJECT),
        )
        .with_columns(
            latency_sum([pl.col(t) for t in _TIMES]).alias("latency_s"),
            request.struct.field("method").alias("request_method"),
            request.struct.field("target").alias("request_url"),
            request.struct.field("protocol").alias("request_protocol"),
        )
        .with_columns(url_path(pl.col("request_url")).alias("request_path"))
        .select(*order, *ALB_FIELD_NAMES, *_DERIVED, REJECT)
    )


def looks_like_alb(sample: list[str]) -> bool:
    """True when most non-blank sample lines are ALB access-log entries."""
    lines = [s.rstrip("\r\n") for s in sample if s.strip()]
    hits = sum(1 for s in lines if _ALB_RE.match(s))
    return bool(lines) and hits * 2 > len(lines)
