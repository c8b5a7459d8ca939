"""Where a report's work runs: in this process (`local`, the default) or as tasks on a Ray cluster.

    Engine.LOCAL   ingest.load per kind of input, in this process
    Engine.RAY     engine.cluster.load_on_ray: one Ray task per batch of inputs (ingest.parts.read_part,
                   the map), the parts merged here in path order (ingest.parts.merge_parts);
                   engine.cluster.collect_on_ray: one Ray task per hash partition of reconciliation
                   (reconcile.reconcile_pass, the reduce), its results merged here. Detection, the
                   rate-limit audit and the report run here on the merged frames.
                   `pip install 'analyzer[ray]'`.

Either engine gives the same report, byte for byte, apart from its `engine` field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.errors import EngineError

if TYPE_CHECKING:
    from analyzer.config import Settings
    from analyzer.ingest import Loaded
    from analyzer.reconcile import Collector


class Engine(StrEnum):
    """What runs the report's work (`analyzer report --engine`)."""

    LOCAL = "local"
    RAY = "ray"


def load_on_ray(
    sources: Mapping[str, Sequence[Path]],
    settings: Settings,
    *,
    address: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Loaded]:
    """Every kind of `sources` loaded by Ray tasks (engine/cluster.py); one line if Ray is not installed."""
    try:
        from analyzer.engine import cluster
    except ModuleNotFoundError as e:
        if e.name != "ray":
            raise
        raise EngineError("--engine ray needs Ray on this machine: pip install 'analyzer[ray]'") from None
    return cluster.load_on_ray(sources, settings, address=address, progress=progress)


def collector(engine: Engine, progress: Callable[[str], None] | None = None) -> Collector | None:
    """What runs reconciliation's passes: None (here, one after the other) or a Ray task per partition."""
    if engine is Engine.LOCAL:
        return None
    from functools import partial

    from analyzer.engine import cluster

    return partial(cluster.collect_on_ray, progress=progress)
