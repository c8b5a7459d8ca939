"""Bursts on literal frames: who was hit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from analyzer.config import Settings
from analyzer.detect import detect
from analyzer.schema import GATEWAY_COLUMNS

T0 = datetime(2026, 4, 22, 9, 0, tzinfo=UTC)


def requests(minute: int, statuses: list[int], accounts: list[str]) -> list[dict[str, object]]:
    """One request per status in `minute`, three seconds apart, from the given accounts in turn."""
    return [
        {
            "ts": T0 + timedelta(minutes=minute, seconds=3 * i),
            "request_id": f"r{minute}-{i}",
            "account_id": accounts[i % len(accounts)],
            "model": "kimi-k2.6",
            "endpoint": "/v1/chat/completions",
            "region": "us-east-1",
            "upstream": "pool-e",
            "status": status,
            "latency_ms": 800.0,
            "prompt_tokens": 1000,
            "completion_tokens": 200,
        }
        for i, status in enumerate(statuses)
    ]


def test_accounts_hit_counts_each_account_once_across_bursts() -> None:
    calm = ["acct-1", "acct-2", "acct-3", "acct-4", "acct-9"]
    rows = []
    for minute in range(60):
        if 10 <= minute < 15:  # burst one: acct-1 and acct-2 fail
            rows += requests(minute, [502] * 8 + [200] * 12, ["acct-1", "acct-2"])
        elif 40 <= minute < 45:  # burst two: acct-2 again and acct-3
            rows += requests(minute, [504] * 8 + [200] * 12, ["acct-2", "acct-3"])
        elif minute == 30:  # one background 502 of acct-9, outside any burst
            rows += requests(minute, [502] + [200] * 19, ["acct-9", *calm])
        else:
            rows += requests(minute, [200] * 20, calm)
    frame = pl.DataFrame(rows, schema=GATEWAY_COLUMNS)
    d = detect(frame.lazy(), Settings())
    assert [(b.start, b.end) for b in d.bursts] == [
        (T0 + timedelta(minutes=10), T0 + timedelta(minutes=15)),
        (T0 + timedelta(minutes=40), T0 + timedelta(minutes=45)),
    ]
    assert [b.accounts_affected for b in d.bursts] == [2, 2]
    assert d.accounts_hit == 3  # acct-1, acct-2, acct-3: not 4 (a sum), not 4 (with acct-9)


def test_no_burst_no_account_hit() -> None:
    frame = pl.DataFrame(requests(0, [502] + [200] * 19, ["acct-1"]), schema=GATEWAY_COLUMNS)
    d = detect(frame.lazy(), Settings())
    assert (d.bursts, d.accounts_hit) == ((), 0)
