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


def _starts(*columns: str) -> pl.Expr:
    """The first row of each run of equal `columns` (the frame is sorted by them)."""
    return pl.any_horizontal((pl.col(c) != pl.col(c).shift(1)).fill_null(True) for c in columns)


def _before(column: str, *over: str) -> pl.Expr:
    """The cost of the earlier rows of the row's run of (KEY, *over): a global cumulative sum less its
    value where the run starts, so no grouping is needed (the frame is sorted by KEY, T)."""
    before = pl.col(column).cum_sum() - pl.col(column)
    return before - pl.when(_starts(KEY, *over)).then(before).forward_fill()


def replay(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with the usage columns of every limit under every rule but the bucket's (which needs
    the limits: `bucket`)."""
    out = (
        frame.lazy()  # lazy: the run starts shared by the sums are found once (CSE)
        .with_columns(
            (_before(REQ) + pl.col(REQ)).alias(_S_REQ),
            (_before(TOK) + pl.col(TOK)).alias(_S_TOK),
            (pl.col(T) // MINUTE_US).alias("_minute"),
        )
        .with_columns(
            *(_before(COST[lim], "_minute").alias(usage_column(lim, Rule.FIXED)) for lim in WINDOWED),
            _before(TOK, DAY).alias(usage_column(Limit.TPD)),
        )
        .collect()
    )
    return _in_flight(_sliding(out)).drop(_S_REQ, _S_TOK, "_minute")


def _packed(frame: pl.DataFrame) -> tuple[int, int]:
    """(origin, bits): times as KEY << bits | (t - origin) keep the frame's (KEY, T) order in one Int64,
    so a binary search finds a row's window edge; bits 0 when they do not fit."""
    if frame.is_empty():
        return 0, 0
    origin = int(frame[T].min())  # type: ignore[arg-type]
    span = int(frame.select(pl.max_horizontal(pl.col(T).max(), pl.col(END).max())).item()) - origin + 1
    bits = span.bit_length()
    keys = int(frame[KEY].max()) + 1  # type: ignore[arg-type]
    return (origin, bits) if keys.bit_length() + bits < 63 else (origin, 0)


def _sliding(frame: pl.DataFrame) -> pl.DataFrame:
    """Usage in (t - 60 s, t]: the cost before the row minus the cost up to the last row of its KEY at or
    before t - 60 s, found by a binary search over the packed (KEY, T)."""
    origin, bits = _packed(frame)
    if not bits:
        return _sliding_joined(frame)
    packed = (pl.col(KEY) * (1 << bits) + (pl.col(T) - origin)).alias("_p")
    out = frame.with_columns(packed)
    edge = (
        out["_p"].search_sorted(out["_p"] - MINUTE_US, side="right").cast(pl.Int64) - 1
    )  # last at or before
    out = out.with_columns(edge.alias("_edge"))
    first = pl.when(_starts(KEY)).then(pl.int_range(pl.len(), dtype=pl.Int64)).forward_fill()
    inside = pl.col("_edge") >= first  # the edge row is of the same KEY
    at = pl.col("_edge").clip(lower_bound=0)
    return out.with_columns(
        (pl.col(_S_REQ) - pl.col(REQ) - pl.when(inside).then(pl.col(_S_REQ).gather(at)).otherwise(0)).alias(
            usage_column(Limit.RPM, Rule.SLIDING)
        ),
        (pl.col(_S_TOK) - pl.col(TOK) - pl.when(inside).then(pl.col(_S_TOK).gather(at)).otherwise(0)).alias(
            usage_column(Limit.TPM, Rule.SLIDING)
        ),
    ).drop("_p", "_edge")


def _sliding_joined(frame: pl.DataFrame) -> pl.DataFrame:
    """_sliding by join_asof, for keys and times too wide to pack into one Int64."""
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
    elapsed = (pl.col(T) - pl.when(_starts(KEY)).then(pl.col(T)).forward_fill()).cast(pl.Float64)
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
    """Counted requests of the KEY in flight at each arrival: started before it, not ended by then (the
    ends of its KEY at or before the arrival, counted by a binary search over the packed, sorted ends)."""
    origin, bits = _packed(frame)
    started = pl.col(_S_REQ) - pl.col(REQ)
    if not bits:
        return _in_flight_joined(frame)
    base = pl.col(KEY) * (1 << bits)
    ends = (
        frame.filter(pl.col(REQ) > 0).select((base + (pl.col(END) - origin)).alias("_pe")).sort("_pe")["_pe"]
    )
    arrivals = frame.select((base + (pl.col(T) - origin)).alias("_pa"), base.alias("_pk"))
    ended = ends.search_sorted(arrivals["_pa"], side="right") - ends.search_sorted(
        arrivals["_pk"], side="left"
    )
    return frame.with_columns(
        (started - pl.Series("_ended", ended, dtype=pl.Int64))
        .clip(lower_bound=0)
        .alias(usage_column(Limit.CONCURRENCY))
    )


def _in_flight_joined(frame: pl.DataFrame) -> pl.DataFrame:
    """_in_flight by join_asof, for keys and times too wide to pack into one Int64."""
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
