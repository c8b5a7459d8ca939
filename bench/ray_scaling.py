"""Time `--engine ray` on a local cluster of 1, 2, ... workers against the local engine, by stage.

    python bench/ray_scaling.py --requests 10M --workers 1 2     # the launch outage of bench/run.py
    python bench/ray_scaling.py --data DIR --workers 1 2

Each configuration is a whole process started fresh (`--child`): it starts a Ray cluster of N CPUs
(`ray.init(num_cpus=N)`, so N tasks run at once, Polars one thread in each), runs the report with
the library (`pipeline.run_report`), and says when each stage's tasks started and finished (from the
progress lines), the peak RSS of each Ray worker process and of the driver, and the bytes that went
through the object store: the canonical rows the map tasks returned and the partitioned billing
columns the reduce tasks were given. The local engine runs the same way without Ray. Every run's
JSON report is compared with the local one's (apart from `engine`). The figures feed bench/RAY.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from run import dataset, parse_count  # noqa: E402


def _workers_peak_rss() -> dict[str, int]:
    """Peak RSS (VmHWM, bytes) of each Ray worker of this process's own cluster (its descendants; other
    clusters may run on a shared machine), by pid and process title."""
    parents: dict[int, int] = {}
    status: dict[int, str] = {}
    for path in Path("/proc").glob("[0-9]*/status"):
        try:
            status[int(path.parent.name)] = path.read_text()
        except OSError:
            continue
        ppid = next(line for line in status[int(path.parent.name)].splitlines() if line.startswith("PPid:"))
        parents[int(path.parent.name)] = int(ppid.split()[1])

    def mine(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    peaks = {}
    for pid, text in status.items():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if cmd.startswith("ray::") and "Agent" not in cmd and mine(pid):
            hwm = next(line for line in text.splitlines() if line.startswith("VmHWM:"))
            peaks[f"{pid} {cmd}"] = int(hwm.split()[1]) * 1024
    return peaks


def child(directory: Path, workers: int, out: Path) -> None:
    """One configuration, in this process: workers 0 is the local engine."""
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    marks: list[tuple[float, str]] = []
    from analyzer.engine import Engine
    from analyzer.pipeline import ReportRequest, run_report
    from analyzer.report import render_json

    engine = Engine.LOCAL
    if workers:
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        engine = Engine.RAY
    marks.append((time.perf_counter() - started, "cluster up"))
    analysis = run_report(
        ReportRequest(directory=directory, engine=engine),
        progress=lambda msg: marks.append((time.perf_counter() - started, msg)),
    )
    wall = time.perf_counter() - started
    peaks = _workers_peak_rss() if workers else {}
    stats: dict[str, object] = {
        "workers": workers,
        "wall_s": wall,
        "marks": marks,
        "driver_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "worker_peak_rss": peaks,
        "requests": sum(i.rows_analyzed for i in analysis.report.inputs if i.kind == "gateway"),
    }
    if workers:
        import polars as pl

        from analyzer.reconcile.partitions import split

        by_kind = {item.kind: item for item in analysis.loaded}
        stats["map_bytes"] = sum(item.frame.collect().estimated_size() for item in analysis.loaded)
        parts = split(by_kind["gateway"].frame, by_kind["ledger"].frame, 1)
        stats["reduce_bytes"] = sum(f.estimated_size() for part in parts for f in part)
        del parts, pl
    (out / f"report-{workers}.json").write_text(render_json(analysis.report))
    (out / f"stats-{workers}.json").write_text(json.dumps(stats))


def _span(marks: list[tuple[float, str]], what: str) -> float | None:
    times = [t for t, msg in marks if msg.startswith(f"{what} on Ray:")]
    return times[-1] - times[0] if times else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=parse_count, default=parse_count("1M"))
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("DIR", "WORKERS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), Path(args.child[2]))
        return 0
    directory = args.data or dataset(args.requests, "jsonl")
    out = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    configs = ([] if args.skip_local else [0]) + list(args.workers)
    for workers in configs:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(directory), str(workers), str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "RAY_DEDUP_LOGS": "0"},
        )
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        print(f"ran workers={workers} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print(f"{directory}  (nproc {os.cpu_count()}, shared machine; stats in {out})")
    print(
        f"{'engine':<12}{'wall s':>9}{'map s':>8}{'reduce s':>10}{'driver MiB':>12}{'task MiB':>10}  same report"
    )
    walls: dict[int, float] = {}
    local_json = (out / "report-0.json").read_text() if 0 in configs else None
    for workers in configs:
        stats = json.loads((out / f"stats-{workers}.json").read_text())
        marks = [tuple(m) for m in stats["marks"]]
        name = "local" if workers == 0 else f"ray x{workers}"
        same = "-"
        if local_json is not None:
            mine = (out / f"report-{workers}.json").read_text()
            same = (
                "yes"
                if mine
                == local_json.replace(
                    '"engine": "local"', f'"engine": "{"local" if not workers else "ray"}"', 1
                )
                else "NO"
            )
        task = max(stats["worker_peak_rss"].values(), default=0) / 2**20
        m, r = _span(marks, "reading"), _span(marks, "reconciling")  # type: ignore[arg-type]
        print(
            f"{name:<12}{stats['wall_s']:>9.1f}{m or 0:>8.1f}{r or 0:>10.1f}"
            f"{stats['driver_peak_rss'] / 2**20:>12.0f}{task:>10.0f}  {same}"
        )
        if workers:
            print(
                f"{'':<12}map bytes/request {stats['map_bytes'] / stats['requests']:.0f}, "
                f"reduce bytes/request {stats['reduce_bytes'] / stats['requests']:.0f}, "
                f"requests {stats['requests']:,}"
            )
        walls[workers] = stats["wall_s"]
    if 1 in walls and 2 in walls:
        print(f"2 workers against 1: {walls[1] / walls[2]:.2f}x faster")
    for workers in args.workers:
        if 0 in walls:
            print(f"ray x{workers} against the local engine: {walls[workers] / walls[0]:.2f}x its time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
