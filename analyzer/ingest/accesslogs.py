"""Access logs of proxies and load balancers other than nginx and ALB, as data: one `Layout` a format.

A layout is one anchored regex (Rust- and Python-compatible) applied to every line at once by one
`str.extract_groups`, the fields it keeps, the columns derived from them (Polars expressions), the
default canonical mapping and the units. Values stay text, `-` and "" become null, as in the nginx
parser; a line the regex misses is `unparsable_line`. Layouts (field names as each system's own
documentation spells them, `-` and `(…)` made `_`):

    envoy        Envoy's default format (and Istio's, which adds details after the flags and fields at
                 the end): `[START_TIME] "METHOD PATH PROTOCOL" RESPONSE_CODE RESPONSE_FLAGS
                 BYTES_RECEIVED BYTES_SENT DURATION UPSTREAM_SERVICE_TIME "X-FORWARDED-FOR"
                 "USER-AGENT" "X-REQUEST-ID" ":AUTHORITY" "UPSTREAM_HOST"`; duration in ms
    haproxy      HAProxy's `option httplog` line, with or without the syslog prefix: timers
                 `TR/Tw/Tc/Tr/Ta` (ms, -1 when a phase did not happen; `Ta` is the latency), the
                 status, `backend/server` (`<NOSRV>`: no server was chosen, no upstream), the
                 termination state (kept as response_flags), captured headers `{…}`
    cloudfront   AWS CloudFront standard log: tab-separated fields in the documented order (fields
                 added over the years are optional from `sc-status` on); `#Version`/`#Fields` lines
                 are headers, not rows; `time-taken` in seconds; `x-edge-result-type` kept as
                 response_flags
    elb          AWS classic ELB: `timestamp elb client:port backend:port request_processing_time
                 backend_processing_time response_processing_time elb_status_code
                 backend_status_code received_bytes sent_bytes "request" "user_agent" ssl_cipher
                 ssl_protocol` (the last three are optional); latency = the three times summed
    traefik      Traefik's common log format: combined + `N "router" "server_url" Nms`
    vhost_combined   Apache's `%v:%p` (host[:port]) then the combined format
    common       NCSA/Apache common log format (no referer, no user agent, no latency)

Each layout's `defaults` maps canonical columns to its fields (or derived columns); see the README's
format table for a sample line of each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from analyzer.ingest.alb import latency_sum
from analyzer.ingest.nginx import QUOTED, RAW, REJECT, clean_value, reject_reason, split_request, url_path
from analyzer.schema import (
    ENDPOINT,
    LATENCY_MS,
    REQUEST_ID,
    RESPONSE_FLAGS,
    STATUS,
    TS,
    UPSTREAM,
    UPSTREAM_STATUS,
    FormatName,
)

_OK: Final = "_ok"
_M: Final = "_m"
_NUM: Final = r"-?[0-9]+(?:\.[0-9]*)?"
_S: Final = r"\S*"
_COMBINED: Final = (
    r"(?P<remote_addr>\S+) (?P<ident>\S+) (?P<remote_user>\S+) \[(?P<time_local>[^\]]*)\] "
    rf'"(?P<request>{QUOTED})" (?P<status>[0-9]+) (?P<body_bytes_sent>\S+)'
)
_REFERER_AGENT: Final = rf' "(?P<http_referer>{QUOTED})" "(?P<http_user_agent>{QUOTED})"'


@dataclass(frozen=True)
class Derived:
    """A column computed from fields: its expression and the fields it reads."""

    expr: Callable[[], pl.Expr]
    reads: tuple[str, ...]


_SPLIT: Final = ("request_method", "request_target", "request_path")


@dataclass(frozen=True)
class Layout:
    """One text access-log format: its regex, fields, derived columns, default mapping and units."""

    name: FormatName
    regex: str  # anchored; group `_ok` is "" when the line matched
    derived: Mapping[str, Derived] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)  # canonical -> field or derived column
    units: Mapping[str, str] = field(default_factory=dict)
    header: str | None = None  # lines starting with this are headers, not rows (CloudFront's `#`)
    request: str | None = "request"  # the field holding "METHOD TARGET PROTOCOL", split and its path kept
    # Fields are cells between this separator (no quoting: CloudFront's tabs), the regex only checks
    # the line: splitting costs a tenth of capturing 33 groups.
    separator: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The regex's named groups, in order."""
        return tuple(n for n in re.compile(self.regex).groupindex if n != _OK)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the parser adds: fields, then the request split, then derived ones."""
        return (*self.fields, *(_SPLIT if self.request else ()), *self.derived)

    def reads(self, wanted: Iterable[str]) -> set[str]:
        """The fields that the columns `wanted` are made of."""
        out: set[str] = set()
        for name in wanted:
            if name in self.derived:
                out |= set(self.derived[name].reads)
            elif name in _SPLIT and self.request is not None:
                out.add(self.request)
            else:
                out.add(name)
        return out & set(self.fields)

    def narrowed(self, keep: set[str]) -> str:
        """The regex with only the groups of `keep` (and `_ok`) capturing: each capture costs."""
        return re.sub(
            r"\(\?P<(\w+)>", lambda m: m.group(0) if m.group(1) in keep | {_OK} else "(?:", self.regex
        )


def _pos(name: str) -> Callable[[], pl.Expr]:
    """A number that may carry a `+` (HAProxy's logasap) and is null when negative (-1: never happened)."""

    def expr() -> pl.Expr:
        value = pl.col(name).str.strip_prefix("+")
        return pl.when(~value.str.starts_with("-")).then(value)

    return expr


def _haproxy_upstream() -> pl.Expr:
    server = pl.col("server_name")
    return pl.when(server.is_not_null() & (server != "<NOSRV>")).then(
        pl.format("{}/{}", pl.col("backend_name"), server)
    )


def _cloudfront_ts() -> pl.Expr:
    return pl.format("{}T{}Z", pl.col("date"), pl.col("time"))


_ELB_TIMES: Final = ("request_processing_time", "backend_processing_time", "response_processing_time")


def _elb_latency() -> pl.Expr:
    return latency_sum([pl.col(t) for t in _ELB_TIMES])


def _elb_backend_status() -> pl.Expr:
    # ELB writes 0 when the backend sent no response (a timeout, a closed connection): no status.
    code = pl.col("backend_status_code")
    return pl.when(code != "0").then(code)


def _prefix_chain(parts: list[str], required: int, separator: str) -> str:
    """`a b c(?: d(?: e)?)?`: fields after the first `required` are optional, each after the one before."""
    optional = ""
    for part in reversed(parts[required:]):
        optional = f"(?:{separator}{part}{optional})?"
    return separator.join(parts[:required]) + optional


_CLOUDFRONT_FIELDS: Final = (
    "date time x_edge_location sc_bytes c_ip cs_method cs_host cs_uri_stem sc_status cs_referer "
    "cs_user_agent cs_uri_query cs_cookie x_edge_result_type x_edge_request_id x_host_header "
    "cs_protocol cs_bytes time_taken x_forwarded_for ssl_protocol ssl_cipher "
    "x_edge_response_result_type cs_protocol_version fle_status fle_encrypted_fields c_port "
    "time_to_first_byte x_edge_detailed_result_type sc_content_type sc_content_len sc_range_start "
    "sc_range_end"
).split()
_CLOUDFRONT_PARTS: Final = [
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})",
    r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})",
    *(rf"(?P<{n}>[^\t]*)" for n in _CLOUDFRONT_FIELDS[2:]),
]
_CLOUDFRONT_REQUIRED: Final = _CLOUDFRONT_FIELDS.index("sc_status") + 1

_ELB_PARTS: Final = [
    r"(?P<timestamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+)",
    r"(?P<elb>\S+)",
    r"(?P<client_port>\S+)",
    r"(?P<backend_port>\S+)",
    *(rf"(?P<{n}>{_NUM})" for n in ("request_processing_time", "backend_processing_time")),
    rf"(?P<response_processing_time>{_NUM})",
    r"(?P<elb_status_code>\S+)",
    r"(?P<backend_status_code>\S+)",
    r"(?P<received_bytes>\S+)",
    r"(?P<sent_bytes>\S+)",
    rf'"(?P<request>{QUOTED})"',
    rf'"(?P<user_agent>{QUOTED})"',
    r"(?P<ssl_cipher>\S+)",
    r"(?P<ssl_protocol>\S+)",
]

# An optional syslog header: `<134>`, then `Feb  6 12:14:14 host ` or an RFC 3339 time and host, then
# `haproxy[14389]: ` (each part optional: a file written by HAProxy's own `log stdout` has none).
_SYSLOG: Final = (
    r"(?:<[0-9]+>[0-9]* ?)?"
    r"(?:(?:[A-Z][a-z]{2} +[0-9]+ [0-9:]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+) \S+ )?"
    r"(?:[\w./-]+\[[0-9]+\]: )?"
)

LAYOUTS: Final[tuple[Layout, ...]] = (
    Layout(
        FormatName.ENVOY,
        rf"^(?P<{_OK}>)\[(?P<start_time>[^\]]+)\] "
        rf'"(?P<request>{QUOTED})" (?P<response_code>[0-9]+) (?P<response_flags>\S+) '
        # Istio's default adds these three after the flags.
        rf'(?:(?P<response_code_details>\S+) (?P<connection_termination_details>\S+) "(?P<upstream_transport_failure_reason>{QUOTED})" )?'
        r"(?P<bytes_received>[0-9]+|-) (?P<bytes_sent>[0-9]+|-) (?P<duration>[0-9]+|-) "
        r"(?P<upstream_service_time>\S+) "
        rf'"(?P<x_forwarded_for>{QUOTED})" "(?P<user_agent>{QUOTED})" "(?P<x_request_id>{QUOTED})" '
        rf'"(?P<authority>{QUOTED})" "(?P<upstream_host>{QUOTED})"(?:\s.*)?$',
        defaults={
            TS: "start_time",
            STATUS: "response_code",
            LATENCY_MS: "duration",
            REQUEST_ID: "x_request_id",
            UPSTREAM: "upstream_host",
            ENDPOINT: "request_path",
            RESPONSE_FLAGS: "response_flags",
        },
        units={LATENCY_MS: "ms"},
    ),
    Layout(
        FormatName.HAPROXY,
        rf"^(?P<{_OK}>){_SYSLOG}(?P<client_ip>\S+):(?P<client_port>[0-9]+) "
        r"\[(?P<accept_date>[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9:.]+)\] (?P<frontend_name>\S+) "
        r"(?P<backend_name>[^/\s]+)/(?P<server_name>\S+) "
        r"(?P<TR>[+-]?[0-9]+)/(?P<Tw>[+-]?[0-9]+)/(?P<Tc>[+-]?[0-9]+)/(?P<Tr>[+-]?[0-9]+)/(?P<Ta>[+-]?[0-9]+) "
        r"(?P<status_code>-?[0-9]+) (?P<bytes_read>\+?[0-9]+) (?P<captured_request_cookie>\S+) "
        r"(?P<captured_response_cookie>\S+) (?P<termination_state>\S{4}) "
        r"(?P<actconn>[0-9]+)/(?P<feconn>[0-9]+)/(?P<beconn>[0-9]+)/(?P<srv_conn>[0-9]+)/(?P<retries>\+?[0-9]+) "
        r"(?P<srv_queue>[0-9]+)/(?P<backend_queue>[0-9]+) "
        r"(?:\{(?P<captured_request_headers>[^}]*)\} )?(?:\{(?P<captured_response_headers>[^}]*)\} )?"
        # A line longer than HAProxy's log length is cut: the request may lack its closing quote.
        rf'"(?P<http_request>{QUOTED})"?\s*$',
        derived={
            "latency": Derived(_pos("Ta"), ("Ta",)),
            "upstream": Derived(_haproxy_upstream, ("backend_name", "server_name")),
        },
        defaults={
            TS: "accept_date",
            STATUS: "status_code",
            LATENCY_MS: "latency",
            UPSTREAM: "upstream",
            ENDPOINT: "request_path",
            RESPONSE_FLAGS: "termination_state",
        },
        units={TS: "%d/%b/%Y:%H:%M:%S%.f", LATENCY_MS: "ms"},
        request="http_request",
    ),
    Layout(
        FormatName.CLOUDFRONT,
        rf"^(?P<{_OK}>){_prefix_chain(_CLOUDFRONT_PARTS, _CLOUDFRONT_REQUIRED, chr(9))}(?:\t.*)?$",
        derived={"timestamp": Derived(_cloudfront_ts, ("date", "time"))},
        defaults={
            TS: "timestamp",
            STATUS: "sc_status",
            LATENCY_MS: "time_taken",
            REQUEST_ID: "x_edge_request_id",
            ENDPOINT: "cs_uri_stem",
            RESPONSE_FLAGS: "x_edge_result_type",
        },
        units={LATENCY_MS: "s"},
        header="#",
        request=None,
        separator="\t",
    ),
    Layout(
        FormatName.ELB,
        rf"^(?P<{_OK}>){_prefix_chain(_ELB_PARTS, 12, ' ')}(?:\s.*)?$",
        derived={
            "latency_s": Derived(_elb_latency, _ELB_TIMES),
            "backend_status": Derived(_elb_backend_status, ("backend_status_code",)),
        },
        defaults={
            TS: "timestamp",
            STATUS: "elb_status_code",
            UPSTREAM_STATUS: "backend_status",
            LATENCY_MS: "latency_s",
            UPSTREAM: "backend_port",
            ENDPOINT: "request_path",
        },
        units={LATENCY_MS: "s"},
    ),
    Layout(
        FormatName.TRAEFIK,
        rf"^(?P<{_OK}>){_COMBINED}{_REFERER_AGENT} (?P<requests_total>[0-9]+) "
        rf'"(?P<router_name>{QUOTED})" "(?P<server_url>{QUOTED})" (?P<duration_ms>[0-9]+)ms\s*$',
        defaults={
            TS: "time_local",
            STATUS: "status",
            LATENCY_MS: "duration_ms",
            UPSTREAM: "server_url",
            ENDPOINT: "request_path",
        },
        units={LATENCY_MS: "ms"},
    ),
    Layout(
        FormatName.VHOST_COMBINED,
        rf"^(?P<{_OK}>)(?P<vhost>[^\s:]+)(?::(?P<port>[0-9]+))? {_COMBINED}{_REFERER_AGENT}(?:\s.*)?$",
        defaults={TS: "time_local", STATUS: "status", ENDPOINT: "request_path"},
    ),
    Layout(
        FormatName.COMMON,
        rf"^(?P<{_OK}>){_COMBINED}\s*$",
        defaults={TS: "time_local", STATUS: "status", ENDPOINT: "request_path"},
    ),
)
BY_NAME: Final[dict[FormatName, Layout]] = {layout.name: layout for layout in LAYOUTS}


def parse(lines: pl.LazyFrame, layout: Layout, wanted: Sequence[str] | None = None) -> pl.LazyFrame:
    """Split each `_raw` line into the layout's fields (strings), derived columns and `_reject`.

    `wanted`: the columns read afterwards (None: all); the others are null, never extracted.
    """
    if layout.header is not None:
        lines = lines.filter(~pl.col(RAW).str.starts_with(layout.header))
    keep = layout.reads(layout.columns if wanted is None else wanted)
    if layout.separator is not None:
        out = _split(lines, layout, keep)
    else:
        m = pl.col(_M)
        out = lines.with_columns(
            pl.col(RAW).str.extract_groups(layout.narrowed(keep)).alias(_M)
        ).with_columns(
            *(
                (clean_value(m.struct.field(f)) if f in keep else pl.lit(None, pl.String)).alias(f)
                for f in layout.fields
            ),
            reject_reason(pl.col(RAW), m.struct.field(_OK)).alias(REJECT),
        )
    if layout.request is not None:
        request = split_request(pl.col(layout.request))
        out = out.with_columns(
            request.struct.field("method").alias("request_method"),
            request.struct.field("target").alias("request_target"),
        ).with_columns(url_path(pl.col("request_target")).alias("request_path"))
    if layout.derived:
        out = out.with_columns(d.expr().alias(name) for name, d in layout.derived.items())
    order = [c for c in lines.collect_schema().names() if c != REJECT]
    return out.select(*order, *layout.columns, REJECT)


def _split(lines: pl.LazyFrame, layout: Layout, keep: set[str]) -> pl.LazyFrame:
    assert layout.separator is not None
    matched = pl.when(pl.col(RAW).str.contains(layout.regex)).then(pl.lit(""))
    cells = pl.col(_M)
    return lines.with_columns(pl.col(RAW).str.split(layout.separator).alias(_M)).with_columns(
        *(
            clean_value(cells.list.get(i, null_on_oob=True)).alias(f)
            if f in keep
            else pl.lit(None, pl.String).alias(f)
            for i, f in enumerate(layout.fields)
        ),
        reject_reason(pl.col(RAW), matched).alias(REJECT),
    )


def looks_like(sample: list[str], layout: Layout) -> bool:
    """True when most non-blank, non-header sample lines fit the layout."""
    regex = re.compile(layout.regex)
    lines = [s.rstrip("\r\n") for s in sample if s.strip()]
    if layout.header is not None:
        lines = [s for s in lines if not s.startswith(layout.header)]
    hits = sum(1 for s in lines if regex.match(s))
    return bool(lines) and hits * 2 > len(lines)
