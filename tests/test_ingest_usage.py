"""LLM usage fields as each provider writes them, and the per-row invariants on their parts.

Each fixture under fixtures/usage/ is written from its provider's documented usage object (OpenAI's
chat and Responses usage, Anthropic's Messages usage with prompt caching, Moonshot's context caching);
the expected values are worked out by hand from those documents' definitions.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analyzer.config import Settings, SourceConfig
from analyzer.ingest import load
from analyzer.schema import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    IMAGE_TOKENS,
    MAX_TOKENS,
    MODEL,
    MODEL_REQUESTED,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    REQUEST_ID,
)

FIXTURES = Path(__file__).parent / "fixtures" / "usage"
USAGE = [REQUEST_ID, PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS, REASONING_TOKENS]


def _rows(path: Path, columns: list[str], settings: Settings | None = None) -> list[tuple[object, ...]]:
    loaded = load("gateway", [path], settings or Settings())
    assert loaded.inputs[0].rows_rejected == 0, loaded.inputs[0].rejects_by_reason
    return loaded.frame.sort("_line").select(columns).collect().rows()


def _fields(path: Path) -> dict[str, str | None]:
    return load("gateway", [path], Settings()).inputs[0].fields


def test_openai_chat_usage_details() -> None:
    path = FIXTURES / "openai_chat.jsonl"
    columns = [*USAGE, IMAGE_TOKENS, MAX_TOKENS, MODEL, MODEL_REQUESTED]
    assert _rows(path, columns) == [
        ("oa-1", 1486, 651, 1408, 512, 0, 4096, "gpt-5-2025-08-07", "gpt-5"),
        ("oa-2", 125, 48, 0, 0, 85, None, "gpt-4o-2024-08-06", "gpt-4o"),
        # A 502 reports no usage: every count is null (0 tokens served), the request is still there.
        ("oa-3", None, None, None, None, None, 1024, None, "gpt-5"),
    ]
    fields = _fields(path)
    assert fields[CACHED_TOKENS] == "usage.prompt_tokens_details.cached_tokens"
    assert fields[REASONING_TOKENS] == "usage.completion_tokens_details.reasoning_tokens"
    assert fields[IMAGE_TOKENS] == "usage.prompt_tokens_details.image_tokens"
    assert fields[MAX_TOKENS] == "request.max_completion_tokens"
    assert fields[MODEL_REQUESTED] == "request.model"


def test_openai_responses_usage_details() -> None:
    path = FIXTURES / "openai_responses.jsonl"
    assert _rows(path, [*USAGE, MAX_TOKENS]) == [
        ("resp-1", 256, 128, 128, 64, 2048),
        ("resp-2", 36, 87, 0, 0, None),
    ]
    fields = _fields(path)
    assert fields[PROMPT_TOKENS] == "usage.input_tokens"
    assert fields[CACHED_TOKENS] == "usage.input_tokens_details.cached_tokens"
    assert fields[REASONING_TOKENS] == "usage.output_tokens_details.reasoning_tokens"


def test_anthropic_prompt_is_the_sum_of_its_three_parts() -> None:
    path = FIXTURES / "anthropic.jsonl"
    assert _rows(path, USAGE[:4]) == [
        ("msg-1", 21 + 1888 + 0, 393, 0),  # a cache write: billed as prompt, nothing cached
        ("msg-2", 40 + 0 + 1888, 210, 1888),  # a cache read: 1888 of 1928 prompt tokens cached
        ("msg-3", 12, 9, None),  # no caching fields on the line: input_tokens is the prompt
    ]
    fields = _fields(path)
    assert fields[PROMPT_TOKENS] == (
        "usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens"
    )
    assert fields[CACHED_TOKENS] == "usage.cache_read_input_tokens"


def test_moonshot_top_level_cached_tokens() -> None:
    path = FIXTURES / "moonshot.jsonl"
    assert _rows(path, USAGE[:4]) == [("ms-1", 64210, 118, 64000), ("ms-2", 512, 64, None)]
    assert _fields(path)[CACHED_TOKENS] == "usage.cached_tokens"


def test_a_mapped_prompt_is_read_as_mapped_not_summed() -> None:
    # Anthropic's remainder mapped as the whole prompt: the cache read exceeds it, and says so.
    settings = Settings(gateway=SourceConfig(fields={PROMPT_TOKENS: "usage.input_tokens"}))
    loaded = load("gateway", [FIXTURES / "anthropic.jsonl"], settings)
    assert loaded.rejects.select("line", "reason").rows() == [(2, "bad_value:cached_tokens")]
    assert loaded.frame.sort("_line").select(PROMPT_TOKENS).collect()[PROMPT_TOKENS].to_list() == [21, 12]


def test_sources_without_usage_detail_have_no_usage_columns() -> None:
    loaded = load(
        "gateway", [Path(__file__).parent / "fixtures" / "ingest" / "gateway_nested.jsonl"], Settings()
    )
    names = loaded.frame.collect_schema().names()
    assert not {CACHED_TOKENS, REASONING_TOKENS, IMAGE_TOKENS, MAX_TOKENS, MODEL_REQUESTED} & set(names)


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "gateway.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _line(usage: str) -> str:
    return '{"ts": "2026-04-22T09:00:00Z", "status": 200, "request_id": "r", "usage": {' + usage + "}}"


@pytest.mark.parametrize(
    ("usage", "reason"),
    [
        pytest.param(
            '"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 100}',
            None,
            id="cached-equal-to-prompt-kept",
        ),
        pytest.param(
            '"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 101}',
            "bad_value:cached_tokens",
            id="cached-above-prompt-rejected",
        ),
        pytest.param(
            '"prompt_tokens": 10, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 50}',
            None,
            id="reasoning-equal-to-completion-kept",
        ),
        pytest.param(
            '"prompt_tokens": 10, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 51}',
            "bad_value:reasoning_tokens",
            id="reasoning-above-completion-rejected",
        ),
        pytest.param(
            '"completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 70}',
            None,
            id="no-prompt-nothing-to-contradict",
        ),
        pytest.param(
            '"input_tokens": 10, "cache_read_input_tokens": "many", "output_tokens": 1',
            "bad_value:prompt_tokens",
            id="an-addend-that-does-not-parse",
        ),
        pytest.param(
            '"input_tokens": 10, "cache_read_input_tokens": 500, "output_tokens": 1',
            None,
            id="anthropic-cached-above-input-is-inside-the-sum",
        ),
    ],
)
def test_usage_invariants_per_row(tmp_path: Path, usage: str, reason: str | None) -> None:
    loaded = load("gateway", [_write(tmp_path, [_line(usage)])], Settings())
    assert loaded.rejects["reason"].to_list() == ([reason] if reason else [])
    assert loaded.frame.select(pl.len()).collect().item() == (0 if reason else 1)
