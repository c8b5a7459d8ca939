"""Per-file cost: the same outage as a few hourly files and split into many small ones.

    python bench/many_files.py [--requests 300k] [--files 1000]

The gateway of a cached `launch` outage (bench/run.py's dataset, gzip JSON lines, 18 hourly files)
is split into FILES gzip files of equal line counts (cached beside it; rotated logs such as ALB's,
one file per node every 5 minutes, look like this). Three whole `analyzer report` processes, in
this run: the hourly files, the split files, and the split files read one at a time (batching off,
as before batches existed). Printed: wall seconds, peak RSS, milliseconds of overhead per extra
file, and the ratios. All three reports must agree (refund and request totals).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

from run import CACHE, Timing, _machine, dataset, measure, parse_count

ALONE = (
    "import sys, runpy; from analyzer.ingest import reader; reader.BATCH_FILE_BYTES = 0; "
    "sys.argv = ['analyzer', *sys.argv[1:]]; runpy.run_module('analyzer', run_name='__main__')"
)


def split(source: Path, files: int) -> Path:
    """`source` with its gateway split into `files` gzip files (cached)."""
    out = CACHE / f"{source.name}-split{files}"
    if (out / ".complete").is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    (out / "gateway").mkdir(parents=True)
    for name in ("ledger.csv", "events.jsonl", "truth.json"):
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    lines: list[bytes] = []
    for path in sorted((source / "gateway").glob("*.gz")):
        with gzip.open(path, "rb") as f:
            lines.extend(f.read().splitlines(keepends=True))
    per = -(-len(lines) // files)
    for i in range(files):
        chunk = b"".join(lines[i * per : (i + 1) * per])
        (out / "gateway" / f"gateway-{i:05d}.jsonl.gz").write_bytes(gzip.compress(chunk, 6, mtime=0))
    (out / ".complete").write_text("done\n")
    return out


def _report(name: str, data: Path, out: Path, *, alone: bool = False) -> tuple[Timing, dict[str, object]]:
    head = [sys.executable, "-c", ALONE] if alone else [sys.executable, "-m", "analyzer"]
    json_path = out / f"{name}.json"
    argv = [*head, "report", str(data), "--json", str(json_path), "--markdown", str(out / f"{name}.md")]
    timing = measure(name, [*argv, "--quiet"])
    if timing.returncode not in (0, 1):  # 1: the report found the incident (CI gate), not a failure
        raise SystemExit(f"{name} failed ({timing.returncode}):\n{timing.stderr[-2000:]}")
    return timing, json.loads(json_path.read_text())


def _totals(report: dict[str, object]) -> tuple[object, object]:
    summary = report["summary"]
    assert isinstance(summary, dict)
    return summary.get("refund_tokens_total"), summary.get("requests")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=parse_count, default=parse_count("300k"))
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args(argv)
    hourly = dataset(args.requests, "jsonl")
    many = split(hourly, args.files)
    hours = len(list((hourly / "gateway").glob("*.gz")))
    out = CACHE / "many_files-out"
    out.mkdir(parents=True, exist_ok=True)
    runs = [
        _report("hourly", hourly, out),
        _report("split", many, out),
        _report("split-alone", many, out, alone=True),
    ]
    totals = {_totals(r) for _, r in runs}
    base = runs[0][0].wall_s
    extra = args.files - hours
    print(
        f"{args.requests:,} requests; {hours} hourly files against {args.files:,} split files ({_machine()})"
    )
    print(f"{'run':<12} {'wall s':>8} {'peak MiB':>9} {'ms/extra file':>14} {'x hourly':>9}")
    for timing, _ in runs:
        per_file = (timing.wall_s - base) / extra * 1000 if timing.name != "hourly" else 0.0
        print(
            f"{timing.name:<12} {timing.wall_s:8.2f} {timing.peak_rss / 2**20:9.0f} "
            f"{per_file:14.1f} {timing.wall_s / base:9.2f}"
        )
    print(f"batched against one at a time: {runs[2][0].wall_s / runs[1][0].wall_s:.1f}x faster")
    print("reports agree" if len(totals) == 1 else f"reports DISAGREE: {totals}")
    return 0 if len(totals) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
