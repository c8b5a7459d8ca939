"""What the analysis noticed and the reader should know, as data: a code and the values it names.

The layers that read and analyze (ingest, detect, reconcile) return `Note`s; the sentence each one
says is written once, in `analyzer/report/notes.py`, for the terminal, Markdown and JSON reports, the
`inspect` command and the manifest of `convert` (which stores the code and the values).

    Note(NoteCode.NO_COLUMN, kind="gateway", column="region")
        -> "gateway: no region column in any input; region is null"
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any


class NoteCode(StrEnum):
    """Every kind of note; each has its sentence in report/notes.py."""

    # ingest: the inputs of one kind (`kind`)
    NO_INPUT = "no_input"
    NO_COLUMN = "no_column"  # `column` in no input: null
    NO_ENTRY_ID = "no_entry_id"  # ledger: entry_id is <file>:<line>
    NO_EVENT_KIND = "no_event_kind"  # events: kind is 'note'
    COLUMN_MISSING_IN = "column_missing_in"  # `column` absent from the inputs `names`
    UNBALANCED_QUOTES = "unbalanced_quotes"  # `file` read line by line without quoting
    TRUNCATED_STREAM = "truncated_stream"  # `file`, a damaged `compression` stream
    WRAPPED = "wrapped"  # `file`: `format` lines inside `wrapper` container logs
    DAMAGED_FIELDS = "damaged_fields"  # `file`: `count` lines analyzed with the fields `names` cut short
    CLOCK_SKEW = "clock_skew"  # `file` shifted by `seconds` against its neighbours, rows `first`..`last`
    NOT_UTF8 = "not_utf8"  # `file`: `count` lines not UTF-8, `encoding` would read them
    RAW_TEXT_CAPPED = "raw_text_capped"  # the raw text of `count` of `total` rejected rows kept
    # detect
    CROWDED_SLICE = "crowded_slice"  # `column` has about `count` distinct values, over `limit`
    NO_LATENCY = "no_latency"
    NO_PROMPT_TOKENS = "no_prompt_tokens"
    EMPTY_SLICE = "empty_slice"  # no `column` values
    # reconcile
    NO_REQUEST_IDS = "no_request_ids"
    NULL_REQUEST_IDS = "null_request_ids"  # `count` gateway requests
    REPEATED_REQUEST_IDS = "repeated_request_ids"  # `count` gateway lines
    NULL_BALANCES = "null_balances"  # `count` ledger entries
    NEGATIVE_DEDUCTIONS = "negative_deductions"  # `count` of `total` deductions
    RESETS_DISAGREE = "resets_disagree"  # `count` resets
    UNKNOWN_LEDGER_KINDS = "unknown_ledger_kinds"  # `count` entries; `counts`: the first kinds; `more`
    LEDGER_IN_USD = "ledger_in_usd"
    UNPRICED_MODELS = "unpriced_models"  # `names`: models without [prices.<model>] (a USD ledger)
    REFUNDS_UNPRICED = "refunds_unpriced"  # `names`: models without a price; `count` refund tokens
    # a note an earlier version wrote into a manifest as its sentence (`text`)
    RECORDED = "recorded"


@dataclass(frozen=True)
class Note:
    """One note: its code and the values its sentence names (which ones: see NoteCode)."""

    code: NoteCode
    kind: str = ""  # the kind of input (gateway, ledger, events)
    file: str = ""
    column: str = ""
    count: int = 0
    total: int = 0
    limit: int = 0
    names: tuple[str, ...] = ()  # files, fields or models, in the order said
    counts: tuple[tuple[str, int], ...] = ()  # (value, how many), in the order said
    more: bool = False  # `counts` are the first of more
    format: str = ""
    wrapper: str = ""
    compression: str = ""
    encoding: str = ""
    seconds: int = 0
    first: datetime | None = None
    last: datetime | None = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The code and every value that is not its default, JSON-ready (see `from_dict`)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif f.name == "names":
                value = list(value)
            elif f.name == "counts":
                value = [list(pair) for pair in value]
            out[f.name] = str(value) if f.name == "code" else value
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Note:
        """The note `to_dict` wrote (KeyError, ValueError or TypeError when it is not one)."""
        values = dict(doc)
        values["code"] = NoteCode(values["code"])
        for name in ("first", "last"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(str(values[name]))
        if "names" in values:
            values["names"] = tuple(str(n) for n in values["names"])
        if "counts" in values:
            values["counts"] = tuple((str(v), int(n)) for v, n in values["counts"])
        return cls(**values)
