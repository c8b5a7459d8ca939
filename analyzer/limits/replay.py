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
                  before it minus ends at or before it, the ends found by binary search). Zero-latency
                  requests logged at the same microsecond as a later one are the only miscount.
    tpd           tokens before it since its day's reset

Each window is found once (`windows`: the row where the request's KEY, clock minute, sliding minute
and day start); the usage of any cost in it is then a cumulative sum less its value at that row
(`usage`), so a hypothesis with other costs (explain.py) is a sum and a gather, not a new replay.
All are Polars expressions; nothing iterates over rows.
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
# The row (of the frame) where each request's windows start: its KEY's first row, the first of its
# KEY in its clock minute, in (t - 60 s, t], and in its TPD day.
FIRST: Final = "_first"
MINUTE_FIRST: Final = "_minute_first"
SLIDING_FIRST: Final = "_sliding_first"
DAY_FIRST: Final = "_day_first"
WINDOW_COLUMNS: Final = (FIRST, MINUTE_FIRST, SLIDING_FIRST, DAY_FIRST)


class Rule(StrEnum):
    """How a limiter counts a window."""

    FIXED = "fixed_minute"
    SLIDING = "sliding_60s"
    BUCKET = "token_bucket"


# The limits each rule is replayed for; concurrency and tpd are one count under every rule.
WINDOWED: Final = (Limit.RPM, Limit.TPM)
COST: Final = {Limit.RPM: REQ, Limit.TPM: TOK}
START: Final = {Rule.FIXED: MINUTE_FIRST, Rule.SLIDING: SLIDING_FIRST}  # the windows `usage` sums


def limit_column(limit: Limit) -> str:
    """The input column holding a limit of the row's tier."""
    return f"_limit_{limit.value}"


def usage_column(limit: Limit, rule: Rule | None = None) -> str:
    """The output column of a limit's usage under a rule (concurrency and tpd: under every rule)."""
    return f"_use_{limit.value}" if rule is None else f"_use_{limit.value}_{rule.value}"


def _starts(*columns: str) -> pl.Expr:
    """The first row of each run of equal `columns` (the frame is sorted by them)."""
    return pl.any_horizontal((pl.col(c) != pl.col(c).shift(1)).fill_null(True) for c in columns)


def usage(cost: pl.Expr, start: str) -> pl.Expr:
    """The cost of the rows before each row from the row in `start` on (a window of `windows`): a global
    cumulative sum less its value there, so no grouping is needed."""
    before = cost.cum_sum() - cost
    return before - before.gather(pl.col(start))


def windows(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` plus WINDOW_COLUMNS: where each request's KEY, clock minute, sliding minute and day start."""
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    out = (
        frame.lazy()
        .with_columns((pl.col(T) // MINUTE_US).alias("_minute"))
        .with_columns(
            pl.when(_starts(KEY)).then(row).forward_fill().alias(FIRST),
            pl.when(_starts(KEY, "_minute")).then(row).forward_fill().alias(MINUTE_FIRST),
            pl.when(_starts(KEY, DAY)).then(row).forward_fill().alias(DAY_FIRST),
        )
        .drop("_minute")
        .collect()
    )
    return out.with_columns(_sliding_first(out).alias(SLIDING_FIRST))


def replay(frame: pl.DataFrame, in_flight: pl.Series | None = None) -> pl.DataFrame:
    """`frame` with WINDOW_COLUMNS and the usage columns of every limit under every rule but the
    bucket's (which needs the limits: `bucket`); `in_flight`: the concurrency column of an earlier replay
    of the same rows, not counted again."""
    out = windows(frame)
    fixed_sliding = [
        usage(pl.col(COST[lim]), START[rule]).alias(usage_column(lim, rule))
        for lim in WINDOWED
        for rule in START
    ]
    tpd = usage(pl.col(TOK), DAY_FIRST).alias(usage_column(Limit.TPD))
    out = out.lazy().with_columns(*fixed_sliding, tpd).collect()
    if in_flight is not None:
        return out.with_columns(in_flight.cast(pl.Int64).alias(usage_column(Limit.CONCURRENCY)))
    return _in_flight(out)


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


def _sliding_first(frame: pl.DataFrame) -> pl.Series:
    """The first row of each request's KEY after t - 60 s: one past the last at or before it, found by a
    binary search over the packed (KEY, T) (by join_asof when they do not pack), never before FIRST."""
    origin, bits = _packed(frame)
    if bits:
        packed = frame[KEY] * (1 << bits) + (frame[T] - origin)
        edge = packed.search_sorted(packed - MINUTE_US, side="right").cast(pl.Int64)  # one past the last
    else:
        rows = frame.select(KEY, T).with_row_index("_row")
        last = rows.group_by(KEY, T).agg(pl.col("_row").max().cast(pl.Int64).alias("_edge")).sort(KEY, T)
        edge = (
            rows.with_columns((pl.col(T) - MINUTE_US).alias("_from"))
            .join_asof(
                last.rename({T: "_edge_t"}),
                left_on="_from",
                right_on="_edge_t",
                by=KEY,
                strategy="backward",
                check_sortedness=False,
            )
            .select(pl.col("_edge") + 1)
            .to_series()
        )
    return frame.select(pl.max_horizontal(pl.Series(edge).fill_null(0), pl.col(FIRST))).to_series()


def bucket(frame: pl.DataFrame, costs: dict[Limit, str] = COST) -> pl.DataFrame:
    """`frame` (replayed, with LIMIT_* columns) plus the token bucket's usage (limit - level) before each
    request: Y - cummin(Y), Y = cost before - rate x elapsed. Float64: the refill is fractional; elapsed
    time is counted from the KEY's first request to keep Y small. `costs` names the cost column of each
    limit."""
    elapsed = (pl.col(T) - pl.col(T).gather(pl.col(FIRST))).cast(pl.Float64)
    ys = [
        (
            usage(pl.col(costs[lim]), FIRST).cast(pl.Float64)
            - pl.col(limit_column(lim)).cast(pl.Float64) / MINUTE_US * elapsed
        ).alias(f"_y_{lim.value}")
        for lim in WINDOWED
    ]
    return (
        frame.lazy()
        .with_columns(ys)
        .with_columns(
            (pl.col(f"_y_{lim.value}") - pl.col(f"_y_{lim.value}").cum_min().over(KEY)).alias(
                usage_column(lim, Rule.BUCKET)
            )
            for lim in WINDOWED
        )
        .drop(f"_y_{lim.value}" for lim in WINDOWED)
        .collect()
    )


def _in_flight(frame: pl.DataFrame) -> pl.DataFrame:
    """Counted requests of the KEY in flight at each arrival: started before it, not ended by then (the
    ends of its KEY at or before the arrival, counted by a binary search over the packed, sorted ends)."""
    origin, bits = _packed(frame)
    started = usage(pl.col(REQ), FIRST)
    if not bits:
        return _in_flight_joined(frame)
    base = pl.col(KEY) * (1 << bits)
    ends = (
        frame.lazy()
        .filter(pl.col(REQ) > 0)
        .select((base + (pl.col(END) - origin)).alias("_pe"))
        .sort("_pe")
        .collect()["_pe"]
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
    started = usage(pl.col(REQ), FIRST)
    return joined.with_columns(
        (started - pl.col("_ended").fill_null(0)).clip(lower_bound=0).alias(usage_column(Limit.CONCURRENCY))
    ).drop("_end_at", "_ended")
