"""Clock skew notes from per-file time ranges: shifted rotated files and hosts named with the offset."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from analyzer.findings import InputReport
from analyzer.ingest.skew import skew_notes
from analyzer.notes import Note, NoteCode
from analyzer.report.notes import sentence, sentences


def _at(hour: float) -> datetime:
    return datetime(2026, 4, 22, tzinfo=UTC) + timedelta(hours=hour)


def _report(path: str, first: float, last: float) -> InputReport:
    return InputReport("gateway", path, "jsonl", "none", 10, 0, {}, first_ts=_at(first), last_ts=_at(last))


def _hourly(host: str, hours: Sequence[int], shifted: dict[int, float] | None = None) -> list[InputReport]:
    """One file per hour of `host`; `shifted` moves some files' times by hours (a skewed clock)."""
    moved = shifted or {}
    return [_report(f"{host}/gw-{h:02d}.log", h + moved.get(h, 0), h + 0.99 + moved.get(h, 0)) for h in hours]


def _shifted(notes: tuple[Note, ...]) -> list[tuple[str, str]]:
    return [(n.split(": ")[1], n.split("shifted by ")[1].split(" ")[0]) for n in sentences(notes)]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param(
            _hourly("a", range(8, 13), {10: 2}), [("a/gw-10.log", "+2:00:00")], id="middle-file-2h-ahead"
        ),
        pytest.param(
            _hourly("a", range(8, 13), {10: -2}), [("a/gw-10.log", "-2:00:00")], id="middle-file-2h-behind"
        ),
        pytest.param(
            _hourly("a", range(8, 13), {9: 0.25}), [("a/gw-09.log", "+0:15:00")], id="middle-file-15min"
        ),
        pytest.param(
            _hourly("a", range(8, 13), {8: 3}), [("a/gw-08.log", "+3:00:00")], id="first-file-ahead"
        ),
        pytest.param(
            _hourly("a", range(8, 13), {12: -3}), [("a/gw-12.log", "-3:00:00")], id="last-file-behind"
        ),
        pytest.param(
            _hourly("h1", range(9, 12))
            + _hourly("h2", range(9, 12), {9: 2, 10: 2, 11: 2})
            + _hourly("h3", range(9, 12)),
            [("h2/gw-09.log", "+2:00:00"), ("h2/gw-10.log", "+2:00:00"), ("h2/gw-11.log", "+2:00:00")],
            id="one-host-of-three-2h-ahead",
        ),
    ],
)
def test_shifted_files_are_named_with_their_offset(
    inputs: list[InputReport], expected: list[tuple[str, str]]
) -> None:
    assert _shifted(skew_notes("gateway", inputs)) == expected


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(_hourly("a", range(8, 13)), id="clean-rotation"),
        pytest.param(_hourly("a", [8, 9, 12, 13]), id="a-gap-of-two-hours"),
        pytest.param(_hourly("a", range(8, 13), {10: 0.1}), id="six-minutes-within-tolerance"),
        pytest.param(_hourly("h1", range(9, 12)) + _hourly("h2", range(9, 12)), id="two-hosts-in-parallel"),
        pytest.param(
            [_report("a/gw-09.log", 9, 9.99), _report("b/gw-09.log", 9, 9.99), _report("c/x.log", 9, 10)],
            id="parallel-files",
        ),
        pytest.param(
            [*_hourly("a", range(8, 11)), _report("a/gw-11.log", 10.9, 11.99)],
            id="late-lines-across-rotation",
        ),
        pytest.param(
            [
                _report("a/gw-09.log", 9, 9.99),
                InputReport("gateway", "a/gw-10.log", "empty", "none", 0, 0, {}),
            ],
            id="empty-file",
        ),
    ],
)
def test_no_note_without_skew(inputs: list[InputReport]) -> None:
    assert skew_notes("gateway", inputs) == ()


def test_note_names_kind_file_offset_and_range() -> None:
    (note,) = skew_notes("ledger", _hourly("a", range(8, 13), {10: 2}))
    assert (note.code, note.kind, note.file, note.seconds) == (
        NoteCode.CLOCK_SKEW,
        "ledger",
        "a/gw-10.log",
        7200,
    )
    assert sentence(note) == (
        "ledger: a/gw-10.log: times look shifted by +2:00:00 against its neighbours (clock skew?); "
        "its rows, 2026-04-22 12:00:00 to 2026-04-22 12:59:24 UTC, are analyzed as written"
    )
