"""The README against the code: its commands exist, its TOML loads, its mapping example reads data."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import typer.main
from polars.testing import assert_frame_equal

from analyzer.cli import app
from analyzer.config import (
    SECTIONS,
    ModelPrice,
    ModelWeights,
    Settings,
    SourceConfig,
    settings_from_dict,
)
from analyzer.ingest import load
from analyzer.ingest.mapping import ALIASES

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
FIRST_COMMANDS = "pip install . && analyzer report sample_logs\npip install '.[test]' && python -m pytest"
REFERENCE_MARK = "<!-- config-reference -->"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", TEXT, flags=re.M | re.S)


def _toml_blocks() -> list[str]:
    return _blocks("toml")


def _reference_block() -> str:
    after = TEXT.split(REFERENCE_MARK, 1)[1]
    match = re.match(r"\s*```toml\n(.*?)^```", after, flags=re.M | re.S)
    assert match is not None, "the config reference mark must precede a toml block"
    return match.group(1)


def _mapping_block() -> str:
    found = [b for b in _toml_blocks() if 'ts = "@timestamp"' in b]
    assert len(found) == 1
    return found[0]


def _invocations() -> list[str]:
    """Every `analyzer ...` command line in code blocks and inline code, continuation lines joined."""
    lines: list[str] = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", TEXT, flags=re.M | re.S):
        for line in block.splitlines():
            if line[:1].isspace() and lines:
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
    lines += re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", TEXT, flags=re.M | re.S))
    calls: list[str] = []
    for line in lines:
        # A command starts at the line's start or after `&&` / `|`; a path like analyzer/cli.py is not one.
        for part in re.split(r"&&|\|(?!\S)", line):
            part = part.strip()
            if re.match(r"analyzer\s+[a-z]", part):
                calls.append(part)
    return calls


def test_readme_starts_with_the_two_commands() -> None:
    assert TEXT.startswith(f"# analyzer\n\n```bash\n{FIRST_COMMANDS}\n```\n")


@pytest.mark.parametrize("block", _toml_blocks(), ids=lambda b: b.splitlines()[0][:40])
def test_every_toml_block_loads(block: str) -> None:
    settings = settings_from_dict(tomllib.loads(block), where="README.md")
    assert isinstance(settings, Settings)


def test_config_reference_states_every_default() -> None:
    assert settings_from_dict(tomllib.loads(_reference_block()), where="README.md") == Settings()


@pytest.mark.parametrize("section", sorted(SECTIONS), ids=str)
def test_config_reference_lists_every_key(section: str) -> None:
    raw = tomllib.loads(_reference_block())
    assert set(raw[section]) == {f.name for f in dataclasses.fields(SECTIONS[section])}


@pytest.mark.parametrize("cls", [SourceConfig, ModelWeights, ModelPrice], ids=lambda c: c.__name__)
def test_config_reference_names_every_source_and_model_key(cls: type) -> None:
    block = _reference_block()
    missing = [f.name for f in dataclasses.fields(cls) if not re.search(rf"\b{f.name}\b", block)]
    assert missing == []


def test_config_reference_is_not_the_defaults_by_accident() -> None:
    # The comparison above must be able to fail: a changed value in the block is not Settings().
    changed = _reference_block().replace("min_errors = 5", "min_errors = 6")
    assert settings_from_dict(tomllib.loads(changed)) != Settings()


def test_mapping_example_is_the_issue_shape() -> None:
    raw = tomllib.loads(_mapping_block())
    assert raw == {
        "gateway": {
            "fields": {
                "ts": "@timestamp",
                "request_id": "req",
                "account_id": "user",
                "model": "llm.model",
                "latency_ms": "duration_s",
                "prompt_tokens": "usage.prompt_tokens",
            },
            "units": {"ts": "epoch_ms", "latency_ms": "s"},
        },
        "ledger": {"fields": {"account_id": "customer", "tokens": "debit_tokens"}},
    }


def test_mapping_example_reads_nested_json_and_a_ledger(tmp_path: Path) -> None:
    settings = settings_from_dict(tomllib.loads(_mapping_block()))
    rows = [
        {
            "@timestamp": 1776848401123,
            "req": "r1",
            "user": "acct-1",
            "llm": {"model": "kimi-k2.6"},
            "status": 200,
            "duration_s": 1.25,
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300},
        },
        {"@timestamp": "soon", "req": "r2", "user": "acct-2", "llm": {"model": "kimi-k2.6"}, "status": 200},
    ]
    gw = tmp_path / "gw.jsonl"
    gw.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ledger = tmp_path / "ledger.csv"
    ledger.write_text("ts,customer,kind,debit_tokens\n2026-04-22T09:00:02Z,acct-1,deduct,1500\n")

    gateway = load("gateway", [gw], settings)
    got = gateway.frame.select(
        "ts", "request_id", "account_id", "model", "latency_ms", "prompt_tokens", "completion_tokens"
    ).collect()
    expected = pl.DataFrame(
        {
            "ts": [datetime(2026, 4, 22, 9, 0, 1, 123000, tzinfo=UTC)],
            "request_id": ["r1"],
            "account_id": ["acct-1"],
            "model": ["kimi-k2.6"],
            "latency_ms": [1250.0],
            "prompt_tokens": [1200],
            "completion_tokens": [300],
        },
        schema=got.schema,
    )
    assert_frame_equal(got, expected)
    (report,) = gateway.inputs
    assert (report.rows_read, report.rows_rejected, report.rejects_by_reason) == (2, 1, {"bad_value:ts": 1})
    assert report.fields["model"] == "llm.model"

    billed = load("ledger", [ledger], settings)
    assert billed.frame.select("account_id", "kind", "tokens").collect().rows() == [
        ("acct-1", "deduct", 1500)
    ]


def test_local_links_point_to_files() -> None:
    targets = re.findall(r"\]\(([^)#:]+)\)", TEXT)
    assert targets, "the README links to the example report and the benchmarks"
    missing = [t for t in targets if not (README.parent / t).exists()]
    assert missing == []


def _layout_paths() -> list[str]:
    """The paths the Project layout block names, its indentation giving each one's folder."""
    block = TEXT.split("## Project layout", 1)[1].split("```", 2)[1]
    folders: list[tuple[int, str]] = []
    paths: list[str] = []
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        folders = [(i, f) for i, f in folders if i < indent]
        path = "".join(f for _, f in folders) + name
        paths.append(path)
        if name.endswith("/"):
            folders.append((indent, name))
    return paths


def test_layout_names_only_existing_files() -> None:
    paths = _layout_paths()
    assert "analyzer/ingest/mapping.py" in paths and "analyzer/report/gate.py" in paths
    missing = [p for p in paths if not (README.parent / p).exists()]
    assert missing == []


def test_every_alias_is_documented() -> None:
    missing = [
        f"{kind}.{column}: {name}"
        for kind, columns in ALIASES.items()
        for column, names in columns.items()
        for name in names
        if f"`{name}`" not in TEXT
    ]
    assert missing == []


def _commands() -> dict[str, set[str]]:
    group = typer.main.get_command(app)
    return {
        name: {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
        for name, cmd in group.commands.items()  # type: ignore[attr-defined]
    }


def test_readme_names_commands() -> None:
    named = {re.match(r"analyzer\s+([a-z][\w-]*)", c).group(1) for c in _invocations()}  # type: ignore[union-attr]
    assert {"report", "inspect", "simulate"} <= named


@pytest.mark.parametrize("call", sorted(set(_invocations())), ids=lambda c: re.sub(r"\W+", "_", c)[:60])
def test_every_command_and_option_in_the_readme_exists(call: str) -> None:
    commands = _commands()
    name = call.split()[1]
    assert name in commands, f"`analyzer {name}` is not a command of the app"
    options = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", call))
    assert options <= commands[name], f"not options of `analyzer {name}`: {sorted(options - commands[name])}"
