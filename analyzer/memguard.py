"""A watchdog on the process's resident memory, so a run too big for the machine stops with a message.

The kernel's OOM killer ends a process with SIGKILL and no word; Polars (Rust) aborts on a failed
allocation. Neither tells the user what to do. The guard polls the resident set size and calls
`on_exceed` (the CLI prints one line and exits) when it crosses the limit, before the machine runs out.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of a size like '3GB', '512M', '2.5g' or '1073741824'; ValueError when it is not one."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a size (e.g. 4GB, 512MB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def human_size(n: int) -> str:
    """'3.1 GiB', '512 MiB': the size a message shows."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where there is no such file."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def resident_memory() -> int | None:
    """This process's resident set size in bytes (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def default_limit() -> int | None:
    """90% of the memory available now plus what the process already holds; None when unknown."""
    free, held = available_memory(), resident_memory()
    if free is None or held is None:
        return None
    return held + free * 9 // 10


def start_guard(limit: int, on_exceed: Callable[[int], None], interval_s: float = 0.1) -> Callable[[], None]:
    """Poll the resident memory in a daemon thread; call on_exceed(rss) once if it passes `limit`.

    Returns a function that stops the guard.
    """
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval_s):
            rss = resident_memory()
            if rss is not None and rss > limit:
                on_exceed(rss)
                return

    if resident_memory() is None:  # not Linux: nothing to watch with
        return stop.set
    threading.Thread(target=watch, name="analyzer-memguard", daemon=True).start()
    return stop.set
