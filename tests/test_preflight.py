"""What the CLI refuses before it reads a byte of logs: a --fail-on typo, an output it cannot write.

Each case runs on a gateway "log" that no format can read: if the analysis started, the error would be
about that file. The error is about the rule or the path, so it was found first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.errors import ConfigError
from analyzer.report.gate import Threshold, parse_rule

runner = CliRunner()


@pytest.fixture
def unreadable(tmp_path: Path) -> Path:
    """A folder whose gateway log matches no format: reading it fails with 'matches no supported format'."""
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "gateway.log").write_bytes(b"\x01\x02 not a log line at all\n" * 3)
    return folder


def _run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stderr


def test_the_unreadable_log_is_unreadable(unreadable: Path) -> None:
    # The premise of the other tests: analyzing this folder fails on the log itself.
    code, stderr = _run("report", unreadable, "--quiet")
    assert code == 2 and "gateway.log" in stderr and "format" in stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["--fail-on", "burts"], "unknown --fail-on rule", id="rule-typo"),
        pytest.param(["--fail-on", "refunds>1.5"], "is written refunds>N", id="count-with-decimals"),
        pytest.param(["--fail-on", "rejects>2"], "is written rejects>P%", id="percent-without-sign"),
        pytest.param(["--fail-on", "bursts>3"], "is written bursts", id="flag-with-threshold"),
        pytest.param(["--markdown", "{tmp}/no/such/folder/pm.md"], "no such folder", id="missing-folder"),
        pytest.param(["--json", "{tmp}"], "is a folder", id="json-is-a-folder"),
        pytest.param(["--refunds", "{tmp}/refunds.xlsx"], ".csv or .parquet", id="table-suffix"),
        pytest.param(["--rejects", "{tmp}/r.txt"], ".csv or .parquet", id="rejects-suffix"),
        pytest.param(["--markdown", "{logs}/pm.md"], "inside an input folder", id="inside-the-input"),
        pytest.param(["--markdown", "/proc/pm.md"], "cannot write", id="a-folder-no-file-can-be-made-in"),
    ],
)
def test_refused_before_the_logs_are_read(
    unreadable: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    filled = [a.format(tmp=tmp_path, logs=unreadable) for a in args]
    code, stderr = _run("report", unreadable, "--quiet", *filled)
    assert code == 2
    assert needle in stderr, stderr
    assert "gateway.log" not in stderr  # the logs were never opened
    assert stderr.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: permissions cannot be tested")
def test_an_unwritable_folder_is_refused_first(unreadable: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, stderr = _run("report", unreadable, "--quiet", "--json", locked / "r.json")
    assert code == 2 and "permission denied" in stderr


@pytest.mark.parametrize("command", ["bursts", "latency", "reconcile"])
def test_section_commands_check_their_json_path_first(unreadable: Path, tmp_path: Path, command: str) -> None:
    code, stderr = _run(command, unreadable, "--quiet", "--json", tmp_path / "missing" / "x.json")
    assert code == 2 and "no such folder" in stderr and "gateway.log" not in stderr


@pytest.mark.parametrize(
    ("text", "name", "threshold", "form"),
    [
        pytest.param("bursts", "bursts", None, Threshold.NONE, id="flag"),
        pytest.param(" refunds > 250 ", "refunds", 250, Threshold.COUNT, id="count-spaces"),
        pytest.param("rejects>0.25%", "rejects", 0.25, Threshold.PERCENT, id="percent"),
    ],
)
def test_rules_parse_exactly(text: str, name: str, threshold: float | None, form: Threshold) -> None:
    rule = parse_rule(text)
    assert rule.name == name
    assert (rule.threshold is None) == (threshold is None)
    if threshold is not None:
        assert rule.threshold is not None and float(rule.threshold) == threshold
        assert rule.threshold.denominator in (1, 4)  # exact: 0.25 is 1/4, not a float's nearest binary


def test_unknown_rule_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"known: bursts, spikes, refunds>N, rejects>P%"):
        parse_rule("5xx")
