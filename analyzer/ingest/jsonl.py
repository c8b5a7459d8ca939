"""JSON lines: one object per line, nested objects reached by dotted paths ("usage.prompt_tokens").

Every wanted field comes out as a String column (numbers as their text), so the mapping step can cast
strictly and tell an absent value (null) from a present one that does not parse (a reject).

Three plans, same output, tried in this order (the decoder cannot null a single row it cannot take:
it stops the whole plan, and the caller tries the next one):
  - trusting: lines that do not start with "{" and end with "}" are masked, the rest decoded at once
    by one `str.json_decode` into a struct of Strings; any broken object among them stops it;
  - validated: lines are checked by a JSON parse first (`json_path_match("$")`), then decoded;
  - robust: one `str.json_path_match` per wanted field. Used when the sample shows a field that is an
    object in one line and a scalar in another, or when such a line comes later in the file.
A line that is not one JSON object (broken, truncated, an array, two objects) is `malformed_json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import polars as pl

from analyzer.ingest.sources import RAW
from analyzer.schema import REJECT_REASON

MALFORMED: Final = "malformed_json"
SAMPLE_LINES: Final = 2000
_DECODED: Final = "_json"

KeyPath = tuple[str, ...]


def looks_like_jsonl(sample: Sequence[str]) -> bool:
    """Most sampled lines are JSON objects."""
    head = [line.strip() for line in sample[:50]]
    objects = sum(1 for line in head if line.startswith("{") and line.endswith("}"))
    return bool(head) and objects * 2 > len(head)


def discover(sample: Sequence[str]) -> tuple[dict[str, KeyPath], bool]:
    """Leaf fields seen in the sample (dotted name -> key path) and whether any path changes shape.

    The sample is bounded (SAMPLE_LINES); a field first appearing after it is still read when a mapping
    names it. Python's json is used here because Polars' inference fails on rows of differing shapes.
    """
    leaves: dict[str, KeyPath] = {}
    containers: set[KeyPath] = set()
    flat: set[tuple[str, ...]] = set()  # key lists of objects already walked that hold no object
    for line in sample[:SAMPLE_LINES]:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
            continue
        if not isinstance(obj, dict):
            continue
        # A log's lines mostly repeat one flat shape: walking such a line again adds nothing. A line
        # with one "{" is flat (checked on the text: a test of each value cost more than the parse).
        if line.count("{") == 1 or not any(isinstance(v, dict) and v for v in obj.values()):
            keys = tuple(obj)
            if keys in flat:
                continue
            flat.add(keys)
        try:
            found: dict[str, KeyPath] = {}
            inner: set[KeyPath] = set()
            _walk(obj, (), found, inner)
        except RecursionError:  # a client-built object hundreds deep: no log field is down there
            continue
        for name, path in found.items():
            leaves.setdefault(name, path)
        containers |= inner
    conflict = any(path in containers for path in leaves.values())
    return dict(sorted(leaves.items())), conflict


def _walk(obj: dict[str, Any], prefix: KeyPath, leaves: dict[str, KeyPath], containers: set[KeyPath]) -> None:
    for key, value in obj.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and value:
            containers.add(path)
            _walk(value, path, leaves, containers)
        else:
            leaves.setdefault(".".join(path), path)


def key_path(name: str, known: Mapping[str, KeyPath]) -> KeyPath:
    """The key path of a dotted field name: as discovered, else split on dots (nested objects)."""
    return known.get(name, tuple(name.split(".")))


def parse_jsonl(lines: pl.LazyFrame, wanted: Mapping[str, KeyPath], *, mode: str) -> pl.LazyFrame:
    """Raw lines -> `_line`, `_raw`, `_reject` and one String column per wanted field (named by key).

    `mode` is the plan: trusting, validated or robust (module docstring).
    """
    per_field = mode == "robust" or _prefix_clash(list(wanted.values()))
    if mode == "trusting" and wanted and not per_field:
        # A cheap look, not a parse: a line passing it that is not one JSON object stops the decoder
        # below (only the decoder checks; without it the validated look is needed).
        line = pl.col(RAW).str.strip_chars()
        valid = line.str.starts_with("{") & line.str.ends_with("}")
    else:
        # The root re-serialized: null when the line is not JSON, not starting with "{" when not an object.
        valid = pl.col(RAW).str.json_path_match("$").str.starts_with("{").fill_null(False)
    lf = lines.with_columns(
        pl.when(pl.col(REJECT_REASON).is_null() & ~valid)
        .then(pl.lit(MALFORMED))
        .otherwise(pl.col(REJECT_REASON))
        .alias(REJECT_REASON)
    )
    json_text = pl.when(pl.col(REJECT_REASON).is_null()).then(pl.col(RAW))
    if not wanted:
        return lf
    if per_field:
        return lf.with_columns(
            json_text.str.json_path_match(_json_path(p)).alias(n) for n, p in wanted.items()
        )
    # Decoded once into a column: fields are then read from it (an expression per field would decode
    # the line again for each).
    decoded = lf.with_columns(json_text.str.json_decode(_struct(list(wanted.values()))).alias(_DECODED))
    return decoded.with_columns(_field(pl.col(_DECODED), p).alias(n) for n, p in wanted.items()).drop(
        _DECODED
    )


def _prefix_clash(paths: Sequence[KeyPath]) -> bool:
    # "usage" and "usage.prompt_tokens" cannot both be a String leaf and a struct in one dtype.
    return any(a != b and b[: len(a)] == a for a in paths for b in paths)


def _struct(paths: Sequence[KeyPath]) -> pl.Struct:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], None)
    return _dtype(tree)


def _dtype(tree: dict[str, Any]) -> pl.Struct:
    return pl.Struct({k: pl.String() if v is None else _dtype(v) for k, v in tree.items()})


def _field(decoded: pl.Expr, path: KeyPath) -> pl.Expr:
    expr = decoded
    for key in path:
        expr = expr.struct.field(key)
    return expr


def _json_path(path: KeyPath) -> str:
    return "$" + "".join("['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']" for key in path)
