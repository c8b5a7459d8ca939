"""Two JSON reports of the same schema side by side: what changed from a base day to a new one.

    compare(base, new)          -> Comparison   the reports' dicts in, plain data out
    parse_rules(texts)          -> Rule list    `--fail-on` rules of `analyzer compare`, checked up front
    held_rules(comparison, rs)  -> Held list    the rules that hold

Bursts and spikes are matched by scope and overlap in time; a base report of an earlier day is first
moved forward by the whole days between the two reports' starts, so yesterday's 09:40 burst matches
today's 09:45 one. Every value is what the JSON report holds (no sentence is written here); the report
`rate_limits` section is read when both reports have one, else it is null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final

from analyzer.errors import ConfigError, InputError
from analyzer.report.model import SCHEMA_VERSION

GLOBAL: Final = "global"
# Counts of the report's `rate_limits` section (issue 22) compared when both reports have them.
RATE_LIMIT_KEYS: Final = ("throttled", "justified", "ambiguous", "wrong", "admitted_over_limit")
LEDGER_TOTALS: Final = ("refund_tokens_total", "accounts_owed", "deductions")

Doc = Mapping[str, Any]


@dataclass(frozen=True)
class Comparison:
    """What changed; each field is one key of the JSON comparison (a contract), in JSON-able values."""

    schema_version: int
    base: dict[str, Any]  # what the base report covered: path, first_ts, last_ts, requests, ...
    new: dict[str, Any]  # the same for the new report, with days_after_base
    new_bursts: list[dict[str, Any]]  # bursts of the new report no base burst of their scope overlaps
    gone_bursts: list[dict[str, Any]]  # bursts of the base report no new burst of their scope overlaps
    new_spikes: list[dict[str, Any]]
    gone_spikes: list[dict[str, Any]]
    slices: list[dict[str, Any]]  # per scope: base and new totals (or null), relative changes
    ledger: dict[str, Any] | None  # null unless both reports have a ledger
    rate_limits: dict[str, Any] | None  # null unless both reports have rate_limits


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_version(doc: Doc, path: str) -> None:
    """A report of another schema version than this analyzer writes is one error naming the file."""
    version = doc.get("schema_version") if isinstance(doc, Mapping) else None
    if version != SCHEMA_VERSION:
        raise InputError(
            f"a report of schema_version {version!r}; this analyzer compares schema_version {SCHEMA_VERSION} "
            "(make both reports with the same analyzer version)",
            path=path,
            field="schema_version",
        )


def _span(doc: Doc) -> tuple[datetime | None, datetime | None]:
    """First and last gateway line the report analyzed (its series when it lists no gateway input)."""
    gateway = [i for i in doc.get("inputs", []) if i.get("kind") == "gateway"]
    firsts = [t for i in gateway if (t := _time(i.get("first_ts"))) is not None]
    lasts = [t for i in gateway if (t := _time(i.get("last_ts"))) is not None]
    if not firsts:
        windows = [t for row in doc.get("series", []) if (t := _time(row.get("window"))) is not None]
        return min(windows, default=None), max(windows, default=None)
    return min(firsts), max(lasts, default=None)


def _covered(doc: Doc, path: str) -> dict[str, Any]:
    summary = doc.get("summary", {})
    first, last = _span(doc)
    return {
        "path": path,
        "first_ts": None if first is None else doc_time(first),
        "last_ts": None if last is None else doc_time(last),
        "requests": summary.get("requests", 0),
        "failed_requests": summary.get("failed_requests", 0),
        "error_rate": summary.get("error_rate", 0.0),
        "bursts": len(doc.get("bursts", [])),
        "latency_spikes": len(doc.get("latency_spikes", [])),
    }


def doc_time(t: datetime) -> str:
    """A time as the JSON report writes it (ISO 8601 UTC ending in Z)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def _days_between(base: Doc, new: Doc) -> int:
    """Whole days from the base report's first day to the new one's (0 for the same day or no times)."""
    (b, _), (n, _) = _span(base), _span(new)
    return 0 if b is None or n is None else (n.date() - b.date()).days


def _window(item: Mapping[str, Any]) -> tuple[datetime, datetime]:
    start, end = _time(item["start"]), _time(item["end"])
    assert start is not None and end is not None  # the schema requires both
    return start, end


def _unmatched(
    these: Sequence[Mapping[str, Any]], others: Sequence[Mapping[str, Any]], shift: timedelta
) -> list[dict[str, Any]]:
    """The items of `these` that no item of `others` of the same scope overlaps, once `others` are
    moved by `shift`."""
    out = []
    for item in these:
        start, end = _window(item)
        overlaps = any(
            o["scope"] == item["scope"] and _window(o)[0] + shift < end and start < _window(o)[1] + shift
            for o in others
        )
        if not overlaps:
            out.append(dict(item))
    return out


def _relative(base: float | None, new: float | None) -> float | None:
    """new / base - 1, or None when it has no value (a base of 0 or a missing side)."""
    if base is None or new is None or base == 0:
        return None
    return round(new / base - 1, 6)


def _slice_rows(doc: Doc) -> dict[str, dict[str, Any]]:
    """The report's per-scope totals; a report without `slices` has its summary as the global one."""
    rows = doc.get("slices")
    if rows is None:
        s = doc.get("summary", {})
        rows = [
            {
                "scope": GLOBAL,
                "requests": s.get("requests", 0),
                "errors": s.get("failed_requests", 0),
                "error_rate": s.get("error_rate", 0.0),
                "p95_ms": None,
            }
        ]
    return {r["scope"]: {k: v for k, v in r.items() if k != "scope"} for r in rows}


def _slices(base: Doc, new: Doc) -> list[dict[str, Any]]:
    before, after = _slice_rows(base), _slice_rows(new)
    scopes = sorted(before.keys() | after.keys(), key=lambda s: (s != GLOBAL, s))
    out = []
    for scope in scopes:
        b, n = before.get(scope), after.get(scope)
        out.append(
            {
                "scope": scope,
                "base": b,
                "new": n,
                "error_rate_change": None
                if b is None or n is None
                else _relative(b["error_rate"], n["error_rate"]),
                "p95_change": None if b is None or n is None else _relative(b.get("p95_ms"), n.get("p95_ms")),
            }
        )
    return out


def _change(base: int, new: int) -> dict[str, int]:
    return {"base": base, "new": new, "change": new - base}


def _ledger(base: Doc, new: Doc) -> dict[str, Any] | None:
    b, n = base.get("ledger"), new.get("ledger")
    if b is None or n is None:
        return None
    totals = {key: _change(int(b.get(key, 0)), int(n.get(key, 0))) for key in LEDGER_TOTALS}
    bk, nk = b.get("findings_by_kind", {}), n.get("findings_by_kind", {})
    kinds = {k: _change(int(bk.get(k, 0)), int(nk.get(k, 0))) for k in sorted(bk.keys() | nk.keys())}
    totals["accounts_owed"] = _change(len(b.get("accounts", [])), len(n.get("accounts", [])))
    return {**totals, "findings_by_kind": kinds}


def _rate_limits(base: Doc, new: Doc) -> dict[str, Any] | None:
    b, n = base.get("rate_limits"), new.get("rate_limits")
    if not isinstance(b, Mapping) or not isinstance(n, Mapping):
        return None
    # Only the counts both reports hold as integers: a section of another shape compares nothing.
    return {
        k: _change(b[k], n[k])
        for k in RATE_LIMIT_KEYS
        if isinstance(b.get(k), int) and isinstance(n.get(k), int)
    }


def compare(base: Doc, new: Doc, *, base_path: str = "base", new_path: str = "new") -> Comparison:
    """What changed from `base` to `new`, two JSON reports (as dicts) of this analyzer's schema."""
    check_version(base, base_path)
    check_version(new, new_path)
    days = _days_between(base, new)
    shift = timedelta(days=days)
    return Comparison(
        schema_version=SCHEMA_VERSION,
        base=_covered(base, base_path),
        new={**_covered(new, new_path), "days_after_base": days},
        new_bursts=_unmatched(new.get("bursts", []), base.get("bursts", []), shift),
        gone_bursts=_unmatched(base.get("bursts", []), new.get("bursts", []), -shift),
        new_spikes=_unmatched(new.get("latency_spikes", []), base.get("latency_spikes", []), shift),
        gone_spikes=_unmatched(base.get("latency_spikes", []), new.get("latency_spikes", []), -shift),
        slices=_slices(base, new),
        ledger=_ledger(base, new),
        rate_limits=_rate_limits(base, new),
    )


# --- rules ------------------------------------------------------------------------------------------


class RuleKind(StrEnum):
    """What a `compare --fail-on` rule measures."""

    new_bursts = "new_bursts"  # more than N new bursts
    gone_bursts = "gone_bursts"
    new_spikes = "new_spikes"
    gone_spikes = "gone_spikes"
    error_rate_up = "error_rate_up"  # the global 5xx rate up by more than P percent
    p95_up = "p95_up"  # the global p95 up by more than P percent
    refunds_up = "refunds_up"  # more than N more refund tokens owed
    wrong_429_up = "wrong_429_up"  # more than N more wrong 429s (rate_limits in both reports)


_PERCENT_KINDS: Final = (RuleKind.error_rate_up, RuleKind.p95_up)
_RULE = re.compile(r"^([a-z_0-9]+)>(\d+(?:\.\d+)?)(%?)$")
RULES_HELP: Final = (
    "new_bursts>N, gone_bursts>N, new_spikes>N, gone_spikes>N, error_rate_up>P%, p95_up>P%, refunds_up>N, "
    "wrong_429_up>N"
)


@dataclass(frozen=True)
class Rule:
    """One parsed rule: `error_rate_up>50%` is (error_rate_up, 50)."""

    text: str
    kind: RuleKind
    limit: Fraction


@dataclass(frozen=True)
class Held:
    """A rule that holds, with what was measured: a count, or a change in percent (None: up from 0)."""

    rule: Rule
    observed: Fraction | None


def parse_rules(texts: Sequence[str]) -> list[Rule]:
    """The rules of `analyzer compare --fail-on`; an unknown or malformed one is a ConfigError naming it."""
    rules = []
    for raw in texts:
        text = raw.strip().replace(" ", "")
        m = _RULE.match(text)
        kind = m.group(1) if m else ""
        if m is None or kind not in RuleKind.__members__:
            raise ConfigError(f"unknown --fail-on rule of compare (known: {RULES_HELP})", field=raw)
        percent = RuleKind(kind) in _PERCENT_KINDS
        if bool(m.group(3)) != percent or (not percent and "." in m.group(2)):
            form = f"{kind}>P%" if percent else f"{kind}>N"
            raise ConfigError(f"write it as {form}", field=raw)
        rules.append(Rule(text, RuleKind(kind), Fraction(m.group(2))))
    return rules


def _up_percent(base: Fraction | None, new: Fraction | None) -> Fraction | None:
    """The rise from base to new in percent, exactly; None when base is 0 and new is not (up from nothing)."""
    assert base is not None and new is not None
    if base == 0:
        return None if new > 0 else Fraction(0)
    return (new / base - 1) * 100


def _global(c: Comparison) -> tuple[dict[str, Any], dict[str, Any]]:
    row = next(r for r in c.slices if r["scope"] == GLOBAL)
    return row["base"] or {}, row["new"] or {}


def _measure(c: Comparison, rule: Rule) -> tuple[bool, Fraction | None]:
    counts = {
        RuleKind.new_bursts: c.new_bursts,
        RuleKind.gone_bursts: c.gone_bursts,
        RuleKind.new_spikes: c.new_spikes,
        RuleKind.gone_spikes: c.gone_spikes,
    }
    if rule.kind in counts:
        found = Fraction(len(counts[rule.kind]))
        return found > rule.limit, found
    if rule.kind in _PERCENT_KINDS:
        b, n = _global(c)
        if rule.kind is RuleKind.error_rate_up:
            # Exact: errors / requests as fractions, so 50% is not missed by a rounded rate.
            rates = [
                Fraction(d.get("errors", 0), d["requests"]) if d.get("requests") else None for d in (b, n)
            ]
        else:
            rates = [None if d.get("p95_ms") is None else Fraction(d["p95_ms"]) for d in (b, n)]
        if rates[0] is None or rates[1] is None:
            return False, Fraction(0)
        up = _up_percent(rates[0], rates[1])
        return up is None or up > rule.limit, up
    section = c.ledger if rule.kind is RuleKind.refunds_up else c.rate_limits
    key = "refund_tokens_total" if rule.kind is RuleKind.refunds_up else "wrong"
    if section is None or key not in section:
        need = "a ledger" if rule.kind is RuleKind.refunds_up else "a rate_limits section"
        raise InputError(f"--fail-on {rule.text} needs {need} in both reports", path=c.new["path"])
    change = Fraction(section[key]["change"])
    return change > rule.limit, change


def held_rules(comparison: Comparison, rules: Sequence[Rule]) -> list[Held]:
    """The rules that hold for `comparison`, in the order given."""
    out = []
    for rule in rules:
        holds, observed = _measure(comparison, rule)
        if holds:
            out.append(Held(rule, observed))
    return out
