"""The map step of loading: every batch of inputs read (`reader.read_batch`), two at a time.

A gzip file is inflated by one thread (the reader decompresses a whole file before its parallel parse):
with several files, reading two at once keeps both cores busy, one inflating while the other parses.
The result is the serial one exactly: reads come back in path order, each batch staged to its own
numbered file, and when a batch fails (an unreadable input, a broken mapping) the error raised is the
one a serial read would have raised first: that of the first failing batch in path order, else that of
opening the next input (`batches` opens inputs as they are asked for).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

from analyzer.config import SourceConfig
from analyzer.ingest.reader import FileRead, Opened, read_batch

# Batches read at once. Two: one inflating, one parsing on a 2-core machine; each holds a file's text.
READERS: Final = 2


def read_batches(
    kind: str, batches: Iterable[list[Opened]], config: SourceConfig, folder: Path
) -> list[FileRead]:
    """Every read of `batches` in order, batch `i` staged to `folder/{i:05d}.parquet`."""
    readers = READERS
    if readers <= 1:
        return [
            read
            for i, batch in enumerate(batches)
            for read in read_batch(kind, batch, config, folder / f"{i:05d}.parquet")
        ]
    futures: list[Future[list[FileRead]]] = []
    opening: Exception | None = None
    with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="analyzer-read") as pool:
        try:
            for i, batch in enumerate(batches):
                futures.append(pool.submit(read_batch, kind, batch, config, folder / f"{i:05d}.parquet"))
        except Exception as e:  # raised after the reads before it, as a serial read would
            opening = e
        try:
            # In order: the first failing batch's error is raised, as the serial loop would raise it.
            reads = [read for future in futures for read in future.result()]
        except BaseException:
            for future in futures:
                future.cancel()  # the batches after it are not read (those being read finish)
            raise
    if opening is not None:
        raise opening
    return reads
