"""The usage each request met at admission, under each counting rule real limiters use.

Config-free: frames in, frames out. The input has one row per request, sorted by (KEY, T, arrival
order), with

    KEY      the limited unit (an account, or an account and model)
    T, END   arrival and end, microseconds since the epoch
    REQ      1 when the request counts against the limits (admitted, or every request with
             count_rejected), else 0
    TOK      the tokens it counts (served prompt + completion), 0 when it does not count
    DAY      the start of its TPD day (midnight + day_reset)
    LIMIT_*  each limit of its tier, 0 for unlimited (limit_column)

and every usage is of the requests before it (earlier rows of its KEY), never of itself:

    fixed_minute  the window is the clock minute of its arrival (Envoy's ratelimit service, Kong)
    sliding_60s   the window is (t - 60 s, t] (a sliding log)
    token_bucket  a bucket of `limit` refilled at limit / 60 s, full at the first request; its usage is
                  limit - level. The Lindley recursion D_n = max(0, D_n-1 + c_n-1 - r dt) is the
                  reflected walk Y - cummin(Y) with Y_n = (cost before n) - r t_n, so it is a cumulative
                  sum and a cumulative minimum, no loop.
    concurrency   requests of its KEY that started before it and end after its arrival (a sweep: starts
                  before it minus ends at or before it, the ends found with join_asof). Zero-latency
                  requests logged at the same microsecond as a later one are the only miscount.
    tpd           tokens before it since its day's reset

All are Polars expressions and joins; nothing iterates over rows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import polars as pl

from analyzer.limits.settings import Limit

KEY: Final = "_key"
T: Final = "_t"
END: Final = "_end"
REQ: Final = "_req"
TOK: Final = "_tok"
DAY: Final = "_day"
MINUTE_US: Final = 60_000_000
_S_REQ, _S_TOK = "_s_req", "_s_tok"  # cumulative cost of KEY up to and including the row


class Rule(StrEnum):
    """How a limiter counts a window."""

    FIXED = "fixed_minute"
    SLIDING = "sliding_60s"
    BUCKET = "token_bucket"


# The limits each rule is replayed for; concurrency and tpd are one count under every rule.
WINDOWED: Final = (Limit.RPM, Limit.TPM)
COST: Final = {Limit.RPM: REQ, Limit.TPM: TOK}


def limit_column(limit: Limit) -> str:
    """The input column holding a limit of the row's tier."""
    return f"_limit_{limit.value}"


def usage_column(limit: Limit, rule: Rule | None = None) -> str:
    """The output column of a limit's usage under a rule (concurrency and tpd: under every rule)."""
    return f"_use_{limit.value}" if rule is None else f"_use_{limit.value}_{rule.value}"


def _before(column: str, *over: str) -> pl.Expr:
    return pl.col(column).cum_sum().over(KEY, *over) - pl.col(column)


def replay(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with the usage columns of every limit under every rule but the bucket's (which needs
    the limits: `bucket`)."""
    out = frame.with_columns(
        pl.col(REQ).cum_sum().over(KEY).alias(_S_REQ),
        pl.col(TOK).cum_sum().over(KEY).alias(_S_TOK),
        (pl.col(T) // MINUTE_US).alias("_minute"),
    ).with_columns(
        *(_before(COST[lim], "_minute").alias(usage_column(lim, Rule.FIXED)) for lim in WINDOWED),
        _before(TOK, DAY).alias(usage_column(Limit.TPD)),
    )
    return _in_flight(_sliding(out)).drop(_S_REQ, _S_TOK, "_minute")


def _sliding(frame: pl.DataFrame) -> pl.DataFrame:
    """Usage in (t - 60 s, t]: the cost before the row minus the cost up to the last row at or before
    t - 60 s (the latest cumulative sum of that instant)."""
    edge = (
        frame.group_by(KEY, T)
        .agg(pl.col(_S_REQ).max().alias("_e_req"), pl.col(_S_TOK).max().alias("_e_tok"))
        .sort(KEY, T)
    )
    joined = frame.with_columns((pl.col(T) - MINUTE_US).alias("_from")).join_asof(
        edge.rename({T: "_edge_t"}),
        left_on="_from",
        right_on="_edge_t",
        by=KEY,
        strategy="backward",
        check_sortedness=False,
    )
    return joined.with_columns(
        (pl.col(_S_REQ) - pl.col(REQ) - pl.col("_e_req").fill_null(0)).alias(
            usage_column(Limit.RPM, Rule.SLIDING)
        ),
        (pl.col(_S_TOK) - pl.col(TOK) - pl.col("_e_tok").fill_null(0)).alias(
            usage_column(Limit.TPM, Rule.SLIDING)
        ),
    ).drop("_from", "_edge_t", "_e_req", "_e_tok")


def bucket(frame: pl.DataFrame, costs: dict[Limit, str] = COST) -> pl.DataFrame:
    """`frame` (with LIMIT_* columns) plus the token bucket's usage (limit - level) before each request:
    Y - cummin(Y), Y = cost before - rate x elapsed. Float64: the refill is fractional; elapsed time is
    counted from the KEY's first request to keep Y small. `costs` names the cost column of each limit."""
    elapsed = (pl.col(T) - pl.col(T).first().over(KEY)).cast(pl.Float64)
    ys = [
        (
            _before(costs[lim]).cast(pl.Float64)
            - pl.col(limit_column(lim)).cast(pl.Float64) / MINUTE_US * elapsed
        ).alias(f"_y_{lim.value}")
        for lim in WINDOWED
    ]
    return (
        frame.with_columns(ys)
        .with_columns(
            (pl.col(f"_y_{lim.value}") - pl.col(f"_y_{lim.value}").cum_min().over(KEY)).alias(
                usage_column(lim, Rule.BUCKET)
            )
            for lim in WINDOWED
        )
        .drop(f"_y_{lim.value}" for lim in WINDOWED)
    )


def _in_flight(frame: pl.DataFrame) -> pl.DataFrame:
    """Counted requests of the KEY in flight at each arrival: started before it, not ended by then."""
    ends = (
        frame.filter(pl.col(REQ) > 0)
        .select(KEY, END)
        .sort(KEY, END)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(KEY).alias("_ended"))
        .group_by(KEY, END)
        .agg(pl.col("_ended").max())
        .sort(KEY, END)
    )
    joined = frame.join_asof(
        ends.rename({END: "_end_at"}),
        left_on=T,
        right_on="_end_at",
        by=KEY,
        strategy="backward",
        check_sortedness=False,
    )
    started = pl.col(_S_REQ) - pl.col(REQ)
    return joined.with_columns(
        (started - pl.col("_ended").fill_null(0)).clip(lower_bound=0).alias(usage_column(Limit.CONCURRENCY))
    ).drop("_end_at", "_ended")
