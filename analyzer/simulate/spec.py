"""What a simulation is asked for (`SimSpec`), what it gives back (`Simulation`), and the fixed catalogue.

The catalogue (models, regions, upstream pools, endpoints) is data, so the traffic model and the story
refer to names spelled once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction
from typing import Any, Final

import polars as pl

from analyzer.errors import ConfigError

SCENARIOS: Final = ("launch", "quiet", "remedy")
FORMATS: Final = ("jsonl", "csv", "parquet")
COMPRESSIONS: Final = ("gz", "zst", "none")
MAX_ACCOUNTS: Final = 99_999  # account ids have five digits

NEW_MODEL: Final = "kimi-k2.6"
# Existing chat models and their share of non-embedding, non-launch traffic.
CHAT_MODELS: Final = ("kimi-k2.5", "kimi-k2-turbo", "moonshot-v1-128k")
CHAT_MODEL_SHARES: Final = (0.5, 0.3, 0.2)
EMBED_MODEL: Final = "moonshot-embed-v1"
MODELS: Final = (NEW_MODEL, *CHAT_MODELS, EMBED_MODEL)
# Milliseconds per completion token while decoding, per model (same order as MODELS).
DECODE_MS: Final = (11.0, 9.0, 5.0, 14.0, 0.0)

ENDPOINTS: Final = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
REGIONS: Final = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1")
REGION_SHARES: Final = (0.40, 0.20, 0.25, 0.15)
# Upstream pool serving (model, region): index [model][region].
UPSTREAMS: Final = ("pool-a", "pool-b", "pool-c", "pool-d", "pool-e")
POOL_OF: Final = (
    (4, 4, 4, 4),  # kimi-k2.6 -> pool-e everywhere
    (0, 0, 1, 1),  # kimi-k2.5 -> pool-a in the US, pool-b in EU/AP
    (1, 1, 1, 1),  # kimi-k2-turbo -> pool-b
    (2, 2, 2, 2),  # moonshot-v1-128k -> pool-c
    (3, 3, 3, 3),  # embeddings -> pool-d
)

LONG_CONTEXT_MAX: Final = 262_144
DEFAULT_START: Final = datetime(2026, 4, 22, 6, 0, tzinfo=UTC)
# With `cached`: the price of a cached prompt token against an uncached one, for every model.
CACHED_WEIGHT: Final = Fraction(1, 10)
RESET_SPREAD_S: Final = 5  # a full quota reset writes every account's entry within this many seconds


@dataclass(frozen=True)
class SimSpec:
    """The arguments of one simulation; equal specs give byte-identical outputs."""

    scenario: str = "launch"
    seed: int = 7
    hours: float = 18.0
    rate: float = 1.0  # mean requests per second over the span
    accounts: int = 300
    format: str = "jsonl"
    compress: str = "gz"
    start: datetime = DEFAULT_START
    # Usage detail: cached and reasoning tokens in the gateway logs, cached tokens billed at
    # CACHED_WEIGHT (the weights are written to analyzer.toml), and in `launch` the two wrong
    # billing rules injected (cached at the full prompt price, reasoning counted twice).
    cached: bool = False
    # Launch scenario options (None: the default story). A billing sync failure over this stretch of the
    # start date instead of 12:00-12:30, and a full quota reset of every account at this time (written
    # over RESET_SPREAD_S seconds as tokens 0 with balance_after the new quota).
    sync_window: tuple[time, time] | None = None
    quota_reset: time | None = None

    @property
    def end(self) -> datetime:
        """The exclusive end of the simulated span."""
        return self.start + timedelta(seconds=self.seconds)

    @property
    def seconds(self) -> int:
        """Length of the span in whole seconds."""
        return int(round(self.hours * 3600))

    @property
    def requests(self) -> int:
        """Number of gateway requests the span holds."""
        return int(round(self.rate * self.seconds))


@dataclass(frozen=True)
class Simulation:
    """Canonical frames (schema.py dtypes) plus the ground truth of what was injected."""

    gateway: pl.DataFrame
    ledger: pl.DataFrame
    events: pl.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)
    accounts: pl.DataFrame = field(default_factory=pl.DataFrame)  # account_id, tier (accounts.csv)
    config: str = ""  # analyzer.toml beside the logs (the remedy scenario's SLA and prices), if any


def validate(spec: SimSpec) -> None:
    """Raise ConfigError naming the argument when the spec cannot be simulated."""
    checks: list[tuple[bool, str, str]] = [
        (
            spec.scenario in SCENARIOS,
            "scenario",
            f"unknown scenario '{spec.scenario}' (known: {', '.join(SCENARIOS)})",
        ),
        (isinstance(spec.seed, int) and spec.seed >= 0, "seed", "must be a non-negative integer"),
        (spec.hours > 0 and spec.seconds >= 60, "hours", "must cover at least one minute"),
        (spec.hours <= 24 * 31, "hours", "must be at most 744 (31 days)"),
        (spec.rate > 0, "rate", "must be positive"),
        (spec.requests <= 500_000_000, "rate", "rate x hours gives more than 500 million requests"),
        (1 <= spec.accounts <= MAX_ACCOUNTS, "accounts", f"must be between 1 and {MAX_ACCOUNTS}"),
        (spec.format in FORMATS, "format", f"unknown format '{spec.format}' (known: {', '.join(FORMATS)})"),
        (
            spec.compress in COMPRESSIONS,
            "compress",
            f"unknown compression '{spec.compress}' (known: {', '.join(COMPRESSIONS)})",
        ),
        (
            spec.start.tzinfo is not None and spec.start.utcoffset() == timedelta(0),
            "start",
            "must be an aware UTC datetime",
        ),
        (
            spec.sync_window is None or spec.sync_window[0] < spec.sync_window[1],
            "sync_window",
            "must start before it ends",
        ),
    ]
    for ok, name, message in checks:
        if not ok:
            raise ConfigError(message, field=name)


def iso(t: datetime) -> str:
    """ISO 8601 UTC with a trailing Z, whole seconds unless the time has microseconds."""
    text = t.astimezone(UTC).replace(tzinfo=None).isoformat()
    return f"{text}Z"


def to_us(t: datetime) -> int:
    """Microseconds since the Unix epoch."""
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))
