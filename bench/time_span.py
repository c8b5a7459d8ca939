"""What a far timestamp costs: `analyzer report` on a day of logs with one 1970 line, and on four years.

    python bench/time_span.py [--tree DIR] [--lines 50000]

Writes two gateway logs (JSON lines, seeded): `day1970` holds `--lines` requests over one day and one
line stamped 1970-01-01; `fouryears` holds a day of `--lines / 4` requests in each of four years
(2023-2026), each day with a burst of 502s. Runs `python -m analyzer report` of the tree `--tree`
(default: this one) on each, as a process of its own, and prints wall seconds, peak RSS and the
rejects by reason and bursts found (from the JSON report). Run it on two trees for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lines(start: datetime, n: int, rng: random.Random) -> list[str]:
    out = []
    for i in range(n):
        ts = start + timedelta(seconds=86_400 * i / n)
        burst = 12 * 3600 <= (ts - start).total_seconds() < 12 * 3600 + 600
        status = 502 if burst and rng.random() < 0.6 else 200
        out.append(
            json.dumps(
                {
                    "ts": ts.isoformat().replace("+00:00", "Z"),
                    "request_id": f"r{start.year}-{i}",
                    "status": status,
                    "latency_ms": round(rng.uniform(200, 900), 1),
                }
            )
        )
    return out


def _write(folder: Path, lines: int) -> dict[str, Path]:
    rng = random.Random(7)
    day = folder / "day1970"
    day.mkdir()
    rows = _lines(datetime(2026, 4, 22, tzinfo=UTC), lines, rng)
    rows.insert(lines // 2, json.dumps({"ts": "1970-01-01T00:00:00Z", "request_id": "x", "status": 200}))
    (day / "gateway.jsonl").write_text("\n".join(rows) + "\n")
    years = folder / "fouryears"
    years.mkdir()
    rows = [
        r for y in (2023, 2024, 2025, 2026) for r in _lines(datetime(y, 4, 22, tzinfo=UTC), lines // 4, rng)
    ]
    (years / "gateway.jsonl").write_text("\n".join(rows) + "\n")
    return {"day1970": day, "fouryears": years}


def _run(tree: Path, folder: Path) -> tuple[float, int, dict[str, int], int]:
    out = folder.parent / f"{folder.name}.report.json"
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "analyzer", "report", str(folder), "--json", str(out)],
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
    )
    _, _, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children
    took = time.perf_counter() - start
    report = json.loads(out.read_text())
    rejects: dict[str, int] = {}
    for item in report["inputs"]:
        for reason, n in item["rejects_by_reason"].items():
            rejects[reason] = rejects.get(reason, 0) + n
    return took, usage.ru_maxrss, rejects, len(report.get("bursts", []))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--lines", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in _write(Path(tmp), args.lines).items():
            took, peak_kb, rejects, bursts = _run(args.tree, folder)
            print(
                f"{name:<10} {took:6.2f} s  peak {peak_kb / 1024:6.0f} MiB  rejects {rejects}  bursts {bursts}"
            )


if __name__ == "__main__":
    main()
