"""The `[limits]` section: each account's tier and each tier's limits, checked when the config is read.

[limits]
accounts = "accounts.csv"      # account_id,tier; resolved relative to the config file
default_tier = "tier1"         # accounts the file does not list
day_reset = "00:00"            # UTC time of the daily (TPD) reset
per_model = false              # limits per (account, model) instead of per account
count_rejected = false         # rejected requests count against the limits too
tolerance = 0.0                # a 429 is wrong only when usage + 1 <= limit x (1 - tolerance)
timestamp = "arrival"          # or "completion": ts is when the request ended (arrival = ts - latency)
[limits.tiers.tier1]           # 0 means unlimited
concurrency = 50
rpm = 200
tpm = 2000000
tpd = 0
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from analyzer.errors import ConfigError


class Limit(StrEnum):
    """What a limiter counts, in the order the report lists them."""

    CONCURRENCY = "concurrency"
    RPM = "rpm"
    TPM = "tpm"
    TPD = "tpd"


class Stamp(StrEnum):
    """What a gateway line's ts marks."""

    ARRIVAL = "arrival"
    COMPLETION = "completion"


ACCOUNTS_HEADER: Final = ("account_id", "tier")
_HHMM: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_KEYS: Final = frozenset(
    {
        "accounts",
        "default_tier",
        "day_reset",
        "per_model",
        "count_rejected",
        "tolerance",
        "timestamp",
        "tiers",
    }
)


@dataclass(frozen=True)
class Tier:
    """One tier's limits; 0 is unlimited."""

    concurrency: int = 0
    rpm: int = 0
    tpm: int = 0
    tpd: int = 0

    def limit(self, which: Limit) -> int:
        """The value of one limit."""
        value: int = getattr(self, which.value)
        return value


@dataclass(frozen=True)
class LimitSettings:
    """The configured limits and how the replay counts."""

    tiers: Mapping[str, Tier] = field(default_factory=dict)
    # account_id -> tier, from the accounts file (not echoed in the report's settings)
    account_tiers: Mapping[str, str] = field(default_factory=dict, metadata={"plain": False})
    accounts: str | None = None  # the accounts file as resolved
    default_tier: str | None = None
    day_reset: timedelta = timedelta(0)  # after midnight UTC
    per_model: bool = False
    count_rejected: bool = False
    tolerance: float = 0.0
    timestamp: Stamp | None = None  # None: by the gateway format (ingest.formats.COMPLETION_STAMPED)


def limits_from_table(t: Mapping[str, Any], where: str) -> LimitSettings:
    """Build and check LimitSettings from the parsed `[limits]` table of the config file `where`."""
    for key in t:
        if key not in _KEYS:
            raise ConfigError(
                f"unknown key (known: {', '.join(sorted(_KEYS))})", path=where, field=f"limits.{key}"
            )
    tiers_raw = t.get("tiers", {})
    if not isinstance(tiers_raw, dict) or not tiers_raw:
        raise ConfigError("needs at least one [limits.tiers.NAME] table", path=where, field="limits.tiers")
    tiers = {name: _tier(name, value, where) for name, value in sorted(tiers_raw.items())}
    default = t.get("default_tier")
    if default is not None and (not isinstance(default, str) or default not in tiers):
        raise ConfigError(_unknown(default, tiers), path=where, field="limits.default_tier")
    if default is None and "accounts" not in t:
        if len(tiers) > 1:
            raise ConfigError(
                "set default_tier or an accounts file (which tier is each account?)",
                path=where,
                field="limits.default_tier",
            )
        default = next(iter(tiers))
    accounts_path, account_tiers = None, {}
    if "accounts" in t:
        if not isinstance(t["accounts"], str):
            raise ConfigError("must be a path string", path=where, field="limits.accounts")
        accounts_path = _relative(t["accounts"], where)
        account_tiers = _read_accounts(accounts_path, tiers)
    tolerance = t.get("tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 <= tolerance < 1:
        raise ConfigError(
            f"must be a number in [0, 1), got {tolerance!r}", path=where, field="limits.tolerance"
        )
    stamp = t.get("timestamp")
    if stamp is not None and stamp not in tuple(Stamp):
        known = ", ".join(Stamp)
        raise ConfigError(f"unknown value {stamp!r} (known: {known})", path=where, field="limits.timestamp")
    return LimitSettings(
        tiers=tiers,
        account_tiers=account_tiers,
        accounts=None if accounts_path is None else str(accounts_path),
        default_tier=default,
        day_reset=_day_reset(t.get("day_reset", "00:00"), where),
        per_model=_bool(t, "per_model", where),
        count_rejected=_bool(t, "count_rejected", where),
        tolerance=float(tolerance),
        timestamp=None if stamp is None else Stamp(stamp),
    )


def _unknown(name: object, tiers: Mapping[str, Tier]) -> str:
    return f"unknown tier {name!r} (tiers: {', '.join(tiers)})"


def _tier(name: str, value: Any, where: str) -> Tier:
    key = f"limits.tiers.{name}"
    if not isinstance(value, dict):
        raise ConfigError("must be a table", path=where, field=key)
    known = tuple(Limit)
    for k, v in value.items():
        if k not in known:
            raise ConfigError(f"unknown key (known: {', '.join(known)})", path=where, field=f"{key}.{k}")
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"must be a whole number, got {v!r}", path=where, field=f"{key}.{k}")
        if v < 0:
            raise ConfigError(f"must be >= 0 (0 is unlimited), got {v}", path=where, field=f"{key}.{k}")
    return Tier(**value)


def _bool(t: Mapping[str, Any], key: str, where: str) -> bool:
    value = t.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", path=where, field=f"limits.{key}")
    return value


def _day_reset(value: Any, where: str) -> timedelta:
    m = _HHMM.match(value) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f"must be a UTC time HH:MM, got {value!r}", path=where, field="limits.day_reset")
    return timedelta(hours=int(m.group(1)), minutes=int(m.group(2)))


def _relative(path: str, where: str) -> Path:
    p = Path(path)
    config = Path(where)
    return p if p.is_absolute() or not config.is_file() else config.parent / p


def _read_accounts(path: Path, tiers: Mapping[str, Tier]) -> dict[str, str]:
    """account_id -> tier from a small CSV with the header account_id,tier."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise ConfigError("accounts file not found", path=str(path), field="limits.accounts") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the accounts file: {e}", path=str(path), field="limits.accounts"
        ) from None
    if not rows or tuple(c.strip() for c in rows[0]) != ACCOUNTS_HEADER:
        raise ConfigError("the first line must be account_id,tier", path=str(path), line=1)
    out: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise ConfigError(f"expected 2 cells, got {len(row)}", path=str(path), line=number)
        account, tier = row[0].strip(), row[1].strip()
        if tier not in tiers:
            raise ConfigError(_unknown(tier, tiers), path=str(path), line=number, field="tier")
        if account in out and out[account] != tier:
            raise ConfigError(
                f"account {account} is listed twice with different tiers", path=str(path), line=number
            )
        out[account] = tier
    return out
