"""`convert`: canonical Parquet by hour, rejects and a manifest; analyses on it match the originals."""

from __future__ import annotations

import gzip
import json
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer.config import Settings
from analyzer.convert import MANIFEST, REJECTS, convert, read_manifest, read_manifest_notes
from analyzer.detect import detect
from analyzer.errors import InputError, OutputError
from analyzer.findings import Detection, InputReport, Reconciliation
from analyzer.ingest import find_inputs, load
from analyzer.notes import Note, NoteCode
from analyzer.reconcile import reconcile
from analyzer.report.notes import sentences

simulate = pytest.importorskip("analyzer.simulate")

BAD_LINES = [b"{not json\n", b'{"ts": "yesterday", "status": 200}\n']


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three simulated hours from 09:00 (gzip JSON lines, CSV ledger) with two bad gateway lines."""
    folder = tmp_path_factory.mktemp("outage")
    spec = simulate.SimSpec(
        scenario="launch", seed=3, hours=3, rate=1.0, accounts=20, start=datetime(2026, 4, 22, 9, tzinfo=UTC)
    )
    simulate.simulate(folder, spec)
    first = sorted((folder / "gateway").iterdir())[0]
    # A second gzip member: still one valid stream, now ending in two lines that cannot be read.
    with first.open("ab") as f:
        f.write(gzip.compress(b"".join(BAD_LINES), mtime=0))
    return folder


@pytest.fixture(scope="module")
def converted(outage: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[InputReport]]:
    out = tmp_path_factory.mktemp("converted") / "canonical"
    return out, convert(find_inputs(outage), out, Settings())


def _analyses(directory: Path) -> tuple[Detection, Reconciliation]:
    sources = find_inputs(directory)
    gateway = load("gateway", sources["gateway"], Settings())
    ledger = load("ledger", sources["ledger"], Settings())
    return detect(gateway.frame, Settings()), reconcile(gateway.frame, ledger.frame, Settings())


def test_layout_is_hourly_hive_partitions_rejects_and_manifest(
    converted: tuple[Path, list[InputReport]], tmp_path: Path
) -> None:
    out, _ = converted
    hours = sorted(p.name for p in (out / "gateway").iterdir())
    assert hours == ["hour=2026-04-22T09", "hour=2026-04-22T10", "hour=2026-04-22T11"]
    assert (out / "ledger" / "hour=2026-04-22T10").is_dir()
    assert (out / "events.parquet").is_file() and (out / MANIFEST).is_file()
    found = find_inputs(out)
    assert (found["gateway"], found["ledger"], found["events"]) == (
        [out / "gateway"],
        [out / "ledger"],
        [out / "events.parquet"],
    )
    assert "_file" not in pl.read_parquet_schema(next((out / "gateway").rglob("*.parquet")))


def test_analyses_on_the_conversion_match_the_originals(
    outage: Path, converted: tuple[Path, list[InputReport]]
) -> None:
    out, _ = converted
    (det_a, rec_a), (det_b, rec_b) = _analyses(outage), _analyses(out)
    assert det_a.bursts == det_b.bursts
    assert det_a.bursts
    assert rec_a.refund_tokens_total == rec_b.refund_tokens_total > 0
    assert rec_a.by_kind == rec_b.by_kind
    assert_frame_equal(rec_a.accounts, rec_b.accounts)
    assert_frame_equal(rec_a.findings, rec_b.findings)


def test_manifest_keeps_the_original_inputs_and_their_losses(
    outage: Path, converted: tuple[Path, list[InputReport]]
) -> None:
    out, reports = converted
    assert read_manifest(out) == reports
    originals = find_inputs(outage)
    direct = [r for k in ("gateway", "ledger", "events") for r in load(k, originals[k], Settings()).inputs]
    assert reports == direct
    gateway = [r for r in reports if r.kind == "gateway"]
    assert sum(r.rows_rejected for r in gateway) == len(BAD_LINES)
    analyzed = pl.scan_parquet(out / "gateway" / "**" / "*.parquet").select(pl.len()).collect().item()
    assert analyzed == sum(r.rows_analyzed for r in gateway)
    assert read_manifest_notes(out) == [
        n for k in ("gateway", "ledger", "events") for n in load(k, originals[k], Settings()).notes
    ]


def test_rejects_file_names_every_bad_line(outage: Path, converted: tuple[Path, list[InputReport]]) -> None:
    out, reports = converted
    rejects = pl.read_parquet(out / REJECTS)
    first = str(sorted((outage / "gateway").iterdir())[0])
    bad = next(r for r in reports if r.path == first)
    assert rejects.select("file", "line").rows() == [(first, bad.rows_read - 1), (first, bad.rows_read)]
    assert rejects["raw"].to_list() == [line.decode().rstrip("\n") for line in BAD_LINES]
    assert sorted(rejects["reason"].value_counts().rows()) == sorted(bad.rejects_by_reason.items())


def test_refuses_a_folder_holding_an_input(outage: Path) -> None:
    sources = find_inputs(outage)
    for target in (outage, outage / "gateway", outage.parent):
        with pytest.raises(OutputError, match="holds an input"):
            convert(sources, target, Settings())


def test_refuses_a_foreign_folder_and_replaces_an_earlier_conversion(outage: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not empty"):
        convert(find_inputs(outage), foreign, Settings())
    again = tmp_path / "again"
    convert(find_inputs(outage), again, Settings())
    (again / "gateway" / "hour=2026-04-22T23").mkdir()  # a stale hour from some earlier conversion
    convert(find_inputs(outage), again, Settings())
    assert not (again / "gateway" / "hour=2026-04-22T23").exists()


def test_read_manifest(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    (tmp_path / MANIFEST).write_text(json.dumps({"version": 99, "inputs": []}))
    with pytest.raises(InputError, match="manifest version"):
        read_manifest(tmp_path)


def test_a_manifest_stores_each_notes_code_and_an_earlier_ones_sentences_still_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    logs = Path(__file__).parent / "fixtures" / "ingest" / "gateway_offsets.jsonl"  # no region column
    convert({"gateway": [logs]}, out, Settings())
    doc = json.loads((out / MANIFEST).read_text())
    assert doc["version"] == 2
    assert [n["code"] for n in doc["notes"]] == [n.code.value for n in read_manifest_notes(out)]
    assert {"code": "no_column", "kind": "gateway", "column": "region"} in doc["notes"]
    assert all(set(n) <= {f.name for f in fields(Note)} for n in doc["notes"])
    # Version 1 wrote each note as its sentence: read back as said then.
    doc["version"] = 1
    doc["notes"] = sentences(read_manifest_notes(out))
    assert "gateway: no region column in any input; region is null" in doc["notes"]
    (tmp_path / MANIFEST).write_text(json.dumps(doc))
    assert read_manifest_notes(tmp_path) == [Note(NoteCode.RECORDED, text=t) for t in doc["notes"]]
    assert sentences(read_manifest_notes(tmp_path)) == sentences(read_manifest_notes(out))
    assert read_manifest(tmp_path) == read_manifest(out)
