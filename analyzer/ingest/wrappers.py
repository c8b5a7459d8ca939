"""Container log wrappers, taken off each line before the format is detected: one `Wrapper` a row.

    docker    Docker's json-file driver: `{"log": "<line>\\n", "stream": "stdout", "time": "..."}`
    cri       the CRI format (containerd, CRI-O; Kubernetes node logs):
              `2026-04-22T09:00:00.000000000Z stdout F <line>`
    compose   docker compose's prefix before a JSON object: `caddy-1  | {...}`
    message   a JSON object whose `message` holds a text access line (Ambassador, Fluent Bit): taken
              only when the text is a line format's, so JSON logs with a `message` field stay JSON

A wrapper is tried on the sample (Python, a few hundred lines); when most lines have it, the sample is
unwrapped for detection and every line of the scan is unwrapped by one Polars expression. A line
without the wrapper is kept as it is (and then read, or rejected, by the format). Line numbers are the
file's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from analyzer.ingest.sources import RAW

_CRI: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+ (?:stdout|stderr) [FP] "
_COMPOSE: Final = r"^[\w.-]+ *\| (\{)"
_DOCKER_HEAD: Final = re.compile(r'^\{\s*"log"\s*:')
_CRI_RE: Final = re.compile(_CRI)
_COMPOSE_RE: Final = re.compile(_COMPOSE)


def _json_field(line: str, key: str) -> str | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
        return None
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def _docker_line(line: str) -> str | None:
    if not _DOCKER_HEAD.match(line):
        return None
    log = _json_field(line, "log")
    return None if log is None else log.removesuffix("\n").removesuffix("\r")


def _message_line(line: str) -> str | None:
    if not line.startswith("{") or '"message"' not in line:
        return None
    text = _json_field(line, "message")
    return None if text is None or text.lstrip().startswith("{") else text


def _json_value(key: str) -> Callable[[pl.Expr], pl.Expr]:
    def unwrap(raw: pl.Expr) -> pl.Expr:
        inner = raw.str.json_path_match(f"$.{key}").str.strip_suffix("\n").str.strip_suffix("\r")
        return pl.coalesce(inner, raw)

    return unwrap


@dataclass(frozen=True)
class Wrapper:
    """One container wrapper: how a sampled line is unwrapped (None: it is not wrapped) and the scan's."""

    name: str
    line: Callable[[str], str | None]
    expr: Callable[[pl.Expr], pl.Expr]
    text_only: bool = False  # the inner lines must be a text line format's (see `message`)


WRAPPERS: Final[tuple[Wrapper, ...]] = (
    Wrapper("docker", _docker_line, _json_value("log")),
    Wrapper(
        "cri",
        lambda line: _CRI_RE.sub("", line, count=1) if _CRI_RE.match(line) else None,
        lambda raw: raw.str.replace(_CRI, ""),
    ),
    Wrapper(
        "compose",
        lambda line: _COMPOSE_RE.sub(r"\1", line, count=1) if _COMPOSE_RE.match(line) else None,
        lambda raw: raw.str.replace(_COMPOSE, "${1}"),
    ),
    Wrapper("message", _message_line, _json_value("message"), text_only=True),
)
BY_NAME: Final[dict[str, Wrapper]] = {w.name: w for w in WRAPPERS}


def unwrapped(sample: Sequence[str]) -> tuple[Wrapper, tuple[str, ...]] | None:
    """The wrapper most sampled lines have and the sample without it; None when there is none."""
    head = list(sample[:200])
    for wrapper in WRAPPERS:
        inner = [wrapper.line(line) for line in head]
        if head and sum(i is not None for i in inner) * 2 > len(head):
            whole = [wrapper.line(line) for line in sample]
            return wrapper, tuple(i if i is not None else line for i, line in zip(whole, sample, strict=True))
    return None


def unwrap(lines: pl.LazyFrame, name: str | None) -> pl.LazyFrame:
    """The raw lines with wrapper `name` taken off (None: as they are)."""
    if name is None:
        return lines
    return lines.with_columns(BY_NAME[name].expr(pl.col(RAW)).alias(RAW))
