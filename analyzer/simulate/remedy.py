"""The remedy scenario's ledger entries and their truth: a quota reset the token bug outlives, and an SLA.

Every account's quota is reset at `story.remedy_at` (its entries spread over five seconds, written as
`tokens` 0 with the new balance in `balance_after`) while the token bug runs on for ten minutes; the reset
job misses a few accounts (no reset at all), a few accounts were topped up above their quota before it
(so it restores less than they were owed), and support resets half of the accounts still owed again at
`story.second_reset_at` (`tokens` = the new balance: the other convention). Who is missed, topped up and
reset again is picked by rank of what they are owed, not by chance, so the launch scenario's random draws
are untouched. The truth (truth.json `remedy`, `sla`) is summed from the injection labels and the
traffic arrays.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import numpy as np
import polars as pl

from analyzer import schema as s
from analyzer.findings import OVERCHARGE_KINDS
from analyzer.simulate.ledger import EXPECTED, LABEL, REQ, _parts, resets
from analyzer.simulate.limiter import TIERS, Limited, limits_toml
from analyzer.simulate.scenarios import REMEDY_SPREAD, Story
from analyzer.simulate.spec import MODELS, SimSpec, iso, to_us
from analyzer.simulate.traffic import US, account_names

REMEDY_LABEL: Final = "remedy_reset"
TOP_UP_BEFORE: Final = timedelta(hours=1)  # top-ups land this long before the remedy
TOP_UP_QUOTAS: Final = 3  # a top-up adds this many quotas
SLA_TIERS: Final = ("tier1", "tier2", "tier3")  # the tiers with an SLA in the remedy scenario
# USD per million input / output tokens, per model (same order as MODELS), written beside the logs.
PRICES: Final = (("0.60", "2.50"), ("0.60", "2.50"), ("1.15", "8.00"), ("2.00", "5.00"), ("0.10", "0.00"))
# The default SLA table of config.SlaSettings, spelled as the config file writes it.
CREDITS: Final = (("0.999", 10), ("0.99", 25), ("0.95", 100))


def owed_expr() -> pl.Expr:
    """The refund an entry is owed, from its injection label (duplicates and failed charges: all of it)."""
    label = pl.col(LABEL)
    return (
        pl.when(label.is_in(["duplicate", "failed_charged"]))
        .then(pl.col(s.TOKENS))
        .when(label.is_in(OVERCHARGE_KINDS))
        .then(pl.col(s.TOKENS) - pl.col(EXPECTED))
        .otherwise(0)
    )


def reset_times(spec: SimSpec, story: Story) -> list[datetime]:
    """Every reset's (first entry's) time: the end-of-day ones, or the remedy and the second reset."""
    daily = resets(spec) if story.daily_resets else []
    return sorted([*daily, *(t for t in (story.remedy_at, story.second_reset_at) if t is not None)])


def _ranked(owed: np.ndarray) -> np.ndarray:
    """Account indices owed anything, most owed first (ties by index)."""
    order = np.lexsort((np.arange(len(owed)), -owed))
    return order[owed[order] > 0]


def parts(spec: SimSpec, story: Story, body: pl.DataFrame, grants: np.ndarray) -> list[pl.DataFrame]:
    """The remedy's entries (resets, top-ups) for `body`'s deductions; none outside the remedy scenario."""
    if story.remedy_at is None:
        return []
    n = spec.accounts
    remedy_us = to_us(story.remedy_at)
    owed = body.with_columns(owed_expr().alias("_owed")).filter(pl.col("_owed") > 0)
    acct, ts, amount = (owed[c].to_numpy() for c in ("_acct", "_ts", "_owed"))
    before, after = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    np.add.at(before, acct[ts < remedy_us], amount[ts < remedy_us])
    np.add.at(after, acct[ts >= remedy_us], amount[ts >= remedy_us])
    ranked = _ranked(before)
    missed = ranked[1::2][: story.remedy_missed]
    topped = ranked[~np.isin(ranked, missed)][1::2][: story.top_ups]
    reset = np.setdiff1d(np.arange(n), missed)
    spread = int(REMEDY_SPREAD / timedelta(microseconds=1))
    at = remedy_us + (np.arange(len(reset), dtype=np.int64) * spread) // max(len(reset), 1)
    none = np.full(n, -1)
    out = [_parts(s.LEDGER_RESET, at, reset, none[reset], grants[reset], REMEDY_LABEL, 0)]
    top_at = np.full(len(topped), remedy_us - int(TOP_UP_BEFORE / timedelta(microseconds=1)), dtype=np.int64)
    if len(topped) and top_at[0] >= to_us(spec.start):
        out.append(
            _parts(s.LEDGER_GRANT, top_at, topped, none[topped], TOP_UP_QUOTAS * grants[topped], "grant", 0)
        )
    if story.second_reset_at is not None:
        still = _ranked(np.where(np.isin(np.arange(n), missed), 0, after))
        again = np.sort(still[::2])
        second = to_us(story.second_reset_at) + np.arange(len(again), dtype=np.int64) * US
        out.append(_parts(s.LEDGER_RESET, second, again, none[again], grants[again], "reset", 0))
    return out


def finish(ledger: pl.DataFrame) -> pl.DataFrame:
    """The remedy's resets written as tokens 0 with the new balance in balance_after."""
    return ledger.with_columns(
        pl.when(pl.col(LABEL) == REMEDY_LABEL).then(0).otherwise(pl.col(s.TOKENS)).alias(s.TOKENS)
    )


def config_text(story: Story) -> str:
    """analyzer.toml of the remedy scenario: the SLA over the accounts file's enterprise tiers, the prices."""
    if story.remedy_at is None:
        return ""
    tiers = ", ".join(f'"{t}"' for t in SLA_TIERS)
    credits = ", ".join(f'["{below}", {pct}]' for below, pct in CREDITS)
    lines = [
        "# Written by analyzer simulate --scenario remedy: the enterprise accounts' SLA, and the price card.",
        "[sla]",
        'accounts = "accounts.csv"',
        f"tiers = [{tiers}]",
        'window = "report"',
        f"credits = [{credits}]",
        "",
        limits_toml("accounts.csv").rstrip("\n"),
    ]
    for model, (pin, pout) in zip(MODELS, PRICES, strict=True):
        lines += ["", f'[prices."{model}"]', f'input_per_million = "{pin}"', f'output_per_million = "{pout}"']
    return "\n".join(lines) + "\n"


def _index() -> pl.Expr:
    """The account index of an account id (acct-00001 is 0)."""
    return pl.col(s.ACCOUNT_ID).str.slice(5).cast(pl.Int64) - 1


def remedy_truth(story: Story, ledger: pl.DataFrame, accounts: int) -> dict[str, Any] | None:
    """What the resets restored against what each account was owed, from the labels (truth.json `remedy`)."""
    if story.remedy_at is None:
        return None
    names = account_names(accounts)
    # The ledger is in (ts, entry) order: the previous row of an account is its previous entry.
    rows = ledger.with_columns(
        pl.col(s.BALANCE_AFTER).shift(1).over(s.ACCOUNT_ID).alias("_before"),
        owed_expr().alias("_owed"),
        _index().alias("_acct"),
    ).with_row_index("_row")
    resets_df = rows.filter(pl.col(s.KIND) == s.LEDGER_RESET).sort("_acct", "_row")
    owed_df = rows.filter(pl.col(s.KIND) == s.LEDGER_DEDUCT, pl.col("_owed") > 0).sort("_acct", "_row")
    # Each refund to the account's first reset at or after it: a search in (account, row) order.
    reset_key = resets_df["_acct"].to_numpy() * (1 << 40) + resets_df["_row"].to_numpy()
    owed_key = owed_df["_acct"].to_numpy() * (1 << 40) + owed_df["_row"].to_numpy()
    pos = np.searchsorted(reset_key, owed_key)
    reset_acct = resets_df["_acct"].to_numpy()
    covered_by = np.where(pos < len(reset_key), pos, 0)
    has = (pos < len(reset_key)) & (reset_acct[covered_by] == owed_df["_acct"].to_numpy())
    amount = owed_df["_owed"].to_numpy()
    per_reset = np.zeros(len(reset_key), dtype=np.int64)
    np.add.at(per_reset, pos[has], amount[has])
    restored = (resets_df[s.BALANCE_AFTER] - resets_df["_before"]).fill_null(0).to_numpy()
    cap = np.maximum(restored, 0)
    not_covered = per_reset - np.minimum(per_reset, cap)
    beyond = cap - np.minimum(per_reset, cap)
    after = np.zeros(accounts, dtype=np.int64)
    np.add.at(after, owed_df["_acct"].to_numpy()[~has], amount[~has])
    sums = {}
    for name, values in (
        ("owed_before_reset", per_reset),
        ("restored_by_reset", restored),
        ("not_covered", not_covered),
    ):
        total = np.zeros(accounts, dtype=np.int64)
        np.add.at(total, reset_acct, values)
        sums[name] = total
    reset_count = np.bincount(reset_acct, minlength=accounts)
    listed = np.flatnonzero((reset_count > 0) | (sums["owed_before_reset"] > 0) | (after > 0))
    still = after + sums["not_covered"]
    per_account = {
        names[int(i)]: {
            "resets": int(reset_count[i]),
            "owed_before_reset": int(sums["owed_before_reset"][i]),
            "owed_after_reset": int(after[i]),
            "restored_by_reset": int(sums["restored_by_reset"][i]),
            "not_covered": int(sums["not_covered"][i]),
            "made_whole": bool(still[i] == 0),
        }
        for i in listed
    }
    return {
        "reset_at": iso(story.remedy_at),
        "second_reset_at": None if story.second_reset_at is None else iso(story.second_reset_at),
        "accounts_without_reset": [names[int(i)] for i in np.flatnonzero(reset_count == 0)],
        "accounts_made_whole": int((still[listed] == 0).sum()),
        "accounts_not_made_whole": int((still[listed] > 0).sum()),
        "tokens_owed_after_reset": int(after.sum()),
        "tokens_not_covered": int(not_covered.sum()),
        "tokens_restored_beyond_owed": int(beyond.sum()),
        "accounts": per_account,
    }


def sla_truth(story: Story, limited: Limited, ledger: pl.DataFrame) -> dict[str, Any] | None:
    """Per enterprise account over the whole day: requests, failed (5xx and the legacy limiter's wrong
    429s), credit (truth.json `sla`)."""
    if story.remedy_at is None:
        return None
    t, tier = limited.traffic, limited.tier
    n = len(tier)
    names = account_names(n)
    enterprise = np.isin(np.asarray([row[0] for row in TIERS], dtype=object)[tier], SLA_TIERS)
    requests = np.bincount(t.account, minlength=n).astype(np.int64)
    wrong = (t.status == 429) & (limited.reason == 2)
    failed_5xx = (t.status >= 500) & (t.status < 600)
    failed = np.bincount(t.account, weights=failed_5xx | wrong, minlength=n).astype(np.int64)
    wrong_429 = np.bincount(t.account, weights=wrong, minlength=n).astype(np.int64)
    ok = requests - failed
    percent = np.zeros(n, dtype=np.int64)
    for below, pct in CREDITS:
        p, q = Decimal(below).as_integer_ratio()
        percent = np.where((requests > 0) & (ok * q < p * requests), np.maximum(percent, pct), percent)
    deducts = ledger.filter(pl.col(s.KIND) == s.LEDGER_DEDUCT).with_columns(_index().alias("_acct"))
    acct, tokens, req = (deducts[c].to_numpy() for c in ("_acct", s.TOKENS, REQ))
    spend = np.zeros(n, dtype=np.int64)
    np.add.at(spend, acct, tokens)
    scale = max(-Decimal(x).as_tuple().exponent for pair in PRICES for x in pair)  # type: ignore[operator]
    pin = np.asarray([int(Decimal(a).scaleb(scale)) for a, _ in PRICES], dtype=np.int64)
    pout = np.asarray([int(Decimal(b).scaleb(scale)) for _, b in PRICES], dtype=np.int64)
    known = req >= 0
    r = req[known]
    served_prompt = np.where(t.served[r], t.prompt[r], 0)
    prompt_part = np.clip(np.minimum(tokens[known], served_prompt), 0, None)
    scaled = prompt_part * pin[t.model[r]] + (tokens[known] - prompt_part) * pout[t.model[r]]
    micros = np.zeros(n, dtype=np.int64)
    np.add.at(micros, acct[known], scaled)
    micros //= 10**scale
    return {
        "tiers": list(SLA_TIERS),
        "window": "report",
        "accounts": {
            names[int(i)]: {
                "requests": int(requests[i]),
                "failed": int(failed[i]),
                "wrong_429": int(wrong_429[i]),
                "credit_percent": int(percent[i]),
                "spend_tokens": int(spend[i]),
                "spend_usd_micros": int(micros[i]),
                "credit_tokens": int(spend[i] * percent[i] // 100),
                "credit_usd_micros": int(micros[i] * percent[i] // 100),
            }
            for i in np.flatnonzero(enterprise)
        },
    }
