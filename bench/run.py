"""Time the analyzer against a Polars floor and hand-written DuckDB, Polars and pandas baselines.

    python bench/run.py --requests 1M [--format jsonl parquet] [--skip-pandas] [--repeat 1]

Generates the `launch` outage with the simulator (cached under bench/.cache/<params>/), then runs each
contender as a whole process, measuring wall seconds and peak RSS, and prints one table. Each contender's
refund total is checked against the simulator's truth.json, so the comparison is between real answers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
HOURS = 18.0
SEED = 7
PANDAS_MAX = 2_000_000
_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


@dataclass(frozen=True)
class Timing:
    """One contender's run: wall seconds, peak RSS in bytes, exit code and what it printed."""

    name: str
    wall_s: float
    peak_rss: int
    returncode: int
    stdout: str
    stderr: str


def parse_count(text: str) -> int:
    """A request count from '1000000', '1e6', '1M', '10m', '500k' or '1_000_000'."""
    m = re.fullmatch(r"\s*([0-9_.eE+]+)\s*([kKmMgG]?)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    try:
        value = float(m.group(1).replace("_", "")) * _SUFFIX[m.group(2).lower()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"need at least one request: {text!r}")
    return int(round(value))


def dataset(requests: int, fmt: str) -> Path:
    """The cached outage of about `requests` requests in `fmt`, simulated on first use."""
    rate = requests / (HOURS * 3600)
    accounts = max(300, requests // 5000)
    out = CACHE / f"launch-seed{SEED}-n{requests}-{fmt}"
    if (out / ".complete").is_file():
        return out
    sys.path.insert(0, str(ROOT))
    try:
        from analyzer.simulate import SimSpec, simulate
    except ImportError as e:
        raise SystemExit(f"cannot simulate the outage ({e}); pass --data DIR with an existing one") from None

    if out.exists():
        shutil.rmtree(out)  # a run interrupted mid-write leaves files that must not be reused
    out.mkdir(parents=True)
    print(f"simulating {requests:,} requests ({fmt}) into {out} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    spec = SimSpec(
        scenario="launch", seed=SEED, hours=HOURS, rate=rate, accounts=accounts, format=fmt, compress="gz"
    )
    simulate(out, spec)
    (out / ".complete").write_text(f"{time.perf_counter() - started:.1f}s\n")
    return out


def _maxrss_from_time(report: str) -> int:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    return int(m.group(1)) * 1024 if m else 0


def measure(name: str, argv: list[str]) -> Timing:
    """Run `argv` as a child process; its wall time and peak RSS (via /usr/bin/time -v, else wait4)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    gnu_time = shutil.which("time", path="/usr/bin")
    with tempfile.TemporaryDirectory() as tmp:
        out, err, rusage = (Path(tmp) / n for n in ("out", "err", "rusage"))
        command = [gnu_time, "-v", "-o", str(rusage), *argv] if gnu_time else argv
        with out.open("w") as fo, err.open("w") as fe:
            started = time.perf_counter()
            child = subprocess.Popen(command, stdout=fo, stderr=fe, env=env, cwd=ROOT)
            # wait4 gives this child's own peak RSS; RUSAGE_CHILDREN would be the max over all children.
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
        peak = _maxrss_from_time(rusage.read_text()) if gnu_time else usage.ru_maxrss * 1024
        return Timing(name, wall, peak, child.returncode, out.read_text(), err.read_text())


def _find(tree: object, key: str) -> object:
    """The first value of `key` anywhere in a JSON tree (the report's layout is the report's business)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def _last_json(stdout: str) -> dict[str, object]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _refund(t: Timing, report_json: Path | None) -> int | None:
    if t.returncode != 0:  # no --fail-on is given, so any non-zero exit (1 is a traceback) fails
        return None
    if report_json is not None:
        value = (
            _find(json.loads(report_json.read_text()), "refund_tokens_total")
            if report_json.is_file()
            else None
        )
    else:
        value = _last_json(t.stdout).get("refund_tokens")
    return int(value) if isinstance(value, int) else None


def _best(runs: list[Timing]) -> Timing:
    ok = [r for r in runs if r.returncode == 0]
    return min(ok or runs, key=lambda r: r.wall_s)


def _table(rows: list[tuple[Timing, int | None]], requests: int, truth: int | None) -> str:
    analyzer = next((t for t, _ in rows if t.name == "analyzer" and t.returncode == 0), None)
    head = f"{'':<10} {'status':<7} {'wall s':>8} {'peak RSS MiB':>13} {'req/s':>12} {'× wall':>7} {'× RSS':>6}  refund = truth"
    lines = [head, "-" * len(head)]
    for t, refund in rows:
        ok = t.returncode == 0
        ratio_wall = f"{t.wall_s / analyzer.wall_s:.2f}" if ok and analyzer else "-"
        ratio_rss = f"{t.peak_rss / analyzer.peak_rss:.2f}" if ok and analyzer and analyzer.peak_rss else "-"
        if t.name == "floor":
            check = "n/a (counts rows)"
        elif refund is None:
            check = "- (no answer)"
        else:
            check = f"{'✓' if refund == truth else '✗'} {refund:,}"
        lines.append(
            f"{t.name:<10} {'ok' if ok else f'exit {t.returncode}':<7} {t.wall_s:>8.2f} "
            f"{t.peak_rss / 2**20:>13.0f} {requests / t.wall_s if ok else 0:>12,.0f} {ratio_wall:>7} {ratio_rss:>6}  {check}"
        )
    return "\n".join(lines)


def _machine() -> str:
    import polars

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"nproc {os.cpu_count()}, RAM {ram:.0f} GiB, Python {sys.version.split()[0]}, "
        f"Polars {polars.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse options, build or reuse the dataset, time every contender, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=parse_count, default=parse_count("1M"), help="1e6, 1M, 10M, ...")
    parser.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        nargs="+",
        default=["jsonl"],
        help="input format(s); with both, the same outage in each and the analyzer's Parquet speed-up",
    )
    parser.add_argument("--skip-pandas", action="store_true", help="never run pandas")
    parser.add_argument("--pandas-anyway", action="store_true", help=f"run pandas above {PANDAS_MAX:,} too")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the fastest is shown")
    parser.add_argument(
        "--data", type=Path, default=None, help="use this outage folder instead of simulating"
    )
    parser.add_argument("--only", nargs="*", default=None, help="subset: floor analyzer duckdb polars pandas")
    args = parser.parse_args(argv)

    formats = ["given"] if args.data is not None else list(dict.fromkeys(args.format))
    walls: dict[str, float] = {}
    for fmt in formats:
        data = args.data if args.data is not None else dataset(args.requests, fmt)
        analyzer = _run_table(data, fmt, args)
        if analyzer is not None:
            walls[fmt] = analyzer
    if "jsonl" in walls and "parquet" in walls:
        print(
            f"analyzer on Parquet: {walls['jsonl'] / walls['parquet']:.1f}x faster than on gzip JSON lines "
            f"({walls['parquet']:.2f} s against {walls['jsonl']:.2f} s)"
        )
    return 0


def _run_table(data: Path, fmt: str, args: argparse.Namespace) -> float | None:
    """Time every contender on the outage in `data`, print its table; the analyzer's wall seconds."""
    truth_doc = json.loads((data / "truth.json").read_text())
    truth_refund = _find(truth_doc.get("ledger", truth_doc), "refund_tokens_total")
    truth = int(truth_refund) if isinstance(truth_refund, int) else None
    served = _find(truth_doc, "requests")
    requests = int(served) if isinstance(served, int) else args.requests

    py = sys.executable
    contenders: dict[str, list[str]] = {
        "floor": [py, str(BENCH / "floor.py"), str(data)],
        "analyzer": [],  # filled per run: it needs fresh output paths
        "duckdb": [py, str(BENCH / "baseline_duckdb.py"), str(data)],
        "polars": [py, str(BENCH / "baseline_polars.py"), str(data)],
    }
    if not args.skip_pandas and (requests <= PANDAS_MAX or args.pandas_anyway):
        contenders["pandas"] = [py, str(BENCH / "baseline_pandas.py"), str(data)]
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only}

    print(f"\n{requests:,} requests, {fmt}, {data.name}; {_machine()}", flush=True)
    rows: list[tuple[Timing, int | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        report_json = Path(tmp) / "report.json"
        for name, command in contenders.items():
            if name == "analyzer":
                md = Path(tmp) / "report.md"
                command = [py, "-m", "analyzer", "report", str(data), "--json", str(report_json)]
                command += ["--markdown", str(md), "--quiet"]
            runs = [measure(name, command) for _ in range(max(1, args.repeat))]
            best = _best(runs)
            refund = _refund(best, report_json if name == "analyzer" else None)
            if best.returncode != 0:
                tail = (best.stderr.strip().splitlines() or ["(no stderr)"])[-1]
                print(f"  {name} failed (exit {best.returncode}): {tail}", file=sys.stderr)
            elif name != "analyzer":
                print(f"  {name}: {best.stdout.strip()}", flush=True)
            rows.append((best, refund))
    print(f"truth.json ledger.refund_tokens_total = {truth if truth is None else f'{truth:,}'}")
    print(_table(rows, requests, truth), flush=True)
    analyzer = next((t for t, _ in rows if t.name == "analyzer" and t.returncode == 0), None)
    return None if analyzer is None else analyzer.wall_s


if __name__ == "__main__":
    sys.exit(main())
