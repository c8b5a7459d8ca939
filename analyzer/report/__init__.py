"""The report: the Report model and its renderers (JSON + schema, Markdown, terminal) and CI gate rules."""

from analyzer.report.gate import failing_rules
from analyzer.report.jsonreport import render_json, schema
from analyzer.report.markdown import render_markdown
from analyzer.report.model import Report, build_report
from analyzer.report.terminal import render_terminal

__all__ = [
    "Report",
    "build_report",
    "failing_rules",
    "render_json",
    "render_markdown",
    "render_terminal",
    "schema",
]
