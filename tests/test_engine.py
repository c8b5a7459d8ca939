"""`--engine ray`: the same report as the local engine, from tasks on a local Ray cluster.

The loading map (ingest/parts.py) is checked without Ray first: parts read one file at a time and
merged give exactly what `load` gives, duplicates across files and rejects with their lines included.
The Ray tests share one local cluster (two CPUs) for the whole run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analyzer import engine
from analyzer.cli import app
from analyzer.config import Settings, SourceConfig
from analyzer.engine import Engine
from analyzer.ingest import Loaded, load, reader
from analyzer.ingest.parts import Part, merge_parts, plan_parts, read_part
from analyzer.ingest.reader import Opened
from analyzer.pipeline import ReportRequest, run_report
from analyzer.report import render_json
from analyzer.simulate import SimSpec, simulate

sys.path.insert(0, str(Path(__file__).parent / "corpus"))
import make_corpus  # noqa: E402
from s3server import S3  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_logs"
# A day unlike the sample: another seed, a sync failure, a quota reset, Parquet read in place.
DAY = SimSpec(seed=11, rate=0.25, accounts=200, sync_window=(time(10), time(12)), quota_reset=time(20))


def _same_load(got: Loaded, want: Loaded) -> None:
    assert got.inputs == want.inputs
    assert got.notes == want.notes
    assert_frame_equal(got.rejects, want.rejects)
    assert_frame_equal(got.frame.collect(), want.frame.collect())


def _by_file(kind: str, paths: Sequence[Path], settings: Settings) -> Loaded:
    """Every input a part of its own (no batching), merged."""
    config = settings.source(kind)
    parts = [read_part(kind, [o], config) for batch in plan_parts(kind, paths, settings) for o in batch]
    return merge_parts(kind, parts, config)


def _files_with_a_copy_across_them(tmp_path: Path) -> list[Path]:
    a, b = tmp_path / "gateway-a.jsonl", tmp_path / "gateway-b.jsonl"
    a.write_text("\n".join(make_corpus.gateway_line(i) for i in range(4)) + "\n")
    # b: a line of a delivered again by the shipper, a broken line, then its own.
    b.write_text(make_corpus.gateway_line(2) + "\n{not json\n" + make_corpus.gateway_line(7) + "\n")
    return [a, b]


def test_parts_read_a_file_each_merge_to_what_load_gives(tmp_path: Path) -> None:
    paths = _files_with_a_copy_across_them(tmp_path)
    got, want = _by_file("gateway", paths, Settings()), load("gateway", paths, Settings())
    _same_load(got, want)
    # The copy is found across two parts, in path order: b's line 1, and b's broken line 2 kept.
    assert got.inputs[1].rejects_by_reason == {"duplicate_line": 1, "malformed_json": 1}
    assert got.rejects.select("line", "reason").rows() == [(1, "duplicate_line"), (2, "malformed_json")]
    assert got.frame.collect().height == 5


@pytest.mark.parametrize("kind", ["gateway", "ledger", "events"])
def test_the_samples_parts_merge_to_what_load_gives(kind: str) -> None:
    paths = {
        "gateway": [SAMPLE / "gateway"],
        "ledger": [SAMPLE / "ledger.csv"],
        "events": [SAMPLE / "events.jsonl"],
    }
    _same_load(_by_file(kind, paths[kind], Settings()), load(kind, paths[kind], Settings()))


# --- on a local Ray cluster ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def _reports(request: ReportRequest, progress: Callable[[str], None] | None = None) -> tuple[str, str]:
    local = render_json(run_report(request).report)
    ray_request = ReportRequest(**{**vars(request), "engine": Engine.RAY})
    return local, render_json(run_report(ray_request, progress=progress).report)


def _apart_from_engine(local: str, on_ray: str) -> None:
    assert json.loads(local)["engine"] == "local" and json.loads(on_ray)["engine"] == "ray"
    assert on_ray == local.replace('"engine": "local"', '"engine": "ray"', 1)


@pytest.mark.usefixtures("cluster", "shared_analysis")  # the local run: the one other tests made
def test_the_sample_on_ray_is_the_local_report_byte_for_byte() -> None:
    runner = CliRunner()
    local = runner.invoke(app, ["report", str(SAMPLE), "--json", "-", "--quiet"])
    on_ray = runner.invoke(app, ["report", str(SAMPLE), "--json", "-", "--quiet", "--engine", "ray"])
    assert (local.exit_code, on_ray.exit_code) == (0, 0), on_ray.output
    _apart_from_engine(local.stdout, on_ray.stdout)
    assert json.loads(on_ray.stdout)["ledger"]["refund_tokens_total"] == 9_171_231  # the sample's truth


@pytest.mark.usefixtures("cluster")
def test_a_simulated_day_in_parquet_on_ray_is_the_local_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.engine import cluster

    truth = simulate(tmp_path, SimSpec(**{**vars(DAY), "format": "parquet"})).truth
    monkeypatch.setattr(cluster, "ROWS_PER_PASS", 2_000)  # reconciled in many partitions, not one pass
    seen: list[str] = []
    local, on_ray = _reports(ReportRequest(directory=tmp_path), seen.append)
    _apart_from_engine(local, on_ray)
    rows = max(
        sum(i["rows_analyzed"] for i in json.loads(on_ray)["inputs"] if i["kind"] == kind)
        for kind in ("gateway", "ledger")
    )
    partitions = -(-rows // 2_000)
    assert partitions >= 4 and f"reconciling on Ray: {partitions}/{partitions} tasks done" in seen
    assert json.loads(on_ray)["ledger"]["refund_tokens_total"] == truth["ledger"]["refund_tokens_total"]  # type: ignore[index]


@pytest.mark.usefixtures("cluster")
def test_rejects_keep_their_file_and_line_across_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "BATCH_FILE_BYTES", 0)  # each file a task of its own
    paths = _files_with_a_copy_across_them(tmp_path)
    assert len(plan_parts("gateway", paths, Settings())) == 2
    local = run_report(ReportRequest(gateway=tuple(paths)))
    on_ray = run_report(ReportRequest(gateway=tuple(paths), engine=Engine.RAY))
    assert_frame_equal(on_ray.rejects, local.rejects)
    assert on_ray.rejects.select("file", "line", "reason").rows() == [
        (str(paths[1]), 1, "duplicate_line"),
        (str(paths[1]), 2, "malformed_json"),
    ]
    assert on_ray.report.inputs == local.report.inputs


@pytest.mark.usefixtures("cluster")
def test_inputs_from_the_local_s3_server_on_ray_are_the_local_report(s3: S3) -> None:
    url = s3.upload(SAMPLE, "sample_logs")
    runner = CliRunner()
    local = runner.invoke(app, ["report", url, "--json", "-", "--quiet"])
    on_ray = runner.invoke(app, ["report", url, "--json", "-", "--quiet", "--engine", "ray"])
    assert (local.exit_code, on_ray.exit_code) == (0, 0), on_ray.output
    _apart_from_engine(local.stdout, on_ray.stdout)
    paths = [i["path"] for i in json.loads(on_ray.stdout)["inputs"]]
    assert paths and all(p.startswith(f"{url}/") for p in paths)  # named by URL, not by a local copy


def _dies_once(marker: Path) -> object:
    """A reader whose worker process dies on its first task (the marker file says it has)."""

    def read(kind: str, batch: Sequence[Opened], config: SourceConfig) -> Part:
        if kind == "gateway" and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker is gone, mid-task, as when the OOM killer takes it
        return read_part(kind, batch, config)

    return read


@pytest.mark.usefixtures("cluster")
def test_a_task_whose_worker_dies_is_run_again_and_the_load_is_unchanged(tmp_path: Path) -> None:
    import ray.cloudpickle

    from analyzer.engine.cluster import load_on_ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the reader goes to the worker
    marker = tmp_path / "died"
    seen: list[str] = []
    sources = {"gateway": [SAMPLE / "gateway"], "ledger": [SAMPLE / "ledger.csv"]}
    got = load_on_ray(sources, Settings(), read=_dies_once(marker), progress=seen.append)  # type: ignore[arg-type]
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker died, not this process
    for loaded, kind in zip(got, sources, strict=True):
        _same_load(loaded, load(kind, sources[kind], Settings()))
    rows = sum(r.rows_read for loaded in got for r in loaded.inputs)
    assert seen[0] == "reading on Ray: 0/2 tasks done"
    assert seen[-1] == f"reading on Ray: 2/2 tasks done, {rows:,} rows read"


@pytest.mark.usefixtures("cluster")
def test_bad_input_on_ray_is_the_same_one_line_as_locally(tmp_path: Path) -> None:
    # A mapping to a field no row has: found by the task that reads the rows, not by the driver.
    (tmp_path / "analyzer.toml").write_text('[gateway.fields]\nmodel = "engine_name"\n')
    gateway = [str(p) for p in _files_with_a_copy_across_them(tmp_path)]
    runner = CliRunner()
    args = ["report", "--gateway", gateway[0], "--config", str(tmp_path / "analyzer.toml"), "--quiet"]
    local, on_ray = runner.invoke(app, args), runner.invoke(app, [*args, "--engine", "ray"])
    assert local.exit_code == on_ray.exit_code == 2
    assert on_ray.stderr == local.stderr and "engine_name" in local.stderr


def test_a_cluster_that_cannot_be_reached_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(
        app, ["report", str(SAMPLE), "--engine", "ray", "--ray-address", "127.0.0.1:1", "--quiet"]
    )
    assert result.exit_code == 2
    assert result.stderr == "error: 127.0.0.1:1: cannot reach the Ray cluster: Connection refused\n"


def test_a_ray_address_without_the_ray_engine_is_refused() -> None:
    result = CliRunner().invoke(app, ["report", str(SAMPLE), "--ray-address", "127.0.0.1:6379"])
    assert (result.exit_code, result.stderr) == (2, "error: field '--ray-address': is for --engine ray\n")


def test_the_ray_engine_without_ray_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    monkeypatch.delitem(sys.modules, "analyzer.engine.cluster", raising=False)
    monkeypatch.delattr(engine, "cluster", raising=False)  # imported by an earlier test
    result = CliRunner().invoke(app, ["report", str(SAMPLE), "--engine", "ray", "--quiet"])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --engine ray needs Ray on this machine: pip install 'analyzer[ray]'\n",
    )
