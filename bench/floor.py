"""The floor: Polars scanning every input of a simulated outage once and counting its rows.

Nothing the analyzer does can be faster than reading its inputs, so this is the row it is compared to.
Usage: python bench/floor.py DIR   (prints one JSON line: rows per input kind)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl


def _scan(path: Path) -> pl.LazyFrame:
    name = path.name
    if name.endswith(".parquet"):
        return pl.scan_parquet(path)
    if ".csv" in name:
        return pl.scan_csv(path, infer_schema=False)
    return pl.scan_ndjson(path, infer_schema_length=None)


def count_rows(directory: Path) -> dict[str, int]:
    """Rows of the gateway files, the ledger and the events of `directory`, each file scanned once."""
    gateway = sorted(p for p in (directory / "gateway").iterdir() if p.is_file())
    ledger = sorted(directory.glob("ledger.*"))
    events = sorted(directory.glob("events.*"))
    frames = {
        kind: pl.concat([_scan(p).select(pl.len()) for p in paths]).select(pl.col("len").sum())
        for kind, paths in (("gateway", gateway), ("ledger", ledger), ("events", events))
        if paths
    }
    # One collect_all so the scans share the engine's thread pool, as the analyzer's would.
    counts = pl.collect_all(list(frames.values()))
    return {kind: int(df.item()) for kind, df in zip(frames, counts, strict=True)}


if __name__ == "__main__":
    print(json.dumps(count_rows(Path(sys.argv[1])), sort_keys=True))
