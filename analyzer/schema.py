"""Canonical columns and dtypes of the three kinds of input, spelled once.

Every loader turns its source into exactly these columns; every analysis reads only these names.
Times are UTC microseconds; tokens and balances are Int64; latency is Float64 milliseconds.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import polars as pl

TS_DTYPE: Final = pl.Datetime("us", "UTC")

# --- gateway ---------------------------------------------------------------------------------
TS: Final = "ts"
REQUEST_ID: Final = "request_id"
ACCOUNT_ID: Final = "account_id"
MODEL: Final = "model"
ENDPOINT: Final = "endpoint"
REGION: Final = "region"
UPSTREAM: Final = "upstream"
STATUS: Final = "status"
LATENCY_MS: Final = "latency_ms"
PROMPT_TOKENS: Final = "prompt_tokens"
COMPLETION_TOKENS: Final = "completion_tokens"
UPSTREAM_STATUS: Final = "upstream_status"
TTFT_MS: Final = "ttft_ms"
STREAM: Final = "stream"
RESPONSE_FLAGS: Final = "response_flags"  # a proxy's own word on a request (Envoy UH/UF, HAProxy SC--)
UPSTREAM_ATTEMPTS: Final = "upstream_attempts"  # upstreams tried (ingress-nginx "502, 502, 200": 3)
# LLM usage detail (optional): parts of the prompt and completion that are billed apart.
CACHED_TOKENS: Final = "cached_tokens"  # the part of prompt_tokens served from a prompt cache
REASONING_TOKENS: Final = "reasoning_tokens"  # the part of completion_tokens spent reasoning
IMAGE_TOKENS: Final = "image_tokens"  # the part of prompt_tokens that encodes images
MAX_TOKENS: Final = "max_tokens"  # the completion limit the request asked for
MODEL_REQUESTED: Final = "model_requested"  # the model asked for, when the served `model` differs

# Every canonical gateway column with its dtype. Each is present in the canonical frame; a column the
# source does not have at all is null throughout and the analyses needing it say they are degraded.
GATEWAY_COLUMNS: Final[dict[str, pl.DataType]] = {
    TS: TS_DTYPE,
    REQUEST_ID: pl.String(),
    ACCOUNT_ID: pl.String(),
    MODEL: pl.String(),
    ENDPOINT: pl.String(),
    REGION: pl.String(),
    UPSTREAM: pl.String(),
    STATUS: pl.Int64(),
    LATENCY_MS: pl.Float64(),
    PROMPT_TOKENS: pl.Int64(),
    COMPLETION_TOKENS: pl.Int64(),
}
# Optional columns: present in the canonical frame only when the source has them.
GATEWAY_OPTIONAL: Final[dict[str, pl.DataType]] = {
    UPSTREAM_STATUS: pl.Int64(),
    TTFT_MS: pl.Float64(),
    STREAM: pl.Boolean(),
    RESPONSE_FLAGS: pl.String(),
    UPSTREAM_ATTEMPTS: pl.Int64(),
    CACHED_TOKENS: pl.Int64(),
    REASONING_TOKENS: pl.Int64(),
    IMAGE_TOKENS: pl.Int64(),
    MAX_TOKENS: pl.Int64(),
    MODEL_REQUESTED: pl.String(),
}
# Optional columns only a proxy's own log has (the simulated gateway writes none of them).
PROXY_ONLY: Final = (RESPONSE_FLAGS, UPSTREAM_ATTEMPTS)
GATEWAY: Final[dict[str, pl.DataType]] = {**GATEWAY_COLUMNS, **GATEWAY_OPTIONAL}
# A row without these cannot be placed in time or classified: it is rejected (`missing_field:<col>`).
# Any other value that is present but does not parse as its dtype is rejected (`bad_value:<col>`);
# a value that is absent is null (e.g. no `usage` block on a 502: tokens served are then 0).
GATEWAY_ROW_REQUIRED: Final = (TS, STATUS)

# --- ledger ----------------------------------------------------------------------------------
ENTRY_ID: Final = "entry_id"
KIND: Final = "kind"
TOKENS: Final = "tokens"
BALANCE_AFTER: Final = "balance_after"

LEDGER: Final[dict[str, pl.DataType]] = {
    TS: TS_DTYPE,
    ENTRY_ID: pl.String(),
    ACCOUNT_ID: pl.String(),
    REQUEST_ID: pl.String(),
    KIND: pl.String(),
    TOKENS: pl.Int64(),
    BALANCE_AFTER: pl.Int64(),
}
# `entry_id`, when the source has none, is derived as "<file>:<line>".
LEDGER_ROW_REQUIRED: Final = (TS, ACCOUNT_ID, KIND, TOKENS)

# Ledger entry kinds the analyzer understands; others are kept and counted but not reconciled.
LEDGER_DEDUCT: Final = "deduct"
LEDGER_REFUND: Final = "refund"
LEDGER_GRANT: Final = "grant"
LEDGER_RESET: Final = "reset"
LEDGER_KINDS: Final = (LEDGER_DEDUCT, LEDGER_REFUND, LEDGER_GRANT, LEDGER_RESET)

# --- events (operator notes) -----------------------------------------------------------------
TITLE: Final = "title"
EVENTS: Final[dict[str, pl.DataType]] = {TS: TS_DTYPE, KIND: pl.String(), TITLE: pl.String()}
EVENTS_ROW_REQUIRED: Final = (TS, TITLE)

# --- usage (a provider's own usage export: one row per time bucket and model, for a totals check) ---
REQUESTS: Final = "requests"
USAGE: Final[dict[str, pl.DataType]] = {
    TS: TS_DTYPE,  # the start of the bucket (OpenAI's exports: a UTC day)
    MODEL: pl.String(),
    ACCOUNT_ID: pl.String(),
    REQUESTS: pl.Int64(),
    PROMPT_TOKENS: pl.Int64(),
    COMPLETION_TOKENS: pl.Int64(),
    CACHED_TOKENS: pl.Int64(),
}
USAGE_ROW_REQUIRED: Final = (TS,)

# --- rejected rows: one per input line that could not be analyzed --------------------------------
REJECT_FILE: Final = "file"
REJECT_LINE: Final = "line"
REJECT_REASON_COLUMN: Final = "reason"
REJECT_RAW: Final = "raw"
REJECTS: Final[dict[str, pl.DataType]] = {
    REJECT_FILE: pl.String(),
    REJECT_LINE: pl.Int64(),
    REJECT_REASON_COLUMN: pl.String(),
    REJECT_RAW: pl.String(),
}


class FormatName(StrEnum):
    """The input formats, as `--format` and `[<kind>] format` name them (ingest/formats.py reads them)."""

    PARQUET = "parquet"
    JSONL = "jsonl"
    NGINX = "nginx"
    ALB = "alb"
    TSV = "tsv"
    CSV = "csv"
    INGRESS_NGINX = "ingress_nginx"
    TRAEFIK = "traefik"
    ENVOY = "envoy"
    HAPROXY = "haproxy"
    CLOUDFRONT = "cloudfront"
    ELB = "elb"
    VHOST_COMBINED = "vhost_combined"
    COMMON = "common"
    ENVOY_JSON = "envoy_json"
    GCP_LB = "gcp_lb"
    CLOUDFLARE = "cloudflare"
    CADDY = "caddy"
    TRAEFIK_JSON = "traefik_json"
    KONG = "kong"


class PresetName(StrEnum):
    """Known record shapes, as `--preset` and `[<kind>] preset` name them (ingest/presets.py)."""

    LITELLM = "litellm"  # LiteLLM proxy spend logs (LiteLLM_SpendLogs exported as CSV or JSON)
    OPENAI_USAGE = "openai_usage"  # OpenAI's usage export (completions buckets, per day and model)


# --- provenance columns every loader adds (dropped before analysis where not needed) ---------
SOURCE_FILE: Final = "_file"
SOURCE_LINE: Final = "_line"
REJECT_REASON: Final = "_reject"

SCHEMAS: Final[dict[str, dict[str, pl.DataType]]] = {
    "gateway": GATEWAY,
    "ledger": LEDGER,
    "events": EVENTS,
    "usage": USAGE,
}
ROW_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "gateway": GATEWAY_ROW_REQUIRED,
    "ledger": LEDGER_ROW_REQUIRED,
    "events": EVENTS_ROW_REQUIRED,
    "usage": USAGE_ROW_REQUIRED,
}


def empty(kind: str) -> pl.DataFrame:
    """An empty canonical frame of `kind` (gateway, ledger or events), optional columns left out."""
    schema = GATEWAY_COLUMNS if kind == "gateway" else SCHEMAS[kind]
    return pl.DataFrame(schema=schema)
