"""The command line through Typer's runner: discovery, each output, exit codes, escaping, determinism."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.report.jsonreport import schema

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
TRUTH = json.loads((SAMPLE / "truth.json").read_text())
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one `analyzer` call."""
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of sample_logs, so no test can write into the shipped files."""
    target = tmp_path_factory.mktemp("cli") / "sample_logs"
    shutil.copytree(SAMPLE, target)
    return target


@pytest.fixture(scope="module")
def outputs(sample: Path) -> dict[str, object]:
    """`analyzer report DIR` with every output file written; run twice with the same arguments."""
    out = sample.parent / "out"
    out.mkdir()
    files = {k: out / f"report.{ext}" if k in ("json", "md") else out / f"{k}.{ext}" for k, ext in
             (("json", "json"), ("md", "md"), ("refunds", "csv"), ("findings", "parquet"), ("rejects", "csv"))}  # fmt: skip
    args = ["report", sample]
    for key, flag in (("json", "--json"), ("md", "--markdown"), ("refunds", "--refunds"),
                      ("findings", "--findings"), ("rejects", "--rejects")):  # fmt: skip
        args += [flag, files[key]]
    code, stdout, stderr = run(*args)
    first = {k: p.read_bytes() for k, p in files.items()}
    again = run(*args)
    return {"code": code, "stdout": stdout, "stderr": stderr, "files": files, "first": first, "again": again}


def test_report_finds_inputs_by_name_and_prints_the_timeline(outputs: dict[str, object]) -> None:
    assert outputs["code"] == 0, outputs["stderr"]
    assert "Timeline" in outputs["stdout"]  # type: ignore[operator]
    # The operator events were discovered by name and are on the timeline.
    assert "kimi-k2.6 goes live" in outputs["stdout"]  # type: ignore[operator]
    for path in outputs["files"].values():  # type: ignore[attr-defined]
        assert path.is_file() and path.stat().st_size > 0
        assert f"wrote {path}" in outputs["stderr"].replace("\n", "")  # type: ignore[attr-defined]


def test_json_report_follows_the_schema_and_the_truth(outputs: dict[str, object]) -> None:
    doc = json.loads(outputs["files"]["json"].read_text())  # type: ignore[index]
    jsonschema.validate(doc, schema())
    kinds = {i["kind"] for i in doc["inputs"]}
    assert kinds == {"gateway", "ledger", "events"}
    assert sum(i["rows_read"] for i in doc["inputs"] if i["kind"] == "gateway") == TRUTH["requests"]
    assert doc["ledger"]["refund_tokens_total"] == TRUTH["ledger"]["refund_tokens_total"]
    owed = {a["account_id"]: a["refund_tokens"] for a in doc["ledger"]["accounts"]}
    assert owed == TRUTH["ledger"]["refunds"]
    assert len(doc["bursts"]) == len(TRUTH["bursts"])


def test_refunds_file_lists_every_account_owed(outputs: dict[str, object]) -> None:
    with outputs["files"]["refunds"].open(newline="") as f:  # type: ignore[index]
        rows = list(csv.DictReader(f))
    assert {r["account_id"]: int(r["refund_tokens"]) for r in rows} == TRUTH["ledger"]["refunds"]


def test_same_inputs_give_byte_identical_json_and_markdown(outputs: dict[str, object]) -> None:
    assert outputs["again"][0] == 0  # type: ignore[index]
    files, first = outputs["files"], outputs["first"]
    assert first["json"] == files["json"].read_bytes()  # type: ignore[index]
    assert first["md"] == files["md"].read_bytes()  # type: ignore[index]


def test_json_to_stdout_is_only_json(sample: Path) -> None:
    code, stdout, stderr = run("report", sample, "--json", "-")
    assert code == 0
    doc = json.loads(stdout)  # nothing but the document on stdout
    assert doc["schema_version"] >= 1
    assert "{" not in stderr


@pytest.mark.parametrize(
    ("rules", "code"),
    [
        pytest.param(["bursts"], 1, id="bursts-hold"),
        pytest.param(["refunds>0"], 1, id="refunds-hold"),
        pytest.param([f"refunds>{TRUTH['ledger']['refund_tokens_total']}"], 0, id="refunds-at-total-pass"),
        pytest.param(["rejects>0%"], 0, id="no-rejects-pass"),
        pytest.param(["no-such-rule"], 2, id="unknown-rule-usage-error"),
    ],
)
@pytest.mark.usefixtures("shared_analysis")
def test_fail_on_exit_codes(sample: Path, rules: list[str], code: int) -> None:
    args: list[str | Path] = ["report", sample, "--quiet"]
    for rule in rules:
        args += ["--fail-on", rule]
    got, stdout, stderr = run(*args)
    assert got == code, stderr
    if code == 1:
        assert f"fail-on: {rules[0]}" in stderr
    if code == 2:
        assert stderr.startswith("error: ") and stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["report", "/no/such/dir"], "/no/such/dir: no such directory", id="missing-dir"),
        pytest.param(["report", "{sample}", "--since", "yesterday"], "--since", id="bad-time"),
        pytest.param(["report", "{empty}"], "no gateway logs found", id="no-gateway"),
        pytest.param(["report", "{sample}", "--config", "{bad_config}"], "analyzer.toml", id="bad-config"),
    ],
)
def test_usage_and_input_errors_are_one_line_and_exit_2(
    sample: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    bad_config = tmp_path / "analyzer.toml"
    bad_config.write_text("[bursts]\nwindow = 'often'\n")
    filled = [a.format(sample=sample, empty=empty, bad_config=bad_config) for a in args]
    code, stdout, stderr = run(*filled)
    assert code == 2
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert needle in stderr
    assert stdout == ""


def test_refuses_to_write_a_report_over_an_input(sample: Path) -> None:
    target = sample / "events.jsonl"
    before = target.read_bytes()
    code, _, stderr = run("report", sample, "--quiet", "--markdown", target)
    assert code == 2 and "refusing to overwrite an input" in stderr
    assert target.read_bytes() == before


HOSTILE_ACCOUNT = '=HYPERLINK("http://x")|<img src=x onerror=alert(1)>[bold]'
HOSTILE_MODEL = "m|<script>alert(1)</script>"


def _hostile_logs(root: Path) -> Path:
    """One account, charged three times what it was served, with an id built to break every output."""
    root.mkdir()
    lines = [
        {
            "ts": f"2026-04-22T09:{m:02d}:00Z",
            "request_id": f"r{m}",
            "account_id": HOSTILE_ACCOUNT,
            "model": HOSTILE_MODEL,
            "endpoint": "/v1/chat/completions",
            "status": 200,
            "latency_ms": 100.0,
            "prompt_tokens": 10,
            "completion_tokens": 5,
        }  # fmt: skip
        for m in range(30)
    ]
    (root / "gateway.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with (root / "ledger.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts", "entry_id", "account_id", "request_id", "kind", "tokens", "balance_after"])
        for m in range(30):
            w.writerow([f"2026-04-22T09:{m:02d}:01Z", f"e{m}", HOSTILE_ACCOUNT, f"r{m}", "deduct", 45, ""])
    return root


def test_hostile_strings_cannot_break_markdown_csv_or_terminal(tmp_path: Path) -> None:
    logs = _hostile_logs(tmp_path / "logs")
    md, refunds = tmp_path / "r.md", tmp_path / "refunds.csv"
    code, stdout, stderr = run("report", logs, "--markdown", md, "--refunds", refunds)
    assert code == 0, stderr
    text = md.read_text()
    assert "<script>" not in text and "<img" not in text
    assert "HYPERLINK" in text  # the account is in the report, escaped
    # Every row of every table has as many cells as its header: the id's own pipe did not split a cell.
    tables: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    for rows in filter(None, tables):
        cells = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(cells) == 1, rows
    with refunds.open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["account_id"].startswith("'=")  # a spreadsheet shows it, never runs it
    assert int(row["refund_tokens"]) == 30 * (45 - 15)
    assert "[bold]" in stdout  # printed literally, not taken as Rich markup


def test_bursts_latency_and_reconcile_commands(sample: Path, tmp_path: Path) -> None:
    code, stdout, _ = run("bursts", sample, "--json", "-")
    assert code == 0
    doc = json.loads(stdout)
    assert set(doc) == {"inputs", "bursts", "alerts", "log_gaps"}
    assert [b["scope"] for b in doc["bursts"]] == [b["scope"] for b in TRUTH["bursts"]]

    code, stdout, _ = run("latency", sample, "--json", "-")
    assert code == 0
    assert set(json.loads(stdout)) == {"inputs", "latency_spikes", "quantile_method"}

    refunds = tmp_path / "refunds.parquet"
    code, stdout, stderr = run("reconcile", sample, "--refunds", refunds, "--top", "3")
    assert code == 0, stderr
    assert "Accounts owed a refund: 190 (top 3)" in stdout
    import polars as pl  # only to read the file back

    owed = pl.read_parquet(refunds)
    assert owed["refund_tokens"].sum() == TRUTH["ledger"]["refund_tokens_total"]


def test_reconcile_without_a_ledger_says_so(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copytree(SAMPLE / "gateway", logs / "gateway")
    code, _, stderr = run("reconcile", logs)
    assert code == 2 and "no ledger found" in stderr


def test_inspect_describes_each_file(sample: Path) -> None:
    code, stdout, _ = run("inspect", sample / "gateway", "--kind", "gateway", "--json")
    assert code == 0
    rows = json.loads(stdout)
    assert sum(r["rows_read"] for r in rows) == TRUTH["requests"]
    assert {r["format"] for r in rows} == {"jsonl"} and {r["compression"] for r in rows} == {"gzip"}


def test_simulate_then_report_on_it(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    code, _, stderr = run("simulate", out, "--hours", "1", "--rate", "2", "--accounts", "20", "--seed", "3")
    assert code == 0, stderr
    truth = json.loads((out / "truth.json").read_text())
    code, stdout, stderr = run("report", out, "--json", "-")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert sum(i["rows_read"] for i in doc["inputs"] if i["kind"] == "gateway") == truth["requests"]


def test_report_on_a_converted_folder_equals_the_report_on_the_originals(
    sample: Path, tmp_path: Path
) -> None:
    canonical = tmp_path / "canonical"
    code, _, stderr = run("convert", sample, "--out", canonical)
    assert code == 0, stderr
    assert sorted(p.name for p in canonical.iterdir()) == [
        "events.parquet", "gateway", "ledger", "manifest.json", "rejects.parquet",
    ]  # fmt: skip
    code, direct, _ = run("report", sample, "--json", "-")
    assert code == 0
    code, converted, stderr = run("report", canonical, "--json", "-")
    assert code == 0, stderr
    # Same findings, same inputs named (the originals, from the manifest): the same document.
    assert json.loads(converted) == json.loads(direct)


def test_rejects_survive_conversion(tmp_path: Path) -> None:
    logs = _hostile_logs(tmp_path / "logs")
    with (logs / "gateway.jsonl").open("a") as f:
        f.write('{"ts": "2026-04-22T09:40:00Z", "status": "teapot"}\n{not json\n')
    canonical = tmp_path / "canonical"
    assert run("convert", logs, "--out", canonical)[0] == 0
    rejects = tmp_path / "rejects.csv"
    code, stdout, stderr = run("report", canonical, "--json", "-", "--rejects", rejects)
    assert code == 0, stderr
    (gateway,) = [i for i in json.loads(stdout)["inputs"] if i["kind"] == "gateway"]
    assert (gateway["rows_read"], gateway["rows_rejected"]) == (32, 2)
    assert gateway["path"] == str(logs / "gateway.jsonl")
    with rejects.open(newline="") as f:
        assert sorted(int(r["line"]) for r in csv.DictReader(f)) == [31, 32]


def test_refuses_to_write_a_report_inside_an_input_folder(sample: Path) -> None:
    target = sample / "gateway" / "report.md"
    code, _, stderr = run("report", sample, "--quiet", "--markdown", target)
    assert code == 2 and "inside an input folder" in stderr
    assert not target.exists()


def test_a_bug_is_one_line_and_exit_3_not_a_traceback(
    sample: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import analyzer.pipeline
    from analyzer.cli import main

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(analyzer.pipeline, "run_report", broken)
    monkeypatch.setattr("sys.argv", ["analyzer", "report", str(sample), "--quiet"])
    monkeypatch.delenv("ANALYZER_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("error: internal error (RuntimeError: boom)") and err.count("\n") == 1
    monkeypatch.setenv("ANALYZER_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main()
