"""The floor: Polars scanning every input of a simulated outage once and counting its rows.

Nothing the analyzer does can be faster than reading its inputs, so this is the row it is compared to.
Usage: python bench/floor.py DIR   (prints one JSON line: rows per input kind)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl


def _scan(paths: list[Path]) -> pl.LazyFrame:
    name = paths[0].name
    if name.endswith(".parquet"):
        return pl.scan_parquet(paths)
    if ".csv" in name:
        return pl.scan_csv(paths, infer_schema=False)
    return pl.scan_ndjson(paths)


def count_rows(directory: Path) -> dict[str, int]:
    """Rows of the gateway files, the ledger and the events of `directory`, each file scanned once."""
    gateway = sorted(p for p in (directory / "gateway").iterdir() if p.is_file())
    ledger = sorted(directory.glob("ledger.*"))
    events = sorted(directory.glob("events.*"))
    # One scan per kind over all its files (per-file scans cost 8x at 1M); one collect_all for all kinds.
    frames = {
        kind: _scan(paths).select(pl.len())
        for kind, paths in (("gateway", gateway), ("ledger", ledger), ("events", events))
        if paths
    }
    counts = pl.collect_all(list(frames.values()))
    return {kind: int(df.item()) for kind, df in zip(frames, counts, strict=True)}


if __name__ == "__main__":
    print(json.dumps(count_rows(Path(sys.argv[1])), sort_keys=True))
