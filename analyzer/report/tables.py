"""Rich tables for the single-purpose commands: burn-rate alerts, ledger findings, refunds, inputs, fields.

(The bursts and latency-spike tables are the report's own, in terminal.py.) Every string that came from
the logs goes through `escape(..., "terminal")` into a `Text`: never read as markup, no control characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from rich.table import Table
from rich.text import Text

from analyzer.findings import REFUND_TOKENS, TOKENS_DEDUCTED, BurnRateAlert, InputReport, Reconciliation
from analyzer.report.escape import escape
from analyzer.schema import ACCOUNT_ID


def _t(ts: datetime | None) -> Text:
    return Text("-" if ts is None else f"{ts:%Y-%m-%d %H:%M}")


def _log(value: object) -> Text:
    """A string from the logs or the file system, safe for the terminal."""
    return Text(escape(value, "terminal"))


def alerts_table(alerts: Sequence[BurnRateAlert]) -> Table:
    """Each burn-rate alert of the replay: when it would have fired and resolved, or why it could not."""
    table = Table(title="SLO burn-rate alerts (replayed)", title_justify="left")
    for col in ("Alert", "Severity", "Windows", "Burn rate", "Fired (UTC)", "Resolved"):
        table.add_column(col)
    for a in alerts:
        windows = f"{a.long_window / timedelta(hours=1):g} h / {a.short_window / timedelta(minutes=1):g} min"
        if not a.evaluable:
            table.add_row(Text(a.name), Text(a.severity), Text(windows), Text(f"{a.burn_rate:g}×"),
                          Text("longer than the data"), Text("-"))  # fmt: skip
        elif not a.firings:
            table.add_row(Text(a.name), Text(a.severity), Text(windows), Text(f"{a.burn_rate:g}×"),
                          Text("never"), Text("-"))  # fmt: skip
        for f in a.firings:
            resolved = _t(f.resolved_at) if f.resolved_at is not None else Text("still firing")
            table.add_row(Text(a.name), Text(a.severity), Text(windows), Text(f"{a.burn_rate:g}×"),
                          _t(f.fired_at), resolved)  # fmt: skip
    return table


def ledger_table(rec: Reconciliation) -> Table:
    """Per finding kind: entries, tokens deducted and tokens to refund, with the ledger's totals."""
    table = Table(
        title=(
            f"Ledger: {rec.deductions:,} deductions, {rec.tokens_deducted:,} tokens deducted, "
            f"{rec.tokens_expected:,} expected"
        ),
        title_justify="left",
    )
    for col in ("Finding", "Entries", "Tokens", "Refund tokens"):
        table.add_column(col, justify="left" if col == "Finding" else "right")
    for kind, total in rec.by_kind.items():
        if kind == "ok" or total.count == 0:
            continue
        table.add_row(Text(kind), Text(f"{total.count:,}"), Text(f"{total.tokens:,}"),
                      Text(f"{total.refund_tokens:,}"))  # fmt: skip
    refund = f"{rec.refund_tokens_total:,}" + ("" if rec.refund_usd is None else f" (${rec.refund_usd})")
    table.add_row(Text("total owed", style="bold"), Text(""), Text(""), Text(refund, style="bold"))
    return table


def refunds_table(rec: Reconciliation, top: int) -> Table:
    """The `top` accounts owed the most, with what they were charged and already refunded."""
    owed = rec.accounts.filter(rec.accounts[REFUND_TOKENS] > 0)
    table = Table(title=f"Accounts owed a refund: {owed.height:,} (top {min(top, owed.height)})",
                  title_justify="left")  # fmt: skip
    for col in ("Account", "Deductions", "Tokens deducted", "Refund tokens", "Already refunded"):
        table.add_column(col, justify="left" if col == "Account" else "right")
    has_refunded = "already_refunded" in owed.columns
    for r in owed.head(top).iter_rows(named=True):
        table.add_row(
            _log(r[ACCOUNT_ID]), Text(f"{r['deductions']:,}"), Text(f"{r[TOKENS_DEDUCTED]:,}"),
            Text(f"{r[REFUND_TOKENS]:,}"),
            Text(f"{r['already_refunded']:,}" if has_refunded and r["already_refunded"] is not None else "0"),
        )  # fmt: skip
    return table


def inputs_table(inputs: Sequence[InputReport], title: str = "Inputs") -> Table:
    """Per input file: format, compression, rows read and rejected, rejects by reason, time range."""
    table = Table(title=title, title_justify="left")
    for col in ("Path", "Format", "Compression", "Rows", "Rejected", "Rejects by reason", "First", "Last"):
        table.add_column(col, justify="right" if col in ("Rows", "Rejected") else "left", overflow="fold")
    for i in inputs:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(i.rejects_by_reason.items())) or "-"
        table.add_row(
            _log(i.path), Text(i.format + (f" (preset {i.preset})" if i.preset else "")),
            Text(i.compression), Text(f"{i.rows_read:,}"),
            Text(f"{i.rows_rejected:,}"), _log(reasons), _t(i.first_ts), _t(i.last_ts),
        )  # fmt: skip
    return table


def fields_table(fields: dict[str, str | None]) -> Table:
    """Where each canonical column came from in the source, or that it is absent."""
    table = Table(title="Canonical column ← source field", title_justify="left")
    table.add_column("Column")
    table.add_column("Source field")
    for column, source in fields.items():
        table.add_row(Text(column), _log(source or "(absent: null)"))
    return table
