"""`--openslo FILE`: the report's SLO as an OpenSLO v1 SLO document, checked against the spec's fields.

The checks are the OpenSLO v1 specification's for kind SLO: apiVersion openslo/v1; metadata.name an
RFC 1123 name of at most 63 characters; spec.service; one of indicator / indicatorRef, an inline
indicator having metadata.name and a ratioMetric of good or bad (not both) over total, each with a
metricSource holding a spec; timeWindow exactly one item with a duration shorthand; budgetingMethod one
of Occurrences, Timeslices, RatioTimeslices; objectives not empty, each with target in [0, 1) or
targetPercent in [0, 100), not both.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.config import PostmortemSettings, Settings, SloSettings
from analyzer.report.openslo import render_openslo

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION = re.compile(r"^\d+[smhdwMQY]$")


def _source_ok(metric: Any) -> bool:
    return (
        isinstance(metric, dict)
        and isinstance(metric.get("metricSource"), dict)
        and "spec" in metric["metricSource"]
    )


def problems(doc: Any) -> list[str]:
    """What an OpenSLO v1 SLO document lacks or gets wrong, by the spec's required fields."""
    out = []
    if doc.get("apiVersion") != "openslo/v1":
        out.append("apiVersion")
    if doc.get("kind") != "SLO":
        out.append("kind")
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        out.append("metadata.name")
    spec = doc.get("spec") or {}
    if not isinstance(spec.get("service"), str):
        out.append("spec.service")
    indicator = spec.get("indicator")
    if (indicator is None) == ("indicatorRef" not in spec):
        out.append("spec.indicator or spec.indicatorRef")
    if indicator is not None:
        if not (indicator.get("metadata") or {}).get("name"):
            out.append("spec.indicator.metadata.name")
        ratio = (indicator.get("spec") or {}).get("ratioMetric") or {}
        if ("good" in ratio) == ("bad" in ratio) or not all(
            _source_ok(ratio.get(k)) for k in ("total", *(k for k in ("good", "bad") if k in ratio))
        ):
            out.append("spec.indicator.spec.ratioMetric")
    windows = spec.get("timeWindow", [])
    if windows and (len(windows) != 1 or not _DURATION.match(str(windows[0].get("duration", "")))):
        out.append("spec.timeWindow")
    if spec.get("budgetingMethod") not in ("Occurrences", "Timeslices", "RatioTimeslices"):
        out.append("spec.budgetingMethod")
    objectives = spec.get("objectives") or []
    if not objectives:
        out.append("spec.objectives")
    for o in objectives:
        target, percent = o.get("target"), o.get("targetPercent")
        if (target is None) == (percent is None):
            out.append("spec.objectives.target")
        elif target is not None and not 0 <= target < 1:
            out.append("spec.objectives.target")
        elif percent is not None and not 0 <= percent < 100:
            out.append("spec.objectives.targetPercent")
    return out


def test_the_default_slo_is_a_valid_openslo_document() -> None:
    doc = yaml.safe_load(render_openslo(Settings()))
    assert problems(doc) == []
    spec = doc["spec"]
    assert spec["budgetingMethod"] == "Occurrences"
    assert spec["timeWindow"] == [{"duration": "30d", "isRolling": True}]
    assert spec["objectives"][0]["target"] == 0.999
    assert set(spec["indicator"]["spec"]["ratioMetric"]) == {"counter", "bad", "total"}


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda d: d.update(apiVersion="openslo/v1alpha"), id="api-version"),
        pytest.param(lambda d: d["metadata"].update(name="Not_A_Name"), id="name"),
        pytest.param(lambda d: d["spec"].pop("budgetingMethod"), id="budgeting"),
        pytest.param(lambda d: d["spec"]["objectives"][0].update(target=1.5), id="target"),
        pytest.param(lambda d: d["spec"]["indicator"]["spec"]["ratioMetric"].update(good=d["spec"]["indicator"]["spec"]["ratioMetric"]["bad"]), id="good-and-bad"),
        pytest.param(lambda d: d["spec"]["timeWindow"].append({"duration": "1d"}), id="two-windows"),
    ],
)  # fmt: skip
def test_the_check_catches_each_broken_field(break_it: Any) -> None:
    doc = yaml.safe_load(render_openslo(Settings()))
    break_it(doc)
    assert problems(doc) != []


def test_report_writes_the_slo_it_used(tmp_path: Path) -> None:
    config = tmp_path / "analyzer.toml"
    config.write_text('[slo]\ntarget = 0.995\n[postmortem]\nslo_window = "7d"\n', encoding="utf-8")
    out = tmp_path / "slo.yaml"
    result = CliRunner().invoke(
        app, ["report", str(ROOT / "sample_logs"), "--config", str(config), "--openslo", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert problems(doc) == []
    assert doc["spec"]["objectives"][0]["target"] == 0.995
    assert doc["spec"]["timeWindow"][0]["duration"] == "7d"


def test_windows_in_shorthand() -> None:
    def window(w: timedelta) -> str:
        doc = yaml.safe_load(
            render_openslo(Settings(slo=SloSettings(), postmortem=PostmortemSettings(slo_window=w)))
        )
        return str(doc["spec"]["timeWindow"][0]["duration"])

    assert [window(timedelta(days=28)), window(timedelta(hours=36)), window(timedelta(minutes=90))] == [
        "28d",
        "36h",
        "90m",
    ]
