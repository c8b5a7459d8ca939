"""The --fail-on rules a CI job gates on: parsed before any log is read, then checked against a report.

A rule is a name (`bursts`), or a name, `>` and a threshold: a count (`refunds>0`) or a percentage
(`rejects>0.5%`). `RULES` is the table of known names, each with the form of threshold it takes and
the check that says, for a report, why the rule holds (None when it does not). A new rule is one row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from analyzer.errors import ConfigError
from analyzer.report.model import Report


class Threshold(StrEnum):
    """The form of threshold a rule takes."""

    NONE = "none"  # `bursts`: holds when there is any
    COUNT = "count"  # `refunds>N`
    PERCENT = "percent"  # `rejects>P%`


@dataclass(frozen=True)
class Rule:
    """A parsed --fail-on rule: its text as given, its name and its threshold (exact)."""

    text: str
    name: str
    threshold: Fraction | None = None


Check = Callable[[Report, Fraction | None], str | None]


@dataclass(frozen=True)
class RuleKind:
    """A known rule: the threshold it takes, how it reads in help, and its check."""

    threshold: Threshold
    usage: str
    check: Check


def _bursts(report: Report, _: Fraction | None) -> str | None:
    return f"{len(report.bursts)} 5xx burst(s)" if report.bursts else None


def _spikes(report: Report, _: Fraction | None) -> str | None:
    return f"{len(report.spikes)} latency spike(s)" if report.spikes else None


def _refunds(report: Report, limit: Fraction | None) -> str | None:
    owed = 0 if report.reconciliation is None else report.reconciliation.refund_tokens_total
    return f"{owed:,} tokens owed" if limit is not None and owed > limit else None


def _rejects(report: Report, limit: Fraction | None) -> str | None:
    read = sum(i.rows_read for i in report.inputs)
    rejected = sum(i.rows_rejected for i in report.inputs)
    # Exact arithmetic: a threshold at the boundary must not flip on float rounding.
    if read and limit is not None and Fraction(rejected * 100, read) > limit:
        return f"{rejected:,} of {read:,} rows rejected"
    return None


def _wrong_429(report: Report, limit: Fraction | None) -> str | None:
    wrong = 0 if report.rate_limits is None else report.rate_limits.counts["wrong"]
    return f"{wrong:,} wrong 429(s)" if limit is not None and wrong > limit else None


def _not_whole(report: Report, limit: Fraction | None) -> str | None:
    comp = report.compensation
    not_whole = 0 if comp is None or comp.remedy is None else comp.remedy.accounts_not_made_whole
    return (
        f"{not_whole:,} account(s) not made whole by the reset"
        if limit is not None and not_whole > limit
        else None
    )


RULES: dict[str, RuleKind] = {
    "bursts": RuleKind(Threshold.NONE, "bursts", _bursts),
    "spikes": RuleKind(Threshold.NONE, "spikes", _spikes),
    "refunds": RuleKind(Threshold.COUNT, "refunds>N", _refunds),
    "rejects": RuleKind(Threshold.PERCENT, "rejects>P%", _rejects),
    "wrong_429": RuleKind(Threshold.COUNT, "wrong_429>N", _wrong_429),
    "not_whole": RuleKind(Threshold.COUNT, "not_whole>N", _not_whole),
}

_RULE = re.compile(r"^([a-z][a-z0-9_]*)(?:>(\d+(?:\.\d+)?)(%?))?$")


def known_rules() -> str:
    """The known rules as help text: 'bursts, spikes, refunds>N, rejects>P%'."""
    return ", ".join(kind.usage for kind in RULES.values())


def parse_rule(raw: str) -> Rule:
    """One rule from its text; a ConfigError naming it when it is not a known rule of the right form."""
    text = raw.strip().replace(" ", "")
    m = _RULE.match(text)
    kind = RULES.get(m.group(1)) if m else None
    if m is None or kind is None:
        raise ConfigError(f"unknown --fail-on rule (known: {known_rules()})", field=raw)
    number, percent = m.group(2), m.group(3) == "%"
    expected = Threshold.NONE if number is None else Threshold.PERCENT if percent else Threshold.COUNT
    if expected is not kind.threshold or (expected is Threshold.COUNT and "." in number):
        raise ConfigError(f"--fail-on rule '{m.group(1)}' is written {kind.usage}", field=raw)
    return Rule(text, m.group(1), None if number is None else Fraction(number))


def parse_rules(rules: Sequence[str]) -> tuple[Rule, ...]:
    """Every rule parsed (before the analysis, so that a typo costs no run)."""
    return tuple(parse_rule(r) for r in rules)


def failing_rules(report: Report, rules: Sequence[str | Rule]) -> list[str]:
    """The rules that hold, each as 'rule: reason'; an unknown rule is a ConfigError."""
    held: list[str] = []
    for rule in (r if isinstance(r, Rule) else parse_rule(r) for r in rules):
        reason = RULES[rule.name].check(report, rule.threshold)
        if reason is not None:
            held.append(f"{rule.text}: {reason}")
    return held
