"""The formats table: (name, detector, opener) rows, tried in order; no if-chains over format names.

A detector looks at a file's sniffed sample (and the source's settings: nginx is detected with the
configured `log_format`); an opener returns a `Source`: the fields the file has, its default mapping
and units, and a function scanning it to `src:<field>` columns plus `_line`, `_raw` and `_reject`.
nginx and ALB rows are added when their modules are importable.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Final

import polars as pl

from analyzer.config import SourceConfig
from analyzer.errors import UnknownFormatError
from analyzer.ingest import accesslogs, delimited, jsonl, jsonlogs, nginx, parquet, wrappers
from analyzer.ingest.sources import DAMAGED, RAW, SRC, Sniff, scan_raw_lines
from analyzer.notes import NoteCode
from analyzer.schema import REJECT_REASON, SOURCE_LINE, FormatName

# Scan files (the one opened, or a batch of files opened alike: see Source.batch) for the wanted
# source fields with plan number `attempt` (0: the fastest; each next one slower and more tolerant,
# tried when the one before fails on the data). A batch's rows also have their `_file`.
Scanner = Callable[[Path | Sequence[Path], Sequence[str], int], pl.LazyFrame]


@dataclass(frozen=True)
class Source:
    """One opened input: what fields it has and how to scan them."""

    fields: dict[str, pl.DataType]  # source field -> dtype (String for text formats)
    complete: bool  # False: `fields` come from a sample, a mapped field may still appear later
    scan: Scanner
    defaults: Mapping[str, str] = field(default_factory=dict)  # canonical -> source field
    units: Mapping[str, str] = field(default_factory=dict)
    text: bool = True  # rows come from decoded text lines (invalid UTF-8 is checked)
    plans: int = 1  # how many plans `scan` has
    robust_note: NoteCode | None = None  # noted when the last plan (of two or more) had to be used
    # `_raw` is the record's own text (a line, a Parquet row as JSON); False: rebuilt from the cells
    # (CSV), so that two different records may share it and the cells must tell duplicates apart.
    raw_is_record: bool = True
    hashed: bool = False  # `scan` already gives each row's line hashes (duplicates.HASHES)
    # Files whose sources have equal `batch` values (not None) are read the same way, so a batch of
    # them can be scanned as one stream: what the opener saw that shapes the scan.
    batch: Hashable = None


_READER_REJECT: Final = "_reader_reject"
Detector = Callable[[Sniff, SourceConfig], bool]
Opener = Callable[[Path, Sniff, SourceConfig], Source]


@dataclass(frozen=True)
class Format:
    """A row of the formats table."""

    name: str
    detect: Detector
    open: Opener


_LAST_DISCOVERED: list[tuple[tuple[str, ...], tuple[dict[str, jsonl.KeyPath], bool]]] = []


def _discovered(sample: tuple[str, ...]) -> tuple[dict[str, jsonl.KeyPath], bool]:
    """`jsonl.discover` of a sniff's sample, walked once for the JSON flavors' detectors and the opener.

    Kept for the last sample only, found by identity (the same sniff's tuple), not by value.
    """
    for seen, found in _LAST_DISCOVERED:
        if seen is sample:
            return found
    found = jsonl.discover(sample)
    _LAST_DISCOVERED[:] = [(sample, found)]
    return found


def _open_jsonl(
    path: Path, sniff: Sniff, config: SourceConfig, flavor: jsonlogs.Flavor | None = None
) -> Source:
    known, conflict = _discovered(sniff.sample)

    # Plans: trusting (lines that look like objects are decoded at once), validated, per-field.
    modes = ("robust",) if conflict else ("trusting", "validated", "robust")

    def scan(files: Path | Sequence[Path], wanted: Sequence[str], attempt: int) -> pl.LazyFrame:
        reads = wanted if flavor is None else flavor.reads(wanted)
        paths = {SRC + name: jsonl.key_path(name, known) for name in reads}
        lines = wrappers.unwrap(scan_raw_lines(files), sniff.wrapper)
        parsed = jsonl.parse_jsonl(lines, paths, mode=modes[attempt])
        return parsed if flavor is None else flavor.derive(parsed, wanted)

    fields: dict[str, pl.DataType] = {n: pl.String() for n in known}
    if flavor is None:
        batch = ("jsonl", tuple(known.items()), modes, sniff.wrapper)
        return Source(fields, False, scan, plans=len(modes), batch=batch)
    fields |= {n: pl.String() for n in flavor.derived}
    batch = (flavor.name, tuple(known.items()), modes, sniff.wrapper)
    return Source(
        fields, False, scan, defaults=flavor.mapping(known), units=flavor.units, plans=len(modes), batch=batch
    )


def _flavor_format(flavor: jsonlogs.Flavor) -> Format:
    """A table row for a known system's JSON access log, told by its field names."""

    def detect(s: Sniff, config: SourceConfig) -> bool:
        return jsonl.looks_like_jsonl(s.sample) and jsonlogs.flavor_of(_discovered(s.sample)[0]) is flavor

    return Format(flavor.name, detect, lambda path, s, config: _open_jsonl(path, s, config, flavor))


def _delimited_opener(separator: str) -> Opener:
    def open_(path: Path, sniff: Sniff, config: SourceConfig) -> Source:
        names = delimited.header(sniff.sample, separator)
        strip = delimited.padded(sniff.sample, separator)

        def scan(files: Path | Sequence[Path], wanted: Sequence[str], attempt: int) -> pl.LazyFrame:
            return delimited.scan_delimited(files, names, separator, quoted=attempt == 0, strip=strip)

        note = NoteCode.UNBALANCED_QUOTES
        fields: dict[str, pl.DataType] = {n: pl.String() for n in names}
        batch = ("delimited", separator, tuple(names), strip)
        return Source(fields, True, scan, plans=2, robust_note=note, raw_is_record=False, batch=batch)

    return open_


def _open_parquet(path: Path, sniff: Sniff, config: SourceConfig) -> Source:
    leaves = parquet.fields(path)
    top = list(dict.fromkeys(key_path[0] for key_path, _ in leaves.values()))

    def scan(files: Path | Sequence[Path], wanted: Sequence[str], attempt: int) -> pl.LazyFrame:
        return parquet.scan_parquet(files, {SRC + n: leaves[n][0] for n in wanted}, top)

    # Files of one schema batch (a folder is already one scan of its files).
    batch = None if path.is_dir() else ("parquet", tuple(leaves.items()))
    fields = {n: dtype for n, (_, dtype) in leaves.items()}
    return Source(fields, True, scan, text=False, hashed=True, batch=batch)


LineParser = Callable[[pl.LazyFrame, SourceConfig], pl.LazyFrame]
LineDetector = Callable[[list[str], SourceConfig], bool]
LineDefaults = Callable[[SourceConfig], Mapping[str, str]]
# A parser told which of its columns are read (the others may be left null, never extracted).
NarrowParser = Callable[[pl.LazyFrame, SourceConfig, Sequence[str]], pl.LazyFrame]


def line_format(
    name: str,
    detect: LineDetector,
    parse: LineParser,
    defaults: LineDefaults,
    units: Mapping[str, str],
    narrow: NarrowParser | None = None,
) -> Format:
    """A table row for a line format whose parser adds String columns named by source field.

    The parser gets `_line`, `_raw` (and the reader's `_reader_reject`, which it may keep) and returns
    them with its fields and `_reject`; `defaults(config)` is its canonical -> source mapping (for the
    configured log format), `units` the units of its fields. `narrow`, when given, is the same parser
    told which fields are read; the scan calls it.
    """

    def open_(path: Path, sniff: Sniff, config: SourceConfig) -> Source:
        empty = pl.LazyFrame(schema={SOURCE_LINE: pl.Int64, RAW: pl.String})
        internal = (SOURCE_LINE, RAW, REJECT_REASON, _READER_REJECT, DAMAGED)
        names = [c for c in parse(empty, config).collect_schema() if c not in internal]

        def scan(files: Path | Sequence[Path], wanted: Sequence[str], attempt: int) -> pl.LazyFrame:
            lines = wrappers.unwrap(scan_raw_lines(files), sniff.wrapper)
            lines = lines.rename({REJECT_REASON: _READER_REJECT})
            parsed = parse(lines, config) if narrow is None else narrow(lines, config, wanted)
            if _READER_REJECT in parsed.collect_schema():
                # The parser kept the reader's own reason (a line cut by \x1f): it comes first.
                parsed = parsed.with_columns(
                    pl.coalesce(_READER_REJECT, REJECT_REASON).alias(REJECT_REASON)
                ).drop(_READER_REJECT)
            return parsed.rename({n: SRC + n for n in names})

        fields: dict[str, pl.DataType] = {n: pl.String() for n in names}
        return Source(
            fields,
            True,
            scan,
            defaults=defaults(config),
            units=units,
            batch=(name, config.log_format, sniff.wrapper),
        )

    return Format(name, lambda s, config: detect(list(s.sample[:50]), config), open_)


def _jsonl_detect(s: Sniff, config: SourceConfig) -> bool:
    return jsonl.looks_like_jsonl(s.sample)


@dataclass(frozen=True)
class _LineModule:
    """How a line format's module is called: nginx's detector, parser and defaults take the log_format."""

    detect: Callable[[ModuleType], LineDetector]
    parse: Callable[[ModuleType], LineParser]
    defaults: Callable[[ModuleType], LineDefaults]


_LINE_MODULES: Final[dict[str, _LineModule]] = {
    FormatName.NGINX: _LineModule(
        detect=lambda m: lambda sample, config: m.looks_like_nginx(sample, log_format=config.log_format),
        parse=lambda m: lambda lines, config: m.parse_nginx(lines, config.log_format),
        defaults=lambda m: lambda config: m.nginx_fields(config.log_format),
    ),
    FormatName.ALB: _LineModule(
        detect=lambda m: lambda sample, config: m.looks_like_alb(sample),
        parse=lambda m: lambda lines, config: m.parse_alb(lines),
        defaults=lambda m: lambda config: m.ALB_FIELDS,
    ),
}


def _line_formats() -> list[Format]:
    """nginx and ALB rows, each once its module (analyzer/ingest/<name>.py) is importable."""
    rows: list[Format] = []
    for name, calls in _LINE_MODULES.items():
        try:
            module = importlib.import_module(f"analyzer.ingest.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"analyzer.ingest.{name}":
                raise  # the module exists but needs something missing: say so
            continue
        units = getattr(module, f"{name.upper()}_UNITS")
        rows.append(
            line_format(name, calls.detect(module), calls.parse(module), calls.defaults(module), units)
        )
    return rows


def _layout_format(layout: accesslogs.Layout) -> Format:
    """A table row for a layout of `accesslogs` (Envoy, HAProxy, CloudFront, ...)."""
    return line_format(
        layout.name,
        lambda sample, config: accesslogs.looks_like(sample, layout),
        lambda lines, config: accesslogs.parse(lines, layout),
        lambda config: layout.defaults,
        layout.units,
        lambda lines, config, wanted: accesslogs.parse(lines, layout, wanted),
    )


# ingress-nginx's upstreaminfo lines also fit nginx's default format (its $request_length taken for
# $request_time): it is tried first, unless a log_format is configured (then the lines are nginx's).
_INGRESS: Final = line_format(
    FormatName.INGRESS_NGINX,
    lambda sample, config: (
        config.log_format is None and nginx.looks_like_nginx(sample, log_format=nginx.INGRESS_LOG_FORMAT)
    ),
    lambda lines, config: nginx.parse_ingress(lines),
    lambda config: nginx.ingress_fields(),
    nginx.NGINX_UNITS,
)
_LAYOUTS: Final = {layout.name: _layout_format(layout) for layout in accesslogs.LAYOUTS}

_NGINX_ALB: Final = _line_formats()
# The formats of text lines (a `message` wrapper must hold one of these).
_TEXT_LINES: Final = [_INGRESS, *_LAYOUTS.values(), *_NGINX_ALB]

# Tried in order: the binary and the strict formats first, the loose delimited ones last. Traefik's
# lines are combined + fields nginx's default format would ignore: Traefik comes before nginx too.
FORMATS: Final[list[Format]] = [
    Format(FormatName.PARQUET, lambda s, config: s.compression == "parquet", _open_parquet),
    *(_flavor_format(flavor) for flavor in jsonlogs.FLAVORS),
    Format(FormatName.JSONL, _jsonl_detect, _open_jsonl),
    _INGRESS,
    _LAYOUTS[FormatName.TRAEFIK],
    *_NGINX_ALB,
    *(row for name, row in _LAYOUTS.items() if name != FormatName.TRAEFIK),
    Format(FormatName.TSV, lambda s, config: delimited.looks_like_tsv(s.sample), _delimited_opener("\t")),
    Format(FormatName.CSV, lambda s, config: delimited.looks_like_csv(s.sample), _delimited_opener(",")),
]

# Formats whose ts is written when the response ends (nginx's $time_local, an ALB's `time`), not when the
# request arrived: the rate-limit audit moves their arrivals back by the latency ([limits] timestamp).
COMPLETION_STAMPED: Final = frozenset({FormatName.NGINX, FormatName.INGRESS_NGINX, FormatName.ALB})


def _open_empty(path: Path, sniff: Sniff, config: SourceConfig) -> Source:
    def scan(files: Path | Sequence[Path], wanted: Sequence[str], attempt: int) -> pl.LazyFrame:
        columns = [SOURCE_LINE, RAW, REJECT_REASON, *(SRC + name for name in wanted)]
        return pl.LazyFrame(schema={c: pl.Int64 if c == SOURCE_LINE else pl.String for c in columns})

    return Source({}, False, scan)  # no row to hold a mapped field: nothing to check


# A file with no line but blank ones (a fresh rotation) has no rows in any format.
EMPTY: Final = Format("empty", lambda s, config: not s.sample and s.compression != "parquet", _open_empty)


def unwrap(sniff: Sniff, config: SourceConfig) -> Sniff:
    """The sniff with a container wrapper (module wrappers) taken off its sample, when its lines have one."""
    found = wrappers.unwrapped(sniff.sample)
    if found is None:
        return sniff
    wrapper, inner = found
    candidate = dataclasses.replace(sniff, sample=inner, wrapper=wrapper.name)
    if wrapper.text_only and not any(f.detect(candidate, config) for f in _TEXT_LINES):
        return sniff
    return candidate


def choose(path: Path, sniff: Sniff, config: SourceConfig) -> Format:
    """The format named by `config.format`, else the first whose detector accepts the sample."""
    if EMPTY.detect(sniff, config):
        return EMPTY
    by_name = {f.name: f for f in FORMATS}
    forced = config.format
    if forced is not None:
        if forced not in by_name:
            raise UnknownFormatError(f"format '{forced}' is not available", path=str(path))
        return by_name[forced]
    for fmt in FORMATS:
        if fmt.detect(sniff, config):
            return fmt
    raise UnknownFormatError(f"content matches no supported format ({', '.join(by_name)})", path=str(path))
