"""`analyzer compare` rendered: JSON (sorted keys, a contract), Markdown and the terminal, and the
sentence of each rule that holds."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from importlib import resources
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.compare import Comparison, Held, RuleKind
from analyzer.report.escape import escape
from analyzer.report.formatting import DASH, count, ms, percent, table


def comparison_schema() -> dict[str, Any]:
    """The JSON Schema of `analyzer compare --json` shipped with the package (compare.schema.json)."""
    text = resources.files("analyzer.report").joinpath("compare.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def render_comparison_json(c: Comparison) -> str:
    """The comparison as deterministic JSON: exactly the keys of `Comparison`, sorted."""
    return json.dumps(asdict(c), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _t(text: str | None) -> str:
    """A report time in a sentence: 2026-04-22 09:39 UTC."""
    if text is None:
        return DASH
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.strftime("%Y-%m-%d %H:%M:%S" if t.second or t.microsecond else "%Y-%m-%d %H:%M")


def _change(ratio: float | None) -> str:
    if ratio is None:
        return DASH
    if ratio == 0:
        return "0%"
    return f"{ratio:+.0%}" if abs(ratio) >= 0.0095 else f"{ratio:+.2%}"


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def held_reason(held: Held, c: Comparison) -> str:
    """'rule: what was measured', as printed after `fail-on:` on stderr."""
    rule, observed = held.rule, held.observed
    kind = rule.kind
    lists = {
        RuleKind.new_bursts: ("new 5xx burst(s)", c.new_bursts),
        RuleKind.gone_bursts: ("5xx burst(s) gone", c.gone_bursts),
        RuleKind.new_spikes: ("new latency spike(s)", c.new_spikes),
        RuleKind.gone_spikes: ("latency spike(s) gone", c.gone_spikes),
    }
    if kind in lists:
        what, items = lists[kind]
        scopes = ", ".join(f"{escape(i['scope'], 'terminal')} at {_t(i['start'])}" for i in items)
        return f"{rule.text}: {len(items)} {what} ({scopes})"
    if kind in (RuleKind.error_rate_up, RuleKind.p95_up):
        row = next(r for r in c.slices if r["scope"] == "global")
        b, n = row["base"] or {}, row["new"] or {}
        if kind is RuleKind.error_rate_up:
            span = f"the 5xx rate went from {percent(b.get('error_rate'))} to {percent(n.get('error_rate'))}"
        else:
            span = f"p95 latency went from {ms(b.get('p95_ms'))} to {ms(n.get('p95_ms'))}"
        up = "up from none" if observed is None else f"+{float(observed):.1f}%"
        return f"{rule.text}: {span} ({up})"
    if kind is RuleKind.refunds_up:
        t = (c.ledger or {})["refund_tokens_total"]
        return f"{rule.text}: refund tokens owed went from {t['base']:,} to {t['new']:,} ({_signed(t['change'])})"
    w = (c.rate_limits or {})["wrong"]
    return f"{rule.text}: wrong 429s went from {w['base']:,} to {w['new']:,} ({_signed(w['change'])})"


def _covered(side: Mapping[str, Any]) -> str:
    return (
        f"{_t(side['first_ts'])} to {_t(side['last_ts'])} UTC, {count(side['requests'])} requests, "
        f"{percent(side['error_rate'])} 5xx, {side['bursts']} burst(s), {side['latency_spikes']} latency spike(s)"
    )


def _finding_rows(items: Sequence[Mapping[str, Any]], peak: str, where: str) -> list[list[str]]:
    rows = []
    for i in items:
        value = i.get(peak)
        shown = percent(value) if peak == "peak_error_rate" else ms(value)
        rows.append([escape(i["scope"], where), _t(i["start"]), _t(i["end"]), shown])
    return rows


_FINDINGS = (
    ("New 5xx bursts", "new_bursts", "peak_error_rate", "peak 5xx rate"),
    ("Gone 5xx bursts", "gone_bursts", "peak_error_rate", "peak 5xx rate"),
    ("New latency spikes", "new_spikes", "peak_p95_ms", "peak p95"),
    ("Gone latency spikes", "gone_spikes", "peak_p95_ms", "peak p95"),
)


def _slice_cells(row: Mapping[str, Any], where: str) -> list[str]:
    b, n = row["base"] or {}, row["new"] or {}
    return [
        escape(row["scope"], where),
        count(b.get("requests")),
        count(n.get("requests")),
        percent(b.get("error_rate")),
        percent(n.get("error_rate")),
        _change(row["error_rate_change"]),
        ms(b.get("p95_ms")),
        ms(n.get("p95_ms")),
        _change(row["p95_change"]),
    ]


_SLICE_HEAD = (
    "scope",
    "requests before",
    "after",
    "5xx before",
    "after",
    "change",
    "p95 before",
    "after",
    "change",
)


def _ledger_rows(ledger: Mapping[str, Any]) -> list[list[str]]:
    names = {
        "refund_tokens_total": "refund tokens owed",
        "accounts_owed": "accounts owed",
        "deductions": "deductions",
    }
    rows = [
        [label, count(ledger[k]["base"]), count(ledger[k]["new"]), _signed(ledger[k]["change"])]
        for k, label in names.items()
    ]
    for kind, v in ledger["findings_by_kind"].items():
        rows.append([f"findings: {kind}", count(v["base"]), count(v["new"]), _signed(v["change"])])
    return rows


def _rate_rows(limits: Mapping[str, Any]) -> list[list[str]]:
    return [
        [k.replace("_", " "), count(v["base"]), count(v["new"]), _signed(v["change"])]
        for k, v in limits.items()
    ]


def render_comparison_markdown(c: Comparison, held: Sequence[Held] = ()) -> str:
    """The comparison as Markdown, for a CI job's summary or a merge request comment."""
    lines = ["# What changed", ""]
    lines += [
        f"- **Base**: `{escape(c.base['path'])}`, {_covered(c.base)}",
        f"- **New**: `{escape(c.new['path'])}`, {_covered(c.new)}",
    ]
    days = c.new["days_after_base"]
    if days:
        lines.append(f"- Base findings moved {days:+} day(s) to match by time of day.")
    lines.append("")
    if held:
        lines += ["**Rules that hold**:", ""] + [f"- {escape(held_reason(h, c))}" for h in held] + [""]
    for title, key, peak, label in _FINDINGS:
        lines += [f"## {title}", ""]
        rows = _finding_rows(getattr(c, key), peak, "md")
        lines += table(("scope", "start", "end", label), rows, right=(label,), empty="None.")
    lines += ["## Slices", ""]
    lines += table(_SLICE_HEAD, [_slice_cells(r, "md") for r in c.slices], right=_SLICE_HEAD[1:])
    lines += ["## Ledger", ""]
    if c.ledger is None:
        lines += ["Not in both reports.", ""]
    else:
        lines += table(
            ("", "before", "after", "change"), _ledger_rows(c.ledger), right=("before", "after", "change")
        )
    lines += ["## Rate limits", ""]
    if c.rate_limits is None:
        lines += ["Not in both reports.", ""]
    else:
        lines += table(
            ("429s", "before", "after", "change"),
            _rate_rows(c.rate_limits),
            right=("before", "after", "change"),
        )
    return "\n".join(lines).rstrip("\n") + "\n"


def _rich_table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*(Text(cell) for cell in r))  # log strings are text, never Rich markup
    return t


def render_comparison_terminal(c: Comparison, out: Console) -> None:
    """The comparison in the terminal: what each report covered, the findings that came and went, slices."""
    out.print(f"base: {escape(c.base['path'], 'terminal')}: {_covered(c.base)}", markup=False)
    out.print(f"new:  {escape(c.new['path'], 'terminal')}: {_covered(c.new)}", markup=False)
    for title, key, peak, label in _FINDINGS:
        items = getattr(c, key)
        if items:
            out.print(
                _rich_table(title, ("scope", "start", "end", label), _finding_rows(items, peak, "terminal"))
            )
        else:
            out.print(f"{title.lower()}: none", markup=False)
    out.print(_rich_table("Slices", _SLICE_HEAD, [_slice_cells(r, "terminal") for r in c.slices]))
    if c.ledger is not None:
        out.print(_rich_table("Ledger", ("", "before", "after", "change"), _ledger_rows(c.ledger)))
    if c.rate_limits is not None:
        out.print(
            _rich_table("Rate limits", ("429s", "before", "after", "change"), _rate_rows(c.rate_limits))
        )
