"""Gateway traffic: arrivals on a daily curve with the launch surge, heavy-tailed accounts, a model,
region and endpoint mix, token counts and latencies, background errors, then the injected incidents.

Everything is drawn as whole NumPy arrays from seeded generators, never row by row. The traffic draws
come from their own generator, so the `quiet` and `launch` scenarios of one seed share the same requests
and differ only by what the incidents change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from analyzer import schema as s
from analyzer.simulate.scenarios import Story
from analyzer.simulate.spec import (
    CHAT_MODEL_SHARES,
    DECODE_MS,
    ENDPOINTS,
    LONG_CONTEXT_MAX,
    MODELS,
    POOL_OF,
    REGION_SHARES,
    REGIONS,
    UPSTREAMS,
    SimSpec,
    to_us,
)

US = 1_000_000
NEW, EMBED = 0, len(MODELS) - 1  # model codes
CHAT, COMPLETIONS, EMBEDDINGS = 0, 1, 2  # endpoint codes
LONG_CONTEXT_SHARE = 0.03
ZERO_TOKEN_SHARE = 0.001  # served requests with nothing to bill (e.g. an empty cached reply)
# Formerly a random 3% of 429s: the draw stays so every other draw is unchanged, the 429s now come
# from the limiter (limiter.py), each with a reason.
RATE_LIMITED_SHARE = 0.03
BACKGROUND_5XX_SHARE = 0.001
BACKGROUND_5XX = np.array([500, 502, 503, 504])
SPIKE_RAMP_US = 30 * US
CACHED_SHARE = 0.4  # with usage detail: chat and completion requests whose prompt was partly cached
REASONING_SHARE = 0.6  # ...and the new model's answers that reasoned first


@dataclass(frozen=True)
class Traffic:
    """One array per column, one element per request, sorted by ts. Token arrays hold what the request
    would have used even when it failed (`served` says whether the gateway reported them)."""

    ts_us: np.ndarray
    account: np.ndarray
    model: np.ndarray
    endpoint: np.ndarray
    region: np.ndarray
    status: np.ndarray
    latency_ms: np.ndarray
    prompt: np.ndarray
    completion: np.ndarray
    upstream_status: np.ndarray  # -1: none
    ttft_ms: np.ndarray  # NaN: none
    stream: np.ndarray
    burst: np.ndarray  # index of the injected burst that failed the request, -1 otherwise
    # Usage detail (SimSpec.cached): the cached part of the prompt and the reasoning part of the
    # completion, per request; None without it.
    cached: np.ndarray | None = None
    reasoning: np.ndarray | None = None

    @property
    def served(self) -> np.ndarray:
        """Requests answered 2xx."""
        return (self.status >= 200) & (self.status < 300)


def account_weights(accounts: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like share of traffic per account index, the heavy accounts scattered over the ids."""
    ranks = rng.permutation(accounts) + 1
    w = 1.0 / (ranks + 2.0) ** 1.1
    out: np.ndarray = w / w.sum()
    return out


def _arrivals(spec: SimSpec, story: Story, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Request times (us, sorted) and each request's chance of being on the new model."""
    sec = np.arange(spec.seconds, dtype=np.float64)
    start_of_day = spec.start.hour * 3600 + spec.start.minute * 60 + spec.start.second
    hour = ((start_of_day + sec) / 3600.0) % 24.0
    base = 1.0 + 0.5 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)  # peak 15:00, peak/trough = 3
    since = sec - (story.launch_at - spec.start).total_seconds()
    launched = since >= 0
    after = np.where(launched, since, 0.0)
    surge = np.where(
        launched, 0.8 * (1 - np.exp(-after / 900.0)) * (0.35 + 0.65 * np.exp(-after / 10800.0)), 0.0
    )
    intensity = base * (1.0 + surge)
    counts = rng.multinomial(spec.requests, intensity / intensity.sum())
    second = np.repeat(np.arange(spec.seconds, dtype=np.int64), counts)
    ts_us = to_us(spec.start) + second * US + rng.integers(0, US, spec.requests)
    new_share = np.where(launched, (surge + 0.15) / (1.0 + surge), 0.0)
    order = np.argsort(ts_us, kind="stable")
    return ts_us[order], new_share[second[order]]


def _pick(shares: tuple[float, ...] | np.ndarray, u: np.ndarray) -> np.ndarray:
    cum = np.cumsum(np.asarray(shares, dtype=np.float64))
    return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(cum) - 1).astype(np.int32)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(rng.normal(0.0, sigma, n))


def base_traffic(spec: SimSpec, story: Story, rng: np.random.Generator) -> Traffic:
    """The requests of the span with background errors and no incident."""
    ts_us, new_share = _arrivals(spec, story, rng)
    n = len(ts_us)
    is_new = rng.random(n) < new_share
    endpoint = np.where(
        is_new, _pick((0.9, 0.1), rng.random(n)), _pick((0.74, 0.09, 0.17), rng.random(n))
    ).astype(np.int8)
    chat_model = _pick(CHAT_MODEL_SHARES, rng.random(n)) + 1
    model = np.where(is_new, NEW, np.where(endpoint == EMBEDDINGS, EMBED, chat_model)).astype(np.int8)
    region = _pick(REGION_SHARES, rng.random(n)).astype(np.int8)
    account = _pick(account_weights(spec.accounts, rng), rng.random(n))

    embed = endpoint == EMBEDDINGS
    long_ctx = ~embed & (rng.random(n) < LONG_CONTEXT_SHARE)
    prompt = np.where(
        embed,
        np.clip(_lognormal(rng, 200, 0.8, n), 1, 8191),
        np.clip(_lognormal(rng, 900, 1.0, n), 1, 32_000),
    )
    long_prompt = np.exp(rng.uniform(np.log(32_768), np.log(LONG_CONTEXT_MAX), n))
    prompt = np.where(long_ctx, np.minimum(long_prompt, LONG_CONTEXT_MAX), prompt).astype(np.int64)
    completion = np.where(endpoint == CHAT, _lognormal(rng, 220, 0.9, n), _lognormal(rng, 120, 0.9, n))
    completion = np.where(embed, 0, np.clip(completion, 1, 8192)).astype(np.int64)
    zero = ~embed & (rng.random(n) < ZERO_TOKEN_SHARE)
    prompt[zero] = 0
    completion[zero] = 0

    stream = np.where(
        endpoint == CHAT, rng.random(n) < 0.65, (endpoint == COMPLETIONS) & (rng.random(n) < 0.2)
    )
    ttft = (60.0 + 0.11 * prompt) * np.exp(rng.normal(0.0, 0.3, n))
    decode = completion * np.asarray(DECODE_MS)[model] * np.exp(rng.normal(0.0, 0.25, n))
    embed_ms = (15.0 + 0.02 * prompt) * np.exp(rng.normal(0.0, 0.3, n))
    latency = np.where(embed, embed_ms, ttft + decode) + 4.0

    u = rng.random(n)
    status = np.full(n, 200)
    background = (u >= RATE_LIMITED_SHARE) & (u < RATE_LIMITED_SHARE + BACKGROUND_5XX_SHARE)
    status = np.where(background, BACKGROUND_5XX[rng.integers(0, 4, n)], status).astype(np.int64)
    return Traffic(
        ts_us=ts_us,
        account=account,
        model=model,
        endpoint=endpoint,
        region=region,
        status=status,
        latency_ms=latency,
        prompt=prompt,
        completion=completion,
        upstream_status=np.full(n, -1, dtype=np.int64),
        ttft_ms=ttft,
        stream=stream,
        burst=np.full(n, -1, dtype=np.int8),
    )


def _in_scope(t: Traffic, column: str | None, value: str | None) -> np.ndarray:
    if column is None:
        return np.ones(len(t.ts_us), dtype=bool)
    names = {"model": (MODELS, t.model), "region": (REGIONS, t.region), "endpoint": (ENDPOINTS, t.endpoint)}
    catalogue, codes = names[column]
    hit: np.ndarray = codes == catalogue.index(value)
    return hit


def _window(t: Traffic, start_us: int, end_us: int) -> np.ndarray:
    return (t.ts_us >= start_us) & (t.ts_us < end_us)


def inject(t: Traffic, story: Story, rng: np.random.Generator, failure_rng: np.random.Generator) -> Traffic:
    """The traffic with the story's bursts and latency spikes applied, then failure-side fields."""
    n = len(t.ts_us)
    status, burst = t.status.copy(), t.burst.copy()
    latency, ttft = t.latency_ms.copy(), t.ttft_ms.copy()
    for i, b in enumerate(story.bursts):
        u, pick = rng.random(n), rng.integers(0, len(b.statuses), n)
        hit = _window(t, to_us(b.window.start), to_us(b.window.end)) & _in_scope(t, b.column, b.value)
        hit &= u < b.error_rate
        status = np.where(hit, np.asarray(b.statuses)[pick], status)
        burst = np.where(hit, i, burst).astype(np.int8)
    for sp in story.spikes:
        lo, hi = to_us(sp.window.start), to_us(sp.window.end)
        # Ramp up over the first and down over the last 30 s, so the window edges stay sharp.
        edge = np.clip(np.minimum(t.ts_us - lo, hi - 1 - t.ts_us) / SPIKE_RAMP_US, 0.0, 1.0)
        factor = np.where(
            _window(t, lo, hi) & _in_scope(t, sp.column, sp.value), 1 + (sp.factor - 1) * edge, 1.0
        )
        latency, ttft = latency * factor, ttft * factor
    return _failures(t, status, burst, latency, ttft, failure_rng)


def _failures(
    t: Traffic,
    status: np.ndarray,
    burst: np.ndarray,
    latency: np.ndarray,
    ttft: np.ndarray,
    rng: np.random.Generator,
) -> Traffic:
    """Latency and upstream status of failed requests; ttft only on served streams."""
    n = len(status)
    served = (status >= 200) & (status < 300)
    fail_ms = np.select(
        [status == 429, status == 502, status == 504],
        [_lognormal(rng, 4, 0.5, n), _lognormal(rng, 1500, 0.8, n), 60_000 + rng.uniform(0, 50, n)],
        _lognormal(rng, 300, 0.6, n),
    )
    upstream_status = np.select(
        [served, (status == 500) | (status == 503), status == 502],
        [status, status, np.where(rng.random(n) < 0.5, 500, -1)],
        -1,
    ).astype(np.int64)
    return Traffic(
        ts_us=t.ts_us,
        account=t.account,
        model=t.model,
        endpoint=t.endpoint,
        region=t.region,
        status=status.astype(np.int64),
        latency_ms=np.round(np.where(served, latency, fail_ms), 1),
        prompt=t.prompt,
        completion=t.completion,
        upstream_status=upstream_status,
        ttft_ms=np.round(np.where(served & t.stream, ttft, np.nan), 1),
        stream=t.stream,
        burst=burst,
    )


def with_usage(t: Traffic, rng: np.random.Generator) -> Traffic:
    """The traffic with cached and reasoning parts drawn (from their own generator)."""
    n = len(t.ts_us)
    hit = (t.endpoint != EMBEDDINGS) & (t.prompt > 0) & (rng.random(n) < CACHED_SHARE)
    cached = np.where(hit, np.floor(t.prompt * rng.uniform(0.3, 0.95, n)), 0).astype(np.int64)
    thinks = (t.model == NEW) & (t.completion > 0) & (rng.random(n) < REASONING_SHARE)
    reasoning = np.where(thinks, np.floor(t.completion * rng.uniform(0.2, 0.8, n)), 0).astype(np.int64)
    return replace(t, cached=cached, reasoning=reasoning)


def request_ids(n: int) -> pl.Series:
    """Request ids in arrival order: req-000000001, ..."""
    width = max(9, len(str(n)))
    return pl.select(
        (pl.lit("req-") + (pl.int_range(1, n + 1, dtype=pl.Int64).cast(pl.String).str.zfill(width))).alias(
            s.REQUEST_ID
        )
    ).to_series()


def account_names(accounts: int) -> pl.Series:
    """acct-00001 ... for every account index."""
    return pl.Series(s.ACCOUNT_ID, [f"acct-{i:05d}" for i in range(1, accounts + 1)], dtype=pl.String)


def _names(catalogue: tuple[str, ...], codes: np.ndarray, name: str) -> pl.Series:
    return pl.Series(name, catalogue, dtype=pl.String).gather(pl.Series(codes.astype(np.int64)))


def gateway_frame(t: Traffic, accounts: int) -> pl.DataFrame:
    """The canonical gateway frame (schema.GATEWAY columns and dtypes); failed requests report no tokens."""
    upstream = np.asarray(POOL_OF, dtype=np.int64)[t.model, t.region]
    served = pl.col(s.STATUS).is_between(200, 299)
    frame = pl.DataFrame(
        [
            pl.Series(s.TS, t.ts_us, dtype=pl.Int64).cast(s.TS_DTYPE),
            request_ids(len(t.ts_us)),
            account_names(accounts).gather(pl.Series(t.account.astype(np.int64))),
            _names(MODELS, t.model, s.MODEL),
            _names(ENDPOINTS, t.endpoint, s.ENDPOINT),
            _names(REGIONS, t.region, s.REGION),
            _names(UPSTREAMS, upstream, s.UPSTREAM),
            pl.Series(s.STATUS, t.status, dtype=pl.Int64),
            pl.Series(s.LATENCY_MS, t.latency_ms, dtype=pl.Float64),
            pl.Series(s.PROMPT_TOKENS, t.prompt, dtype=pl.Int64),
            pl.Series(s.COMPLETION_TOKENS, t.completion, dtype=pl.Int64),
            pl.Series(s.UPSTREAM_STATUS, t.upstream_status, dtype=pl.Int64),
            pl.Series(s.TTFT_MS, t.ttft_ms, dtype=pl.Float64, nan_to_null=True),
            pl.Series(s.STREAM, t.stream, dtype=pl.Boolean),
        ]
    )
    usage = []
    if t.cached is not None and t.reasoning is not None:
        usage = [s.CACHED_TOKENS, s.REASONING_TOKENS]
        frame = frame.with_columns(
            pl.Series(s.CACHED_TOKENS, t.cached, dtype=pl.Int64),
            pl.Series(s.REASONING_TOKENS, t.reasoning, dtype=pl.Int64),
        )
    return frame.with_columns(
        pl.when(served).then(pl.col(s.PROMPT_TOKENS, s.COMPLETION_TOKENS, *usage)),
        pl.when(pl.col(s.UPSTREAM_STATUS) >= 0).then(pl.col(s.UPSTREAM_STATUS)).alias(s.UPSTREAM_STATUS),
    )
