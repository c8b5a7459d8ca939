"""A plain DuckDB answer to the three core questions, the baseline the analyzer is timed against.

Per-minute 5xx rate and p95 latency, and refund tokens per account: a duplicate (2nd+ deduction of a
request_id, ordered by ts, entry_id) is refunded whole, an orphan (no such request) 0, a charge for a
failed request (status not 2xx) whole, an overcharge by amount - (prompt + completion), anything else 0.
Usage: python bench/baseline_duckdb.py DIR   (prints one JSON line: minutes, accounts, refund_tokens)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

SQL = """
CREATE TEMP TABLE g AS
  SELECT CAST(ts AS TIMESTAMPTZ) AS ts, CAST(request_id AS VARCHAR) AS request_id,
         CAST(status AS INTEGER) AS status, CAST(latency_ms AS DOUBLE) AS latency_ms,
         coalesce(CAST(prompt_tokens AS BIGINT), 0) + coalesce(CAST(completion_tokens AS BIGINT), 0) AS served
  FROM {gateway};
CREATE TEMP TABLE minutes AS
  SELECT date_trunc('minute', ts) AS minute, count(*) AS requests,
         avg(CASE WHEN status >= 500 THEN 1.0 ELSE 0.0 END) AS error_rate,
         quantile_cont(latency_ms, 0.95) AS p95_ms
  FROM g GROUP BY 1;
CREATE TEMP TABLE refunds AS
  WITH d AS (
    SELECT CAST(account_id AS VARCHAR) AS account_id, CAST(request_id AS VARCHAR) AS request_id,
           CAST(tokens AS BIGINT) AS tokens,
           row_number() OVER (PARTITION BY request_id ORDER BY CAST(ts AS TIMESTAMPTZ), entry_id) AS nth
    FROM {ledger} WHERE kind = 'deduct'
  ), r AS (SELECT request_id, any_value(status) AS status, any_value(served) AS served
           FROM g WHERE request_id IS NOT NULL GROUP BY request_id)
  SELECT d.account_id, sum(CASE
      WHEN d.request_id IS NOT NULL AND d.nth > 1 THEN d.tokens
      WHEN r.request_id IS NULL THEN 0
      WHEN r.status NOT BETWEEN 200 AND 299 THEN d.tokens
      WHEN d.tokens > r.served THEN d.tokens - r.served
      ELSE 0 END) AS refund_tokens
  FROM d LEFT JOIN r USING (request_id) GROUP BY d.account_id;
"""


def _source(paths: list[Path]) -> str:
    files = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    if paths[0].name.endswith(".parquet"):
        return f"read_parquet({files})"
    if ".csv" in paths[0].name:
        return f"read_csv({files}, all_varchar = true)"
    # Naming the columns skips schema sniffing (a second pass over gzip) and ignores the other keys.
    columns = "{ts: 'VARCHAR', request_id: 'VARCHAR', status: 'INTEGER', latency_ms: 'DOUBLE', "
    columns += "prompt_tokens: 'BIGINT', completion_tokens: 'BIGINT'}"
    return f"read_json({files}, format = 'newline_delimited', columns = {columns})"


def answer(directory: Path) -> dict[str, int]:
    """Run the three queries over the outage in `directory`; return minutes, accounts and refund total."""
    gateway = sorted(p for p in (directory / "gateway").iterdir() if p.is_file())
    ledger = sorted(directory.glob("ledger.*"))
    con = duckdb.connect()
    con.execute(SQL.format(gateway=_source(gateway), ledger=_source(ledger)))
    minutes = con.execute("SELECT count(*) FROM minutes").fetchone()
    owed = con.execute(
        "SELECT count(*) FILTER (refund_tokens > 0), sum(refund_tokens) FROM refunds"
    ).fetchone()
    assert minutes is not None and owed is not None
    return {"minutes": int(minutes[0]), "accounts_owed": int(owed[0]), "refund_tokens": int(owed[1] or 0)}


if __name__ == "__main__":
    print(json.dumps(answer(Path(sys.argv[1])), sort_keys=True))
