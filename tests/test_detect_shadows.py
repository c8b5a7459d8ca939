"""Shadowing of burst candidates as one query (bursts._keep) against the loop it replaced.

The reference below is the former pairwise loop, kept verbatim as the oracle: on seeded random sets of
overlapping global and slice candidates, with ties of peak rate, mirrored slices (>= 99% of each
other's traffic) and shares on both sides of every threshold, the query keeps exactly the same
candidates. Each rule of the shadowing (explained by a slice, carried by a global burst, mirrored)
decides some of the cases, so that a rule the query left out fails the comparison.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer.detect.bursts import _Candidate, _keep
from analyzer.detect.windows import COLUMN, VALUE

T0 = datetime(2026, 4, 22, 9, 0, tzinfo=UTC)
SLICES = ["model", "region", "upstream"]
VALUES = {"model": ["m1", "m2", "m3"], "region": ["r1", "r2"], "upstream": ["p1", "p2"]}


def _risk_ratio(error_share: float, traffic_share: float) -> float:
    inside = error_share * (1.0 - traffic_share)
    outside = traffic_share * (1.0 - error_share)
    if outside <= 0.0:
        return 1.0 if inside <= 0.0 else float("inf")
    return inside / outside


def _overlap(a: _Candidate, b: _Candidate) -> bool:
    return a.start < b.end and b.start < a.end


def _reference(
    cands: list[_Candidate], contrib: pl.DataFrame, lift: float, slices: list[str]
) -> tuple[list[int], dict[str, int]]:
    """The former loop; and how many candidates each rule dropped."""
    shares = {
        (int(r["_bid"]), r[COLUMN], r[VALUE]): (float(r["error_share"]), float(r["traffic_share"]))
        for r in contrib.iter_rows(named=True)
    }
    order = {c: k for k, c in enumerate(slices)}

    def explains(i: int, j: int) -> bool:
        a, b = cands[i], cands[j]
        if i == j or b.column is None or b.column == a.column or not _overlap(a, b):
            return False
        err, traffic = shares.get((i, b.column, b.value or ""), (0.0, 0.0))
        return err >= 0.5 and _risk_ratio(err, traffic) >= lift

    def rank(i: int) -> tuple[float, int]:
        return (round(cands[i].peak_error_rate, 9), -order.get(cands[i].column or "", -1))

    idx = range(len(cands))
    kept = [
        i for i in idx if not any(explains(i, j) and not (explains(j, i) and rank(i) > rank(j)) for j in idx)
    ]
    dropped = {"explained": len(cands) - len(kept)}
    kept_global = [i for i in kept if cands[i].column is None]

    def carried_by_global(i: int) -> bool:
        c = cands[i]
        for g in kept_global:
            if _overlap(c, cands[g]):
                err, traffic = shares.get((g, c.column or "", c.value or ""), (0.0, 0.0))
                if _risk_ratio(err, traffic) < lift:
                    return True
        return False

    def mirrors(i: int, j: int) -> bool:
        a, b = cands[i], cands[j]
        if i == j or a.column is None or b.column is None or a.column == b.column or not _overlap(a, b):
            return False
        within_a = shares.get((i, b.column, b.value or ""), (0.0, 0.0))[1]
        within_b = shares.get((j, a.column, a.value or ""), (0.0, 0.0))[1]
        return within_a >= 0.99 and within_b >= 0.99

    before = len(kept)
    kept = [i for i in kept if cands[i].column is None or not carried_by_global(i)]
    dropped["carried"] = before - len(kept)
    before = len(kept)
    kept = [i for i in kept if not any(mirrors(i, j) and rank(j) > rank(i) for j in kept)]
    dropped["mirrored"] = before - len(kept)
    return kept, dropped


def _case(rng: random.Random) -> tuple[list[_Candidate], pl.DataFrame]:
    cands = []
    for _ in range(rng.randint(2, 14)):
        column = rng.choice([None, None, *SLICES])
        value = None if column is None else rng.choice(VALUES[column])
        start = T0 + timedelta(minutes=rng.randint(0, 12))
        cands.append(
            _Candidate(
                scope="global" if column is None else f"{column}={value}",
                column=column,
                value=value,
                start=start,
                end=start + timedelta(minutes=rng.randint(1, 6)),
                peak_at=start,
                peak_error_rate=rng.choice([0.2, 0.5, 0.5, 0.8, 1.0 / 3.0, 0.3333333334]),
                requests=100,
                errors=10,
                status_counts={"502": 10},
                baseline=0.01,
            )
        )
    rows = []
    for bid in range(len(cands)):
        for column in SLICES:
            for value in VALUES[column]:
                if rng.random() < 0.15:
                    continue  # no traffic of that value inside the candidate
                err = rng.choice([0.0, 0.3, 0.5, 0.6, 0.9, 1.0])
                traffic = rng.choice([0.0, 0.1, 0.2, 0.5, 0.99, 1.0])
                rows.append((bid, column, value, err, traffic))
    contrib = pl.DataFrame(
        rows,
        schema={
            "_bid": pl.Int64,
            COLUMN: pl.String,
            VALUE: pl.String,
            "error_share": pl.Float64,
            "traffic_share": pl.Float64,
        },
        orient="row",
    )
    return cands, contrib


@pytest.mark.parametrize("lift", [1.5, 3.0])
def test_the_one_query_keeps_what_the_pairwise_loop_kept(lift: float) -> None:
    rng = random.Random(16)
    decided = {"explained": 0, "carried": 0, "mirrored": 0}
    for _ in range(400):
        cands, contrib = _case(rng)
        expected, dropped = _reference(cands, contrib, lift, SLICES)
        assert _keep(cands, contrib, lift, SLICES) == expected
        for rule, n in dropped.items():
            decided[rule] += n > 0
    assert all(n >= 10 for n in decided.values()), decided  # every rule decided some cases


def test_a_candidate_without_pairs_is_kept() -> None:
    cands, contrib = _case(random.Random(1))
    assert _keep(cands[:1], contrib.clear(), 3.0, SLICES) == [0]
