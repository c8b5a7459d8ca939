"""The report in a terminal: summary, sparklines of error rate and p95, timeline and top tables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.report.model import Report

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None]) -> str:
    """Unicode blocks scaled from the lowest to the highest value."""
    vals = [v or 0.0 for v in values]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(BLOCKS[min(7, int((v - lo) / span * 7.999))] for v in vals)


def render_terminal(report: Report, console: Console) -> None:
    """Print the report with Rich; strings from the logs are never parsed as markup."""
    s = report.summary
    console.print(Text("Incident summary", style="bold"))
    console.print(Text(str(s["what_moved_first"])))
    console.print(
        Text(
            f"requests {s['requests']:,}  failed {s['failed_requests']:,}  tokens owed {s['refund_tokens_total']:,}"
        )
    )
    console.print(
        Text("5xx rate  " + sparkline(report.series["error_rate"].to_list() if report.series.height else []))
    )
    console.print(
        Text("p95 ms    " + sparkline(report.series["p95_ms"].to_list() if report.series.height else []))
    )
    table = Table(title="Timeline (UTC)")
    for col in ("Time", "Kind", "What", "Detail"):
        table.add_column(col)
    for r in report.timeline.iter_rows(named=True):
        table.add_row(
            Text(f"{r['ts']:%Y-%m-%d %H:%M:%S}"), Text(r["kind"]), Text(r["title"]), Text(r["detail"])
        )
    console.print(table)
    top = Table(title="Top refunds")
    top.add_column("Account")
    top.add_column("Refund tokens", justify="right")
    for a in s["top_accounts"]:  # type: ignore[attr-defined]
        top.add_row(Text(str(a["account_id"])), Text(f"{a['refund_tokens']:,}"))
    console.print(top)
