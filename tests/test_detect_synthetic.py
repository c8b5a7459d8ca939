"""detect() on seeded synthetic gateway frames with known injected incidents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer.config import LatencySettings, Settings
from analyzer.detect import detect
from analyzer.report.notes import sentences
from analyzer.schema import GATEWAY_COLUMNS

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MODELS = ("kimi-k2.6", "glm-5", "qwen-4")
REGIONS = ("us-east-1", "eu-west-1", "ap-south-1", "us-west-2")


@dataclass
class Inject:
    """An incident injected over minutes [start, end) of the span."""

    kind: str  # "burst", "spike", "slow_wave" (long prompts, slow but expected), "gap"
    start: int
    end: int
    column: str | None = None  # slice it hits, None: every request
    value: str | None = None
    rate: float = 0.3  # burst: share of requests failing with 502
    factor: float = 3.5  # spike: latency multiple


@dataclass
class Synth:
    minutes: int = 180
    rate: float = 10.0  # requests per second at the mean of the daily swing
    seed: int = 0
    background: float = 0.002  # share of 502s at any time
    model_share: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    injects: list[Inject] = field(default_factory=list)


def make(spec: Synth) -> pl.DataFrame:
    """A canonical gateway frame of `spec`: hourly swings in traffic, lognormal latency ~ prompt size."""
    rng = np.random.default_rng(spec.seed)
    minute_rate = spec.rate * 60 * (1 + 0.4 * np.sin(np.arange(spec.minutes) * 2 * np.pi / 60))
    counts = rng.poisson(minute_rate)
    minute = np.repeat(np.arange(spec.minutes), counts)
    n = minute.size
    offset_us = ((minute + rng.random(n)) * 60e6).astype(np.int64)
    model = rng.choice(MODELS, n, p=spec.model_share)
    region = rng.choice(REGIONS, n)
    prompt = np.exp(rng.uniform(np.log(50), np.log(30_000), n)).astype(np.int64)
    status = np.where(rng.random(n) < spec.background, 502, 200)
    keep = np.ones(n, dtype=bool)
    for inj in spec.injects:
        during = (minute >= inj.start) & (minute < inj.end)
        if inj.column == "model":
            during &= model == inj.value
        elif inj.column == "region":
            during &= region == inj.value
        if inj.kind == "burst":
            status = np.where(during & (rng.random(n) < inj.rate), 502, status)
        elif inj.kind == "slow_wave":
            prompt = np.where(during & (rng.random(n) < 0.5), rng.integers(150_000, 220_000, n), prompt)
        elif inj.kind == "gap":
            keep &= ~during
    latency = 200 + prompt * 0.02 * rng.lognormal(0, 0.25, n)
    for inj in spec.injects:
        if inj.kind == "spike":
            during = (minute >= inj.start) & (minute < inj.end)
            if inj.column == "model":
                during &= model == inj.value
            latency = np.where(during, latency * inj.factor, latency)
    frame = pl.DataFrame(
        {
            "ts": pl.Series(offset_us + int(T0.timestamp() * 1e6)).cast(pl.Datetime("us", "UTC")),
            "request_id": [f"r{i}" for i in range(n)],
            "account_id": rng.choice([f"acct-{i:03d}" for i in range(200)], n),
            "model": model,
            "endpoint": "/v1/chat/completions",
            "region": region,
            "upstream": np.char.add("pool-", model),
            "status": status.astype(np.int64),
            "latency_ms": np.where(status == 200, latency, 30.0),
            "prompt_tokens": prompt,
            "completion_tokens": rng.integers(1, 2000, n),
        }
    ).filter(pl.Series(keep))
    # Not sorted, like the frames detect() is given.
    return frame.sample(fraction=1.0, shuffle=True, seed=spec.seed).cast(GATEWAY_COLUMNS)  # type: ignore[arg-type]


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def close(found: datetime, minute: int, tolerance: int) -> bool:
    return abs(found - at(minute)) <= timedelta(minutes=tolerance)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rate", [pytest.param(1.0, id="1rps"), pytest.param(10.0, id="10rps")])
def test_global_burst_found_with_its_boundaries(seed: int, rate: float) -> None:
    d = detect(make(Synth(rate=rate, seed=seed, injects=[Inject("burst", 60, 80)])).lazy(), Settings())
    assert [b.scope for b in d.bursts] == ["global"]
    b = d.bursts[0]
    assert close(b.start, 60, 2) and close(b.end, 80, 5)
    assert b.status_counts["502"] == b.errors
    assert b.accounts_affected > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rate", [pytest.param(1.0, id="1rps"), pytest.param(10.0, id="10rps")])
def test_region_burst_diluted_globally_is_attributed_to_the_region(seed: int, rate: float) -> None:
    spec = Synth(
        seed=seed,
        rate=rate,
        injects=[Inject("burst", 90, 110, column="region", value="eu-west-1", rate=0.22)],
    )
    d = detect(make(spec).lazy(), Settings())
    assert [b.scope for b in d.bursts] == ["region=eu-west-1"]
    b = d.bursts[0]
    assert close(b.start, 90, 2) and close(b.end, 110, 5)
    models = [c for c in b.top if c.column == "model"]
    assert models and all(abs(c.error_share - c.traffic_share) < 0.15 for c in models)


@pytest.mark.parametrize("seed", [1, 2])
def test_burst_of_the_model_carrying_most_traffic_is_the_model_s(seed: int) -> None:
    spec = Synth(
        seed=seed,
        model_share=(0.75, 0.15, 0.10),
        injects=[Inject("burst", 40, 60, column="model", value="kimi-k2.6")],
    )
    d = detect(make(spec).lazy(), Settings())
    # upstream=pool-kimi-k2.6 mirrors the model exactly: the column listed first in settings names it.
    assert [b.scope for b in d.bursts] == ["model=kimi-k2.6"]
    assert close(d.bursts[0].start, 40, 2) and close(d.bursts[0].end, 60, 5)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rate", [pytest.param(1.0, id="1rps"), pytest.param(10.0, id="10rps")])
def test_quiet_traffic_has_no_burst_and_no_spike(seed: int, rate: float) -> None:
    d = detect(make(Synth(rate=rate, seed=seed)).lazy(), Settings())
    assert d.bursts == () and d.spikes == () and d.gaps == ()


@pytest.mark.parametrize("seed", [1, 2])
def test_latency_spike_found_and_long_prompt_wave_is_not(seed: int) -> None:
    spec = Synth(seed=seed, injects=[Inject("spike", 50, 70), Inject("slow_wave", 120, 140)])
    d = detect(make(spec).lazy(), Settings())
    assert [s.scope for s in d.spikes] == ["global"]
    s = d.spikes[0]
    assert close(s.start, 50, 2) and close(s.end, 70, 5)
    assert 2.5 < s.factor < 5
    assert s.peak_p95_ms > 2 * s.baseline_p95_ms and s.peak_p99_ms >= s.peak_p95_ms


@pytest.mark.parametrize("rate", [pytest.param(1.0, id="1rps"), pytest.param(10.0, id="10rps")])
def test_model_spike_names_the_model_and_a_global_one_stays_global(rate: float) -> None:
    spec = Synth(
        seed=4,
        rate=rate,
        injects=[Inject("spike", 50, 70, column="model", value="glm-5"), Inject("spike", 120, 135)],
    )
    d = detect(make(spec).lazy(), Settings())
    assert [s.scope for s in d.spikes] == ["model=glm-5", "global"]
    assert close(d.spikes[1].start, 120, 2) and close(d.spikes[1].end, 135, 5)
    s = d.spikes[0]
    assert close(s.start, 50, 2) and close(s.end, 70, 5)
    assert 2.5 < s.factor < 5
    assert s.peak_p95_ms > 2 * s.baseline_p95_ms and s.peak_p99_ms >= s.peak_p95_ms


def test_log_gap_is_a_gap_not_a_burst() -> None:
    d = detect(make(Synth(seed=5, injects=[Inject("gap", 100, 115)])).lazy(), Settings())
    assert d.bursts == () and d.spikes == ()
    assert len(d.gaps) == 1
    g = d.gaps[0]
    assert close(g.start, 100, 1) and close(g.end, 115, 1)
    assert 15 * 60 * 10 * 0.5 < g.expected_requests < 15 * 60 * 10 * 1.5


def test_without_prompt_tokens_spikes_are_still_found_and_the_note_says_unnormalized() -> None:
    frame = make(Synth(seed=6, injects=[Inject("spike", 50, 70)])).with_columns(
        pl.lit(None, pl.Int64).alias("prompt_tokens")
    )
    d = detect(frame.lazy(), Settings())
    assert [s.scope for s in d.spikes] == ["global"]
    assert close(d.spikes[0].start, 50, 2) and close(d.spikes[0].end, 70, 5)
    assert "latency: no prompt_tokens, latency not normalized for request size" in sentences(d.notes)


def test_series_counts_every_request_once_per_window() -> None:
    frame = make(Synth(minutes=30, seed=7, injects=[Inject("burst", 10, 15)]))
    d = detect(frame.lazy(), Settings())
    assert d.series.height == 30
    assert d.series["requests"].sum() == frame.height
    assert d.series["errors"].sum() == (frame["status"] == 502).sum()
    assert d.quantile_method == "exact"


def test_approximate_quantiles_find_the_same_spike() -> None:
    frame = make(Synth(seed=8, injects=[Inject("spike", 50, 70)])).lazy()
    exact = detect(frame, Settings())
    approx = detect(frame, Settings(latency=LatencySettings(approximate_quantiles=True)))
    assert approx.quantile_method == "approximate"
    assert [(s.scope, s.start, s.end) for s in approx.spikes] == [
        (s.scope, s.start, s.end) for s in exact.spikes
    ]
    assert approx.spikes[0].peak_p99_ms == pytest.approx(exact.spikes[0].peak_p99_ms, rel=0.05)


def test_same_rows_in_another_order_give_the_same_detection() -> None:
    frame = make(
        Synth(
            minutes=90,
            seed=9,
            injects=[
                Inject("burst", 20, 35, column="region", value="eu-west-1"),
                Inject("spike", 50, 60, column="model", value="qwen-4"),
            ],
        )
    )
    first = detect(frame.lazy(), Settings())
    again = detect(frame.sample(fraction=1.0, shuffle=True, seed=99).lazy(), Settings())
    assert len(first.bursts) == 1 and len(first.spikes) == 1
    assert (first.bursts, first.spikes, first.alerts, first.gaps) == (
        again.bursts,
        again.spikes,
        again.alerts,
        again.gaps,
    )
    assert_frame_equal(first.series, again.series)
