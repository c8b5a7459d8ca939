"""The work on a Ray cluster: a task per batch of inputs (the map), a task per hash partition of the
reconciliation (the reduce); their results merged on the driver.

    load_on_ray({"gateway": [...], "ledger": [...]}, settings, address="10.0.0.5:6379")
        -> [Loaded, ...]   as `ingest.load` gives for each kind, in the order the kinds are given
    collect_on_ray(gateway, ledger, settings, gaps)
        -> the passes' results `reconcile` adds up, one task per partition (reconcile.Collector)

The driver opens every input (a sample of each, to group small files into the batches `load` reads),
then submits a task per batch for every kind at once (a big ledger is read while the gateway's files
are). A task runs `ingest.parts.read_part` where a worker has a CPU and returns its Part: the Arrow
tables go through Ray's object store (spilled to disk when it is full) and are taken back on the
driver by `pl.from_arrow` without a copy. Plain Ray tasks only: no scheduler or sockets of our own.

The reduce: the driver splits the narrow columns billing needs (reconcile.partitions.split) by the
hash of request_id (lines, deductions) and of account_id (entries: whole accounts in a partition),
puts each partition in the object store, and a task per partition runs `reconcile.reconcile_pass` on
it; the small results (findings rows, sums per account and kind) come back to be merged in partition
order, as the local passes are.

A task whose worker dies (killed, out of memory) is run again, MAX_RETRIES times; an error in the
data (an InputError naming the file and line) is not retried: it is the run's error, as locally.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl
import ray

from analyzer import objstore
from analyzer.config import Settings, SourceConfig
from analyzer.errors import AnalyzerError, EngineError
from analyzer.ingest import Loaded
from analyzer.ingest.parts import Part, merge_parts, plan_parts, read_part
from analyzer.ingest.reader import Opened
from analyzer.reconcile import Gaps, Span, clashed, gateway_span, merge_passes, reconcile_pass
from analyzer.reconcile.partitions import ROWS_PER_PASS, split

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
def _read_task(
    read: Reader, kind: str, batch: Sequence[Opened], config: SourceConfig, copies: Path | None
) -> Part:
    if copies is not None:
        # Objects from object storage: the driver's copies where they are (this machine), else each
        # fetched again from its URL into the same path; either way named by its URL in the part.
        objstore.use_copies_folder(copies)
        for opened in batch:
            objstore.local_path(opened.path)
    with objstore.named_by_url():
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
    with objstore.named_by_url():
        batches = [(kind, batch) for kind in kinds for batch in plan_parts(kind, sources[kind], settings)]
    # The largest batches first (a big ledger beside the gateway's files, not after them): the last
    # task to finish is then a small one. The parts are merged in path order whatever the order run.
    largest = sorted(range(len(batches)), key=lambda i: -sum(o.text_bytes for o in batches[i][1]))
    refs: list[Any] = [None] * len(batches)
    for i in largest:
        kind, batch = batches[i]
        refs[i] = _read_task.remote(read, kind, batch, settings.source(kind), objstore.copies_folder())
    parts = _gather([refs[i] for i in largest], say, "reading")
    return [
        merge_parts(
            kind,
            [parts[ref] for ref, (k, _) in zip(refs, batches, strict=True) if k == kind],
            settings.source(kind),
        )
        for kind in kinds
    ]


# What every reconciliation pass is given besides its partition: settings, span, exact, gaps.
PassContext = tuple[Settings, Span, bool, Gaps]


@ray.remote(max_retries=MAX_RETRIES, runtime_env=WORKER_ENV)
def _pass_task(lines: Any, by_request: Any, by_account: Any, context: PassContext) -> dict[str, pl.DataFrame]:
    settings, span, exact, gaps = context
    frames = [_frame(t).lazy() for t in (lines, by_request, by_account)]
    return reconcile_pass(frames[0], frames[1], frames[2], settings, span, exact, gaps)


def _frame(table: Any) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _cpus() -> int:
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))


def collect_on_ray(
    gateway: pl.LazyFrame,
    ledger: pl.LazyFrame,
    settings: Settings,
    gaps: Gaps,
    *,
    progress: Progress | None = None,
) -> dict[str, pl.DataFrame]:
    """Reconciliation's passes as a Ray task per hash partition (at least one per CPU of the cluster,
    at most ROWS_PER_PASS rows each); their results merged in partition order (reconcile.Collector)."""
    say = progress or (lambda _msg: None)
    sizes, span_df = pl.collect_all(
        [pl.concat([gateway.select(pl.len()), ledger.select(pl.len())]), gateway_span(gateway)]
    )
    span = (span_df["first"][0], span_df["last"][0])
    count = max(_cpus(), -(-int(sizes["len"].max() or 0) // ROWS_PER_PASS))  # type: ignore[arg-type]
    # Ray's own reducer takes large strings (not views) from the driver; the task takes them as they are.
    old = pl.CompatLevel.oldest()
    stored = [
        tuple(ray.put(frame.to_arrow(compat_level=old)) for frame in part)
        for part in split(gateway, ledger, count)
    ]
    for exact in (False, True):
        context: PassContext = (settings, span, exact, gaps)
        refs = [
            _pass_task.remote(lines, by_request, by_account, context)
            for lines, by_request, by_account in stored
        ]
        done = _gather(refs, say, "reconciling")
        out = merge_passes([done[ref] for ref in refs])
        if not clashed(out):
            break
    return out


def _gather(refs: Sequence[Any], say: Progress, what: str) -> dict[Any, Any]:
    """Every task's result as it finishes, saying how many are done (and how many rows they read)."""
    done: dict[Any, Any] = {}
    pending = list(refs)
    rows = 0
    say(f"{what} on Ray: 0/{len(refs)} tasks done")
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            done[ref] = _result(ref)
            rows += done[ref].rows_read if isinstance(done[ref], Part) else 0
        read = f", {rows:,} rows read" if rows else ""
        say(f"{what} on Ray: {len(done)}/{len(refs)} tasks done{read}")
    return done


def _result(ref: Any) -> Any:
    try:
        result = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, AnalyzerError):  # bad input: the same one line as a local run
            raise e.cause from None
        raise EngineError(f"a task failed: {e.cause!r}") from None
    except ray.exceptions.RayError as e:
        raise EngineError(f"a task was lost after {MAX_RETRIES} retries: {type(e).__name__}") from None
    return result
