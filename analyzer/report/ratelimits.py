"""The rate-limit audit in the report: the JSON `rate_limits` object (a contract)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from analyzer.limits import RateLimits


def rate_limits_json(rl: RateLimits | None) -> dict[str, Any] | None:
    """`rate_limits`: counts, by_limit, accounts, explanations and the rules replayed."""
    if rl is None:
        return None
    explanations = [
        {
            k: v
            for k, v in asdict(e).items()
            if k in ("model", "start", "end", "hypothesis", "parameter", "share")
        }
        for e in rl.explanations
    ]
    return {
        **rl.counts,
        "by_limit": rl.by_limit,
        "accounts": rl.accounts.to_dicts(),
        "explanations": explanations,
        "rules": {
            "windows": [r.value for r in rl.rules],
            "limits": rl.source.value,
            "per_model": rl.per_model,
            "count_rejected": rl.count_rejected,
            "tolerance": rl.tolerance,
            "timestamp": rl.timestamp.value,
            "skipped_without_account": rl.skipped,
        },
    }
