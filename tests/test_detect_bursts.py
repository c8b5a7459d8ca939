"""Bursts on literal frames: who was hit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from analyzer.config import Settings
from analyzer.detect import detect
from analyzer.report.notes import sentences
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


def _outage_with_ids_in_paths() -> pl.DataFrame:
    """A 5-minute 502 burst of one region; every request's endpoint carries its own id."""
    rows = []
    for minute in range(60):
        statuses = [502] * 8 + [200] * 12 if 20 <= minute < 25 else [200] * 20
        rows += requests(minute, statuses, ["acct-1", "acct-2"])
    frame = pl.DataFrame(rows, schema=GATEWAY_COLUMNS)
    return frame.with_columns(("/v1/threads/" + pl.col("request_id") + "/runs").alias("endpoint"))


def test_a_slice_with_an_id_in_every_value_is_not_searched_and_said() -> None:
    # 1,200 endpoints, one per request: each would be a scope of its own (at 1M requests detection
    # took 20 s and 1.7 GB); the burst is found the same as without that slice.
    from dataclasses import replace

    frame = _outage_with_ids_in_paths().lazy()
    d = detect(frame, Settings())
    without = Settings()
    without = replace(without, bursts=replace(without.bursts, slices=("model", "region", "upstream")))
    expected = detect(frame, without)
    assert d.bursts == expected.bursts and len(d.bursts) == 1
    assert all(not b.scope.startswith("endpoint=") for b in d.bursts)
    (note,) = [n for n in sentences(d.notes) if "distinct values" in n]
    assert note == (
        "bursts: endpoint has about 1,200 distinct values, more than max_slice_values (1,000): "
        "not searched as a slice (an id in each value? map a coarser field)"
    )


def test_a_slice_within_max_slice_values_is_searched() -> None:
    from dataclasses import replace

    frame = _outage_with_ids_in_paths().lazy()
    settings = Settings()
    settings = replace(settings, bursts=replace(settings.bursts, max_slice_values=5000))
    d = detect(frame, settings)
    assert not [n for n in sentences(d.notes) if "distinct values" in n]
