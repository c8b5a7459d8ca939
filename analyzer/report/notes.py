"""The sentence of each note (analyzer/notes.py), written once for every report, `inspect` and `convert`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Final

from analyzer.notes import Note, NoteCode


def sentence(note: Note) -> str:
    """The one line a report says for `note`."""
    return _SENTENCES[note.code](note)


def sentences(notes: Iterable[Note]) -> list[str]:
    """The sentence of each note, in order."""
    return [sentence(n) for n in notes]


def _offset(seconds: int) -> str:
    return ("+" if seconds >= 0 else "-") + str(timedelta(seconds=abs(seconds)))


def _about(n: int) -> int:
    # Two significant digits: the count is a sketch's estimate.
    return round(n, 2 - len(str(n)))


def _skew(n: Note) -> str:
    assert n.first is not None and n.last is not None
    return (
        f"{n.kind}: {n.file}: times look shifted by {_offset(n.seconds)} against its neighbours (clock "
        f"skew?); its rows, {n.first:%Y-%m-%d %H:%M:%S} to {n.last:%Y-%m-%d %H:%M:%S} UTC, are analyzed "
        "as written"
    )


def _unknown_kinds(n: Note) -> str:
    top = ", ".join(f"{k or '(none)'}: {c:,}" for k, c in n.counts)
    more = ", ..." if n.more else ""
    return (
        f"reconcile: {n.count} ledger entries of an unknown kind are kept but not reconciled "
        f"({top}{more}); map them to deduct, refund, grant or reset in [ledger.kinds]"
    )


_SENTENCES: Final[dict[NoteCode, Callable[[Note], str]]] = {
    NoteCode.NO_INPUT: lambda n: f"{n.kind}: no input",
    NoteCode.NO_COLUMN: lambda n: f"{n.kind}: no {n.column} column in any input; {n.column} is null",
    NoteCode.NO_ENTRY_ID: lambda n: "ledger: no entry_id column in any input; entry_id is <file>:<line>",
    NoteCode.NO_EVENT_KIND: lambda n: "events: no kind column in any input; kind is 'note'",
    NoteCode.COLUMN_MISSING_IN: lambda n: (
        f"{n.kind}: no {n.column} column in {', '.join(n.names)}; null for its rows"
    ),
    NoteCode.UNBALANCED_QUOTES: lambda n: (
        f"{n.kind}: {n.file}: unbalanced quotes; read line by line without quoting"
    ),
    NoteCode.TRUNCATED_STREAM: lambda n: (
        f"{n.kind}: {n.file} is a truncated or damaged {n.compression} stream; read up to the break"
    ),
    NoteCode.WRAPPED: lambda n: f"{n.kind}: {n.file}: {n.format} lines inside {n.wrapper} container logs",
    NoteCode.DAMAGED_FIELDS: lambda n: (
        f"{n.kind}: {n.file}: {n.count:,} lines analyzed with a damaged {' or '.join(n.names)} (cut short)"
    ),
    NoteCode.CLOCK_SKEW: _skew,
    NoteCode.NOT_UTF8: lambda n: (
        f'{n.kind}: {n.file}: {n.count:,} lines are not UTF-8; [{n.kind}] encoding = "{n.encoding}" reads them'
    ),
    NoteCode.RAW_TEXT_CAPPED: lambda n: (
        f"rejects: the raw text of the first {n.count:,} of {n.total:,} rejected rows is kept, not all"
    ),
    NoteCode.CROWDED_SLICE: lambda n: (
        f"bursts: {n.column} has about {_about(n.count):,} distinct values, more than max_slice_values "
        f"({n.limit:,}): not searched as a slice (an id in each value? map a coarser field)"
    ),
    NoteCode.NO_LATENCY: lambda n: "latency: no latency_ms on successful requests, spikes not searched",
    NoteCode.NO_PROMPT_TOKENS: lambda n: "latency: no prompt_tokens, latency not normalized for request size",
    NoteCode.EMPTY_SLICE: lambda n: f"bursts: no {n.column} values, that slice skipped",
    NoteCode.NO_REQUEST_IDS: lambda n: (
        "reconcile: the gateway logs have no request_id: every deduction is orphan or out_of_span"
    ),
    NoteCode.NULL_REQUEST_IDS: lambda n: (
        f"reconcile: {n.count} gateway requests have no request_id and match no deduction"
    ),
    NoteCode.REPEATED_REQUEST_IDS: lambda n: (
        f"reconcile: {n.count} gateway lines repeat a request_id; the first line is used"
    ),
    NoteCode.NULL_BALANCES: lambda n: (
        f"reconcile: {n.count} ledger entries have no balance_after; their balance is not checked"
    ),
    NoteCode.NEGATIVE_DEDUCTIONS: lambda n: (
        f"reconcile: {n.count:,} of {n.total:,} deductions have negative tokens; a deduction is read as "
        "a positive amount, so their kinds, refunds and balances are not meaningful (a ledger that "
        "writes debits as negative numbers needs its sign flipped first)"
    ),
    NoteCode.RESETS_DISAGREE: lambda n: (
        f"reconcile: {n.count:,} resets have tokens other than 0 and other than their balance_after; "
        "balance_after is taken as the balance each reset set"
    ),
    NoteCode.UNKNOWN_LEDGER_KINDS: _unknown_kinds,
    NoteCode.LEDGER_IN_USD: lambda n: (
        "reconcile: the ledger is in US dollars: its amounts, the expected charges (from "
        "[prices.<model>]) and the refunds are micro-dollars (USD × 1,000,000)"
    ),
    NoteCode.UNPRICED_MODELS: lambda n: (
        f"reconcile: no [prices.<model>] for {', '.join(n.names)}: their requests are expected at "
        "1 micro-dollar a token"
    ),
    NoteCode.REFUNDS_UNPRICED: lambda n: (
        f"reconcile: no price for {', '.join(m or '(no model)' for m in n.names)}: {n.count} refund "
        "tokens not in refund_usd"
    ),
    NoteCode.RECORDED: lambda n: n.text,
}
