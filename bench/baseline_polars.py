"""The same three questions as baseline_duckdb.py in a plain Polars script, the fourth contender.

What the analyzer's own shape costs shows as the distance between this script and the analyzer: both run
on Polars, this one answers only the baseline's questions (no rejects, provenance, slices or report).
Per-minute 5xx rate and p95 latency, and refund tokens per account: a duplicate (2nd+ deduction of a
request_id, ordered by ts, entry_id) is refunded whole, an orphan (no such request) 0, a charge for a
failed request (status not 2xx) whole, an overcharge by amount - (prompt + completion), anything else 0.
Usage: python bench/baseline_polars.py DIR   (prints one JSON line: minutes, accounts, refund_tokens)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

GATEWAY = {
    "ts": pl.String(),
    "request_id": pl.String(),
    "status": pl.Int64(),
    "latency_ms": pl.Float64(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
}
LEDGER = ("ts", "entry_id", "account_id", "request_id", "kind", "tokens")


def _scan(paths: list[Path], columns: dict[str, pl.DataType] | None = None) -> pl.LazyFrame:
    name = paths[0].name
    if name.endswith(".parquet"):
        return pl.scan_parquet(paths)
    if ".csv" in name:
        return pl.scan_csv(paths, infer_schema=False)
    # Naming the columns skips schema inference (a second pass over gzip) and ignores the other keys.
    return pl.scan_ndjson(paths, schema=columns)


def _typed(frame: pl.LazyFrame, dtypes: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Text columns cast to the baseline's types (Parquet's are already typed: cast where they differ)."""
    schema = frame.collect_schema()
    exprs = []
    for name, dtype in dtypes.items():
        col = pl.col(name)
        if name == "ts" and schema[name] == pl.String():
            exprs.append(col.str.to_datetime(time_zone="UTC", time_unit="us"))
        elif name == "ts":
            exprs.append(col.dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        else:
            exprs.append(col.cast(dtype))
    return frame.select(exprs)


def answer(directory: Path) -> dict[str, int]:
    """Run the three queries over the outage in `directory`; return minutes, accounts and refund total."""
    gateway_files = sorted(p for p in (directory / "gateway").iterdir() if p.is_file())
    ledger_files = sorted(directory.glob("ledger.*"))
    g = (
        _typed(_scan(gateway_files, GATEWAY), {**GATEWAY, "ts": pl.Datetime("us", "UTC")})
        .with_columns(
            (pl.col("prompt_tokens").fill_null(0) + pl.col("completion_tokens").fill_null(0)).alias("served")
        )
        .drop("prompt_tokens", "completion_tokens")
        .collect()
    )
    minutes = (
        g.lazy()
        .group_by(pl.col("ts").dt.truncate("1m").alias("minute"))
        .agg(
            pl.len().alias("requests"),
            (pl.col("status") >= 500).mean().alias("error_rate"),
            pl.col("latency_ms").quantile(0.95, interpolation="linear").alias("p95_ms"),
        )
    )
    ledger_types = {
        "ts": pl.Datetime("us", "UTC"),
        "entry_id": pl.String(),
        "account_id": pl.String(),
        "request_id": pl.String(),
        "kind": pl.String(),
        "tokens": pl.Int64(),
    }
    deductions = (
        _typed(_scan(ledger_files).select(LEDGER), ledger_types)
        .filter(pl.col("kind") == "deduct")
        .sort("ts", "entry_id")
        # The 2nd and later deduction of a request id (null ids are never duplicates).
        .with_columns(
            (pl.col("request_id").is_not_null() & ~pl.col("request_id").is_first_distinct()).alias("dup")
        )
    )
    requests = (
        g.lazy()
        .filter(pl.col("request_id").is_not_null())
        .unique("request_id", keep="any")
        .select("request_id", "status", "served", pl.lit(True).alias("seen"))
    )
    tokens = pl.col("tokens")
    refund = (
        pl.when(pl.col("dup"))
        .then(tokens)
        .when(pl.col("seen").is_null())
        .then(0)
        .when(~pl.col("status").is_between(200, 299))
        .then(tokens)
        .when(tokens > pl.col("served"))
        .then(tokens - pl.col("served"))
        .otherwise(0)
    )
    refunds = (
        deductions.join(requests, on="request_id", how="left")
        .group_by("account_id")
        .agg(refund.sum().alias("refund_tokens"))
    )
    minutes_df, refunds_df = pl.collect_all([minutes, refunds])
    return {
        "minutes": minutes_df.height,
        "accounts_owed": int((refunds_df["refund_tokens"] > 0).sum()),
        "refund_tokens": int(refunds_df["refund_tokens"].sum()),
    }


if __name__ == "__main__":
    print(json.dumps(answer(Path(sys.argv[1])), sort_keys=True))
