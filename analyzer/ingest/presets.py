"""Presets: the field mappings of record shapes known by name, chosen or detected from field names.

A preset gives, per kind of input, the source field of each canonical column (tried like a format's
defaults: a field the source lacks falls back to the aliases), units, values for columns the shape
does not have (a spend log's rows are all deductions), words that stand for statuses, and a latency
taken as the time between two timestamps. `[<kind>.fields]` and `[<kind>.units]` still win.

    litellm        LiteLLM proxy spend logs (LiteLLM_SpendLogs rows exported as CSV or JSON): as the
                   gateway (ts = startTime, latency = endTime - startTime, status "success"/"failure")
                   and as a ledger in USD (every row a deduction of `spend` dollars, read as integer
                   micro-dollars, at endTime, billed to api_key)
    openai_usage   OpenAI's usage export (completions buckets: start_time in epoch seconds, model,
                   num_model_requests, input_tokens, output_tokens, input_cached_tokens) as a usage
                   input, whose daily totals per model are checked against the gateway's

A preset is used when `--preset` or `[<kind>] preset` names it, or when a source has every field of
its signature; `inspect` says which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from analyzer.schema import (
    ACCOUNT_ID,
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    ENTRY_ID,
    KIND,
    LATENCY_MS,
    LEDGER_DEDUCT,
    MODEL,
    MODEL_REQUESTED,
    PROMPT_TOKENS,
    REQUEST_ID,
    REQUESTS,
    STATUS,
    TOKENS,
    TS,
    UPSTREAM,
    PresetName,
)

# The unit of a ledger's amounts in US dollars: read exactly as integer micro-dollars.
USD: Final = "usd"


@dataclass(frozen=True)
class Preset:
    """One known record shape."""

    name: PresetName
    signature: frozenset[str]  # fields a source must all have to be detected as this shape
    fields: Mapping[str, Mapping[str, str]]  # kind -> canonical column -> source field
    units: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # kind -> column -> unit
    # kind -> column -> the value of every row, for a column the source has no field for
    constants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)  # status word -> HTTP status
    latency_from: str | None = None  # latency_ms = its `latency_ms` field (a time) - this field's time


_LITELLM = Preset(
    name=PresetName.LITELLM,
    signature=frozenset(
        {"request_id", "startTime", "endTime", "spend", "prompt_tokens", "completion_tokens"}
    ),
    fields={
        "gateway": {
            TS: "startTime",
            REQUEST_ID: "request_id",
            ACCOUNT_ID: "api_key",
            MODEL: "model",
            MODEL_REQUESTED: "model_group",
            UPSTREAM: "api_base",
            STATUS: "status",
            LATENCY_MS: "endTime",
            PROMPT_TOKENS: "prompt_tokens",
            COMPLETION_TOKENS: "completion_tokens",
        },
        "ledger": {
            TS: "endTime",
            ENTRY_ID: "request_id",
            REQUEST_ID: "request_id",
            ACCOUNT_ID: "api_key",
            TOKENS: "spend",
        },
    },
    units={"ledger": {TOKENS: USD}},
    # Spend logs written before LiteLLM had a status column hold only calls that were answered.
    constants={"gateway": {STATUS: "200"}, "ledger": {KIND: LEDGER_DEDUCT}},
    statuses={"success": "200", "failure": "500"},
    latency_from="startTime",
)

_OPENAI_USAGE = Preset(
    name=PresetName.OPENAI_USAGE,
    signature=frozenset({"start_time", "end_time", "input_tokens", "output_tokens", "num_model_requests"}),
    fields={
        "usage": {
            TS: "start_time",
            MODEL: "model",
            ACCOUNT_ID: "project_id",
            REQUESTS: "num_model_requests",
            PROMPT_TOKENS: "input_tokens",
            COMPLETION_TOKENS: "output_tokens",
            CACHED_TOKENS: "input_cached_tokens",
        },
    },
    units={"usage": {TS: "epoch_s"}},
)

PRESETS: Final[dict[str, Preset]] = {p.name: p for p in (_LITELLM, _OPENAI_USAGE)}


def choose(kind: str, named: str | None, available: Sequence[str]) -> Preset | None:
    """The preset of a source: the one named (if it has a mapping for `kind`), else the first whose
    signature the source's fields hold."""
    if named is not None:
        preset = PRESETS[named]
        return preset if kind in preset.fields else None
    have = set(available)
    return next((p for p in PRESETS.values() if kind in p.fields and p.signature <= have), None)


@dataclass(frozen=True)
class Shape:
    """What a preset adds to one input's mapping beyond source fields (hashable: part of a batch key)."""

    preset: str | None = None
    constants: tuple[tuple[str, str], ...] = ()  # (canonical column, the value of every row)
    statuses: tuple[tuple[str, str], ...] = ()  # (word, HTTP status) read in the status field
    latency_from: str | None = None  # latency_ms = its field's time - this field's time (ts's source)

    def described(self, fields: Mapping[str, str | None], units: Mapping[str, str]) -> dict[str, str | None]:
        """The fields an InputReport shows: constants as "=value", a span as "end - start", dollars."""
        out = dict(fields)
        if units.get(TOKENS) == USD and out.get(TOKENS) is not None:
            out[TOKENS] = f"{out[TOKENS]} (USD, as micro-dollars)"
        for column, value in self.constants:
            out[column] = f"={value}"
        if self.latency_from is not None and out.get(LATENCY_MS) is not None:
            out[LATENCY_MS] = f"{out[LATENCY_MS]} - {self.latency_from}"
        return out


NO_SHAPE: Final = Shape()


def defaults(preset: Preset | None, kind: str, source: Mapping[str, str]) -> dict[str, str]:
    """The format's default fields with the preset's over them (both give way to `[<kind>.fields]`)."""
    return {**source, **(preset.fields.get(kind, {}) if preset else {})}


def units(preset: Preset | None, kind: str, source: Mapping[str, str]) -> dict[str, str]:
    """The format's default units with the preset's over them."""
    return {**source, **(preset.units.get(kind, {}) if preset else {})}


def shape(
    preset: Preset | None, kind: str, fields: Mapping[str, str | None], explicit: Mapping[str, str]
) -> Shape:
    """The preset's part of a resolved mapping: constants where no field was found, status words,
    and the latency span when ts and latency_ms were read from the preset's two time fields."""
    if preset is None:
        return NO_SHAPE
    constants = tuple(
        (c, v)
        for c, v in preset.constants.get(kind, {}).items()
        if fields.get(c) is None and c not in explicit
    )
    mine = preset.fields.get(kind, {})
    span = (
        preset.latency_from is not None
        and LATENCY_MS not in explicit
        and fields.get(TS) == preset.latency_from
        and fields.get(LATENCY_MS) == mine.get(LATENCY_MS)
    )
    statuses = tuple(preset.statuses.items()) if fields.get(STATUS) == mine.get(STATUS) else ()
    return Shape(preset.name, constants, statuses, preset.latency_from if span else None)
