"""The same three questions as baseline_duckdb.py in plain pandas (run only at the smaller sizes).

Usage: python bench/baseline_pandas.py DIR   (prints one JSON line: minutes, accounts, refund_tokens)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

GATEWAY_COLS = ["ts", "request_id", "status", "latency_ms", "prompt_tokens", "completion_tokens"]
LEDGER_COLS = ["ts", "entry_id", "account_id", "request_id", "kind", "tokens"]


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    name = path.name
    if name.endswith(".parquet"):
        return pd.read_parquet(path, columns=columns)
    if ".csv" in name:
        return pd.read_csv(path, usecols=columns, dtype={"request_id": "string", "entry_id": "string"})
    frame = pd.read_json(path, lines=True, dtype=False)
    return frame.reindex(columns=columns)


def answer(directory: Path) -> dict[str, int]:
    """Per-minute 5xx rate and p95 latency, refunds per account; return minutes, accounts, refund total."""
    files = sorted(p for p in (directory / "gateway").iterdir() if p.is_file())
    g = pd.concat([_read(p, GATEWAY_COLS) for p in files], ignore_index=True)
    g["ts"] = pd.to_datetime(g["ts"], utc=True, format="ISO8601")
    g["served"] = g["prompt_tokens"].fillna(0).astype("int64") + g["completion_tokens"].fillna(0).astype(
        "int64"
    )
    g["error"] = g["status"] >= 500
    by_minute = g.groupby(g["ts"].dt.floor("min"))
    minutes = pd.DataFrame(
        {
            "requests": by_minute.size(),
            "error_rate": by_minute["error"].mean(),
            "p95_ms": by_minute["latency_ms"].quantile(0.95),
        }
    )

    ledger = pd.concat([_read(p, LEDGER_COLS) for p in sorted(directory.glob("ledger.*"))], ignore_index=True)
    d = ledger[ledger["kind"] == "deduct"].copy()
    d["ts"] = pd.to_datetime(d["ts"], utc=True, format="ISO8601")
    d["tokens"] = d["tokens"].astype("int64")
    d = d.sort_values(["ts", "entry_id"], kind="stable")
    d["nth"] = d.groupby("request_id", dropna=True).cumcount()
    r = g.dropna(subset=["request_id"]).drop_duplicates("request_id")[["request_id", "status", "served"]]
    d = d.merge(r, on="request_id", how="left", indicator=True)
    duplicate = d["request_id"].notna() & (d["nth"] > 0)
    orphan = d["_merge"] == "left_only"
    failed = ~d["status"].between(200, 299)
    over = d["tokens"] - d["served"].fillna(0).astype("int64")
    d["refund_tokens"] = 0
    d.loc[(over > 0) & ~orphan, "refund_tokens"] = over
    d.loc[failed & ~orphan, "refund_tokens"] = d["tokens"]
    d.loc[orphan, "refund_tokens"] = 0
    d.loc[duplicate, "refund_tokens"] = d["tokens"]
    per_account = d.groupby("account_id")["refund_tokens"].sum()
    return {
        "minutes": len(minutes),
        "accounts_owed": int((per_account > 0).sum()),
        "refund_tokens": int(per_account.sum()),
    }


if __name__ == "__main__":
    print(json.dumps(answer(Path(sys.argv[1])), sort_keys=True))
