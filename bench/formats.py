"""Parse speed of each text access-log format against nginx's parser, per line.

    python bench/formats.py [--lines 200000]

Each format's fixture lines (tests/fixtures/ingest/formats/) are repeated to `--lines` raw lines in
memory; the parser of the format (as the formats table calls it) is collected on them, keeping the
columns the format's default mapping reads and `_reject` (as the reader does: the fields nothing reads
are never computed), once for warm-up, then the best of three runs is kept. Prints ns per line and the ratio to nginx's default
parser on combined + $request_time lines. The issue asks each ratio to stay within 1.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.ingest import accesslogs, nginx  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ingest" / "formats"
NGINX_LINE = (
    '10.0.0.1 - - [22/Apr/2026:09:00:01 +0000] "POST /v1/chat/completions HTTP/1.1" 200 512 "-" '
    '"openai-python/1.30.1" 1.532 1.530'
)


def _frame(lines: list[str], n: int) -> pl.LazyFrame:
    raw = (lines * (n // len(lines) + 1))[:n]
    return pl.DataFrame({"_line": pl.int_range(1, n + 1, eager=True), "_raw": raw}).lazy()


def _best(parse: Callable[[pl.LazyFrame], pl.LazyFrame], frame: pl.LazyFrame, read: list[str]) -> float:
    def run() -> None:
        parse(frame).select(*read, "_reject").collect()

    run()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    n = parser.parse_args().lines
    base = _best(nginx.parse_nginx, _frame([NGINX_LINE], n), list(nginx.nginx_fields().values()))
    print(f"{'format':<16}{'ns/line':>10}{'x nginx':>10}")
    print(f"{'nginx':<16}{base / n * 1e9:>10.0f}{1.0:>10.2f}")
    parsers: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
        layout.name: lambda lf, layout=layout: accesslogs.parse(lf, layout, list(layout.defaults.values()))  # type: ignore[misc]
        for layout in accesslogs.LAYOUTS
    }
    parsers["ingress_nginx"] = nginx.parse_ingress
    reads = {layout.name: list(layout.defaults.values()) for layout in accesslogs.LAYOUTS}
    reads["ingress_nginx"] = list(nginx.ingress_fields().values())
    for name, parse in parsers.items():
        lines = [s for s in (FIXTURES / f"{name}.log").read_text().splitlines() if not s.startswith("#")]
        took = _best(parse, _frame(lines, n), reads[name])
        print(f"{name:<16}{took / n * 1e9:>10.0f}{took / base:>10.2f}")


if __name__ == "__main__":
    main()
