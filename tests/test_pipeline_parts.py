"""`bursts`, `latency` and `reconcile` compute only what they show (pipeline.Part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.pipeline import Part, ReportRequest, run_report

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"


@pytest.mark.parametrize(
    ("part", "bursts", "spikes", "ledger"),
    [
        pytest.param(Part.BURSTS, True, False, False, id="bursts"),
        pytest.param(Part.SPIKES, False, True, False, id="spikes"),
        pytest.param(Part.LEDGER, False, False, True, id="ledger"),
    ],
)
def test_each_part_alone(part: Part, bursts: bool, spikes: bool, ledger: bool) -> None:
    # The sample has bursts, spikes and a ledger with refunds: each part finds its own and no other's.
    analysis = run_report(ReportRequest(directory=SAMPLE), parts=frozenset({part}))
    assert bool(analysis.report.bursts) is bursts
    assert bool(analysis.report.spikes) is spikes
    assert (analysis.reconciliation is not None) is ledger
    if ledger:
        assert analysis.reconciliation is not None and analysis.reconciliation.refund_tokens_total > 0
