"""Time and memory of each stage of `analyzer report`, run one by one in this process.

    python bench/stages.py DIR [--only load detect reconcile report]

Mirrors analyzer.pipeline.run_report: load every kind, detect, reconcile, build the report, render
JSON and Markdown. After each stage it prints the wall seconds, the stage's own peak RSS (VmHWM,
reset before each stage through /proc/self/clear_refs) and the RSS left after it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss_now() -> int:
    return _status("VmRSS")


def _peak() -> int:
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: the peak is then the process's so far


def _stage(name: str, rows: list[tuple[str, float, int, int]], fn: Callable[[], T]) -> T:
    _reset_peak()
    started = time.perf_counter()
    out = fn()
    rows.append((name, time.perf_counter() - started, _peak(), _rss_now()))
    print(
        f"{name:<12} {rows[-1][1]:8.2f} s  peak {rows[-1][2] / 2**20:8.0f} MiB", file=sys.stderr, flush=True
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the report's stages on DIR and print one Markdown table row per stage."""
    sys.path.insert(0, str(ROOT))
    import polars as pl

    from analyzer.config import load_settings
    from analyzer.detect import detect
    from analyzer.ingest import find_inputs, load
    from analyzer.reconcile import reconcile
    from analyzer.report.jsonreport import render_json
    from analyzer.report.markdown import render_markdown
    from analyzer.report.model import build_report
    from analyzer.schema import EVENTS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    rows: list[tuple[str, float, int, int]] = [("start", 0.0, _peak(), _rss_now())]
    settings = load_settings(None)
    sources = find_inputs(args.directory)
    loaded = {
        kind: _stage(f"load {kind}", rows, lambda kind=kind: load(kind, sources[kind], settings))
        for kind in ("gateway", "ledger", "events")
        if sources.get(kind)
    }
    gateway = loaded["gateway"].frame
    detection = _stage("detect", rows, lambda: detect(gateway, settings))
    rec = _stage("reconcile", rows, lambda: reconcile(gateway, loaded["ledger"].frame, settings))
    events = loaded["events"].frame.collect() if "events" in loaded else pl.DataFrame(schema=EVENTS)
    inputs = [r for item in loaded.values() for r in item.inputs]
    notes = [n for item in loaded.values() for n in item.notes]
    report = _stage(
        "build_report", rows, lambda: build_report(inputs, detection, rec, events, settings, notes=notes)
    )
    _stage("render", rows, lambda: (render_json(report), render_markdown(report)))
    total = sum(r[1] for r in rows)
    print("| stage | wall s | stage peak RSS MiB | RSS after MiB |")
    print("|---|---:|---:|---:|")
    for name, wall, peak, now in rows[1:]:
        print(f"| {name} | {wall:.2f} | {peak / 2**20:.0f} | {now / 2**20:.0f} |")
    overall = max(r[2] for r in rows)
    print(f"| total | {total:.2f} | {overall / 2**20:.0f} (max) | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
