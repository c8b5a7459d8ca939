"""What the rate-limit audit adds to `analyzer report`'s time: the same report with and without it.

    python3 bench/limits.py --requests 1M             # the cached launch outage of bench/run.py
    python3 bench/limits.py --data DIR --repeat 2     # an existing outage folder (with limits.toml)

Each run is a fresh process running the report (JSON and Markdown written) as `analyzer report DIR
--config DIR/limits.toml` does, once without the audit (pipeline.Part.LIMITS left out) and once with it,
alternating; the fastest of `--repeat` runs of each is compared. The ratio is the answer: on a shared
machine the absolute times move, the two runs of a pair move together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from run import _machine, dataset, measure, parse_count

CHILD = """
import sys, tempfile
from pathlib import Path
from analyzer.pipeline import ALL_PARTS, Part, ReportRequest, run_report, write_outputs
data, audit = Path(sys.argv[1]), sys.argv[2] == "with"
parts = ALL_PARTS if audit else ALL_PARTS - {Part.LIMITS}
config = data / "limits.toml"
analysis = run_report(ReportRequest(directory=data, config=config if config.is_file() else None), parts=parts)
with tempfile.TemporaryDirectory() as tmp:
    write_outputs(analysis, json_path=Path(tmp) / "r.json", markdown_path=Path(tmp) / "r.md")
rl = analysis.report.rate_limits
print("wrong", None if rl is None else rl.counts["wrong"], "requests", analysis.report.summary.get("requests"))
"""


def main(argv: list[str] | None = None) -> int:
    """Time the report without and with the audit; print both and the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=parse_count, default=parse_count("1M"))
    parser.add_argument("--data", type=Path, default=None, help="an existing outage folder")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    data = args.data or dataset(args.requests, "jsonl")
    runs: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.repeat):
        for mode in runs:
            t = measure(mode, [sys.executable, "-c", CHILD, str(data), mode])
            if t.returncode != 0:
                print(t.stderr, file=sys.stderr)
                return 1
            runs[mode].append(t.wall_s)
            print(
                f"{mode:8s} audit  {t.wall_s:7.2f} s  {t.peak_rss / 2**20:6.0f} MiB  {t.stdout.strip()}",
                flush=True,
            )
    best = {mode: min(times) for mode, times in runs.items()}
    print(
        f"{data}: the audit adds {best['with'] / best['without'] - 1:+.1%} to the report's time ({_machine()})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
