"""Every Mermaid block of the Markdown renders in a real browser with the Mermaid GitHub uses (v11).

Debian's headless Chromium loads the npm `mermaid` package's mermaid.min.js from a local folder (no
download at test time; `.ci/run` installs both) and renders each block; a parse or render error
fails the test. Without a browser or the package the test is skipped, unless
ANALYZER_REQUIRE_BROWSER=1 (set by `.ci/run`) makes their absence a failure.

ANALYZER_MERMAID_JS names mermaid.min.js (default: ~/.cache/analyzer-mermaid/node_modules/mermaid/
dist/mermaid.min.js, where `.ci/run` installs it); ANALYZER_CHROMIUM the browser (default: chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from analyzer.config import Settings
from analyzer.findings import Burst
from analyzer.pipeline import ReportRequest, run_report
from analyzer.report import build_report, render_markdown
from analyzer.report.model import Report
from tests.fixtures.report.records import at, detection, events, inputs, reconciliation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JS = Path.home() / ".cache/analyzer-mermaid/node_modules/mermaid/dist/mermaid.min.js"
GITHUB_MAX_CHARS = 50_000  # Mermaid's maxTextSize, which GitHub keeps: a longer block is not drawn
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PAGE = """<!doctype html><html><body><pre id="out">pending</pre>
<script src="{js}"></script>
<script>
const diagrams = {diagrams};
mermaid.initialize({{startOnLoad: false}});
(async () => {{
  const res = [];
  for (let i = 0; i < diagrams.length; i++) {{
    try {{
      await mermaid.parse(diagrams[i]);
      const r = await mermaid.render("d" + i, diagrams[i]);
      res.push({{ok: r.svg.includes("<svg"), error: null}});
    }} catch (e) {{ res.push({{ok: false, error: String((e && e.message) || e)}}); }}
  }}
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(res) + "END";
}})();
</script></body></html>
"""


def _tools() -> tuple[str, Path]:
    browser = shutil.which(os.environ.get("ANALYZER_CHROMIUM", "chromium"))
    js = Path(os.environ.get("ANALYZER_MERMAID_JS", DEFAULT_JS))
    missing = [what for what, ok in (("chromium", browser), (str(js), js.is_file())) if not ok]
    if missing:
        if os.environ.get("ANALYZER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ANALYZER_REQUIRE_BROWSER=1 but not installed: {', '.join(missing)}")
        pytest.skip(f"not installed: {', '.join(missing)}")
    assert browser is not None
    return browser, js


def render(diagrams: list[str]) -> list[dict[str, object]]:
    """Each diagram rendered by Mermaid in headless Chromium: {ok, error} per diagram."""
    browser, js = _tools()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(PAGE.format(js=js.as_uri(), diagrams=json.dumps(diagrams)), encoding="utf-8")
        profile = Path(tmp) / "profile"
        done = subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=30000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    found = re.search(r"RESULT(\[.*?\])END", done.stdout, flags=re.S)
    assert found, f"the page did not finish: {done.stderr[-500:]}"
    results: list[dict[str, object]] = json.loads(found.group(1))
    return results


def blocks(markdown: str) -> list[str]:
    """The Mermaid blocks of a Markdown text."""
    return re.findall(r"^```mermaid\n(.*?)^```", markdown, flags=re.M | re.S)


def _many_bursts(n: int) -> Report:
    one = detection().bursts[0]
    bursts = tuple(
        replace(
            one,
            start=at(9, 0) + timedelta(minutes=3 * i),
            end=at(9, 1) + timedelta(minutes=3 * i),
            scope=f"model=m{i}",
        )
        for i in range(n)
    )
    many: tuple[Burst, ...] = bursts
    return build_report(inputs(), replace(detection(), bursts=many), reconciliation(), events(), Settings())


@pytest.fixture(scope="module")
def diagrams() -> list[str]:
    sample = run_report(ReportRequest(directory=ROOT / "sample_logs")).report
    fixture = build_report(inputs(), detection(), reconciliation(), events(), Settings())
    return (
        blocks(render_markdown(sample))
        + blocks(render_markdown(fixture))
        + blocks(render_markdown(_many_bursts(300)))
    )


def test_every_block_of_the_reports_renders(diagrams: list[str]) -> None:
    assert len(diagrams) >= 9  # gantt, 5xx rate and p95 of each report
    results = render(diagrams)
    failed = [(d.splitlines()[:2], r["error"]) for d, r in zip(diagrams, results, strict=True) if not r["ok"]]
    assert failed == []


def test_a_broken_diagram_fails_the_check() -> None:
    broken = [
        "gantt\n    title x\n    this is broken ::: {",
        "xychart-beta\n    line [1, 2,",
    ]
    assert [r["ok"] for r in render(broken)] == [False, False]


def test_blocks_stay_within_githubs_size_whatever_the_bursts(diagrams: list[str]) -> None:
    assert max(len(d) for d in diagrams) < GITHUB_MAX_CHARS
    text = render_markdown(_many_bursts(300))
    gantt = next(b for b in blocks(text) if b.startswith("gantt"))
    assert "(40 longest of 301)" in gantt or "(40 longest of 300)" in gantt


def test_line_charts_label_only_round_hours_and_have_a_strong_colour(diagrams: list[str]) -> None:
    charts = [d for d in diagrams if "xychart-beta" in d]
    assert charts
    for chart in charts:
        axis = next(line for line in chart.splitlines() if line.strip().startswith("x-axis"))
        assert re.search(r"x-axis \"[^\"]+\" \d+\.\d+ --> \d+\.\d+$", axis.strip()), (
            axis
        )  # numeric: ticks on whole hours
        assert 'plotColorPalette: "#d62728"' in chart
