"""Loading on a Ray cluster: one task per batch of inputs (the map), the parts merged on the driver.

    load_on_ray({"gateway": [...], "ledger": [...]}, settings, address="10.0.0.5:6379")
        -> [Loaded, ...]   as `ingest.load` gives for each kind, in the order the kinds are given

The driver opens every input (a sample of each, to group small files into the batches `load` reads),
then submits a task per batch for every kind at once (a big ledger is read while the gateway's files
are). A task runs `ingest.parts.read_part` where a worker has a CPU and returns its Part: the Arrow
tables go through Ray's object store (spilled to disk when it is full) and are taken back on the
driver by `pl.from_arrow` without a copy. Plain Ray tasks only: no scheduler or sockets of our own.

A task whose worker dies (killed, out of memory) is run again, MAX_RETRIES times; an error in the
data (an InputError naming the file and line) is not retried: it is the run's error, as locally.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import ray

from analyzer.config import Settings, SourceConfig
from analyzer.errors import AnalyzerError, EngineError
from analyzer.ingest import Loaded
from analyzer.ingest.parts import Part, merge_parts, plan_parts, read_part
from analyzer.ingest.reader import Opened

MAX_RETRIES: Final = 3  # runs of a task whose worker died, after the first
REACH_TIMEOUT: Final = 5.0  # seconds to wait for the cluster's address to answer
# A task has one CPU of its node (Ray's default): Polars in it takes one thread, not the node's all.
# Ray's own reducer of Arrow tables does not take string views (Polars' strings); pyarrow's pickling
# does, with the buffers out of band: the tables go to the object store without a copy.
WORKER_ENV: Final = {
    "env_vars": {"POLARS_MAX_THREADS": "1", "RAY_DISABLE_CUSTOM_ARROW_DATA_SERIALIZATION": "1"}
}

Reader = Callable[[str, Sequence[Opened], SourceConfig], Part]
Progress = Callable[[str], None]


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` (None: the one this process is already in, else a new local
    one); one EngineError line when it cannot be reached."""
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        raise EngineError(f"cannot join the Ray cluster: {e}", path=address) from None


def _check_reachable(address: str) -> None:
    # ray.init retries an address that does not answer for minutes; one TCP connect says it in seconds.
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise EngineError("not a Ray cluster address (HOST:PORT, or ray://HOST:PORT)", path=address)
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT).close()
    except OSError as e:
        raise EngineError(f"cannot reach the Ray cluster: {e.strerror or e}", path=address) from None


@ray.remote(max_retries=MAX_RETRIES, runtime_env=WORKER_ENV)
def _read_task(read: Reader, kind: str, batch: Sequence[Opened], config: SourceConfig) -> Part:
    return read(kind, batch, config)


def load_on_ray(
    sources: Mapping[str, Sequence[Path]],
    settings: Settings,
    *,
    address: str | None = None,
    progress: Progress | None = None,
    read: Reader = read_part,
) -> list[Loaded]:
    """Load every kind of `sources` with a Ray task per batch of inputs; merge each kind's parts in
    path order (`read`: what a task runs, `ingest.parts.read_part`)."""
    say = progress or (lambda _msg: None)
    connect(address)
    kinds = [kind for kind, paths in sources.items() if paths]
    plans = {kind: plan_parts(kind, sources[kind], settings) for kind in kinds}
    refs = {
        kind: [_read_task.remote(read, kind, batch, settings.source(kind)) for batch in plans[kind]]
        for kind in kinds
    }
    parts = _gather([ref for kind in kinds for ref in refs[kind]], say)
    return [merge_parts(kind, [parts[ref] for ref in refs[kind]], settings.source(kind)) for kind in kinds]


def _gather(refs: Sequence[Any], say: Progress) -> dict[Any, Part]:
    """Every task's Part as it finishes, saying how many are done and how many rows they read."""
    done: dict[Any, Part] = {}
    pending = list(refs)
    rows = 0
    say(f"reading on Ray: 0/{len(refs)} tasks done")
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            done[ref] = _result(ref)
            rows += done[ref].rows_read
        say(f"reading on Ray: {len(done)}/{len(refs)} tasks done, {rows:,} rows read")
    return done


def _result(ref: Any) -> Part:
    try:
        part: Part = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, AnalyzerError):  # bad input: the same one line as a local run
            raise e.cause from None
        raise EngineError(f"a task failed: {e.cause!r}") from None
    except ray.exceptions.RayError as e:
        raise EngineError(f"a task was lost after {MAX_RETRIES} retries: {type(e).__name__}") from None
    return part
