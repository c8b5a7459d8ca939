"""The --fail-on rules a CI job gates on: which of them hold for a report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from analyzer.errors import ConfigError
from analyzer.report.model import Report

_REFUNDS = re.compile(r"^refunds>(\d+)$")
_REJECTS = re.compile(r"^rejects>(\d+(?:\.\d+)?)%$")


def failing_rules(report: Report, rules: Sequence[str]) -> list[str]:
    """The rules that hold, each as 'rule: reason'; an unknown rule is a ConfigError."""
    held: list[str] = []
    for raw in rules:
        rule = raw.strip().replace(" ", "")
        if rule == "bursts":
            if report.bursts:
                held.append(f"{rule}: {len(report.bursts)} 5xx burst(s)")
        elif rule == "spikes":
            if report.spikes:
                held.append(f"{rule}: {len(report.spikes)} latency spike(s)")
        elif m := _REFUNDS.match(rule):
            owed = 0 if report.reconciliation is None else report.reconciliation.refund_tokens_total
            if owed > int(m.group(1)):
                held.append(f"{rule}: {owed:,} tokens owed")
        elif m := _REJECTS.match(rule):
            read = sum(i.rows_read for i in report.inputs)
            rejected = sum(i.rows_rejected for i in report.inputs)
            # Exact arithmetic: a threshold at the boundary must not flip on float rounding.
            if read and Fraction(rejected * 100, read) > Fraction(m.group(1)):
                held.append(f"{rule}: {rejected:,} of {read:,} rows rejected")
        else:
            raise ConfigError(
                "unknown --fail-on rule (known: bursts, spikes, refunds>N, rejects>P%)", field=raw
            )
    return held
