"""LLM usage records as providers write them: which fields add up to a column, and what must hold per row.

Where each provider puts its usage detail (the aliases are in mapping.ALIASES):

    OpenAI chat       usage.prompt_tokens (cached included), usage.prompt_tokens_details.cached_tokens,
                      usage.completion_tokens (reasoning included), ...completion_tokens_details.reasoning_tokens
    OpenAI Responses  usage.input_tokens, usage.input_tokens_details.cached_tokens,
                      usage.output_tokens, usage.output_tokens_details.reasoning_tokens
    Anthropic         usage.input_tokens is only the uncached remainder: the prompt is
                      input_tokens + cache_creation_input_tokens + cache_read_input_tokens, and the
                      cached part is cache_read_input_tokens
    Moonshot          usage.cached_tokens at the top of the usage object (context caching)

A row whose cached part exceeds its prompt, or whose reasoning part exceeds its completion, is rejected
as `bad_value:cached_tokens` / `bad_value:reasoning_tokens`: its counts contradict each other, so no
charge can be expected from them (as with 12.5 tokens), and a mapping that reads Anthropic's remainder
as the whole prompt shows at once as rejects naming the column, not as refunds that are wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import polars as pl

from analyzer.schema import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    REASONING_TOKENS,
)

# A field summed into a canonical column is kept in the mapping under "<column>+<n>".
ADDEND: Final = "+"
# Anthropic's cache counts, beside its `input_tokens` (top level or under `usage.`).
_ANTHROPIC_INPUT: Final = "input_tokens"
_ANTHROPIC_CACHE: Final = ("cache_creation_input_tokens", "cache_read_input_tokens")
_ANTHROPIC_PREFIXES: Final = ("", "usage.")
# (part, whole): the part is counted inside the whole, so it can never exceed it.
PARTS: Final = ((CACHED_TOKENS, PROMPT_TOKENS), (REASONING_TOKENS, COMPLETION_TOKENS))


def addends(
    fields: Mapping[str, str | None], available: Sequence[str], explicit: Mapping[str, str]
) -> dict[str, str]:
    """Fields summed into a column beside its own: Anthropic's cache writes and reads into the prompt.

    Only when the prompt was found by alias: a prompt mapped in `[gateway.fields]` is read as mapped.
    """
    source = fields.get(PROMPT_TOKENS)
    if PROMPT_TOKENS in explicit or source is None:
        return {}
    prefix = source.removesuffix(_ANTHROPIC_INPUT)
    if prefix == source or prefix not in _ANTHROPIC_PREFIXES:
        return {}
    have = set(available)
    names = [prefix + name for name in _ANTHROPIC_CACHE if prefix + name in have]
    return {f"{PROMPT_TOKENS}{ADDEND}{i}": name for i, name in enumerate(names)}


def addends_of(fields: Mapping[str, str | None], canonical: str) -> dict[str, str]:
    """The addend keys and source fields of `canonical` in a resolved mapping."""
    head = canonical + ADDEND
    return {k: s for k, s in fields.items() if k.startswith(head) and s is not None}


def described(fields: Mapping[str, str | None], columns: Sequence[str]) -> dict[str, str | None]:
    """Canonical column -> the source it was read from, a sum written out ("a + b + c")."""
    out: dict[str, str | None] = {}
    for column in columns:
        source = fields.get(column)
        extra = list(addends_of(fields, column).values())
        out[column] = " + ".join([source, *extra]) if source is not None and extra else source
    return out


def contradictions(present: Mapping[str, pl.Expr]) -> dict[str, pl.Expr]:
    """Per part column, the test that rejects its row: the part is larger than its whole."""
    return {part: present[part] & (pl.col(part) > pl.col(whole)) for part, whole in PARTS}
