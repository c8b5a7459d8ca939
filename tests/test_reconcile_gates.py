"""Every gate of a deduction's kind and refund (reconcile/classify.joined), pinned at its boundary.

The gateway logs span minute 0 to minute 120 (two edge requests); a deduction whose request is not
in them is `out_of_span` strictly within `edge_margin` (5 min) of either end, `orphan` from the
margin on. Each case is a single deduction with its kind and refund worked out by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analyzer.config import ReconcileSettings, Settings
from analyzer.findings import Finding
from analyzer.reconcile import reconcile
from analyzer.reconcile.classify import REFUND, WIPED
from analyzer.schema import GATEWAY_COLUMNS, KIND, LEDGER

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
END = T0 + timedelta(minutes=120)
MARGIN = ReconcileSettings().edge_margin
US = timedelta(microseconds=1)


def _gateway(rows: list[tuple[datetime, str, int, int | None, int | None]]) -> pl.LazyFrame:
    """Rows of (ts, request_id, status, prompt, completion) for account a, model m, between two edges."""
    rows = [(T0, "edge0", 200, 0, 0), *rows, (END, "edge1", 200, 0, 0)]
    return (
        pl.DataFrame(
            {
                "ts": [r[0] for r in rows],
                "request_id": [r[1] for r in rows],
                "account_id": ["a"] * len(rows),
                "model": ["m"] * len(rows),
                "status": [r[2] for r in rows],
                "latency_ms": [1.0] * len(rows),
                "prompt_tokens": [r[3] for r in rows],
                "completion_tokens": [r[4] for r in rows],
            },
            schema={k: v for k, v in GATEWAY_COLUMNS.items() if k not in ("endpoint", "region", "upstream")},
        )
        .with_columns(pl.lit(None, pl.String).alias(c) for c in ("endpoint", "region", "upstream"))
        .lazy()
    )


def _ledger(rows: list[tuple[datetime, str | None, int, int | None]]) -> pl.LazyFrame:
    """Deductions of (ts, request_id, tokens, balance_after) for account a."""
    return pl.DataFrame(
        {
            "ts": [r[0] for r in rows],
            "entry_id": [f"e{i}" for i in range(len(rows))],
            "account_id": ["a"] * len(rows),
            "request_id": [r[1] for r in rows],
            "kind": ["deduct"] * len(rows),
            "tokens": [r[2] for r in rows],
            "balance_after": [r[3] for r in rows],
        },
        schema=LEDGER,
    ).lazy()


def _judged(
    gateway: pl.LazyFrame, ledger: pl.LazyFrame, settings: Settings | None = None
) -> list[tuple[str, int, bool]]:
    """(kind, refund, balance wiped) of each deduction, in ledger order."""
    r = reconcile(gateway, ledger, settings or Settings())
    assert all(i.holds for i in r.invariants), r.invariants
    rows = r.findings.filter(pl.col("entry_id").is_not_null()).sort("entry_id")
    flagged = {e: (k, f, w) for e, k, f, w in rows.select("entry_id", KIND, REFUND, WIPED).iter_rows()}
    n = ledger.select(pl.len()).collect().item()
    return [flagged.get(f"e{i}", (Finding.OK, 0, False)) for i in range(n)]


@pytest.mark.parametrize(
    ("at", "kind"),
    [
        pytest.param(T0 + MARGIN - US, Finding.OUT_OF_SPAN, id="just-inside-the-start-margin"),
        pytest.param(T0 + MARGIN, Finding.ORPHAN, id="at-the-start-margin"),
        pytest.param(END - MARGIN + US, Finding.OUT_OF_SPAN, id="just-inside-the-end-margin"),
        pytest.param(END - MARGIN, Finding.ORPHAN, id="at-the-end-margin"),
        pytest.param(T0 + timedelta(minutes=60), Finding.ORPHAN, id="in-the-middle"),
    ],
)
def test_a_missing_request_near_an_edge_is_out_of_span(at: datetime, kind: Finding) -> None:
    assert _judged(_gateway([]), _ledger([(at, "gone", 5, 95)])) == [(kind, 0, False)]


def test_a_request_found_near_an_edge_is_judged_on_its_amount() -> None:
    # Inside the edge margin, but logged: not out_of_span, an overcharge like anywhere else.
    at = T0 + MARGIN - US
    assert _judged(_gateway([(at, "r1", 200, 10, 5)]), _ledger([(at, "r1", 20, 80)])) == [
        (Finding.OVERCHARGE, 5, False)
    ]


@pytest.mark.parametrize(
    ("refund_orphans", "refund"),
    [pytest.param(False, 0, id="kept"), pytest.param(True, 5, id="refunded")],
)
def test_orphans_are_refunded_only_when_set(refund_orphans: bool, refund: int) -> None:
    settings = Settings(reconcile=ReconcileSettings(refund_orphans=refund_orphans))
    mid = T0 + timedelta(minutes=60)
    assert _judged(_gateway([]), _ledger([(mid, "gone", 5, 95)]), settings) == [
        (Finding.ORPHAN, refund, False)
    ]
    # A deduction with no request_id at all is an orphan too, whatever its time.
    near = T0 + timedelta(minutes=1)
    assert _judged(_gateway([]), _ledger([(near, None, 5, 95)]), settings) == [
        (Finding.ORPHAN, refund, False)
    ]


def test_the_order_of_the_gates() -> None:
    # One request, charged four times: the first charge is judged on its amount, every later one is a
    # duplicate refunded whole, before anything else is looked at.
    at = T0 + timedelta(minutes=30)
    gw = _gateway([(at, "r1", 200, 10, 5)])
    lg = _ledger([(at, "r1", 45, 55), (at + US, "r1", 15, 40), (at + 2 * US, "r1", 15, 25)])
    assert _judged(gw, lg) == [
        (Finding.OVERCHARGE, 30, False),
        (Finding.DUPLICATE, 15, False),
        (Finding.DUPLICATE, 15, False),
    ]


@pytest.mark.parametrize(
    ("status", "statuses", "expected"),
    [
        pytest.param(502, (), (Finding.FAILED_CHARGED, 7, False), id="any-failure-refunded"),
        pytest.param(502, (502,), (Finding.FAILED_CHARGED, 7, False), id="listed-status-refunded"),
        pytest.param(502, (503,), (Finding.FAILED_CHARGED, 0, False), id="unlisted-status-kept"),
        pytest.param(200, (503,), (Finding.OK, 0, False), id="a-2xx-is-not-a-failure"),
    ],
)
def test_a_charge_on_a_failed_request(
    status: int, statuses: tuple[int, ...], expected: tuple[str, int, bool]
) -> None:
    at = T0 + timedelta(minutes=30)
    prompt, completion = (None, None) if status != 200 else (4, 3)
    gw = _gateway([(at, "r1", status, prompt, completion)])
    settings = Settings(reconcile=ReconcileSettings(refundable_statuses=statuses))
    assert _judged(gw, _ledger([(at, "r1", 7, 93)]), settings) == [expected]


@pytest.mark.parametrize(
    ("amount", "after", "expected"),
    [
        pytest.param(40, 0, (Finding.OVERCHARGE, 25, True), id="overcharge-to-zero-wipes"),
        pytest.param(40, 1, (Finding.OVERCHARGE, 25, False), id="overcharge-leaving-one"),
        pytest.param(15, 0, (Finding.OK, 0, False), id="a-right-charge-to-zero-is-no-wipe"),
        pytest.param(14, 0, (Finding.UNDERCHARGE, 0, False), id="undercharges-are-not-refunded"),
        # Charging nothing is fine for a failed request (failed_free), not for a served one.
        pytest.param(0, 0, (Finding.UNDERCHARGE, 0, False), id="a-served-request-charged-nothing"),
    ],
)
def test_refunds_and_wiped_balances(amount: int, after: int, expected: tuple[str, int, bool]) -> None:
    # Expected charge 10 + 5 = 15: an overcharge refunds the excess, and is a wipe when it leaves 0.
    at = T0 + timedelta(minutes=30)
    gw = _gateway([(at, "r1", 200, 10, 5)])
    assert _judged(gw, _ledger([(at, "r1", amount, after)])) == [expected]
