"""JSON access logs of known systems, told apart by the field names of the sample: one `Flavor` each.

A flavor is JSON lines (module jsonl reads them) plus what its system's documentation says of its
fields: the names that identify it, the default canonical mapping (first name present wins), the
units, and the columns derived from fields (Polars expressions over `src:` columns):

    envoy_json    Envoy / Istio JSON access logs: `start_time`, `response_code`, `response_flags`,
                  `duration` (ms), `x-request-id` or `request_id`, `upstream_host`, `path`
    gcp_lb        Cloud Logging entries of a GCP HTTP(S) load balancer: `httpRequest.status`,
                  `httpRequest.latency` ("0.123s"), `httpRequest.requestUrl`, `timestamp`,
                  `jsonPayload.statusDetails` (kept as response_flags)
    cloudflare    Cloudflare Logpush http_requests: `EdgeStartTimestamp` (ns or RFC 3339),
                  `EdgeResponseStatus`, `OriginResponseStatus`, `OriginResponseDurationMs`, `RayID`
    caddy         Caddy's access log: `ts` (epoch seconds), `status`, `duration` (s), `request.uri`
    traefik_json  Traefik's JSON access log: `StartUTC`, `DownstreamStatus`, `OriginStatus`,
                  `Duration` (ns), `RequestPath`, `ServiceAddr`
    kong          Kong's file-log plugin: `started_at` (ms), `response.status`, `latencies.request`
                  (ms), `request.uri`, `request.headers.x-request-id`, `service.host`
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from analyzer.ingest.nginx import url_path
from analyzer.ingest.sources import SRC
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


@dataclass(frozen=True)
class Derived:
    """A column computed from source fields (String in, String out) and the fields it reads."""

    expr: Callable[..., pl.Expr]  # called with one `src:` column expression per field of `reads`
    reads: tuple[str, ...]


@dataclass(frozen=True)
class Flavor:
    """A known system's JSON access log."""

    name: FormatName
    keys: tuple[str, ...]  # every one of these (dotted) fields in the sample: it is this system's
    defaults: Mapping[str, tuple[str, ...]]  # canonical -> fields or derived columns, first present wins
    units: Mapping[str, str] = field(default_factory=dict)
    derived: Mapping[str, Derived] = field(default_factory=dict)

    def mapping(self, known: Iterable[str]) -> dict[str, str]:
        """The default canonical -> field mapping among the fields `known` (and derived columns)."""
        have = set(known) | set(self.derived)
        return {
            canonical: next(n for n in names if n in have)
            for canonical, names in self.defaults.items()
            if any(n in have for n in names)
        }

    def derive(self, frame: pl.LazyFrame, wanted: Iterable[str]) -> pl.LazyFrame:
        """`frame` plus the derived columns among `wanted` (as `src:<name>`)."""
        made = [
            self.derived[n].expr(*(pl.col(SRC + r) for r in self.derived[n].reads)).alias(SRC + n)
            for n in wanted
            if n in self.derived
        ]
        return frame.with_columns(made) if made else frame

    def reads(self, wanted: Iterable[str]) -> list[str]:
        """The JSON fields to read for the columns `wanted`."""
        out: list[str] = []
        for name in wanted:
            out += list(self.derived[name].reads) if name in self.derived else [name]
        return list(dict.fromkeys(out))


def _path(url: pl.Expr) -> pl.Expr:
    return url_path(url)


def _seconds_text(latency: pl.Expr) -> pl.Expr:
    # Protobuf's Duration in JSON: "0.123s".
    return latency.str.strip_suffix("s")


def _ns_to_ms(duration: pl.Expr) -> pl.Expr:
    return (duration.cast(pl.Int64, strict=False) / 1_000_000).cast(pl.String)


FLAVORS: Final[tuple[Flavor, ...]] = (
    Flavor(
        FormatName.ENVOY_JSON,
        keys=("response_code", "response_flags"),
        defaults={
            TS: ("start_time",),
            STATUS: ("response_code",),
            LATENCY_MS: ("duration",),
            REQUEST_ID: ("x-request-id", "request_id", "x_request_id"),
            UPSTREAM: ("upstream_host",),
            ENDPOINT: ("endpoint",),
            RESPONSE_FLAGS: ("response_flags",),
        },
        units={LATENCY_MS: "ms"},
        derived={"endpoint": Derived(_path, ("path",))},
    ),
    Flavor(
        FormatName.GCP_LB,
        keys=("httpRequest.status", "timestamp"),
        defaults={
            TS: ("timestamp",),
            STATUS: ("httpRequest.status",),
            LATENCY_MS: ("latency_s",),
            REQUEST_ID: ("trace", "insertId"),
            ENDPOINT: ("endpoint",),
            UPSTREAM: ("resource.labels.backend_service_name",),
            RESPONSE_FLAGS: ("jsonPayload.statusDetails",),
        },
        units={LATENCY_MS: "s"},
        derived={
            "latency_s": Derived(_seconds_text, ("httpRequest.latency",)),
            "endpoint": Derived(_path, ("httpRequest.requestUrl",)),
        },
    ),
    Flavor(
        FormatName.CLOUDFLARE,
        keys=("EdgeStartTimestamp", "EdgeResponseStatus"),
        defaults={
            TS: ("EdgeStartTimestamp",),
            STATUS: ("EdgeResponseStatus",),
            UPSTREAM_STATUS: ("OriginResponseStatus",),
            LATENCY_MS: ("OriginResponseDurationMs",),
            REQUEST_ID: ("RayID",),
            UPSTREAM: ("OriginIP",),
            ENDPOINT: ("ClientRequestPath",),
        },
        units={LATENCY_MS: "ms"},
    ),
    Flavor(
        FormatName.CADDY,
        keys=("request.uri", "duration", "status", "ts"),
        defaults={TS: ("ts",), STATUS: ("status",), LATENCY_MS: ("duration",), ENDPOINT: ("endpoint",)},
        units={LATENCY_MS: "s"},
        derived={"endpoint": Derived(_path, ("request.uri",))},
    ),
    Flavor(
        FormatName.TRAEFIK_JSON,
        keys=("DownstreamStatus", "Duration"),
        defaults={
            TS: ("StartUTC", "time"),
            STATUS: ("DownstreamStatus",),
            UPSTREAM_STATUS: ("OriginStatus",),
            LATENCY_MS: ("duration_ms",),
            REQUEST_ID: ("request_X-Request-Id",),
            UPSTREAM: ("ServiceAddr", "ServiceURL"),
            ENDPOINT: ("endpoint",),
        },
        units={LATENCY_MS: "ms"},
        derived={
            "duration_ms": Derived(_ns_to_ms, ("Duration",)),
            "endpoint": Derived(_path, ("RequestPath",)),
        },
    ),
    Flavor(
        FormatName.KONG,
        keys=("latencies.request", "response.status"),
        defaults={
            TS: ("started_at",),
            STATUS: ("response.status",),
            LATENCY_MS: ("latencies.request",),
            REQUEST_ID: ("request.headers.x-request-id",),
            UPSTREAM: ("service.host",),
            ENDPOINT: ("endpoint",),
        },
        units={LATENCY_MS: "ms"},
        derived={"endpoint": Derived(_path, ("request.uri",))},
    ),
)


def flavor_of(known: Iterable[str]) -> Flavor | None:
    """The first flavor whose identifying fields are all among `known`."""
    have = set(known)
    return next((f for f in FLAVORS if all(k in have for k in f.keys)), None)
