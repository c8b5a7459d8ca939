"""What the analyses find: the typed records detection and reconciliation return and the report renders.

These are the contract between `detect/`, `reconcile/` and `report/`. Times are aware
UTC datetimes; windows are half-open [start, end). Money and tokens are ints. A `scope` is "global" or
"<column>=<value>" (e.g. "region=eu-west-1").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

import polars as pl

from analyzer.notes import Note

if TYPE_CHECKING:
    from analyzer.reconcile.remedy import Remedy

GLOBAL: Final = "global"


# --- detection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contributor:
    """One slice value's part in a burst: its share of the errors against its share of the traffic."""

    column: str
    value: str
    errors: int
    requests: int
    error_share: float
    traffic_share: float


@dataclass(frozen=True)
class Burst:
    """A stretch of windows whose 5xx rate stood out from the baseline."""

    start: datetime
    end: datetime
    peak_at: datetime
    peak_error_rate: float
    requests: int
    errors: int
    status_counts: dict[str, int]  # status code as text -> count, over the burst (e.g. {"502": 812})
    accounts_affected: int
    scope: str
    top: tuple[Contributor, ...] = ()
    baseline_error_rate: float = 0.0
    severity: str | None = None  # the burn-rate alert that overlapped it, if any ("page"/"ticket")


@dataclass(frozen=True)
class LatencySpike:
    """A stretch of windows whose latency stood out from what the request sizes lead one to expect."""

    start: datetime
    end: datetime
    peak_at: datetime
    baseline_p95_ms: float  # peak_p95_ms / factor: the p95 the peak window's requests were expected to have
    peak_p95_ms: float
    peak_p99_ms: float
    factor: float  # typical slowdown of the peak window against what its requests' models and sizes take
    scope: str
    requests: int = 0


@dataclass(frozen=True)
class AlertFiring:
    """One interval during which a burn-rate alert would have been firing."""

    fired_at: datetime
    resolved_at: datetime | None  # None: still firing when the logs end


@dataclass(frozen=True)
class BurnRateAlert:
    """The replay of one multi-window burn-rate alert over the logs."""

    name: str
    severity: str  # "page" or "ticket"
    long_window: timedelta
    short_window: timedelta
    burn_rate: float
    evaluable: bool  # False when the long window is longer than the data
    firings: tuple[AlertFiring, ...] = ()


@dataclass(frozen=True)
class LogGap:
    """A stretch with no gateway lines where traffic was expected."""

    start: datetime
    end: datetime
    expected_requests: float


@dataclass(frozen=True)
class Detection:
    """Everything detection found, plus the per-window series the charts draw."""

    bursts: tuple[Burst, ...]
    spikes: tuple[LatencySpike, ...]
    alerts: tuple[BurnRateAlert, ...]
    gaps: tuple[LogGap, ...]
    # One row per window: window (datetime), requests, errors, error_rate, p95_ms, p99_ms.
    series: pl.DataFrame
    quantile_method: str = "exact"  # or "approximate"
    notes: tuple[Note, ...] = ()  # e.g. NoteCode.NO_LATENCY (said by report/notes.py)
    # Distinct accounts with at least one 5xx inside any burst (bursts overlap in accounts, so not a sum).
    accounts_hit: int = 0
    # One row per scope (global, then each slice value) over the whole span: scope, requests, errors,
    # error_rate, p95_ms (detect/scopes.py). Empty when nothing was analyzed.
    scopes: pl.DataFrame = field(default_factory=pl.DataFrame)


# --- reconciliation --------------------------------------------------------------------------


class Finding(StrEnum):
    """What reconciliation says of a ledger deduction, a gateway request or a balance."""

    # Kinds of a deduction, in the order they are checked; every deduction gets exactly one.
    DUPLICATE = "duplicate"
    ORPHAN = "orphan"
    IN_LOG_GAP = "in_log_gap"  # its request id not in the logs, at a time inside a detected log gap
    OUT_OF_SPAN = "out_of_span"
    FAILED_CHARGED = "failed_charged"
    # Overcharges equal to what a known wrong billing rule charges (reconcile/charges.py).
    CACHED_AT_FULL_PRICE = "cached_at_full_price"
    REASONING_COUNTED_TWICE = "reasoning_counted_twice"
    OVERCHARGE = "overcharge"
    UNDERCHARGE = "undercharge"
    OK = "ok"
    # Kinds that are not a deduction's: found on requests or on balances.
    UNBILLED = "unbilled"
    BALANCE_BREAK = "balance_break"


DEDUCTION_KINDS: Final[tuple[str, ...]] = (
    Finding.DUPLICATE,
    Finding.ORPHAN,
    Finding.IN_LOG_GAP,
    Finding.OUT_OF_SPAN,
    Finding.FAILED_CHARGED,
    Finding.CACHED_AT_FULL_PRICE,
    Finding.REASONING_COUNTED_TWICE,
    Finding.OVERCHARGE,
    Finding.UNDERCHARGE,
    Finding.OK,
)
# Deduction kinds charged more than the request served; each is refunded the excess.
OVERCHARGE_KINDS: Final[tuple[str, ...]] = (
    Finding.CACHED_AT_FULL_PRICE,
    Finding.REASONING_COUNTED_TWICE,
    Finding.OVERCHARGE,
)
OTHER_FINDINGS: Final[tuple[str, ...]] = (Finding.UNBILLED, Finding.BALANCE_BREAK)
# Deduction kinds that charged more than the request was worth (they open the ledger's part of the incident).
MISMATCH_KINDS: Final[tuple[str, ...]] = (*OVERCHARGE_KINDS, Finding.DUPLICATE, Finding.FAILED_CHARGED)


class RequestBucket(StrEnum):
    """The buckets every gateway request falls in exactly once."""

    CHARGED_OK = "charged_ok"
    OVERCHARGED = "overcharged"
    UNDERCHARGED = "undercharged"
    CHARGED_ON_FAILURE = "charged_on_failure"
    UNBILLED = "unbilled"
    FAILED_FREE = "failed_free"


REQUEST_BUCKETS: Final[tuple[str, ...]] = tuple(RequestBucket)

# Columns of `Reconciliation.spans`: first and last time each finding kind occurred per model
# (with `schema.KIND` and `schema.MODEL`).
FIRST_AT: Final = "first_at"
LAST_AT: Final = "last_at"
COUNT: Final = "count"
RESET_ACCOUNTS: Final = "accounts"  # per quota reset time: the accounts reset then
# Columns of `Reconciliation.accounts` read outside reconcile/ (with `schema.ACCOUNT_ID`).
REFUND_TOKENS: Final = "refund_tokens"
TOKENS_DEDUCTED: Final = "tokens_deducted"
# Columns of `Detection.series`, one row per window.
SERIES_WINDOW: Final = "window"
SERIES_REQUESTS: Final = "requests"
SERIES_ERRORS: Final = "errors"
SERIES_ERROR_RATE: Final = "error_rate"
SERIES_P95: Final = "p95_ms"
SERIES_P99: Final = "p99_ms"


@dataclass(frozen=True)
class KindTotal:
    """How many findings of a kind, the tokens they deducted and the tokens to refund."""

    count: int
    tokens: int
    refund_tokens: int


class Pattern(StrEnum):
    """The likely causes `reconcile.patterns` looks for behind a group of findings."""

    COMPLETION_MULTIPLIED = "completion_multiplied"
    PROMPT_MULTIPLIED = "prompt_multiplied"
    CHARGE_MULTIPLIED = "charge_multiplied"
    DUPLICATE_BURST = "duplicate_burst"
    FAILED_CHARGED_IN_BURST = "failed_charged_in_burst"
    BALANCE_WIPED = "balance_wiped"
    # Runs of deductions a known wrong billing rule explains (named as their finding kinds).
    CACHED_AT_FULL_PRICE = "cached_at_full_price"
    REASONING_COUNTED_TWICE = "reasoning_counted_twice"


@dataclass(frozen=True)
class FaultPattern:
    """A likely cause behind a group of findings, with its window and how much it explains."""

    kind: str  # a Pattern
    model: str | None
    start: datetime
    end: datetime
    entries: int  # entries this pattern explains
    share: float  # of the entries of its finding kind in that model and window
    description: str  # "amount = prompt + 3 × completion for 99.8% of overcharged kimi-k2.6 entries"
    multiplier: int | None = None
    rate_per_hour: float | None = None  # a rate-based fault (a bunch): its entries per hour over its window


@dataclass(frozen=True)
class Invariant:
    """A total that must add up, checked on every run."""

    name: str
    holds: bool
    detail: str


@dataclass(frozen=True)
class Reconciliation:
    """The ledger checked against the gateway."""

    deductions: int
    tokens_deducted: int
    tokens_expected: int
    refund_tokens_total: int
    by_kind: dict[str, KindTotal]  # every DEDUCTION_KINDS and OTHER_FINDINGS key, zero when absent
    request_buckets: dict[str, int]  # every REQUEST_BUCKETS key
    # One row per flagged deduction (every kind but ok) and per unbilled request / balance break:
    # entry_id, ts, account_id, request_id, model, kind, tokens, expected, refund_tokens, balance_wiped.
    findings: pl.DataFrame
    # One row per account with a deduction or a finding: account_id, deductions, tokens_deducted,
    # tokens_expected, refund_tokens, already_refunded, one <kind> count column per kind,
    # first_bad_at, last_bad_at (and cost columns when prices are set). Sorted by refund desc, id.
    accounts: pl.DataFrame
    # First and last time each finding kind occurred per model: kind, model, first_at, last_at, count.
    spans: pl.DataFrame
    patterns: tuple[FaultPattern, ...]
    invariants: tuple[Invariant, ...]
    resets: tuple[datetime, ...] = ()  # quota resets seen in the ledger (distinct times)
    reset_accounts: tuple[int, ...] = ()  # accounts reset at each of `resets`
    notes: tuple[Note, ...] = ()
    refund_usd: str | None = None  # Decimal as text, when prices are configured
    remedy: Remedy | None = None  # the resets against what each account was owed (reconcile/remedy.py)


@dataclass(frozen=True)
class InputReport:
    """What was read from one input file."""

    kind: str  # gateway | ledger | events
    path: str
    format: str
    compression: str  # none | gzip | zstd
    rows_read: int
    rows_rejected: int
    rejects_by_reason: dict[str, int]
    fields: dict[str, str | None] = field(default_factory=dict)  # canonical -> source field (None: absent)
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    preset: str | None = None  # the known record shape read (ingest/presets.py), if any
    amounts: str = "tokens"  # a ledger's unit of amounts: tokens, or usd (read as micro-dollars)

    @property
    def rows_analyzed(self) -> int:
        """Rows that passed into the analysis."""
        return self.rows_read - self.rows_rejected
