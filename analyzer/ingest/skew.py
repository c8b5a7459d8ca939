"""Clock skew between files: a rotated file (or a host's whole stream) whose times are shifted.

Files are not merged silently when their time ranges say a host's clock was off; a note names the
file and the offset. Judged from the per-file time ranges alone (first and last analyzed row):

- Rotated files of one stream (paths equal once dates, hours and rotation numbers, i.e. runs of two or
  more digits and a `.N` suffix, are blanked; in path order) follow each other.
  A file whose range starts about `d` after its predecessor ends while its successor starts about `d`
  before it ends (overlap on one side, a gap as large on the other) was shifted by `d`. At either end of
  a stream of three or more files, a file overlapping its only neighbour by more than the tolerance
  (the rest being a clean chain) was shifted by that overlap (plus the chain's usual gap).
- Parallel streams (hosts): with three or more, a stream whose first and last times both differ from
  the others' (which agree among themselves) by about the same `d` was shifted by `d`.

A plain gap (a host that logged nothing for an hour) or late lines across a rotation (a long streaming
request logged at its start) are within TOLERANCE or one-sided, and say nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from analyzer.findings import InputReport
from analyzer.notes import Note, NoteCode

TOLERANCE: Final = timedelta(minutes=10)
# What differs between the rotated files of one stream: dates and hours, or logrotate's `.1`, `.2.gz`;
# a lone digit elsewhere (`host1`) names another stream.
_ROTATED: Final = re.compile(r"\d{2,}|(?<=\.)\d+(?=\.|$)")

Span = tuple[str, datetime, datetime]  # path, first ts, last ts


def skew_notes(kind: str, inputs: Sequence[InputReport]) -> tuple[Note, ...]:
    """A note per file whose time range looks shifted against the other files of `kind`."""
    streams: dict[str, list[Span]] = {}
    for r in inputs:
        if r.first_ts is not None and r.last_ts is not None:
            streams.setdefault(_ROTATED.sub("#", r.path), []).append((r.path, r.first_ts, r.last_ts))
    found: dict[str, timedelta] = {}
    for files in streams.values():
        found.update(_within_stream(files))
    found.update({p: d for p, d in _across_streams(list(streams.values())).items() if p not in found})
    return tuple(
        Note(
            NoteCode.CLOCK_SKEW,
            kind=kind,
            file=path,
            seconds=round(d.total_seconds()),
            first=first,
            last=last,
        )
        for path, first, last in (s for files in streams.values() for s in files)
        if (d := found.get(path)) is not None
    )


def _within_stream(files: Sequence[Span]) -> dict[str, timedelta]:
    # gaps[k]: from the end of file k to the start of file k + 1 (negative: they overlap).
    gaps = [files[k + 1][1] - files[k][2] for k in range(len(files) - 1)]
    out: dict[str, timedelta] = {}
    for k in range(1, len(files) - 1):
        before, after = gaps[k - 1], gaps[k]
        if min(abs(before), abs(after)) > TOLERANCE and (before > timedelta(0)) != (after > timedelta(0)):
            if abs(before + after) <= min(abs(before), abs(after)) / 2:
                out[files[k][0]] = (before - after) / 2
    if len(files) >= 3:
        ends = ((0, gaps[0], gaps[1:]), (len(files) - 1, gaps[-1], gaps[:-1]))
        for k, gap, rest in ends:
            neighbour = files[1 if k == 0 else k - 1][0]
            clean = all(g >= -TOLERANCE for g in rest)
            if gap < -TOLERANCE and clean and neighbour not in out:
                usual = sorted(rest)[len(rest) // 2]  # the chain's usual gap (a median)
                out[files[k][0]] = usual - gap if k == 0 else gap - usual
    return out


def _across_streams(streams: Sequence[Sequence[Span]]) -> dict[str, timedelta]:
    spans = [(min(s[1] for s in files), max(s[2] for s in files)) for files in streams]
    out: dict[str, timedelta] = {}
    if len(spans) < 3:
        return out
    for i, (first, last) in enumerate(spans):
        others = spans[:i] + spans[i + 1 :]
        starts, ends = [o[0] for o in others], [o[1] for o in others]
        if max(starts) - min(starts) > TOLERANCE or max(ends) - min(ends) > TOLERANCE:
            continue  # the others disagree among themselves: nothing to measure against
        d_first = first - min(starts) - (max(starts) - min(starts)) / 2
        d_last = last - min(ends) - (max(ends) - min(ends)) / 2
        same_sign = (d_first > timedelta(0)) == (d_last > timedelta(0))
        if min(abs(d_first), abs(d_last)) > TOLERANCE and same_sign and abs(d_first - d_last) <= TOLERANCE:
            out.update({s[0]: (d_first + d_last) / 2 for s in streams[i]})
    return out
