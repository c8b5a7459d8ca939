"""Write a Simulation to disk, byte for byte the same for the same spec.

gzip headers carry no file name and mtime 0, zstd uses a fixed level, Parquet fixed options; gateway
files are serialized one hour at a time (two hours in flight, since zlib and Polars release the GIL).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import zstandard

from analyzer import schema as s
from analyzer.errors import OutputError
from analyzer.simulate.limiter import limits_toml
from analyzer.simulate.spec import CACHED_WEIGHT, MODELS, SimSpec, Simulation

TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
PARQUET_CODEC: dict[str, Literal["gzip", "zstd", "uncompressed"]] = {
    "gz": "gzip",
    "zst": "zstd",
    "none": "uncompressed",
}
HOUR_US = 3_600_000_000
ACCOUNTS_FILE = "accounts.csv"
LIMITS_FILE = "limits.toml"
CONFIG = "analyzer.toml"
CONFIG_MARK = "# Written by analyzer simulate --cached"
SIMULATED = "# Written by analyzer simulate"  # how every analyzer.toml the simulator writes starts


def weights_toml() -> str:
    """The weights a --cached simulation bills by, as the analyzer.toml `analyzer report DIR` finds."""
    lines = [f"{CONFIG_MARK}: a cached prompt token costs {CACHED_WEIGHT} of an uncached one."]
    for model in MODELS:
        lines += [f'[weights."{model}"]', f'cached = "{CACHED_WEIGHT}"']
    return "\n".join(lines) + "\n"


def _text_ts(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(s.TS).dt.strftime(TS_FORMAT))


def _serialize(frame: pl.DataFrame, fmt: str, compress: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "parquet":
        frame.write_parquet(buf, compression=PARQUET_CODEC[compress], statistics=True, row_group_size=262_144)
        return buf.getvalue()
    if fmt == "jsonl":
        _text_ts(frame).write_ndjson(buf)
    else:
        _text_ts(frame).write_csv(buf)
    data = buf.getvalue()
    if compress == "gz":
        return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    if compress == "zst":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    return data


def gateway_suffix(spec: SimSpec) -> str:
    """The file suffix of the gateway files: .jsonl.gz, .csv.zst, .parquet, ..."""
    if spec.format == "parquet":
        return ".parquet"
    return f".{spec.format}" + {"gz": ".gz", "zst": ".zst", "none": ""}[spec.compress]


def _hours(gateway: pl.DataFrame) -> Iterator[tuple[str, pl.DataFrame]]:
    """(hour label, rows of that hour) in time order; the frame is sorted by ts."""
    if gateway.height == 0:
        return
    us = gateway[s.TS].dt.epoch("us").to_numpy()
    first, last = us[0] // HOUR_US, us[-1] // HOUR_US
    edges = np.searchsorted(us, np.arange(first, last + 2) * HOUR_US, side="left")
    labels = (
        pl.Series(np.arange(first, last + 1) * HOUR_US, dtype=pl.Int64)
        .cast(s.TS_DTYPE)
        .dt.strftime("%Y-%m-%dT%H")
    )
    for label, lo, hi in zip(labels, edges[:-1], edges[1:], strict=True):
        if hi > lo:
            yield label, gateway.slice(int(lo), int(hi - lo))


def _prepare(out_dir: Path) -> None:
    """Refuse a folder holding anything but an earlier simulation; clear that simulation's files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("exists and is not a folder", path=str(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {p.name for p in out_dir.iterdir()} - {"README.md", ".gitkeep"}
    if entries and "truth.json" not in entries:
        raise OutputError(
            "folder is not empty and holds no earlier simulation (no truth.json)", path=str(out_dir)
        )
    stale = [*out_dir.glob("gateway/gateway-*"), *out_dir.glob("ledger.*"), *out_dir.glob("events.jsonl")]
    stale += [p for p in (out_dir / ACCOUNTS_FILE, out_dir / LIMITS_FILE) if p.exists()]
    config = out_dir / CONFIG
    if config.is_file() and config.read_text(encoding="utf-8").startswith(SIMULATED):
        stale.append(config)  # an earlier simulation's settings, never a user's file
    for p in stale:
        p.unlink()


def write(sim: Simulation, out_dir: Path, spec: SimSpec) -> list[Path]:
    """Write gateway/ hourly files, ledger, events.jsonl and truth.json; return the paths written."""
    out_dir = Path(out_dir)
    _prepare(out_dir)
    gateway_dir = out_dir / "gateway"
    gateway_dir.mkdir(exist_ok=True)
    suffix = gateway_suffix(spec)
    paths: list[Path] = []
    hours = list(_hours(sim.gateway))
    with ThreadPoolExecutor(max_workers=2) as pool:
        blobs = pool.map(lambda h: _serialize(h[1], spec.format, spec.compress), hours)
        for (label, _), blob in zip(hours, blobs, strict=True):
            path = gateway_dir / f"gateway-{label}{suffix}"
            path.write_bytes(blob)
            paths.append(path)
    ledger_fmt = "parquet" if spec.format == "parquet" else "csv"
    ledger_path = out_dir / f"ledger.{ledger_fmt}"
    ledger_path.write_bytes(_serialize(sim.ledger, ledger_fmt, "zst" if ledger_fmt == "parquet" else "none"))
    events_path = out_dir / "events.jsonl"
    events_path.write_bytes(_serialize(sim.events, "jsonl", "none"))
    limits_paths = []
    if sim.accounts.height:
        accounts_path, toml_path = out_dir / ACCOUNTS_FILE, out_dir / LIMITS_FILE
        sim.accounts.write_csv(accounts_path)
        toml_path.write_text(limits_toml(ACCOUNTS_FILE), encoding="utf-8")
        limits_paths = [accounts_path, toml_path]
    config_text = "\n".join(part for part in (weights_toml() if spec.cached else "", sim.config) if part)
    if config_text:
        config_path = out_dir / CONFIG
        config_path.write_text(config_text, encoding="utf-8")
        paths.append(config_path)
    truth_path = out_dir / "truth.json"
    truth_path.write_text(json.dumps(sim.truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [*paths, ledger_path, events_path, *limits_paths, truth_path]
