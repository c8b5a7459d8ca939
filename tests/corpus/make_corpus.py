"""The broken-file corpus of issue 9, written byte for byte by `build(folder)` (no clock, no randomness
but a seeded generator), so the binary and the large cases need not be committed.

    python tests/corpus/make_corpus.py OUT_DIR

Each file is named for its case; tests/test_corpus.py states what the loader must say about each.
"""

from __future__ import annotations

import functools
import gzip
import io
import sys
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl
import zstandard

GOOD_LINES: Final = 40  # good rows in each generated JSON lines file


def gateway_line(i: int, *, hour: int = 9, request_id: str | None = None, status: int = 200) -> str:
    """One good JSON gateway line: second `i` of `hour`, request id `r<i>` unless given."""
    rid = request_id if request_id is not None else f"r{i}"
    minute, second = divmod(i, 60)
    return (
        f'{{"timestamp": "2026-04-22T{hour:02d}:{minute:02d}:{second:02d}Z", "request_id": "{rid}", '
        f'"user": "acct-{i % 3}", "model": "m", "status": {status}, "duration_ms": {10 + i}, '
        f'"usage": {{"prompt_tokens": {i}, "completion_tokens": {2 * i}}}}}'
    )


def _lines(lines: list[str], newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode()


def _good(n: int = GOOD_LINES, hour: int = 9) -> list[str]:
    return [gateway_line(i, hour=hour) for i in range(n)]


ZSTD_LINES: Final = 6000


@functools.cache
def clean_zstd() -> bytes:
    """The undamaged zstd stream the two corrupt cases are made from."""
    # Random request ids make the stream several zstd blocks long.
    ids = np.random.default_rng(9).integers(0, 10**12, ZSTD_LINES)
    lines = [gateway_line(i % 3600, request_id=f"r{n}") for i, n in enumerate(ids)]
    return zstandard.ZstdCompressor(level=3).compress(_lines(lines))


def _corrupt_zstd(at: float) -> bytes:
    # 64 bytes zeroed by a bad disk block at fraction `at` of the file: the blocks from there are lost.
    data = bytearray(clean_zstd())
    start = int(len(data) * at)
    data[start : start + 64] = bytes(64)
    return bytes(data)


def _truncated_gzip() -> bytes:
    whole = gzip.compress(_lines(_good()), mtime=0)
    return whole[: len(whole) * 2 // 3]


def _binary() -> bytes:
    # A PNG header followed by noise: what a misdirected glob picks up.
    noise = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return b"\x89PNG\r\n\x1a\n" + noise


def _huge_line() -> bytes:
    # A client-controlled field of 5 MB (a prompt echoed into the log) on the first line of the file.
    huge = '{"timestamp": "2026-04-22T09:00:59Z", "request_id": "big", "status": 200, "agent": "'
    huge += "A" * (5 * 1024 * 1024) + '"}'
    return _lines([huge, *_good(3)])


def _parquet(status: pl.Series) -> bytes:
    buf = io.BytesIO()
    n = status.len()
    pl.DataFrame(
        {
            "timestamp": [f"2026-04-22T09:00:{i:02d}Z" for i in range(n)],
            "request_id": [f"p{i}" for i in range(n)],
            "status": status,
        }
    ).write_parquet(buf)
    return buf.getvalue()


def _skewed() -> dict[str, bytes]:
    # Hourly rotated files of one host; the 10:00 file was written by a host whose clock ran 2 h ahead.
    files = {}
    for hour in (8, 9, 10, 11, 12):
        shown = hour + 2 if hour == 10 else hour
        files[f"skew/gateway-2026-04-22T{hour:02d}.jsonl"] = _lines(
            [gateway_line(i * 59, hour=shown, request_id=f"h{hour}-{i}") for i in range(61)]
        )
    return files


def cases() -> dict[str, bytes]:
    """Every corpus file: its name and bytes (built on call; the 5 MB line is not built at import)."""
    return {
        "empty.jsonl": b"",
        "header_only.csv": b"timestamp,request_id,status,duration_ms\n",
        "truncated.jsonl.gz": _truncated_gzip(),
        "corrupt.jsonl.zst": _corrupt_zstd(0.5),
        "corrupt_head.jsonl.zst": _corrupt_zstd(0.0002),
        "binary.png": _binary(),
        "huge_line.jsonl": _huge_line(),
        "latin1.jsonl": _lines(_good(3))
        + b'{"timestamp": "2026-04-22T09:00:09Z", "status": 200, "user": "caf\xe9"}\n',
        "bom.csv": b"\xef\xbb\xbftimestamp,request_id,status\n2026-04-22T09:00:01Z,b1,200\n2026-04-22T09:00:02Z,b2,502\n",
        "bom.jsonl": b"\xef\xbb\xbf" + _lines(_good(3)),
        # A client-built object nested 50,000 deep: the JSON parsers' recursion limits must not crash the run.
        "deep.jsonl": _lines([gateway_line(1), '{"a":' * 50_000 + "1" + "}" * 50_000, gateway_line(2)]),
        "utf16.jsonl": "\n".join(_good(3)).encode("utf-16"),  # PowerShell's `>`, with its byte-order mark
        "crlf.csv": b"timestamp,request_id,status\r\n2026-04-22T09:00:01Z,c1,200\r\n2026-04-22T09:00:02Z,c2,502\r\n",
        "crlf.jsonl": _lines(_good(3), "\r\n"),
        "cr_only.csv": b"timestamp,request_id,status\r2026-04-22T09:00:01Z,c1,200\r2026-04-22T09:00:02Z,c2,502\r",
        "types/a.parquet": _parquet(pl.Series([200, 502, 200], dtype=pl.Int64)),
        "types/b.parquet": _parquet(pl.Series(["200", "OK?", "503"], dtype=pl.String)),
        "ledger_bad_amount.csv": (
            b"ts,account_id,kind,tokens\n"
            b"2026-04-22T09:00:01Z,acct-1,deduct,120\n"
            b"2026-04-22T09:00:02Z,acct-1,deduct,12O\n"  # a letter O typed for a zero
            b"2026-04-22T09:00:03Z,acct-1,deduct,\n"
            b"2026-04-22T09:00:04Z,acct-1,deduct,1e3\n"
            b"2026-04-22T09:00:05Z,acct-1,deduct,1.5\n"
            b"2026-04-22T09:00:06Z,acct-1,refund,-120\n"
        ),
        # A log shipper re-sent lines 5..9 of the first file, inside it and again at the head of the second.
        "shipped/gateway-1.jsonl": _lines([*_good(10), *_good(10)[5:]]),
        "shipped/gateway-2.jsonl": _lines(
            [*_good(10)[5:], gateway_line(5, status=502), *[gateway_line(i) for i in range(10, 15)]]
        ),
        **_skewed(),
    }


def build(folder: Path) -> Path:
    """Write every corpus file under `folder` and return it."""
    for name, data in cases().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


if __name__ == "__main__":
    build(Path(sys.argv[1]))
