"""The committed example report under docs/ is what `analyzer report sample_logs` writes today.

Regenerate it deliberately with: ANALYZER_REGEN_DOCS=1 python -m pytest tests/test_docs_example.py
"""

import json
import os
from pathlib import Path

import jsonschema
import pytest

from analyzer.pipeline import ReportRequest, run_report
from analyzer.report import render_json, render_markdown, schema
from analyzer.report.model import Report

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
STALE = "docs/ example is stale: run ANALYZER_REGEN_DOCS=1 python -m pytest tests/test_docs_example.py"


@pytest.fixture(scope="module")
def sample_report() -> Report:
    # From the repository root, as the README runs it, so the paths in the report read sample_logs/...
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        return run_report(ReportRequest(directory=Path("sample_logs"))).report
    finally:
        os.chdir(here)


def test_docs_example_is_current(sample_report: Report, tmp_path: Path) -> None:
    outputs = {
        "example-report.md": render_markdown(sample_report),
        "example-report.json": render_json(sample_report),
    }
    for name, text in outputs.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        if os.environ.get("ANALYZER_REGEN_DOCS"):
            (DOCS / name).write_text(text, encoding="utf-8")
    for name in outputs:
        committed = DOCS / name
        assert committed.is_file(), STALE
        assert committed.read_bytes() == (tmp_path / name).read_bytes(), STALE


def test_docs_example_json_follows_the_schema_and_renders_the_same_twice(sample_report: Report) -> None:
    text = render_json(sample_report)
    jsonschema.validate(json.loads(text), schema())
    assert text == render_json(sample_report)
    assert render_markdown(sample_report) == render_markdown(sample_report)
