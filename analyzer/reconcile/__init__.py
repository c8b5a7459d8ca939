"""Ledger deductions checked against the tokens the gateway served; refunds per account; fault patterns.

    charges.py     each request's expected charge (exact weights, integer rounding) and wrong-rule charges
    classify.py    each deduction's kind and refund, each request's bucket (lazy, streaming joins)
    balances.py    running balances per account: breaks, the replay, refunds already made
    partitions.py  hash partitions on disk, so that 10M deductions reconcile in bounded memory
    accounts.py    per-account rows, per-kind spans, refunds in USD when prices are set
    patterns.py    what went wrong: multiplied token counts, bunched duplicates, wiped balances
    invariants.py  totals that must add up
    remedy.py      the quota reset as a remedy: what each account's resets restored against what it was owed

`reconcile` works in passes: the inputs are split by a hash of request_id (joins, duplicates,
buckets) and of account_id (balances) into partitions of about 500k rows, and each pass collects
its plans together; the passes' small results (findings rows, sums per account and kind) are
then added up. Up to 500k rows there is one pass over the inputs themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import polars as pl

from analyzer.config import Settings
from analyzer.findings import (
    COUNT,
    DEDUCTION_KINDS,
    OTHER_FINDINGS,
    REQUEST_BUCKETS,
    RESET_ACCOUNTS,
    Finding,
    KindTotal,
    LogGap,
    Reconciliation,
    RequestBucket,
)
from analyzer.notes import Note, NoteCode
from analyzer.reconcile import accounts as acc
from analyzer.reconcile import balances as bal
from analyzer.reconcile import charges
from analyzer.reconcile import classify as cls
from analyzer.reconcile import remedy as rem
from analyzer.reconcile.invariants import check_invariants
from analyzer.reconcile.partitions import partition
from analyzer.reconcile.patterns import find_patterns
from analyzer.schema import (
    ACCOUNT_ID,
    BALANCE_AFTER,
    ENTRY_ID,
    KIND,
    LEDGER_DEDUCT,
    LEDGER_KINDS,
    LEDGER_RESET,
    MODEL,
    REQUEST_ID,
    TOKENS,
)
from analyzer.schema import TS as TS_COL

__all__ = ["reconcile"]


Span = tuple[datetime | None, datetime | None]  # the gateway's first and last time
Gaps = Sequence[tuple[datetime, datetime]]
# What collects every pass's small results (`_collect` here; engine/ on a Ray cluster).
Collector = Callable[[pl.LazyFrame, pl.LazyFrame, Settings, Gaps], dict[str, pl.DataFrame]]


def reconcile_pass(
    lines: pl.LazyFrame,
    by_request: pl.LazyFrame,
    by_account: pl.LazyFrame,
    settings: Settings,
    span: Span,
    exact: bool,
    gaps: Gaps = (),
) -> dict[str, pl.DataFrame]:
    """The small results of one pass: gateway `lines` and deductions `by_request` of some request_ids,
    ledger entries `by_account` of some accounts (hash partitions; in one pass, the whole inputs)."""
    plans = _pass(lines, by_request, by_account, settings, span, exact, gaps)
    return _sums(dict(zip(plans, pl.collect_all(plans.values()), strict=True)), settings)


def merge_passes(passes: Sequence[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """Every pass's results, each kind of result concatenated in pass order."""
    frames: dict[str, list[pl.DataFrame]] = {}
    for sums in passes:
        for name, frame in sums.items():
            frames.setdefault(name, []).append(frame)
    return {name: pl.concat(p, how="vertical_relaxed") for name, p in frames.items()}


def clashed(out: dict[str, pl.DataFrame]) -> bool:
    """Whether two request_ids met on one hash: the passes are then run again on the ids' text."""
    groups = out["groups"]
    return bool(int(groups[cls.CLASHES].sum()) + int(groups[cls.ID_CLASHES].sum()))


def gateway_span(gateway: pl.LazyFrame) -> pl.LazyFrame:
    """The plan of the gateway's first and last time (`first`, `last`): the span deductions fall in."""
    return gateway.select(pl.col(TS_COL).min().alias("first"), pl.col(TS_COL).max().alias("last"))


def _pass(
    lines: pl.LazyFrame,
    by_request: pl.LazyFrame,
    by_account: pl.LazyFrame,
    settings: Settings,
    span: Span,
    exact: bool,
    gaps: Gaps = (),
) -> dict[str, pl.LazyFrame]:
    """The plans of one pass: the requests and deductions of its request_ids, the entries of its accounts."""
    requests = cls.requests(lines, settings)
    joined = cls.joined(requests, by_request, settings, span, exact=exact, gaps=gaps)
    plans: dict[str, pl.LazyFrame] = {
        # Collected once, then summed in memory: two streaming consumers would each redo the join.
        "joined": joined,
        "unbilled": cls.unbilled_without_id(requests),
        "gateway": cls.lines_without_id(requests),
        "expected": cls.expected_by_account(requests),
        # Read once: the order check, the balance windows and the counts then work in memory.
        "entries": by_account,
    }
    return plans


def _sums(out: dict[str, pl.DataFrame], settings: Settings) -> dict[str, pl.DataFrame]:
    """The findings rows, per-(account, kind) sums and balance checks of one pass's collected rows."""
    joined = out.pop("joined").lazy()
    entries = out.pop("entries").lazy()
    ordered = bool(bal.in_time_order(entries).collect(engine="in-memory").item())
    checked = bal.checked(entries, ordered=ordered)
    plans = {
        "rows": pl.concat([cls.finding_rows(joined), out.pop("unbilled").lazy()]),
        "groups": cls.by_account_kind(joined),
        "ledger": entries.select(
            pl.col(TOKENS).cast(pl.Float64).abs().sum().alias(cls.MAGNITUDE),
            pl.col(BALANCE_AFTER).null_count().alias("null_balances"),
            (~pl.col(KIND).is_in(list(LEDGER_KINDS))).sum().alias("unknown_kinds"),
            (pl.col(KIND) == LEDGER_DEDUCT).sum().alias("deducts"),
            ((pl.col(KIND) == LEDGER_DEDUCT) & (pl.col(TOKENS) < 0)).sum().alias("negative_deducts"),
            bal.reset_disagrees().sum().alias("resets_disagreeing"),
        ),
        "breaks": bal.break_findings(checked),
        "balances": bal.account_balances(checked),
        "resets": entries.filter(pl.col(KIND) == LEDGER_RESET)
        .group_by(TS_COL)
        .agg(pl.col(ACCOUNT_ID).n_unique().alias(RESET_ACCOUNTS)),
        "reset_entries": rem.reset_entries(checked),
        "unknown": entries.filter(~pl.col(KIND).is_in(list(LEDGER_KINDS))).group_by(KIND).agg(pl.len()),
    }
    if settings.prices:
        plans["split"] = acc.refund_split(cls.deductions(joined))
    return out | dict(zip(plans, pl.collect_all(plans.values(), engine="in-memory"), strict=True))


def _collect(
    gateway: pl.LazyFrame,
    ledger: pl.LazyFrame,
    settings: Settings,
    gaps: Sequence[tuple[datetime, datetime]] = (),
) -> dict[str, pl.DataFrame]:
    """Every plan over every pass, concatenated; again on request_id's text if a hash clashed."""
    sizes, span_df = pl.collect_all(
        [pl.concat([gateway.select(pl.len()), ledger.select(pl.len())]), gateway_span(gateway)]
    )
    span = (span_df["first"][0], span_df["last"][0])
    with partition(gateway, ledger, int(sizes["len"].max() or 0)) as parts:  # type: ignore[arg-type]
        for exact in (False, True):
            out = merge_passes(
                [
                    reconcile_pass(
                        parts.requests_of(index),
                        parts.entries_by_request(index),
                        parts.entries_by_account(index),
                        settings,
                        span,
                        exact,
                        gaps,
                    )
                    for index in range(parts.count)
                ]
            )
            if not clashed(out):
                break
    return out


def reconcile(
    gateway: pl.LazyFrame,
    ledger: pl.LazyFrame,
    settings: Settings,
    *,
    money: bool = False,
    gaps: Sequence[LogGap] = (),
    collect: Collector | None = None,
) -> Reconciliation:
    """Classify every deduction, bucket every request, check balances, and total refunds per account.

    `money`: the ledger's amounts are micro-dollars (a ledger in US dollars): each request's expected
    charge is then priced by `[prices.<model>]`, and every token figure of the result is micro-dollars.
    `gaps`: detected log gaps; a deduction missing from the logs inside one is `in_log_gap`.
    `collect`: what runs the passes (default: one after the other here; engine/ on a Ray cluster).
    """
    priced = settings
    if money:
        priced = replace(settings, weights=charges.price_weights(settings.prices), prices={})
    out = (collect or _collect)(gateway, ledger, priced, tuple((g.start, g.end) for g in gaps))
    rows = out["rows"]
    flagged = rows.filter(pl.col(KIND) != Finding.UNBILLED)
    findings = pl.concat(
        [rows.select(list(cls.FINDING_COLUMNS)), out["breaks"]], how="vertical_relaxed"
    ).sort(TS_COL, cls.REFUND, ENTRY_ID, REQUEST_ID, nulls_last=True)
    groups = out["groups"]
    deducted = groups.filter(pl.col(KIND).is_not_null())
    kinds = deducted.group_by(KIND).agg(pl.col(COUNT, TOKENS, cls.REFUND).sum())
    side = groups.select(
        pl.exclude(ACCOUNT_ID, KIND, cls.FIRST, cls.LAST, cls.FIRST_BAD, cls.LAST_BAD).sum()
    ).row(0, named=True)
    gw = out["gateway"].sum().row(0, named=True)
    lg = out["ledger"].sum().row(0, named=True)
    deductions = int(kinds[COUNT].sum())
    tokens_deducted = int(kinds[TOKENS].sum())
    first: datetime | None = deducted[cls.FIRST].min()  # type: ignore[assignment]
    last: datetime | None = deducted[cls.LAST].max()  # type: ignore[assignment]
    by_kind = _by_kind(kinds, findings)
    side[RequestBucket.CHARGED_OK] = int(side[RequestBucket.CHARGED_OK] or 0) + int(
        side[cls.CHARGED_FREE] or 0
    )
    request_buckets = {b: int(side[b] or 0) + int(gw.get(b) or 0) for b in REQUEST_BUCKETS}
    refund_total = sum(by_kind[k].refund_tokens for k in DEDUCTION_KINDS)
    expected = out["expected"].group_by(ACCOUNT_ID).agg(pl.col(acc.EXPECTED_TOKENS).sum())
    tokens_expected = int(expected[acc.EXPECTED_TOKENS].sum())

    unknown = (
        out["unknown"].group_by(KIND).agg(pl.col("len").sum()).sort(["len", KIND], descending=[True, False])
    )
    notes = list(_notes(gw, lg, unknown, repeated_ids=int(side[cls.ID_LINES] or 0) - int(side[cls.IDS] or 0)))
    usd_rows, refund_usd = None, None
    if money:
        usd_rows, refund_usd = acc.micro_usd(acc.deduction_rows(deducted))
        notes.extend(_money_notes(gateway, settings))
    elif settings.prices:
        split = out["split"].group_by(ACCOUNT_ID, MODEL).agg(pl.all().sum())
        usd_rows, refund_usd, price_notes = acc.price_refunds(split, settings.prices)
        notes.extend(price_notes)
    others = findings.filter(pl.col(KIND).is_in(list(OTHER_FINDINGS)))
    accounts = acc.finish_accounts(acc.deduction_rows(deducted), others, expected, out["balances"], usd_rows)
    assert int(accounts[acc.EXPECTED_TOKENS].sum()) == tokens_expected, "expected tokens over accounts"
    # Accounts are split between passes, never one account's entries: the counts per time add up.
    resets = out["resets"].group_by(TS_COL).agg(pl.col(RESET_ACCOUNTS).sum()).sort(TS_COL)
    return Reconciliation(
        deductions=deductions,
        tokens_deducted=tokens_deducted,
        tokens_expected=tokens_expected,
        refund_tokens_total=refund_total,
        by_kind=by_kind,
        request_buckets=request_buckets,
        findings=findings,
        accounts=accounts,
        spans=acc.spans(findings),
        patterns=find_patterns(flagged, first, last, settings.reconcile),
        invariants=check_invariants(
            deductions=deductions,
            tokens_deducted=tokens_deducted,
            requests=int(gw["requests"]),
            refund_total=refund_total,
            by_kind=by_kind,
            request_buckets=request_buckets,
            accounts=accounts,
            balances=out["balances"],
            magnitude=float(gw[cls.MAGNITUDE] or 0) + float(lg[cls.MAGNITUDE] or 0),
        ),
        resets=tuple(resets[TS_COL].to_list()),
        reset_accounts=tuple(resets[RESET_ACCOUNTS].to_list()),
        notes=tuple(notes),
        refund_usd=refund_usd,
        remedy=rem.remedy(out["reset_entries"], findings),
    )


def _money_notes(gateway: pl.LazyFrame, settings: Settings) -> list[Note]:
    models = gateway.select(pl.col(MODEL).drop_nulls().unique().sort()).collect()[MODEL].to_list()
    unpriced = [m for m in models if m not in settings.prices]
    notes = [Note(NoteCode.LEDGER_IN_USD)]
    if unpriced:
        notes.append(Note(NoteCode.UNPRICED_MODELS, names=tuple(unpriced)))
    return notes


def _by_kind(deduction_kinds: pl.DataFrame, findings: pl.DataFrame) -> dict[str, KindTotal]:
    totals = {k: KindTotal(0, 0, 0) for k in (*DEDUCTION_KINDS, *OTHER_FINDINGS)}
    other = (
        findings.filter(pl.col(KIND).is_in(list(OTHER_FINDINGS)))
        .group_by(KIND)
        .agg(pl.len().alias(COUNT), pl.col(TOKENS).sum(), pl.col(cls.REFUND).sum())
    )
    for kind, count, tokens, refund in pl.concat(
        [deduction_kinds, other], how="vertical_relaxed"
    ).iter_rows():
        totals[kind] = KindTotal(int(count), int(tokens), int(refund))
    return totals


def _notes(
    gw: dict[str, int], lg: dict[str, int], unknown: pl.DataFrame, *, repeated_ids: int
) -> tuple[Note, ...]:
    notes = []
    if gw["requests"] and gw["null_ids"] == gw["requests"]:
        notes.append(Note(NoteCode.NO_REQUEST_IDS))
    elif gw["null_ids"]:
        notes.append(Note(NoteCode.NULL_REQUEST_IDS, count=int(gw["null_ids"])))
    if repeated_ids:
        notes.append(Note(NoteCode.REPEATED_REQUEST_IDS, count=repeated_ids))
    if lg["null_balances"]:
        notes.append(Note(NoteCode.NULL_BALANCES, count=int(lg["null_balances"])))
    if lg["negative_deducts"]:
        notes.append(
            Note(NoteCode.NEGATIVE_DEDUCTIONS, count=int(lg["negative_deducts"]), total=int(lg["deducts"]))
        )
    if lg["resets_disagreeing"]:
        notes.append(Note(NoteCode.RESETS_DISAGREE, count=int(lg["resets_disagreeing"])))
    if lg["unknown_kinds"]:
        top = tuple((k or "", int(n)) for k, n in unknown.head(5).iter_rows())
        notes.append(
            Note(
                NoteCode.UNKNOWN_LEDGER_KINDS,
                count=int(lg["unknown_kinds"]),
                counts=top,
                more=unknown.height > 5,
            )
        )
    return tuple(notes)
