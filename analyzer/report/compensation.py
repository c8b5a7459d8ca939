"""The Compensation section: did the quota reset make every account whole, and the SLA credits.

One sentence says the reset's coverage; a table lists the accounts still owed or credited (the top
ones; the `--compensation` file has all). The JSON key `compensation` is built here too.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from analyzer.reconcile import remedy as rm
from analyzer.reconcile import sla as sl
from analyzer.reconcile.compensation import JSON_COLUMNS, Compensation
from analyzer.reconcile.remedy import Remedy
from analyzer.reconcile.sla import SlaCredits
from analyzer.report.escape import escape
from analyzer.report.formatting import DASH, Clock, count, table
from analyzer.report.model import Report

_HEAD = (
    "Account",
    "Owed before reset",
    "Restored",
    "Owed after reset",
    "Not covered",
    "Availability",
    "Credit",
)


def compensation_json(comp: Compensation | None) -> dict[str, Any] | None:
    """The `compensation` key of the JSON report (a contract: exactly these keys)."""
    if comp is None:
        return None
    r = comp.remedy
    return {
        "resets": [
            {
                "start": e.start,
                "end": e.end,
                "accounts": e.accounts,
                "restored_tokens": e.restored_tokens,
                "owed_tokens": e.owed_tokens,
                "restored_beyond_owed": e.restored_beyond_owed,
            }
            for e in (r.events if r is not None else ())
        ],
        "accounts_made_whole": 0 if r is None else r.accounts_made_whole,
        "accounts_not_made_whole": 0 if r is None else r.accounts_not_made_whole,
        "tokens_owed_after_reset": 0 if r is None else r.tokens_owed_after_reset,
        "tokens_restored_beyond_owed": 0 if r is None else r.tokens_restored_beyond_owed,
        "accounts": comp.accounts.select(list(JSON_COLUMNS)).to_dicts(),
        "sla": _sla_json(comp.sla),
    }


def _sla_json(c: SlaCredits | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "target": str(c.settings.target),
        "credits": [{"below": str(below), "percent": pct} for below, pct in c.settings.credits],
        "window": c.settings.window.value,
        "start": c.start,
        "end": c.end,
        "accounts": c.accounts.height,
        "accounts_credited": int((c.accounts[sl.CREDIT_PERCENT] > 0).sum()),
        "counts_wrong_429": c.counts_wrong_429,
        "credit_tokens_total": c.credit_tokens_total,
        "credit_usd_micros_total": c.credit_usd_micros_total,
    }


def usd(micros: int | None) -> str:
    """Integer micro-dollars as exact dollars: USD 1,234.500000."""
    if micros is None:
        return DASH
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 10**6)
    return f"USD {sign}{whole:,}.{frac:06d}"


def _resets_name(r: Remedy, clock: Clock) -> str:
    if len(r.events) == 1:
        return f"the {clock.short(r.events[0].start)} reset"
    shown = ", ".join(clock.short(e.start) for e in r.events[:5])
    more = ", ..." if len(r.events) > 5 else ""
    return f"the {len(r.events)} resets ({shown}{more})"


def coverage_sentence(comp: Compensation, clock: Clock) -> str:
    """The reset's coverage in one sentence, e.g. 'The 20:30 reset made 3,987 of 4,000 accounts whole;
    13 were overcharged after it and are owed 1,204,331 tokens.'"""
    r = comp.remedy
    if r is None:
        return "No ledger was given, so the quota reset could not be checked."
    total = r.accounts_made_whole + r.accounts_not_made_whole
    if not r.events:
        if not r.accounts_not_made_whole:
            return "The ledger has no quota reset and no account is owed anything."
        return (
            f"The ledger has no quota reset: all {r.accounts_not_made_whole:,} accounts owed are still owed "
            f"{r.tokens_owed_after_reset:,} tokens."
        )
    it = "it" if len(r.events) == 1 else "them"
    parts = [f"{_resets_name(r, clock)} made {r.accounts_made_whole:,} of {total:,} accounts whole"]
    after = r.tokens_owed_after_reset - r.tokens_owed_without_reset
    if r.accounts_owed_after_reset:
        parts.append(
            f"{_were(r.accounts_owed_after_reset)} overcharged after {it} and {_are(r.accounts_owed_after_reset)} owed "
            f"{after:,} tokens"
        )
    if r.accounts_not_covered:
        parts.append(
            f"{_were(r.accounts_not_covered)} owed more than their reset restored ({r.tokens_not_covered:,} "
            "tokens not covered)"
        )
    if r.accounts_without_reset_owed:
        parts.append(
            f"{r.accounts_without_reset_owed:,} had no reset and {_are(r.accounts_without_reset_owed)} owed "
            f"{r.tokens_owed_without_reset:,} tokens"
        )
    if not r.accounts_not_made_whole:
        parts.append("none is still owed")
    sentence = "; ".join(parts)
    beyond = f" {'It' if len(r.events) == 1 else 'They'} restored {r.tokens_restored_beyond_owed:,} tokens beyond what was owed."
    return sentence[0].upper() + sentence[1:] + "." + beyond


def _were(n: int) -> str:
    return f"{n:,} {'was' if n == 1 else 'were'}"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def sla_sentence(c: SlaCredits, clock: Clock) -> str:
    """What the SLA credits: accounts, total, the window and what counted as failed."""
    credited = int((c.accounts[sl.CREDIT_PERCENT] > 0).sum())
    window = {
        "incident": f"over the incident ({clock.short(c.start)} to {clock.short(c.end)})",
        "month": f"over the calendar month from {c.start:%Y-%m-%d}" if c.start else "over the month",
        "report": "over all the data analyzed",
    }[c.settings.window.value]
    failed = "5xx and the 429s the rate-limit audit found wrong" if c.counts_wrong_429 else "5xx only"
    money = "" if c.credit_usd_micros_total is None else f" ({usd(c.credit_usd_micros_total)})"
    tiers = ", ".join(f"below {_pct(b)}: {p}%" for b, p in c.settings.credits)
    return (
        f"SLA credits {window}: {credited:,} of {c.accounts.height:,} SLA accounts are credited "
        f"{c.credit_tokens_total:,} tokens{money}; failed requests are {failed}; the table is {tiers} of the "
        "window's spend (below is strict)."
    )


def _pct(d: object) -> str:
    text = f"{float(str(d)) * 100:.4f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _rows(comp: Compensation, n: int) -> list[dict[str, Any]]:
    return comp.accounts.head(n).to_dicts()


def _availability(a: dict[str, Any]) -> str:
    x = a[sl.AVAILABILITY]
    return DASH if x is None else f"{x:.3%}"


def _credit(a: dict[str, Any]) -> str:
    if a[sl.CREDIT_PERCENT] is None:
        return DASH
    text = f"{a[sl.CREDIT_PERCENT]}%: {a[sl.CREDIT_TOKENS]:,} tokens"
    return text if a[sl.CREDIT_USD_MICROS] is None else f"{text}, {usd(a[sl.CREDIT_USD_MICROS])}"


def _cells(a: dict[str, Any]) -> list[str]:
    return [
        count(a[rm.OWED_BEFORE]),
        count(a[rm.RESTORED]),
        count(a[rm.OWED_AFTER]),
        count(a[rm.NOT_COVERED]),
        _availability(a),
        _credit(a),
    ]


def compensation_section(report: Report, clock: Clock) -> list[str]:
    """## Compensation: the coverage sentence, the SLA credits, the accounts still owed or credited."""
    comp = report.compensation
    if comp is None:
        return []
    out = ["## Compensation", "", coverage_sentence(comp, clock), ""]
    if comp.sla is not None:
        out += [sla_sentence(comp.sla, clock), ""]
    n = report.settings.report.top_n
    rows = [[escape(a[rm.ACCOUNT_COLUMNS[0]]), *_cells(a)] for a in _rows(comp, n)]
    out += table(
        list(_HEAD), rows, right=_HEAD[1:], empty="No account is owed anything after the remedy or credited."
    )
    if comp.accounts.height > n:
        out += [f"{comp.accounts.height - n:,} more accounts in the `--compensation` file.", ""]
    return out


def compensation_terminal(report: Report, clock: Clock) -> list[RenderableType]:
    """The same for the terminal: the sentences and a table of the top accounts."""
    comp = report.compensation
    if comp is None:
        return []
    out: list[RenderableType] = [Text(escape(coverage_sentence(comp, clock), "terminal"))]
    if comp.sla is not None:
        out.append(Text(escape(sla_sentence(comp.sla, clock), "terminal")))
    rows = _rows(comp, report.settings.report.top_n)
    if rows:
        title = f"Compensation ({comp.accounts.height:,} accounts still owed or credited)"
        t = Table(title=title, title_justify="left", title_style="bold", min_width=len(title))
        for i, head in enumerate(_HEAD):
            t.add_column(head, justify="right" if i else "left", overflow="fold")
        for a in rows:
            t.add_row(Text(escape(a[rm.ACCOUNT_COLUMNS[0]], "terminal")), *(Text(c) for c in _cells(a)))
        out.append(t)
    return out
