"""The JSON report for machines, and the JSON Schema it follows."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime
from importlib import resources
from typing import Any

from analyzer.findings import InputReport
from analyzer.report.compensation import compensation_json
from analyzer.report.model import Report, owed_accounts
from analyzer.report.notes import sentences
from analyzer.report.ratelimits import rate_limits_json


def schema() -> dict[str, Any]:
    """The JSON Schema shipped with the package (report.schema.json)."""
    text = resources.files("analyzer.report").joinpath("report.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def iso(t: datetime | None) -> str | None:
    """ISO 8601 UTC ending in Z; microseconds only when present."""
    if t is None:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else round(v, 6)
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "total_seconds"):
        return v.total_seconds()
    return v


def input_dict(i: InputReport) -> dict[str, Any]:
    """One input as the JSON report (and `analyzer inspect --json`) writes it: times in ISO 8601 UTC."""
    doc: dict[str, Any] = _plain(
        {
            "kind": i.kind,
            "path": i.path,
            "format": i.format,
            "preset": i.preset,
            "compression": i.compression,
            "rows_read": i.rows_read,
            "rows_rejected": i.rows_rejected,
            "rows_analyzed": i.rows_analyzed,
            "rejects_by_reason": dict(sorted(i.rejects_by_reason.items())),
            "fields": dict(sorted(i.fields.items())),
            "first_ts": i.first_ts,
            "last_ts": i.last_ts,
        }
    )
    return doc


def render_json(report: Report) -> str:
    """The report as deterministic JSON (sorted keys, rounded floats, times in UTC with Z)."""
    rec = report.reconciliation
    ledger: dict[str, Any] | None = None
    if rec is not None:
        ledger = {
            "deductions": rec.deductions,
            "tokens_deducted": rec.tokens_deducted,
            "tokens_expected": rec.tokens_expected,
            "findings_by_kind": {k: t.count for k, t in rec.by_kind.items() if k != "ok"},
            "refund_tokens_total": rec.refund_tokens_total,
            "refund_usd": rec.refund_usd,
            "request_buckets": rec.request_buckets,
            "accounts": owed_accounts(rec.accounts).to_dicts(),
            "patterns": [asdict(p) for p in rec.patterns],
            "invariants": [asdict(i) for i in rec.invariants],
        }
    doc = {
        "schema_version": report.schema_version,
        "engine": report.engine,
        "inputs": [input_dict(i) for i in report.inputs],
        "summary": report.summary,
        "bursts": [{**asdict(b), "top": [asdict(c) for c in b.top]} for b in report.bursts],
        "latency_spikes": [asdict(s) for s in report.spikes],
        "alerts": [asdict(a) for a in report.alerts],
        "log_gaps": [asdict(g) for g in report.gaps],
        "ledger": ledger,
        "rate_limits": rate_limits_json(report.rate_limits),
        "compensation": compensation_json(report.compensation),
        "timeline": report.timeline.to_dicts(),
        "series": report.series.to_dicts(),
        "slices": report.slices.to_dicts(),
        "usage_totals": None if report.usage_totals is None else report.usage_totals.to_dicts(),
        "settings": report.settings.to_dict(),
        "quantile_method": report.quantile_method,
        "notes": sentences(report.notes),
    }
    return json.dumps(_plain(doc), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
