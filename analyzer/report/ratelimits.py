"""The rate-limit audit in the report: the JSON `rate_limits` object (a contract), the Rate limits
section of the Markdown and terminal reports, and the sentence an explanation reads as."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from analyzer.limits import Explanation, Limit, LimitSource, RateLimits, Verdict
from analyzer.limits.audit import THROTTLED_COUNT, TIER
from analyzer.limits.explain import Hypothesis
from analyzer.report.escape import escape
from analyzer.report.formatting import DASH, Clock, table
from analyzer.report.model import Report
from analyzer.schema import ACCOUNT_ID

EXPLANATION_KEYS: Final = ("model", "start", "end", "hypothesis", "parameter", "share")
_WINDOWS: Final = "a fixed clock-minute window, a sliding 60-second log and a token bucket"
_ACCOUNT_COLUMNS: Final = ("Account", "Tier", "429s", "Wrong", "Ambiguous", "Admitted over limit")
_LIMIT_COLUMNS: Final = ("Limit", "Justified", "Ambiguous", "Wrong", "Admitted over limit")
_VERDICTS: Final = (Verdict.JUSTIFIED, Verdict.AMBIGUOUS, Verdict.WRONG, Verdict.ADMITTED_OVER_LIMIT)


def rate_limits_json(rl: RateLimits | None) -> dict[str, Any] | None:
    """`rate_limits`: counts, by_limit, accounts, explanations and the rules replayed."""
    if rl is None:
        return None
    return {
        **rl.counts,
        "by_limit": rl.by_limit,
        "accounts": rl.accounts.to_dicts(),
        "explanations": [
            {k: v for k, v in asdict(e).items() if k in EXPLANATION_KEYS} for e in rl.explanations
        ],
        "rules": {
            "windows": [r.value for r in rl.rules],
            "limits": rl.source.value,
            "per_model": rl.per_model,
            "count_rejected": rl.count_rejected,
            "tolerance": rl.tolerance,
            "timestamp": rl.timestamp.value,
            "skipped_without_account": rl.skipped,
        },
    }


def _fit(e: Explanation) -> str:
    p = e.parameter
    texts = {
        Hypothesis.FIXED_COST: f"a limiter charging {p:,} tokens per request against TPM"
        if isinstance(p, int)
        else "",
        Hypothesis.BILLED_TOKENS: "a limiter counting the tokens the ledger billed, not those served",
        Hypothesis.OTHER_TIER: f"a limiter applying tier {p}'s limits",
        Hypothesis.REQUESTS_PER_MINUTE: f"a limiter allowing {p} requests per minute, counted instead of tokens",
    }
    return texts[Hypothesis(e.hypothesis)]


def explanation_text(e: Explanation, at: Callable[[datetime], str]) -> str:
    """`kimi-k2.6 429s from 09:04 to 17:40 fit a limiter charging 262,144 tokens per request against TPM
    (94% of the wrong 429s)`."""
    return (
        f"{e.model} 429s from {at(e.start)} to {at(e.end)} fit {_fit(e)} "
        f"({e.share:.0%} of the wrong 429s, {e.explained:,} of {e.wrong:,}; {e.rule} window)"
    )


def _source_text(rl: RateLimits, report: Report, cell: Callable[[object], str]) -> str:
    """Where the limits came from; `cell` escapes what came from the user (a path)."""
    limits = report.settings.limits
    if rl.source is LimitSource.OBSERVED_PEAK or limits is None:
        return (
            "No limits section in the config: each account is held to its own observed peak (the most it "
            "was admitted in a sliding minute, in flight and in a day), not to configured limits. Give the "
            "tiers in the config's limits section to judge the 429s against what was promised."
        )
    where = f"; each account's tier from {cell(limits.accounts)}" if limits.accounts else ""
    unit = "account and model" if rl.per_model else "account"
    return f"Limits of {len(limits.tiers)} tier(s) from the config's limits section{where}; per {unit}."


def _summary_text(rl: RateLimits) -> str:
    c = rl.counts
    return (
        f"{c[THROTTLED_COUNT]:,} 429s: {c['justified']:,} justified, {c['ambiguous']:,} ambiguous, "
        f"{c['wrong']:,} wrong; {c['admitted_over_limit']:,} requests admitted while over a limit under "
        f"every rule. Replayed under {_WINDOWS}."
    )


def _limit_rows(rl: RateLimits) -> list[list[str]]:
    return [
        [lim.value, *(f"{rl.by_limit[lim.value][v.value]:,}" for v in _VERDICTS)]
        for lim in Limit
        if any(rl.by_limit[lim.value].values())
    ]


def _account_rows(rl: RateLimits, top: int, cell: Callable[[object], str]) -> list[list[str]]:
    cols = (ACCOUNT_ID, TIER, THROTTLED_COUNT, Verdict.WRONG, Verdict.AMBIGUOUS, Verdict.ADMITTED_OVER_LIMIT)
    rows = rl.accounts.head(top).select(cols).rows()
    return [[cell(a), cell(t) if t is not None else DASH, *(f"{n:,}" for n in rest)] for a, t, *rest in rows]


def markdown_section(report: Report, clock: Clock) -> list[str]:
    """## Rate limits: where the limits came from, the 429s by class and limit, the explanations and the
    accounts with the most wrong 429s."""
    rl = report.rate_limits
    out = ["## Rate limits", ""]
    if rl is None:
        return [*out, "The rate limiter was not audited.", ""]
    out += [_source_text(rl, report, escape), "", _summary_text(rl), ""]
    out += [f"- {escape(explanation_text(e, clock.short))}" for e in rl.explanations]
    out += [""] if rl.explanations else []
    right = _LIMIT_COLUMNS[1:]
    out += table(
        list(_LIMIT_COLUMNS), _limit_rows(rl), right=right, empty="No 429 and no over-limit admission."
    )
    top = report.settings.report.top_n
    if rl.accounts.height:
        out += table(list(_ACCOUNT_COLUMNS), _account_rows(rl, top, escape), right=_ACCOUNT_COLUMNS[2:])
        if rl.accounts.height > top:
            out += [
                f"{rl.accounts.height - top:,} more accounts in the JSON report (`rate_limits.accounts`).",
                "",
            ]
    return out


def _rich_table(title: str, columns: tuple[str, ...], rows: list[list[str]], left: int) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", min_width=len(title))
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i < left else "right", overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t


def terminal_section(report: Report, clock: Clock) -> list[RenderableType]:
    """The Rate limits section for the terminal: the same as the Markdown's, as Rich tables."""
    rl = report.rate_limits
    if rl is None:
        return []

    def term(v: object) -> str:
        return escape(v, "terminal")

    out: list[RenderableType] = [
        Text("Rate limits", style="bold"),
        Text(_source_text(rl, report, term)),
        Text(_summary_text(rl)),
    ]
    out += [Text(term(explanation_text(e, clock.short)), style="bold") for e in rl.explanations]
    if _limit_rows(rl):
        out.append(_rich_table("429s by limit", _LIMIT_COLUMNS, _limit_rows(rl), left=1))
    if rl.accounts.height:
        top = report.settings.report.top_n
        out.append(_rich_table("Accounts with 429s", _ACCOUNT_COLUMNS, _account_rows(rl, top, term), left=2))
    return out
