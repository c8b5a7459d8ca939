"""Every gate that opens or keeps open a 5xx burst or a latency spike, pinned on a literal frame.

Each case scores one window whose numbers were worked out by hand, with settings that put exactly one
threshold just on either side of the window's value: the window must open (or stay) on one side and not
on the other. Removing that gate, or moving its threshold, flips one of the two; `tests/mutants.py`
checks that it does.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer.config import BurstSettings, LatencySettings, Settings
from analyzer.detect import bursts, latency
from analyzer.detect.islands import OPEN, STAY
from analyzer.detect.windows import COLUMN, ERRORS, GLOBAL_COLUMN, REQUESTS, SCOPE, VALUE, WINDOW, aggregate
from analyzer.schema import GATEWAY_COLUMNS

T0 = datetime(2026, 4, 22, 9, 0, tzinfo=UTC)
TEST = 10  # the window under test


def _counts(
    test: tuple[int, int], *, others: tuple[int, int] = (1000, 10), windows: int = 20
) -> pl.DataFrame:
    """Global per-minute counts: `windows` windows of `others` (requests, errors), window TEST of `test`."""
    n = [test[0] if i == TEST else others[0] for i in range(windows)]
    e = [test[1] if i == TEST else others[1] for i in range(windows)]
    return pl.DataFrame(
        {
            WINDOW: [T0 + timedelta(minutes=i) for i in range(windows)],
            COLUMN: [GLOBAL_COLUMN] * windows,
            VALUE: [""] * windows,
            SCOPE: [GLOBAL_COLUMN] * windows,
            REQUESTS: n,
            ERRORS: e,
        }
    )


def _burst_flags(counts: pl.DataFrame, b: BurstSettings, window: int = TEST) -> tuple[bool, bool]:
    row = bursts.score(counts, b).filter(pl.col(WINDOW) == T0 + timedelta(minutes=window))
    return bool(row[OPEN][0]), bool(row[STAY][0])


# The window under test: 60 errors of 1,000 against a baseline of 10 in 1,000 in the other windows
# (the window is not clean, so it is left out of its own baseline: 190 / 19,000 = 0.01 exactly).
# rate 0.06; expected 10, sd sqrt(10 × 0.99) = 3.146; z = 50 / 3.146 = 15.89.
_Z60 = 50 / math.sqrt(10 * 0.99)


@pytest.mark.parametrize(
    ("passes", "fails"),
    [
        pytest.param({"min_errors": 60}, {"min_errors": 61}, id="min_errors"),
        pytest.param({"rate_floor": 0.06}, {"rate_floor": 0.0601}, id="rate_floor"),
        pytest.param({"baseline_multiple": 5.9}, {"baseline_multiple": 6.1}, id="baseline_multiple"),
        pytest.param({"z_open": _Z60 - 0.01}, {"z_open": _Z60 + 0.01}, id="z_open"),
    ],
)
def test_each_gate_of_a_burst_opening(passes: dict[str, float], fails: dict[str, float]) -> None:
    counts = _counts((1000, 60))
    assert _burst_flags(counts, replace(BurstSettings(), **passes))[0] is True  # type: ignore[arg-type]
    assert _burst_flags(counts, replace(BurstSettings(), **fails))[0] is False  # type: ignore[arg-type]


# 30 errors of 1,000: rate 0.03 (under 4 × the baseline, so it never opens). Whether it stays is decided
# on the first estimate, where it is still in its own baseline: 220 / 20,000 = 0.011, expected 11,
# z = 19 / sqrt(11 × 0.989) = 5.76. Above that z_stay it is clean and stays in the baseline; below,
# it is left out, and the baseline of 0.01 gives it z = 6.36.
_Z30 = 19 / math.sqrt(11 * 0.989)


@pytest.mark.parametrize(
    ("passes", "fails"),
    [
        pytest.param({"z_stay": _Z30 - 0.01}, {"z_stay": _Z30 + 0.01}, id="z_stay"),
        pytest.param({"rate_floor": 0.0299}, {"rate_floor": 0.0301}, id="rate_floor"),
    ],
)
def test_each_gate_of_a_burst_staying_open(passes: dict[str, float], fails: dict[str, float]) -> None:
    counts = _counts((1000, 30))
    assert _burst_flags(counts, replace(BurstSettings(), **passes)) == (False, True)  # type: ignore[arg-type]
    assert _burst_flags(counts, replace(BurstSettings(), **fails)) == (False, False)  # type: ignore[arg-type]


def _slice(per_window: int, errors: int) -> pl.DataFrame:
    """A thin slice (model=m) of `per_window` requests a minute; the test window has `errors` of them."""
    windows = 20
    return pl.DataFrame(
        {
            WINDOW: [T0 + timedelta(minutes=i) for i in range(windows)],
            COLUMN: ["model"] * windows,
            VALUE: ["m"] * windows,
            SCOPE: ["model=m"] * windows,
            REQUESTS: [per_window] * windows,
            ERRORS: [errors if i == TEST else 0 for i in range(windows)],
        }
    )


def test_a_slice_too_thin_even_over_five_windows_is_not_scored() -> None:
    # Windows 8-12 fail every request. At 4 requests a minute, 5 windows hold 20 = min_slice_requests:
    # the window is scored on their sums, 20 errors of 20 against a baseline of 0 (sd floored at 1),
    # z = 20: it opens. At 3 a minute they hold 15 < 20: not scored, so neither open nor kept open,
    # and not part of the baseline (scored, it would open: 15 errors of 15, z = 14.25).
    def thin(per_window: int) -> pl.DataFrame:
        errors = [per_window if 8 <= i <= 12 else 0 for i in range(20)]
        return _slice(per_window, 0).with_columns(pl.Series(ERRORS, errors))

    assert _burst_flags(thin(4), BurstSettings()) == (True, True)
    assert _burst_flags(thin(3), BurstSettings()) == (False, False)


def test_a_window_exactly_at_each_threshold_passes_it() -> None:
    # Thresholds are inclusive: rate 60 / 1,000 = 0.06 against 6 × 0.01 (both exact in binary), 60 errors
    # against min_errors 60, and z exactly at z_open (read back from the scores).
    counts = _counts((1000, 60))
    scored = bursts.score(counts, BurstSettings()).filter(pl.col(WINDOW) == T0 + timedelta(minutes=TEST))
    z = float(scored["z"][0])
    for at in ({"baseline_multiple": 6.0}, {"min_errors": 60}, {"z_open": z}, {"rate_floor": 0.06}):
        assert _burst_flags(counts, replace(BurstSettings(), **at))[0] is True, at  # type: ignore[arg-type]
    # Staying open too: 30 errors, rate 0.03 exactly at the floor; z at z_stay.
    counts = _counts((1000, 30))
    assert _burst_flags(counts, replace(BurstSettings(), rate_floor=0.03)) == (False, True)


def test_a_window_exactly_at_z_stay_is_left_out_of_the_baseline() -> None:
    # 30 errors of 1,000: in its own baseline (0.011) its z is 5.76, out of it (0.01) 6.36. With z_stay
    # exactly 5.76 it is left out, so it is judged against 0.01 and opens at z_open 6 (baseline_multiple
    # 2: 0.03 >= 0.02). Kept in the baseline, its z would stay 5.76 and it would not open.
    counts = _counts((1000, 30))
    never = replace(BurstSettings(), z_stay=math.inf)
    z_self = float(bursts.score(counts, never).filter(pl.col(WINDOW) == T0 + timedelta(minutes=TEST))["z"][0])
    assert z_self == pytest.approx(_Z30)
    at = replace(BurstSettings(), z_stay=z_self, z_open=6.0, baseline_multiple=2.0)
    assert _burst_flags(counts, at) == (True, True)


def test_thin_windows_do_not_raise_the_baseline() -> None:
    # Windows 0-19 of a slice are thin (2 requests a minute, one failing in every other one), each too
    # calm to stand out (z < 3 over its 5-window sums); windows 20-59 carry 100 a minute at 1%, and 10%
    # in window 50. Thin windows 0-17 are not scored (their 5-window sums hold at most 10 requests);
    # 18 and 19 are, on sums that reach into window 20. The baseline is of the scored windows only,
    # window 50 left out: (0 + 1 + 39) / (2 + 2 + 3,900) = 40 / 3,904. Counting every thin window it
    # would be (10 + 39) / (40 + 3,900) = 49 / 3,940.
    windows = 60
    requests = [2 if i < 20 else 100 for i in range(windows)]
    errors = [i % 2 if i < 20 else (10 if i == 50 else 1) for i in range(windows)]
    counts = pl.DataFrame(
        {
            WINDOW: [T0 + timedelta(minutes=i) for i in range(windows)],
            COLUMN: ["model"] * windows,
            VALUE: ["m"] * windows,
            SCOPE: ["model=m"] * windows,
            REQUESTS: requests,
            ERRORS: errors,
        }
    )
    scored = bursts.score(counts, BurstSettings())
    assert scored["baseline"].unique().to_list() == [pytest.approx(40 / 3904)]
    assert _burst_flags(counts, BurstSettings(), window=50) == (True, True)


def test_the_global_scope_is_scored_however_thin() -> None:
    # The gate of slices does not apply to the global scope: 3 requests a minute are scored, on their
    # own window. First estimate 3 / 60 = 0.05, z = (3 - 0.15) / 1 = 2.85 >= 2: left out; then the
    # baseline is 0 and z = 3.
    counts = _counts((3, 3), others=(3, 0))
    loose = replace(BurstSettings(), min_errors=3, z_open=2.0, z_stay=2.0)
    assert _burst_flags(counts, loose) == (True, True)


def test_a_window_exactly_at_z_stay_stays_open() -> None:
    # The other windows fail at 10%: the baseline is capped at 0.05 with or without the test window,
    # so its z is the same in every round: (120 - 50) / sqrt(50 × 0.95) = 10.16. Exactly at z_stay it
    # stays open (and with z_open above it, does not open).
    counts = _counts((1000, 120), others=(1000, 100))
    z = float(
        bursts.score(counts, BurstSettings()).filter(pl.col(WINDOW) == T0 + timedelta(minutes=TEST))["z"][0]
    )
    assert z == pytest.approx(70 / math.sqrt(50 * 0.95))
    assert _burst_flags(counts, replace(BurstSettings(), z_stay=z, z_open=z + 1)) == (False, True)


@pytest.mark.parametrize(
    ("rate_floor", "baseline"),
    [
        # 0.15% in a window of 100,000 against 0.1% elsewhere: z = 50 / sqrt(99.9) = 5.0 >= z_stay, but
        # under the floor: a window that does not fail enough to matter stays in the baseline.
        pytest.param(0.02, 2050 / 2_000_000, id="under-the-floor-stays-in"),
        # Exactly at the floor (0.0015 = 150 / 100,000 exactly) it stands out: left out of the baseline.
        pytest.param(0.0015, 1900 / 1_900_000, id="at-the-floor-is-left-out"),
    ],
)
def test_a_window_under_the_rate_floor_stays_in_the_baseline(rate_floor: float, baseline: float) -> None:
    counts = _counts((100_000, 150), others=(100_000, 100))
    scored = bursts.score(counts, replace(BurstSettings(), rate_floor=rate_floor))
    assert scored["baseline"].unique().to_list() == [pytest.approx(baseline, rel=1e-12)]


def test_the_baseline_is_estimated_again_without_the_burst() -> None:
    # Five windows at 20% and one at 10% among 20 at 1%. With every window in the first estimate the
    # baseline is (200 + 5 × 200 + 100) / 26,000 = 0.05 (the cap), and 10% is not 4× that. Estimated
    # again without the windows that stood out, it is 0.01, and the 10% window opens.
    windows = 26
    errors = [200 if 12 <= i < 17 else 100 if i == 20 else 10 for i in range(windows)]
    counts = _counts((1000, 10), windows=windows).with_columns(pl.Series(ERRORS, errors))
    assert _burst_flags(counts, BurstSettings(), window=20) == (True, True)


# --- latency ------------------------------------------------------------------------------------


def _latency_rows(slow: dict[int, float], windows: int = 24, per_window: int = 30) -> pl.DataFrame:
    """`per_window` 2xx requests a minute at 1,000 ms × (1 ± a small fixed jitter), the minutes in
    `slow` at that many times as slow; one model, one size."""
    jitter = [1.0 + 0.02 * ((i % 5) - 2) for i in range(per_window)]  # 0.96 .. 1.04
    rows = [
        {
            "ts": T0 + timedelta(minutes=m, seconds=i),
            "request_id": f"r{m}-{i}",
            "account_id": "a",
            "model": "m",
            "endpoint": "/v1/chat/completions",
            "region": "r",
            "upstream": "u",
            "status": 200,
            "latency_ms": 1000.0 * jitter[i] * slow.get(m, 1.0),
            "prompt_tokens": 1000,
            "completion_tokens": 100,
        }
        for m in range(windows)
        for i in range(per_window)
    ]
    return pl.DataFrame(rows, schema=GATEWAY_COLUMNS)


def _latency_scored(rows: pl.DataFrame, lat: LatencySettings) -> pl.DataFrame:
    settings = replace(Settings(), latency=lat, bursts=replace(BurstSettings(), slices=()))
    table = aggregate(rows.lazy(), settings).table
    return latency.score(table, settings).filter(pl.col(SCOPE) == GLOBAL_COLUMN)


def _latency_flags(rows: pl.DataFrame, lat: LatencySettings, window: int = TEST) -> tuple[bool, bool]:
    row = _latency_scored(rows, lat).filter(pl.col(WINDOW) == T0 + timedelta(minutes=window))
    return bool(row[OPEN][0]), bool(row[STAY][0])


# Settings under which no window is ever flagged: each is judged against a fit that includes it.
_DEFAULT = LatencySettings()
_NEVER = replace(_DEFAULT, factor_stay=math.inf)


def _measured(rows: pl.DataFrame, lat: LatencySettings = _DEFAULT) -> tuple[float, float]:
    """The test window's ratio and z as score computes them (the thresholds below bracket them)."""
    row = _latency_scored(rows, lat).filter(pl.col(WINDOW) == T0 + timedelta(minutes=TEST))
    return float(row["ratio"][0]), float(row["z"][0])


def test_the_slowdown_is_the_ratio_to_the_other_windows() -> None:
    # Every request of the test window is 3× as slow as its twin in the other windows: ratio 3.
    ratio, z = _measured(_latency_rows({TEST: 3.0}))
    assert ratio == pytest.approx(3.0, rel=1e-6)
    assert z > 50


@pytest.mark.parametrize(
    ("setting", "measure", "open_side"),
    [
        pytest.param("factor", "ratio", True, id="factor"),
        pytest.param("z_open", "z", True, id="z_open"),
        pytest.param("factor_stay", "ratio", False, id="factor_stay"),
        pytest.param("z_stay", "z", False, id="z_stay"),
    ],
)
def test_each_gate_of_a_latency_spike(setting: str, measure: str, open_side: bool) -> None:
    rows = _latency_rows({TEST: 3.0})
    # Whether a window opens is judged once it is out of the fit; whether it stays, on the first fit,
    # which still includes it (as for bursts).
    ratio, z = _measured(rows, _DEFAULT if open_side else _NEVER)
    value = ratio if measure == "ratio" else z
    below, above = (
        replace(LatencySettings(), **{setting: value * 0.99}),
        replace(LatencySettings(), **{setting: value * 1.01}),
    )
    assert _latency_flags(rows, below) == (True, True)
    # Past an opening threshold the window still stays open; past a staying one it does neither.
    assert _latency_flags(rows, above) == ((False, True) if open_side else (False, False))


@pytest.mark.parametrize("setting", ["factor", "z_open", "factor_stay", "z_stay"])
def test_a_latency_window_exactly_at_each_threshold_passes_it(setting: str) -> None:
    # Thresholds are inclusive. The opening ones are judged on the window out of the fit (as scored
    # with the defaults); the staying ones on the first fit, which still includes it.
    rows = _latency_rows({TEST: 3.0})
    opening = setting in ("factor", "z_open")
    ratio, z = _measured(rows, _DEFAULT if opening else _NEVER)
    value = ratio if setting.startswith("factor") else z
    assert _latency_flags(rows, replace(_DEFAULT, **{setting: value})) == (True, True)


def test_a_latency_window_with_too_few_requests_is_not_scored() -> None:
    rows = _latency_rows({TEST: 3.0}, per_window=25)
    assert _latency_flags(rows, replace(LatencySettings(), min_requests=25)) == (True, True)
    # 26 needed: a window of 25 is summed with its neighbours (3 × 25 >= 26), which are not slow.
    assert _latency_flags(rows, replace(LatencySettings(), min_requests=76))[0] is False


def test_a_latency_window_too_thin_even_over_five_windows_is_not_scored() -> None:
    # Minutes 8-12 are all 3× as slow, 25 requests each: with min_requests 125 the 5-window sums hold
    # 125 and minute 10 is scored (ratio 3: it stays and opens); with 126 it is not scored at all.
    rows = _latency_rows({m: 3.0 for m in range(8, 13)}, per_window=25)
    assert _latency_flags(rows, replace(LatencySettings(), min_requests=125)) == (True, True)
    assert _latency_flags(rows, replace(LatencySettings(), min_requests=126)) == (False, False)


def test_the_latency_baseline_is_fitted_again_without_the_spike() -> None:
    # Six minutes 8× as slow and one 2.5× among 24: fitted on every window, the expected latency is
    # exp((6 ln 8 + ln 2.5) / 24) = 1.75× the normal one, so the 2.5× minute is a 1.4× slowdown (under
    # factor 2). Fitted again without the windows that stood out, it is 2.5× and opens.
    rows = _latency_rows({**{m: 8.0 for m in range(2, 8)}, 18: 2.5})
    assert _latency_flags(rows, LatencySettings(), window=18) == (True, True)
