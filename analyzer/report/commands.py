"""What `analyzer bursts`, `latency`, `reconcile` and `inspect` print in the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from analyzer.findings import InputReport
from analyzer.notes import Note
from analyzer.report.escape import escape
from analyzer.report.formatting import Clock, report_day
from analyzer.report.model import Report
from analyzer.report.notes import sentences
from analyzer.report.tables import alerts_table, fields_table, inputs_table, ledger_table, refunds_table
from analyzer.report.terminal import bursts_table, spikes_table


def render_bursts(report: Report, console: Console) -> None:
    """The 5xx bursts, the burn-rate alerts and the log gaps."""
    console.print(bursts_table(report, Clock(report_day(report))))
    console.print(alerts_table(report.alerts))
    for g in report.gaps:
        console.print(
            f"log gap: {g.start:%Y-%m-%d %H:%M} to {g.end:%H:%M} UTC, no lines where "
            f"~{g.expected_requests:,.0f} were expected",
            markup=False,
        )


def render_latency(report: Report, console: Console) -> None:
    """The latency spikes and how their quantiles were computed."""
    console.print(spikes_table(report, Clock(report_day(report))))
    console.print(f"quantiles: {report.quantile_method}", markup=False)


def render_reconcile(report: Report, console: Console, top: int) -> None:
    """The ledger's findings by kind, the `top` accounts owed most, the fault patterns, broken invariants."""
    rec = report.reconciliation
    if rec is None:
        return
    console.print(ledger_table(rec))
    console.print(refunds_table(rec, top))
    for p in rec.patterns:
        console.print(escape(f"pattern: {p.description}", "terminal"), markup=False)
    for i in rec.invariants:
        if not i.holds:
            console.print(escape(f"invariant broken: {i.name}: {i.detail}", "terminal"), markup=False)


def render_inspect(kind: str, inputs: Sequence[InputReport], notes: Sequence[Note], console: Console) -> None:
    """Each input of one kind: format, rows, rejects; the field mapping of the first; the loader's notes."""
    console.print(inputs_table(inputs, title=f"{kind} inputs"))
    console.print(fields_table(inputs[0].fields if inputs else {}))
    for note in sentences(notes):
        console.print(f"note: {note}", markup=False)
