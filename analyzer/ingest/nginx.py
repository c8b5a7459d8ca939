"""nginx access logs: an nginx `log_format` compiled to one regex, applied to every line at once.

Input is a LazyFrame of `_line` and `_raw` (one raw line each); the output keeps every row and every
input column and adds one String column per nginx variable (its name without `$`), the derived columns
below, and `_reject`: null when the line parsed, `blank` for a null or all-whitespace line,
`unparsable_line` when the line does not fit the format. Values stay text; casting is done downstream.

Default format: `combined` with `$request_time $upstream_response_time` appended, the usual LLM-gateway
setup. Plain `combined` lines are accepted too (request_time and upstream_response_time are then null),
and so are lines with further trailing fields (e.g. `"$http_x_forwarded_for"` of nginx's `main`): the
trailing text is ignored. Because of that, request_time and upstream_response_time must look like
numbers (or `-`) in the default format. A `log_format` that is given is matched exactly (trailing
whitespace aside): a line with more or fewer fields is `unparsable_line`.

Values: `-` and empty values become null (nginx writes `-` for an empty variable). Escapes nginx writes
for `"` and `\\` are undone: `\\x22` and `\\x5C` (escape=default) and `\\"` and `\\\\` (escape=json);
other `\\xHH` escapes (control bytes, non-ASCII bytes) are kept as written.

Derived columns (added only when the format does not log a variable of that name itself):
    request_method, request_uri, server_protocol   split from `$request` ("GET /v1/x?y HTTP/1.1");
                                                    null when the request line is junk (a 400 line)
    request_path       request_uri without query string or fragment: the endpoint
    <var>_last         for each `$upstream_*` variable: the last entry of its list. nginx writes
                       "502, 200" (and "x : y" across internal redirects) when it tried several
                       upstreams; the last entry is the one whose answer the client got.

Default mapping to canonical gateway columns (`nginx_fields` keeps the ones a format yields, taking the
first source present when several are listed):
    ts <- time_local | time_iso8601       status <- status           latency_ms <- request_time (s)
    upstream_status <- upstream_status_last                          upstream <- upstream_addr_last
    request_id <- http_x_request_id | request_id                     endpoint <- request_path | uri
    model <- http_x_model                 account_id <- http_x_account | remote_user
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import polars as pl

from analyzer.ingest.sources import DAMAGED

RAW: Final = "_raw"
REJECT: Final = "_reject"
BLANK: Final = "blank"
UNPARSABLE: Final = "unparsable_line"

DEFAULT_LOG_FORMAT: Final = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_time $upstream_response_time'
)

# Canonical column -> nginx source fields, best first; `nginx_fields` resolves them against a format.
_FIELD_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "ts": ("time_local", "time_iso8601"),
    "status": ("status",),
    "latency_ms": ("request_time",),
    "upstream_status": ("upstream_status_last",),
    "upstream": ("upstream_addr_last",),
    "request_id": ("http_x_request_id", "request_id", "req_id"),
    "endpoint": ("request_path", "uri"),
    "model": ("http_x_model",),
    "account_id": ("http_x_account", "remote_user"),
}
# ingress-nginx's default `log-format-upstream` ("upstreaminfo"): after a retry its upstream lists hold
# one entry per attempt ("502, 502, 200"); the last is the answer the client got.
INGRESS_LOG_FORMAT: Final = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id"
)
ATTEMPTS: Final = "upstream_attempts"
NGINX_UNITS: Final[dict[str, str]] = {"latency_ms": "s"}

# Regex pieces shared with the ALB parser. A quoted value runs to the first unescaped quote.
QUOTED: Final = r'(?:[^"\\]|\\.)*'
UNQUOTED: Final = r"\S*"
_IN_QUOTES: Final = r'(?:[^"\\\s]|\\.)*'  # a variable inside quotes that a space, not a quote, ends
_BRACKETED: Final = r"[^\]]*"
_LIST_ITEM: Final = r"[^\s,]+"
_LIST: Final = rf"{_LIST_ITEM}(?:(?:, | : ){_LIST_ITEM})*"
_NUMBER: Final = r"(?:[0-9]+(?:\.[0-9]*)?|-)"
_NUMBER_LIST: Final = rf"{_NUMBER}(?:(?:, | : ){_NUMBER})*"
_OK: Final = "_ok"  # an empty group that is "" when the line matched and null when it did not

_VARIABLE: Final = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_REGEX_META: Final = frozenset("\\.+*?()|[]{}^$#&-~")
_ESCAPES: Final = (["\\x22", "\\x5C", '\\"', "\\\\"], ['"', "\\", '"', "\\"])
_REQUEST: Final = r"^(?P<method>[A-Za-z]+) (?P<target>.+?)(?: (?P<protocol>HTTP/[0-9.]+))?$"


@dataclass(frozen=True)
class NginxPattern:
    """A log_format compiled to one regex (Rust- and Python-compatible) and the fields it captures."""

    regex: str
    fields: tuple[str, ...]
    derived: tuple[str, ...]


def compile_log_format(log_format: str | None = None) -> NginxPattern:
    """Compile an nginx log_format string (None: the default format) to one anchored regex."""
    if log_format is None:
        return _DEFAULT
    parts: list[str] = []
    fields: list[str] = []
    in_quotes = False
    pos = 0
    for m in _VARIABLE.finditer(log_format):
        literal = log_format[pos : m.start()]
        in_quotes ^= literal.count('"') % 2 == 1
        parts.append(_literal(literal))
        name = _unique(m.group(1) or m.group(2), fields)
        following = log_format[m.end() : m.end() + 1]
        parts.append(f"(?P<{name}>{_value_regex(name, literal[-1:], following, in_quotes)})")
        fields.append(name)
        pos = m.end()
    parts.append(_literal(log_format[pos:]))
    regex = rf"^(?P<{_OK}>){''.join(parts)}\s*$"
    return NginxPattern(regex, tuple(fields), _derived(fields))


def _default_pattern() -> NginxPattern:
    combined = compile_log_format(DEFAULT_LOG_FORMAT.rsplit(" $request_time", 1)[0])
    head = combined.regex.removesuffix(r"\s*$")
    # request_time and upstream_response_time are optional, then any trailing fields are ignored.
    tail = (
        rf"(?: (?P<request_time>{_NUMBER})(?: (?P<upstream_response_time>{_NUMBER_LIST}))?)?"
        r"(?:\s.*)?$"
    )
    fields = (*combined.fields, "request_time", "upstream_response_time")
    return NginxPattern(head + tail, fields, _derived(fields))


def _literal(text: str) -> str:
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in text)


def _unique(name: str, taken: list[str]) -> str:
    """A variable logged twice gets a suffix: regex group names must be unique."""
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _value_regex(name: str, before: str, after: str, in_quotes: bool) -> str:
    if in_quotes:
        return QUOTED if after == '"' else _IN_QUOTES
    if before == "[" and after == "]":
        return _BRACKETED
    if name.startswith("upstream_"):
        return _LIST
    return UNQUOTED


def _derived(fields: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    present = set(fields)
    out: list[str] = []
    if "request" in present:
        out += [c for c in ("request_method", "request_uri", "server_protocol") if c not in present]
    if "request" in present or "request_uri" in present:
        out += [] if "request_path" in present else ["request_path"]
    out += [f"{f}_last" for f in fields if f.startswith("upstream_") and f"{f}_last" not in present]
    return tuple(out)


_DEFAULT: Final = _default_pattern()


def nginx_fields(log_format: str | None = None) -> dict[str, str]:
    """The default canonical -> source mapping, restricted to what `log_format` yields."""
    p = compile_log_format(log_format)
    yields = set(p.fields) | set(p.derived)
    return {
        canonical: next(s for s in sources if s in yields)
        for canonical, sources in _FIELD_CHOICES.items()
        if any(s in yields for s in sources)
    }


# --- expressions shared with the ALB parser --------------------------------------------------


def clean_value(value: pl.Expr) -> pl.Expr:
    """`-` and "" to null, nginx's escapes of `"` and `\\` undone."""
    return (
        pl.when(value.is_in(["-", ""]))
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(value.str.replace_many(*_ESCAPES))
    )


def split_request(request: pl.Expr) -> pl.Expr:
    """A request line as a struct of method, target and protocol (nulls when it is not one)."""
    return request.str.extract_groups(_REQUEST)


def url_path(target: pl.Expr) -> pl.Expr:
    """The path of a request target or absolute URL: no scheme, host, query or fragment."""
    return target.str.replace(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "").str.replace(r"[?#].*$", "")


def reject_reason(raw: pl.Expr, matched: pl.Expr) -> pl.Expr:
    """`blank` for a null or all-whitespace line, `unparsable_line` when the regex missed, else null."""
    return (
        pl.when(raw.is_null() | (raw.str.strip_chars() == ""))
        .then(pl.lit(BLANK))
        .when(matched.is_null())
        .then(pl.lit(UNPARSABLE))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def last_in_list(value: pl.Expr) -> pl.Expr:
    """The last entry of an nginx upstream list ("502, 200" -> "200"); `-` becomes null."""
    last = value.str.replace(r"^.*(?:, | : )", "")
    return pl.when(last == "-").then(pl.lit(None, dtype=pl.String)).otherwise(last)


# --- parsing ---------------------------------------------------------------------------------


# A combined line the default format misses whose fields through $body_bytes_sent are whole: the
# referer or the user agent was cut (a truncated write, a UA with an unescaped quote). Only fields the
# analysis does not need are lost (and $request_time after them: the latency is then unknown).
_DAMAGED_REGEX: Final = (
    rf"^(?P<{_OK}>)(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "
    rf'"(?P<request>{QUOTED})" (?P<status>[0-9]{{3}}) (?P<body_bytes_sent>[0-9]+|-)'
    rf'(?: "(?P<http_referer>{QUOTED})(?:" "(?P<http_user_agent>.*))?)?\s*$'
)
_REPAIRED: Final = ("remote_addr", "remote_user", "time_local", "request", "status", "body_bytes_sent")


def parse_nginx(lines: pl.LazyFrame, log_format: str | None = None) -> pl.LazyFrame:
    """Split each `_raw` nginx line into its fields (strings) plus derived columns and `_reject`.

    With the default format, a line damaged after $body_bytes_sent (see _DAMAGED_REGEX) is read with
    the whole fields and the damaged one named in `_damaged`.
    """
    p = compile_log_format(log_format)
    m = pl.col("_m")
    out = lines.with_columns(pl.col(RAW).str.extract_groups(p.regex).alias("_m"))
    ok = m.struct.field(_OK)
    if log_format is None:
        out = _repaired(out)
        ok = pl.coalesce(ok, pl.col("_d").struct.field(_OK))
    out = out.with_columns(
        *(clean_value(_whole_or_repaired(f, log_format)).alias(f) for f in p.fields),
        reject_reason(pl.col(RAW), ok).alias(REJECT),
    )
    derived: list[pl.Expr] = []
    if "request" in p.fields:
        req = split_request(pl.col("request"))
        names = {"request_method": "method", "request_uri": "target", "server_protocol": "protocol"}
        derived += [req.struct.field(v).alias(k) for k, v in names.items() if k in p.derived]
    derived += [last_in_list(pl.col(f.removesuffix("_last"))).alias(f) for f in p.derived if "_last" in f]
    if derived:
        out = out.with_columns(derived)
    if "request_path" in p.derived:
        out = out.with_columns(url_path(pl.col("request_uri")).alias("request_path"))
    order = [c for c in lines.collect_schema().names() if c != REJECT]
    damage = [DAMAGED] if log_format is None else []
    return out.select(*order, *p.fields, *p.derived, *damage, REJECT)


def _repaired(parsed: pl.LazyFrame) -> pl.LazyFrame:
    """`_d`: the damaged-line reading of the lines the format missed (the others null: no cost), and
    `_damaged`: which field was cut."""
    missed = pl.when(pl.col("_m").struct.field(_OK).is_null()).then(pl.col(RAW))
    d = pl.col("_d")
    return parsed.with_columns(missed.str.extract_groups(_DAMAGED_REGEX).alias("_d")).with_columns(
        pl.when(d.struct.field(_OK).is_null())
        .then(pl.lit(None, pl.String))
        .when(d.struct.field("http_user_agent").is_not_null())
        .then(pl.lit("http_user_agent"))
        .otherwise(pl.lit("http_referer"))
        .alias(DAMAGED)
    )


def _whole_or_repaired(name: str, log_format: str | None) -> pl.Expr:
    whole = pl.col("_m").struct.field(name)
    if log_format is not None or name not in _REPAIRED:
        return whole
    return pl.coalesce(whole, pl.col("_d").struct.field(name))


def looks_like_nginx(sample: list[str], *, log_format: str | None = None) -> bool:
    """True when most non-blank sample lines fit the nginx format (default: combined and its kin)."""
    regex = re.compile(compile_log_format(log_format).regex)
    lines = [s.rstrip("\r\n") for s in sample if s.strip()]
    hits = sum(1 for s in lines if regex.match(s))
    return bool(lines) and hits * 2 > len(lines)


def parse_ingress(lines: pl.LazyFrame) -> pl.LazyFrame:
    """ingress-nginx upstreaminfo lines: `parse_nginx` of INGRESS_LOG_FORMAT plus the attempts count."""
    parsed = parse_nginx(lines, INGRESS_LOG_FORMAT)
    entries = pl.col("upstream_status").str.count_matches(r", | : ") + 1
    return parsed.with_columns(
        pl.when(pl.col("upstream_status").is_not_null()).then(entries).cast(pl.String).alias(ATTEMPTS)
    )


def ingress_fields() -> dict[str, str]:
    """The default canonical -> source mapping of ingress-nginx lines."""
    return nginx_fields(INGRESS_LOG_FORMAT) | {ATTEMPTS: ATTEMPTS}
