"""The memory watchdog: sizes, the guard firing, and the CLI stopping with one line instead of the OOM killer."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from analyzer.memguard import default_limit, parse_size, resident_memory, start_guard

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        pytest.param("4GB", 4 << 30, id="GB"),
        pytest.param("512M", 512 << 20, id="M"),
        pytest.param("2.5gib", int(2.5 * (1 << 30)), id="fraction-GiB"),
        pytest.param("1048576", 1 << 20, id="bytes"),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "4 parsecs", "-1GB"])
def test_parse_size_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


@pytest.mark.skipif(resident_memory() is None, reason="needs /proc (Linux)")
def test_guard_fires_once_over_the_limit_and_not_under_it() -> None:
    held = resident_memory()
    assert held is not None and default_limit() is not None
    fired: list[int] = []
    crossed = threading.Event()

    def record(rss: int) -> None:
        fired.append(rss)
        crossed.set()

    stop_low = start_guard(held // 2, record, interval_s=0.01)
    assert crossed.wait(5)
    stop_low()
    stop_high = start_guard(held * 100, lambda rss: fired.append(-rss), interval_s=0.01)
    threading.Event().wait(0.1)
    stop_high()
    assert len(fired) == 1 and fired[0] > held // 2


@pytest.mark.skipif(resident_memory() is None, reason="needs /proc (Linux)")
def test_cli_stops_with_one_line_and_exit_2_when_memory_runs_over(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = subprocess.run(
        [sys.executable, "-m", "analyzer", "report", str(SAMPLE), "--quiet", "--max-memory", "40MB",
         "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("error: memory use reached ") and run.stderr.count("\n") == 1
    assert "--max-memory" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
