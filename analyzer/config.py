"""Typed settings: thresholds, prices and field mappings, with defaults that serve the shipped sample.

One `Settings` object carries everything; `load_settings(path)` reads it from TOML. Unknown tables or
keys and values of the wrong type are a `ConfigError` naming the file and the key, never ignored.

    [gateway]                      # also [ledger] and [events]: how a source is read
    format = "jsonl"               # force a format instead of detecting it
    clock_offset = "-2s"           # added to every timestamp of this source
    log_format = '...'             # an nginx log_format string
    [gateway.fields]               # canonical name = source field (dotted path into nested JSON)
    [gateway.units]                # ts: iso|epoch_s|epoch_ms|epoch_us|epoch_ns; latency_ms/ttft_ms: ms|s|us
    [bursts] [latency] [slo] [gaps] [reconcile] [report] [postmortem]
    [sla]                          # SLA credits: target, credits table, accounts file, tiers, window
    [prices.<model>]               # input_per_million / output_per_million, in USD
    [weights.<model>]              # prompt / completion / cached / image: exact weights of the expected charge
    [limits] [limits.tiers.<tier>] # rate limits of each account's tier (analyzer/limits/settings.py)
"""

from __future__ import annotations

import codecs
import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Any, get_type_hints

from analyzer.errors import ConfigError
from analyzer.limits.settings import LimitSettings, limits_from_table
from analyzer.schema import LEDGER_KINDS, SCHEMAS, FormatName, PresetName

TS_UNITS = ("iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")
DURATION_UNITS = ("ms", "s", "us")
FORMATS = tuple(FormatName)


class Rounding(StrEnum):
    """How a request's weighted charge becomes whole tokens (reconcile/charges.py)."""

    CEIL = "ceil"
    FLOOR = "floor"
    HALF_UP = "half_up"


ROUNDINGS = tuple(Rounding)
PRESETS = tuple(PresetName)
LEDGER_AMOUNT_UNITS = ("tokens", "usd")

_DURATION = re.compile(r"^\s*([+-]?)(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)\s*$")
_DURATION_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, *, where: str = "duration") -> timedelta:
    """Parse '-2s', '1m', '250ms', '1.5h' into a timedelta."""
    m = _DURATION.match(text)
    if m is None:
        raise ConfigError(f"'{text}' is not a duration like 30s, 5m, 1h or -2s", field=where)
    sign = -1.0 if m.group(1) == "-" else 1.0
    return timedelta(seconds=sign * float(m.group(2)) * _DURATION_SCALE[m.group(3)])


def polars_every(td: timedelta) -> str:
    """A timedelta as a Polars duration string ('60s', '300000000us')."""
    us = int(td / timedelta(microseconds=1))
    return f"{us // 1_000_000}s" if us % 1_000_000 == 0 else f"{us}us"


@dataclass(frozen=True)
class SourceConfig:
    """How one kind of input (gateway, ledger or events) is read."""

    fields: Mapping[str, str] = field(default_factory=dict)  # canonical name -> source field
    units: Mapping[str, str] = field(default_factory=dict)  # canonical name -> unit
    clock_offset: timedelta = timedelta(0)
    format: str | None = None
    log_format: str | None = None  # nginx log_format string
    encoding: str | None = None  # the text's encoding when not UTF-8 (cp1252, latin-1, utf-16): decoded
    # Ledger only: the source's entry kinds -> deduct, refund, grant or reset ("debit" = "deduct").
    kinds: Mapping[str, str] = field(default_factory=dict)
    # A known record shape (ingest/presets.py: litellm); None: detected from the field names.
    preset: str | None = None


@dataclass(frozen=True)
class BurstSettings:
    """When a window of 5xx counts as a burst."""

    window: timedelta = timedelta(minutes=1)
    statuses: tuple[int, ...] = (500, 502, 503, 504)
    min_errors: int = 5  # a window needs at least this many errors to open a burst
    rate_floor: float = 0.02  # ...and an error rate above this absolute floor
    baseline_multiple: float = 4.0  # ...and above this multiple of the baseline rate
    z_open: float = 6.0  # robust score that opens a burst
    z_stay: float = 3.0  # lower score that keeps an open burst open (hysteresis)
    close_after: int = 3  # windows back to normal before a burst closes
    merge_gap: int = 2  # bursts this many windows apart or fewer merge
    slices: tuple[str, ...] = ("model", "region", "upstream", "endpoint")
    min_slice_requests: int = 20  # a slice window needs this many requests to be scored
    # A slice column with more distinct values (an id in every URL path) is not searched: each value
    # would be a scope of its own, and detection's table would grow with the rows.
    max_slice_values: int = 1000
    top_n: int = 5
    # The baseline error rate never exceeds this, so data failing throughout still shows a burst.
    baseline_cap: float = 0.05
    # A slice explains a burst when it holds most of its errors and its error rate is at least this many
    # times that of the rest of the burst's traffic.
    attribution_lift: float = 3.0


@dataclass(frozen=True)
class LatencySettings:
    """When a window's latency counts as a spike."""

    window: timedelta = timedelta(minutes=1)
    # Typical slowdown (geometric mean of latency over what the requests' model and output size predict)
    # that opens a spike.
    factor: float = 2.0
    factor_stay: float = 1.5  # ...and keeps it open
    min_requests: int = 20  # successful requests a window needs to be scored
    close_after: int = 3
    merge_gap: int = 2
    approximate_quantiles: bool = False  # always approximate; else only above exact_quantile_max_rows
    # Exact quantiles at 10M rows: ~0.5 GiB more and deterministic; approx_quantile's digits vary run to run.
    exact_quantile_max_rows: int = 20_000_000  # above this, approx_quantile (streams; p99 within ~3%)
    z_open: float = 5.0  # z of the window's log-latency excess that opens a spike (with `factor`)
    z_stay: float = 2.5  # ...and keeps it open (with `factor_stay`)


@dataclass(frozen=True)
class SloSettings:
    """Availability SLO and the multi-window burn-rate alerts replayed over the logs."""

    target: float = 0.999
    # (name, severity, long window, short window, burn-rate factor): the SRE workbook's table.
    alerts: tuple[tuple[str, str, timedelta, timedelta, float], ...] = (
        ("page-1h", "page", timedelta(hours=1), timedelta(minutes=5), 14.4),
        ("page-6h", "page", timedelta(hours=6), timedelta(minutes=30), 6.0),
        ("ticket-1d", "ticket", timedelta(days=1), timedelta(hours=2), 3.0),
        ("ticket-3d", "ticket", timedelta(days=3), timedelta(hours=6), 1.0),
    )


@dataclass(frozen=True)
class GapSettings:
    """When a stretch with no gateway lines is a log gap."""

    min_gap: timedelta = timedelta(minutes=5)
    # A gap must also be this many times longer than the typical spacing between lines.
    spacing_multiple: float = 20.0


@dataclass(frozen=True)
class ReconcileSettings:
    """Rules of the ledger reconciliation."""

    tolerance_tokens: int = 0
    refund_orphans: bool = False
    # Non-2xx statuses whose deductions are refunded in full; empty means every non-2xx.
    refundable_statuses: tuple[int, ...] = ()
    # A deduction whose request is missing but within this margin of the gateway span's edges is
    # `out_of_span`, not `orphan`: the request may sit in a log file that was not given.
    edge_margin: timedelta = timedelta(minutes=5)
    pattern_window: timedelta = timedelta(minutes=15)
    min_pattern_share: float = 0.9
    min_pattern_entries: int = 5  # a pattern must explain at least this many entries
    # How a request's weighted charge becomes whole tokens (integer arithmetic): ceil, floor or half_up.
    rounding: str = Rounding.CEIL


@dataclass(frozen=True)
class ModelWeights:
    """Exact weights of the expected charge of a request (reconcile/charges.py):

    uncached prompt × prompt + cached × cached + image × image + completion × completion, rounded per
    request by `[reconcile] rounding`. A weight is an integer or an exact rational ("1/10", "0.125").
    `cached` and `image` default to the prompt weight (then the split of the prompt changes nothing).
    """

    prompt: Fraction = Fraction(1)
    completion: Fraction = Fraction(1)
    cached: Fraction | None = None
    image: Fraction | None = None

    def of(self, part: str) -> Fraction:
        """The weight of `part` (prompt, completion, cached, image), defaults applied."""
        value: Fraction | None = getattr(self, part)
        return self.prompt if value is None else value


@dataclass(frozen=True)
class ModelPrice:
    """USD per million input and output tokens (Decimal: money is never a float)."""

    input_per_million: Decimal = Decimal(0)
    output_per_million: Decimal = Decimal(0)
    # A cached input token's price (a ledger in USD is checked against it); None: the input price.
    cached_input_per_million: Decimal | None = None


@dataclass(frozen=True)
class ReportSettings:
    """What the report shows."""

    top_n: int = 10
    chart_points: int = 60


class SlaWindow(StrEnum):
    """Where an SLA's availability and spend are measured."""

    INCIDENT = "incident"  # from the first symptom to the last
    MONTH = "month"  # the calendar month (UTC) of the first symptom
    REPORT = "report"  # the whole analysis: --since/--until when given, else every row


@dataclass(frozen=True)
class SlaSettings:
    """SLA credits: an account whose availability fell below a threshold gets a share of its spend.

    Thresholds are exact decimals compared with integer arithmetic; "below" is strict (an
    availability exactly at a threshold earns that threshold's credit only when it is under it)."""

    target: Decimal = Decimal("0.999")
    # (availability below which, percent of the window's spend credited), any order; the lowest
    # threshold the availability is below wins (its percent is the largest).
    credits: tuple[tuple[Decimal, int], ...] = (
        (Decimal("0.999"), 10),
        (Decimal("0.99"), 25),
        (Decimal("0.95"), 100),
    )
    accounts: Path | None = None  # account_id[,tier] CSV, relative to the config file; None: no SLA
    tiers: tuple[str, ...] = ()  # only the accounts file's accounts of these tiers (empty: all of them)
    window: SlaWindow = SlaWindow.INCIDENT
    wrong_429: bool = True  # 429s the rate-limit audit found wrong count as failed, when it ran


@dataclass(frozen=True)
class PostmortemSettings:
    """The post-mortem's shape: how many timeline rows it shows, what is background, the events' roles."""

    timeline_rows: int = 40  # happenings the terminal timeline shows (--full: all)
    markdown_timeline_rows: int = 80  # ...and the Markdown's
    background_ratio: float = 3.0  # a finding kind at most this many times as frequent inside as outside
    isolation_gap: timedelta = timedelta(hours=2)  # a symptom this far from the rest does not stretch it
    # Operator event kinds (lower-cased) that mark when the incident was detected, mitigated, resolved.
    detected: tuple[str, ...] = ("incident", "page", "alert")
    mitigated: tuple[str, ...] = ("hotfix", "fix", "rollback", "mitigation")
    resolved: tuple[str, ...] = ("recovery", "resolved")
    slo_window: timedelta = timedelta(days=30)  # the error budget's rolling window


@dataclass(frozen=True)
class Settings:
    """Every setting of the analyzer; `Settings()` is the default that serves sample_logs/."""

    gateway: SourceConfig = field(default_factory=SourceConfig)
    ledger: SourceConfig = field(default_factory=SourceConfig)
    events: SourceConfig = field(default_factory=SourceConfig)
    usage: SourceConfig = field(default_factory=SourceConfig)  # a provider's usage export
    bursts: BurstSettings = field(default_factory=BurstSettings)
    latency: LatencySettings = field(default_factory=LatencySettings)
    slo: SloSettings = field(default_factory=SloSettings)
    gaps: GapSettings = field(default_factory=GapSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    sla: SlaSettings = field(default_factory=SlaSettings)
    postmortem: PostmortemSettings = field(default_factory=PostmortemSettings)
    weights: Mapping[str, ModelWeights] = field(default_factory=dict)
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    limits: LimitSettings | None = None  # [limits]; None: the audit holds accounts to their own peaks

    def source(self, kind: str) -> SourceConfig:
        """The SourceConfig of 'gateway', 'ledger', 'events' or 'usage'."""
        return {"gateway": self.gateway, "ledger": self.ledger, "events": self.events, "usage": self.usage}[
            kind
        ]

    def with_preset(self, preset: str | None) -> Settings:
        """These settings with every source read as the known record shape `preset` (None: as they are)."""
        if preset is None:
            return self
        return dataclasses.replace(
            self,
            gateway=dataclasses.replace(self.gateway, preset=preset),
            ledger=dataclasses.replace(self.ledger, preset=preset),
        )

    def weights_for(self, model: str) -> ModelWeights:
        """The charge weights of `model` (default 1 and 1)."""
        return self.weights.get(model, ModelWeights())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values of every effective setting (durations in seconds)."""
        plain: dict[str, Any] = _plain(self)
        return plain


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("plain", True)  # e.g. a whole accounts file is not echoed
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | Path):
        return str(value)
    if isinstance(value, Fraction):
        return value.numerator if value.denominator == 1 else str(value)
    return value


# --- loading ---------------------------------------------------------------------------------


def load_settings(path: str | Path | None) -> Settings:
    """Read Settings from a TOML file; None gives the defaults."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(p)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        line = _toml_error_line(str(e))
        raise ConfigError(f"not valid TOML: {e}", path=str(p), line=line) from None
    return settings_from_dict(raw, where=str(p))


def _toml_error_line(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


# The tables of a config file that are one plain dataclass each (the others: sources, weights, prices).
SECTIONS: dict[str, type[Any]] = {
    "bursts": BurstSettings,
    "latency": LatencySettings,
    "slo": SloSettings,
    "gaps": GapSettings,
    "reconcile": ReconcileSettings,
    "report": ReportSettings,
    "postmortem": PostmortemSettings,
}


def settings_from_dict(raw: Mapping[str, Any], *, where: str = "<config>") -> Settings:
    """Build Settings from parsed TOML, validating every key."""
    known = {f.name for f in dataclasses.fields(Settings)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"unknown table [{key}] (known: {', '.join(sorted(known))})", path=where)
    kw: dict[str, Any] = {}
    for kind in ("gateway", "ledger", "events", "usage"):
        if kind in raw:
            kw[kind] = _source(kind, _table(raw[kind], kind, where), where)
    for name, cls in SECTIONS.items():
        if name in raw:
            kw[name] = _dataclass(cls, _table(raw[name], name, where), name, where)
    if "sla" in raw:
        kw["sla"] = _sla(_table(raw["sla"], "sla", where), where)
    if "weights" in raw:
        kw["weights"] = {
            model: _dataclass(ModelWeights, _table(t, f"weights.{model}", where), f"weights.{model}", where)
            for model, t in _table(raw["weights"], "weights", where).items()
        }
    if "prices" in raw:
        kw["prices"] = {
            model: _dataclass(ModelPrice, _table(t, f"prices.{model}", where), f"prices.{model}", where)
            for model, t in _table(raw["prices"], "prices", where).items()
        }
    if "limits" in raw:
        kw["limits"] = limits_from_table(_table(raw["limits"], "limits", where), where)
    settings = Settings(**kw)
    _validate(settings, where)
    return settings


def _table(value: Any, name: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError("must be a table", path=where, field=name)
    return value


def _source(kind: str, t: dict[str, Any], where: str) -> SourceConfig:
    allowed = {"fields", "units", "clock_offset", "format", "log_format", "kinds", "preset", "encoding"}
    for key in t:
        if key not in allowed:
            raise ConfigError(
                f"unknown key (known: {', '.join(sorted(allowed))})", path=where, field=f"{kind}.{key}"
            )
    canonical = set(SCHEMAS[kind])
    fields = {
        k: _str(v, f"{kind}.fields.{k}", where)
        for k, v in _table(t.get("fields", {}), f"{kind}.fields", where).items()
    }
    units = {
        k: _str(v, f"{kind}.units.{k}", where)
        for k, v in _table(t.get("units", {}), f"{kind}.units", where).items()
    }
    for name in (*fields, *units):
        if name not in canonical:
            raise ConfigError(
                f"'{name}' is not a canonical {kind} column", path=where, field=f"{kind}.fields.{name}"
            )
    for name, unit in units.items():
        if kind == "ledger" and name == "tokens" and unit in LEDGER_AMOUNT_UNITS:
            continue  # a ledger's amounts in tokens (default) or in US dollars (micro-dollars)
        allowed_units = TS_UNITS if name == "ts" else DURATION_UNITS
        strftime = name == "ts" and "%" in unit  # a format of its own: timestamps.is_format
        if name not in ("ts", "latency_ms", "ttft_ms") or (unit not in allowed_units and not strftime):
            raise ConfigError(
                f"unit '{unit}' not allowed (ts: {', '.join(TS_UNITS)} or a strftime format; latency_ms, ttft_ms: {', '.join(DURATION_UNITS)}; ledger tokens: {', '.join(LEDGER_AMOUNT_UNITS)})",
                path=where,
                field=f"{kind}.units.{name}",
            )
    preset = t.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(
            f"unknown preset '{preset}' (known: {', '.join(PRESETS)})", path=where, field=f"{kind}.preset"
        )
    fmt = t.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(
            f"unknown format '{fmt}' (known: {', '.join(FORMATS)})", path=where, field=f"{kind}.format"
        )
    offset = _source_duration(t, kind, "clock_offset", "0s", where)
    kinds = {
        k.strip().lower(): _str(v, f"{kind}.kinds.{k}", where)
        for k, v in _table(t.get("kinds", {}), f"{kind}.kinds", where).items()
    }
    if kinds and kind != "ledger":
        raise ConfigError("only the ledger's entry kinds are mapped", path=where, field=f"{kind}.kinds")
    for name, target in kinds.items():
        if target not in LEDGER_KINDS:
            raise ConfigError(
                f"'{target}' is not a ledger kind ({', '.join(LEDGER_KINDS)})",
                path=where,
                field=f"{kind}.kinds.{name}",
            )
    log_format = t.get("log_format")
    encoding = t.get("encoding")
    if encoding is not None:
        encoding = _str(encoding, f"{kind}.encoding", where)
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(
                f"unknown encoding '{encoding}'", path=where, field=f"{kind}.encoding"
            ) from None
    return SourceConfig(
        fields=fields,
        units=units,
        clock_offset=offset,
        format=fmt,
        log_format=None if log_format is None else _str(log_format, f"{kind}.log_format", where),
        encoding=encoding,
        kinds=kinds,
        preset=preset,
    )


def _sla(t: dict[str, Any], where: str) -> SlaSettings:
    """[sla]: thresholds as exact decimals in (0, 1], percents 0-100, the accounts file next to the config."""
    allowed = {f.name for f in dataclasses.fields(SlaSettings)}
    for key in t:
        if key not in allowed:
            raise ConfigError(
                f"unknown key (known: {', '.join(sorted(allowed))})", path=where, field=f"sla.{key}"
            )

    def fraction(v: Any, name: str) -> Decimal:
        d = _coerce(v, Decimal, name, where)
        if not (d.is_finite() and 0 < d <= 1):
            raise ConfigError(
                f"bad value {v!r} (expected an availability between 0 and 1)", path=where, field=name
            )
        return d  # type: ignore[no-any-return]

    kw: dict[str, Any] = {}
    if "target" in t:
        kw["target"] = fraction(t["target"], "sla.target")
    if "credits" in t:
        rows = t["credits"]
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 2 for r in rows):
            raise ConfigError(
                "must be a list of [availability, percent] pairs", path=where, field="sla.credits"
            )
        credits = []
        for i, (below, pct) in enumerate(rows):
            name = f"sla.credits[{i}]"
            if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
                raise ConfigError(f"bad percent {pct!r} (expected an integer 0-100)", path=where, field=name)
            credits.append((fraction(below, name), pct))
        if len({b for b, _ in credits}) != len(credits):
            raise ConfigError("two credits have the same threshold", path=where, field="sla.credits")
        kw["credits"] = tuple(sorted(credits, reverse=True))
    if "accounts" in t:
        path = Path(_str(t["accounts"], "sla.accounts", where))
        if not path.is_absolute() and where != "<config>":
            path = Path(where).parent / path
        kw["accounts"] = path
    if "tiers" in t:
        kw["tiers"] = _coerce(t["tiers"], tuple[str, ...], "sla.tiers", where)
    if "window" in t:
        window = _str(t["window"], "sla.window", where)
        if window not in tuple(SlaWindow):
            known = ", ".join(w.value for w in SlaWindow)
            raise ConfigError(f"unknown window '{window}' (known: {known})", path=where, field="sla.window")
        kw["window"] = SlaWindow(window)
    if "wrong_429" in t:
        kw["wrong_429"] = _coerce(t["wrong_429"], bool, "sla.wrong_429", where)
    return SlaSettings(**kw)


def _source_duration(t: dict[str, Any], kind: str, key: str, default: str, where: str) -> timedelta:
    name = f"{kind}.{key}"
    try:
        return parse_duration(_str(t.get(key, default), name, where), where=name)
    except ConfigError as e:
        raise ConfigError(e.message, path=where, field=e.field) from None


def _str(v: Any, name: str, where: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"must be a string, got {type(v).__name__}", path=where, field=name)
    return v


def _dataclass(cls: type[Any], t: dict[str, Any], name: str, where: str) -> Any:
    hints = get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kw: dict[str, Any] = {}
    for key, value in t.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key (known: {', '.join(sorted(fields))})", path=where, field=f"{name}.{key}"
            )
        kw[key] = _coerce(value, hints[key], f"{name}.{key}", where)
    return cls(**kw)


def _coerce(value: Any, hint: Any, name: str, where: str) -> Any:
    """Turn a TOML value into the field's declared type, or raise naming the key."""
    text = str(hint)
    try:
        if hint is timedelta:
            return (
                parse_duration(value, where=name)
                if isinstance(value, str)
                else timedelta(seconds=float(value))
            )
        if hint is Decimal or text == "decimal.Decimal | None":
            if isinstance(value, bool):
                raise TypeError
            return Decimal(str(value))
        if hint is Fraction or text == "fractions.Fraction | None":
            # Exact: "1/10", "0.125", 3; a TOML float through its decimal text (0.1 is 1/10).
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError
            return Fraction(str(value).strip())
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError
            return float(value)
        if text.startswith("tuple[int"):
            if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise TypeError
            return tuple(value)
        if text.startswith("tuple[str"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
        if text.startswith("tuple[tuple"):  # slo alerts: [[name, severity, long, short, factor], ...]
            if not isinstance(value, list):
                raise TypeError
            return tuple(
                (
                    str(a[0]),
                    str(a[1]),
                    parse_duration(a[2], where=name),
                    parse_duration(a[3], where=name),
                    float(a[4]),
                )
                for a in value
            )
    except ConfigError as e:
        raise ConfigError(e.message, path=where, field=name) from None
    except (TypeError, ValueError, IndexError, InvalidOperation, ZeroDivisionError):
        raise ConfigError(f"bad value {value!r} (expected {text})", path=where, field=name) from None
    return value


def _validate(s: Settings, where: str) -> None:
    checks: list[tuple[bool, str, str]] = [
        (0 < s.slo.target < 1, "slo.target", "must be between 0 and 1"),
        (s.bursts.window > timedelta(0), "bursts.window", "must be positive"),
        (s.bursts.max_slice_values >= 1, "bursts.max_slice_values", "must be at least 1"),
        (s.latency.window > timedelta(0), "latency.window", "must be positive"),
        (s.reconcile.tolerance_tokens >= 0, "reconcile.tolerance_tokens", "must be >= 0"),
        (0 <= s.bursts.rate_floor <= 1, "bursts.rate_floor", "must be between 0 and 1"),
        (
            not s.sla.tiers
            or s.sla.accounts is not None
            or (s.limits is not None and s.limits.accounts is not None),
            "sla.tiers",
            "tiers are read from an accounts file: set sla.accounts (or [limits] accounts)",
        ),
        (s.postmortem.timeline_rows >= 1, "postmortem.timeline_rows", "must be at least 1"),
        (s.postmortem.markdown_timeline_rows >= 1, "postmortem.markdown_timeline_rows", "must be at least 1"),
        (s.postmortem.background_ratio > 0, "postmortem.background_ratio", "must be positive"),
        (s.postmortem.isolation_gap > timedelta(0), "postmortem.isolation_gap", "must be positive"),
        (s.postmortem.slo_window > timedelta(0), "postmortem.slo_window", "must be positive"),
    ]
    for model, w in s.weights.items():
        parts = ("prompt", "completion", "cached", "image")
        checks.append((all(w.of(p) >= 0 for p in parts), f"weights.{model}", "weights must be >= 0"))
    checks.append(
        (s.reconcile.rounding in ROUNDINGS, "reconcile.rounding", f"must be one of {', '.join(ROUNDINGS)}")
    )
    for ok, name, msg in checks:
        if not ok:
            raise ConfigError(msg, path=where, field=name)
