"""Canonical Parquet from any inputs, so repeated analyses skip parsing: `analyzer convert`.

    out/gateway/hour=2026-04-22T09/00000000.parquet   canonical gateway rows, partitioned by hour
    out/ledger/hour=.../...                            canonical ledger rows, partitioned by hour
    out/events.parquet                                 operator events (when given)
    out/rejects.parquet                                every rejected raw line: file, line, reason, raw
    out/manifest.json                                  the original InputReports and the load notes
                                                       (each note's code and values, analyzer/notes.py)

Only good rows are written, in canonical columns (the `_file`/`_line` provenance is dropped: the
rejects keep theirs, and a finding is traced by its request_id and entry_id). `analyzer report out/`
finds gateway/, ledger/ and events.parquet by name, and `read_manifest` gives back what the original
inputs lost, so the report can still say it. Every kind is loaded with `analyzer.ingest.load` (each
input read once) and written with streaming sinks, never collected whole.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from analyzer import objstore
from analyzer.config import Settings
from analyzer.errors import InputError, OutputError
from analyzer.findings import InputReport
from analyzer.ingest import Loaded, load
from analyzer.ingest.sources import resolve
from analyzer.notes import Note, NoteCode
from analyzer.schema import REJECT_FILE, REJECT_LINE, SOURCE_FILE, SOURCE_LINE, TS

__all__ = ["MANIFEST", "convert", "read_manifest"]

MANIFEST = "manifest.json"
REJECTS = "rejects.parquet"
HOUR = "hour"
# 2: each note is its code and values (analyzer/notes.py); 1 (still read): each note was its sentence.
_VERSION = 2
_READABLE = (1, _VERSION)
_PARTITIONED = ("gateway", "ledger")
# What a conversion writes: the only entries a new conversion may replace in its folder.
_OURS = (*_PARTITIONED, "events.parquet", REJECTS, MANIFEST)


def convert(sources: Mapping[str, Sequence[Path]], out: Path, settings: Settings) -> list[InputReport]:
    """Load every input of each kind once and write canonical Parquet, rejects and a manifest to `out`."""
    if not sources.get("gateway"):
        raise InputError("no gateway logs to convert", path="(none given)")
    if (url := objstore.url_of(out)) is not None:
        return _convert_to_url(sources, url, settings)
    _check_target(out, [p for paths in sources.values() for p in resolve(paths)])
    loaded = [
        load(kind, sources[kind], settings) for kind in ("gateway", "ledger", "events") if sources.get(kind)
    ]
    _clear(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for item in loaded:
            _write_rows(item, out)
        rejects = pl.concat([item.rejects for item in loaded], how="vertical_relaxed").sort(
            REJECT_FILE, REJECT_LINE
        )
        rejects.write_parquet(out / REJECTS)
        reports = [r for item in loaded for r in item.inputs]
        notes = [n for item in loaded for n in item.notes]
        (out / MANIFEST).write_text(_manifest_text(reports, notes), encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write: {e.strerror}", path=str(out)) from None
    return reports


def _convert_to_url(sources: Mapping[str, Sequence[Path]], url: str, settings: Settings) -> list[InputReport]:
    """Convert into a local folder, then upload it under the prefix `url` (replacing an earlier
    conversion's outputs there): the partitioned sinks write local files, and the disk this takes is
    the output's size, held until the upload ends."""
    objstore.check_writable(
        url, [str(p) for paths in sources.values() for p in resolve(paths)], marker=MANIFEST
    )
    with tempfile.TemporaryDirectory(prefix="analyzer-convert-") as folder:
        local = Path(folder) / "out"
        reports = convert(sources, local, settings)
        try:
            objstore.upload_tree(local, url, replace=_OURS)
        except InputError as e:
            raise OutputError(e.message, path=url) from None
    return reports


def read_manifest(directory: Path) -> list[InputReport] | None:
    """The original inputs' reports of a converted folder, or None when it holds no manifest."""
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("version") not in _READABLE:
            raise InputError(f"manifest version {doc.get('version')!r}, expected {_VERSION}", path=str(path))
        return [_report(item) for item in doc["inputs"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"unreadable manifest: {e}", path=str(path)) from None


def read_manifest_notes(directory: Path) -> list[Note]:
    """The load notes of a converted folder (e.g. columns no input had); empty without a manifest."""
    path = directory / MANIFEST
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("version") == 1:  # its notes are their sentences
            return [Note(NoteCode.RECORDED, text=str(n)) for n in doc.get("notes", [])]
        return [Note.from_dict(n) for n in doc.get("notes", [])]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"unreadable manifest: {e}", path=str(path)) from None


def _check_target(out: Path, inputs: Sequence[Path]) -> None:
    target = out.resolve()
    for p in inputs:
        resolved = p.resolve()
        if resolved == target or target in resolved.parents:
            raise OutputError(f"refusing to write into a folder that holds an input ({p})", path=str(out))
    if target.exists() and not target.is_dir():
        raise OutputError("not a folder", path=str(out))
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).is_file():
        raise OutputError("folder is not empty and holds no earlier conversion", path=str(out))


def _clear(out: Path) -> None:
    """Remove what an earlier conversion wrote here (and nothing else), so no stale hour survives."""
    for name in _OURS:
        entry = out / name
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.exists():
            entry.unlink()


def _write_rows(item: Loaded, out: Path) -> None:
    rows = item.frame.drop(SOURCE_FILE, SOURCE_LINE)
    if item.kind in _PARTITIONED:
        # Hive style (hour=2026-04-22T09/): a report over a few hours reads only their files.
        key = pl.col(TS).dt.strftime("%Y-%m-%dT%H").alias(HOUR)
        if item.inputs and any(r.rows_analyzed for r in item.inputs):
            rows.sink_parquet(pl.PartitionBy(out / item.kind, key=key, include_key=False), mkdir=True)
        else:
            # An empty dataset writes no file; one empty file keeps the kind's columns.
            (out / item.kind).mkdir(parents=True, exist_ok=True)
            rows.sink_parquet(out / item.kind / "empty.parquet")
    else:
        rows.sink_parquet(out / f"{item.kind}.parquet")


def _manifest_text(reports: Sequence[InputReport], notes: Sequence[Note]) -> str:
    def plain(r: InputReport) -> dict[str, Any]:
        doc = asdict(r)
        for k in ("first_ts", "last_ts"):
            doc[k] = None if doc[k] is None else doc[k].isoformat()
        return doc

    doc = {"version": _VERSION, "inputs": [plain(r) for r in reports], "notes": [n.to_dict() for n in notes]}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _report(doc: dict[str, Any]) -> InputReport:
    def ts(value: object) -> datetime | None:
        return None if value is None else datetime.fromisoformat(str(value))

    return InputReport(
        kind=str(doc["kind"]),
        path=str(doc["path"]),
        format=str(doc["format"]),
        compression=str(doc["compression"]),
        rows_read=int(doc["rows_read"]),
        rows_rejected=int(doc["rows_rejected"]),
        rejects_by_reason={str(k): int(v) for k, v in doc["rejects_by_reason"].items()},
        fields={str(k): None if v is None else str(v) for k, v in doc["fields"].items()},
        first_ts=ts(doc["first_ts"]),
        last_ts=ts(doc["last_ts"]),
    )
