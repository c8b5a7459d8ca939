"""The README's "Use in CI" workflows run: every `analyzer` command line in them, against sample_logs/.

The GitHub Actions workflow and the GitLab CI job are read from the README's yaml blocks and parsed as
YAML; each `run:` step and `script:` line is split into shell commands, and those that call `analyzer`
run in-process (typer's CliRunner) in a folder where `logs/` is a copy of sample_logs/, with the CI
system's variables set, in the order the job runs them. The last good report is the same day's report,
as if yesterday had been the same.
"""

from __future__ import annotations

import re
import shlex
import shutil
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_report_ci import check_junit
from typer.testing import CliRunner

from analyzer.cli import app

# The workflows are run for their command lines and exit codes: one analysis of each folder serves them all.
pytestmark = pytest.mark.usefixtures("shared_analysis")

ROOT = Path(__file__).resolve().parents[1]
SECTION = (
    ROOT.joinpath("README.md").read_text(encoding="utf-8").split("## Use in CI\n", 1)[1].split("\n## ", 1)[0]
)
WORKFLOWS = [yaml.safe_load(b) for b in re.findall(r"^```yaml\n(.*?)^```", SECTION, flags=re.M | re.S)]
runner = CliRunner()


def _strings(node: Any, keys: tuple[str, ...]) -> Iterator[str]:
    """Every string under one of `keys` (a step's `run`, a job's `script` list), in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield value
            elif key in keys and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            else:
                yield from _strings(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, keys)


def analyzer_commands(workflow: Any) -> list[list[str]]:
    """The `analyzer ...` commands of a workflow as argument lists, shell variables left unexpanded."""
    commands = []
    for script in _strings(workflow, ("run", "script")):
        for line in script.splitlines():
            line = line.split(" #", 1)[0]
            # Shell control words and operators separate commands: `if [ ... ]; then analyzer ...; fi`.
            for part in re.split(r"&&|\|\||;|\bthen\b|\bfi\b", line):
                words = shlex.split(part)
                if words[:1] == ["analyzer"]:
                    commands.append(words[1:])
    return commands


def test_the_section_has_a_github_workflow_and_a_gitlab_job() -> None:
    assert len(WORKFLOWS) == 2
    github, gitlab = WORKFLOWS
    assert "schedule" in github[True]  # YAML 1.1 reads the key `on` as true
    (job,) = gitlab.values()
    assert job["artifacts"]["reports"]["junit"] == "junit.xml"
    subcommands = [[c[0] for c in analyzer_commands(w)] for w in WORKFLOWS]
    assert subcommands == [["report", "compare"], ["report", "compare"]]


@pytest.fixture()
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "sample_logs", tmp_path / "logs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    expanded = [string.Template(a).substitute(env) for a in args]
    result = runner.invoke(app, expanded, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.exit_code, result.stderr


@pytest.mark.parametrize("index", [0, 1], ids=["github-actions", "gitlab-ci"])
def test_the_workflow_commands_run_on_the_sample(job_dir: Path, index: int) -> None:
    summary = job_dir / "step_summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    report, compare = analyzer_commands(WORKFLOWS[index])
    code, stderr = _run(report, env)
    # The sample has 5xx bursts and refunds owed: the gate holds, and says why.
    assert code == 1, stderr
    assert "fail-on: bursts: 3 5xx burst(s)" in stderr and "fail-on: refunds>0:" in stderr
    junit = check_junit((job_dir / "junit.xml").read_text(encoding="utf-8"))
    assert junit.get("failures") == "2"
    assert (job_dir / "report.json").is_file()
    if index == 0:
        assert summary.read_text(encoding="utf-8").startswith("# ")
        assert "::error title=analyzer fail-on bursts::" in stderr
    else:
        assert (job_dir / "postmortem.md").is_file()
    # The last good report, as the artifact of an earlier run: the same day, so nothing is new.
    (job_dir / "last-good").mkdir()
    shutil.copy(job_dir / "report.json", job_dir / "last-good" / "report.json")
    before = summary.read_text(encoding="utf-8") if summary.exists() else ""
    code, stderr = _run(compare, env)
    assert code == 0, stderr
    written = summary if index == 0 else job_dir / "comparison.md"
    text = written.read_text(encoding="utf-8")
    assert text.startswith(before) and "# What changed" in text.removeprefix(before)
