"""Notes are data (analyzer/notes.py); report/notes.py says each code's sentence, once."""

from datetime import UTC, datetime

import pytest

from analyzer.notes import Note, NoteCode
from analyzer.report.notes import sentence, sentences

_FIRST, _LAST = datetime(2026, 4, 22, 12, tzinfo=UTC), datetime(2026, 4, 22, 12, 59, tzinfo=UTC)


@pytest.mark.parametrize("code", list(NoteCode), ids=str)
def test_every_code_has_a_sentence(code: NoteCode) -> None:
    note = Note(code, kind="gateway", file="a.log", column="region", first=_FIRST, last=_LAST, text="said")
    said = sentence(note)
    assert said.strip() and "\n" not in said
    assert code is NoteCode.RECORDED or (" " in said and "said" not in said)


@pytest.mark.parametrize(
    ("note", "said"),
    [
        pytest.param(
            Note(NoteCode.COLUMN_MISSING_IN, kind="ledger", column="model", names=("a.csv", "b.csv")),
            "ledger: no model column in a.csv, b.csv; null for its rows",
            id="missing-in",
        ),
        pytest.param(
            Note(
                NoteCode.CLOCK_SKEW, kind="gateway", file="x.jsonl", seconds=-7230, first=_FIRST, last=_LAST
            ),
            "gateway: x.jsonl: times look shifted by -2:00:30 against its neighbours (clock skew?); its rows, "
            "2026-04-22 12:00:00 to 2026-04-22 12:59:00 UTC, are analyzed as written",
            id="skew",
        ),
        pytest.param(
            Note(NoteCode.CROWDED_SLICE, column="endpoint", count=12_345, limit=1000),
            "bursts: endpoint has about 12,000 distinct values, more than max_slice_values (1,000): not "
            "searched as a slice (an id in each value? map a coarser field)",
            id="crowded-rounded",
        ),
        pytest.param(
            Note(NoteCode.UNKNOWN_LEDGER_KINDS, count=7, counts=(("adjust", 5), ("", 2)), more=True),
            "reconcile: 7 ledger entries of an unknown kind are kept but not reconciled (adjust: 5, "
            "(none): 2, ...); map them to deduct, refund, grant or reset in [ledger.kinds]",
            id="unknown-kinds",
        ),
        pytest.param(
            Note(NoteCode.REFUNDS_UNPRICED, names=("", "gpt-x"), count=40),
            "reconcile: no price for (no model), gpt-x: 40 refund tokens not in refund_usd",
            id="unpriced-null-model",
        ),
        pytest.param(
            Note(NoteCode.RECORDED, text="as an old manifest said it"), "as an old manifest said it"
        ),
    ],
)
def test_sentences_say_the_values(note: Note, said: str) -> None:
    assert sentences([note]) == [said]


@pytest.mark.parametrize("code", list(NoteCode), ids=str)
def test_a_note_round_trips_through_its_dict(code: NoteCode) -> None:
    note = Note(code, kind="ledger", names=("a", "b"), counts=(("x", 1),), first=_FIRST, count=3)
    doc = note.to_dict()
    assert doc["code"] == code.value and "file" not in doc  # defaults are left out
    assert Note.from_dict(doc) == note
