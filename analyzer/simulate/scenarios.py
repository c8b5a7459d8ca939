"""The story of each scenario: when and where incidents and ledger faults are injected.

Times are fixed clock times on the launch day (the start date). Every window is clipped to the simulated
span; one left shorter than ten minutes is dropped, so what is injected is exactly what truth lists.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any

from analyzer.simulate.spec import CHAT_MODELS, LONG_CONTEXT_MAX, NEW_MODEL, SimSpec

MIN_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class Window:
    """A half-open [start, end) stretch of time."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class BurstPlan:
    """5xx injected on a share of the requests of one scope."""

    window: Window
    column: str | None  # None: global
    value: str | None
    error_rate: float
    statuses: tuple[int, ...]
    charged_share: float  # share of its failures the billing system still deducted

    @property
    def scope(self) -> str:
        """The scope string, as findings.py spells it."""
        return "global" if self.column is None else f"{self.column}={self.value}"


@dataclass(frozen=True)
class SpikePlan:
    """Latency multiplied by `factor` in one scope, ramped over the first and last 30 seconds."""

    window: Window
    column: str | None
    value: str | None
    factor: float

    @property
    def scope(self) -> str:
        """The scope string, as findings.py spells it."""
        return "global" if self.column is None else f"{self.column}={self.value}"


@dataclass(frozen=True)
class Story:
    """Everything a scenario injects, already clipped to the span."""

    launch_at: datetime
    bursts: tuple[BurstPlan, ...]
    spikes: tuple[SpikePlan, ...]
    token_bug: Window | None  # NEW_MODEL charged prompt + 3 x completion
    token_multiplier: int
    sync: Window | None  # ledger lags and double-writes
    sync_lag_s: int
    sync_duplicate_share: float
    sync_unbilled_share: float
    prompt_cap_model: str | None  # long prompts of this model billed at most `prompt_cap` tokens
    prompt_cap: int
    unbilled_share: float  # served requests never billed, outside the sync window
    orphan_share: float  # orphan deductions per deduction
    wipes: int
    balance_breaks: int
    support_refunds: int
    events: tuple[tuple[datetime, str, str], ...]  # (ts, kind, title), inside the span
    limiter_bug: Window | None = None  # NEW_MODEL admitted by the legacy limiter
    limiter_cost: int = LONG_CONTEXT_MAX  # tokens the legacy limiter charges per NEW_MODEL request
    storms: tuple[tuple[datetime, str], ...] = ()  # (minute, limit): batch storms over RPM or TPM
    # With SimSpec.cached: served requests of `full_price_model` with cached tokens billed at the full
    # prompt price, and of `twice_model` with reasoning tokens added again, each in its window.
    full_price: Window | None = None
    full_price_model: str | None = None
    twice: Window | None = None
    twice_model: str | None = None
    # The remedy scenario: monthly quotas (no end-of-day resets), every account's quota reset while the
    # token bug still runs (a few accounts missed), a second reset of some accounts by support, top-ups
    # that make a reset restore less than was owed, and enterprise accounts with an SLA.
    daily_resets: bool = True
    remedy_at: datetime | None = None  # every account's reset, spread over REMEDY_SPREAD from here
    remedy_missed: int = 0  # accounts the reset job missed (no reset at all)
    second_reset_at: datetime | None = None  # support resets some accounts owed after the remedy again
    top_ups: int = 0  # accounts topped up above their quota before the remedy (it restores less than owed)
    enterprise_every: int = 0  # every n-th account is on the enterprise tier, with an SLA (0: none)


REMEDY_SPREAD = timedelta(seconds=5)


def _at(day: datetime, hh: int, mm: int) -> datetime:
    return datetime.combine(day.date(), time(hh, mm), tzinfo=day.tzinfo)


def _clip(spec: SimSpec, start: datetime, end: datetime) -> Window | None:
    lo, hi = max(start, spec.start), min(end, spec.end)
    return Window(lo, hi) if hi - lo >= MIN_WINDOW else None


def story(spec: SimSpec) -> Story:
    """The injections of `spec.scenario`, clipped to the span of `spec`."""
    if spec.scenario == "remedy":
        return _remedy(spec)
    return _story(spec)


def _remedy(spec: SimSpec) -> Story:
    """The launch day; every quota reset at 11:20 as the remedy while the token bug runs to the 11:30 hotfix."""
    base = _story(replace(spec, scenario="launch"))
    day = spec.start
    remedy_at, second_at = _at(day, 11, 20), _at(day, 14, 0)

    def inside(t: datetime) -> bool:
        return spec.start <= t < spec.end

    notes = (
        (remedy_at, "remedy", "Every account's monthly quota reset to 100%"),
        (second_at, "remedy", "Support reset the quota of accounts still overcharged"),
    )
    return replace(
        base,
        events=tuple(sorted((*base.events, *(e for e in notes if inside(e[0]))))),
        daily_resets=False,
        remedy_at=remedy_at if inside(remedy_at) else None,
        remedy_missed=3,
        second_reset_at=second_at if inside(second_at) else None,
        top_ups=2,
        enterprise_every=10,
    )


def _story(spec: SimSpec) -> Story:
    day = spec.start
    launch_at = _at(day, 9, 0)
    if spec.scenario == "quiet":
        quiet_events: tuple[tuple[datetime, str, str], ...] = (
            (launch_at, "launch", f"{NEW_MODEL} goes live"),
        )
        return Story(
            launch_at=launch_at,
            bursts=(),
            spikes=(),
            token_bug=None,
            token_multiplier=1,
            sync=None,
            sync_lag_s=0,
            sync_duplicate_share=0.0,
            sync_unbilled_share=0.0,
            prompt_cap_model=None,
            prompt_cap=0,
            unbilled_share=0.0,
            orphan_share=0.0,
            wipes=0,
            balance_breaks=0,
            support_refunds=0,
            events=tuple(e for e in quiet_events if spec.start <= e[0] < spec.end),
            storms=_storm_slots(day),
        )
    bursts = [
        (_at(day, 9, 40), _at(day, 10, 5), "model", NEW_MODEL, 0.35, 0.5),
        (_at(day, 13, 10), _at(day, 13, 35), "region", "eu-west-1", 0.22, 0.0),
        (_at(day, 16, 20), _at(day, 16, 35), "model", NEW_MODEL, 0.25, 0.5),
    ]
    spikes = [
        (_at(day, 10, 30), _at(day, 10, 50), "model", NEW_MODEL, 3.5),
        (_at(day, 14, 20), _at(day, 14, 40), None, None, 3.0),
    ]
    burst_plans = tuple(
        BurstPlan(w, col, val, rate, (502, 504), charged)
        for s, e, col, val, rate, charged in bursts
        if (w := _clip(spec, s, e)) is not None
    )
    spike_plans = tuple(
        SpikePlan(w, col, val, f) for s, e, col, val, f in spikes if (w := _clip(spec, s, e)) is not None
    )
    # Operator notes trail the symptoms by a few minutes, as real ones do.
    events = (
        (launch_at, "launch", f"{NEW_MODEL} goes live"),
        (_at(day, 9, 47), "incident", f"Incident opened: elevated 502/504 on {NEW_MODEL}"),
        (
            _at(day, 10, 14),
            "statement",
            f"Public statement: {NEW_MODEL} availability degraded, fix in progress",
        ),
        (_at(day, 10, 58), "incident", f"{NEW_MODEL} responses slow, upstream pool-e saturated"),
        (_at(day, 11, 30), "hotfix", f"Hotfix deployed: {NEW_MODEL} completion token accounting"),
        (_at(day, 12, 41), "incident", "Billing sync backlog drained"),
        (_at(day, 13, 16), "incident", "eu-west-1 gateway returning 502/504"),
        (_at(day, 13, 44), "recovery", "eu-west-1 recovered"),
        (_at(day, 16, 41), "recovery", f"{NEW_MODEL} recovered, incident closed"),
        (_at(day, 9, 31), "incident", f"Customers report 429s on {NEW_MODEL} far under their limits"),
        (_at(day, 17, 40), "hotfix", f"{NEW_MODEL} rate limiting moved off the legacy limiter"),
    )
    usage_bugs: dict[str, Any] = {}
    if spec.cached:
        usage_bugs = {
            "full_price": _clip(spec, _at(day, 14, 0), _at(day, 15, 0)),
            "full_price_model": CHAT_MODELS[0],
            "twice": _clip(spec, _at(day, 15, 0), _at(day, 16, 0)),
            "twice_model": NEW_MODEL,
        }
    return Story(
        **usage_bugs,
        launch_at=launch_at,
        bursts=burst_plans,
        spikes=spike_plans,
        token_bug=_clip(spec, launch_at, _at(day, 11, 30)),
        token_multiplier=3,
        sync=_clip(spec, *_sync_window(spec)),
        sync_lag_s=240,
        sync_duplicate_share=0.05,
        sync_unbilled_share=0.02,
        prompt_cap_model="kimi-k2.5",
        prompt_cap=131_072,
        unbilled_share=0.001,
        orphan_share=0.0005,
        wipes=3,
        balance_breaks=2,
        support_refunds=5,
        events=tuple(e for e in sorted(events) if spec.start <= e[0] < spec.end),
        limiter_bug=_clip(spec, _at(day, 9, 4), _at(day, 17, 40)),
        storms=_storm_slots(day),
    )


def _storm_slots(day: datetime) -> tuple[tuple[datetime, str], ...]:
    """An RPM storm at hh:10 and a TPM storm at hh:40 of every other hour from 07:00."""
    return tuple(
        (_at(day, hh, mm), limit) for hh in range(7, 24, 2) for mm, limit in ((10, "rpm"), (40, "tpm"))
    )


def _sync_window(spec: SimSpec) -> tuple[datetime, datetime]:
    """The billing sync failure: 12:00-12:30 unless the spec asks for another stretch of the day."""
    day = spec.start
    if spec.sync_window is None:
        return _at(day, 12, 0), _at(day, 12, 30)
    (a, b) = spec.sync_window
    return _at(day, a.hour, a.minute), _at(day, b.hour, b.minute)
