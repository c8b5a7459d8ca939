"""Where inputs come from: paths, folders and globs to files; compression and a sample by magic bytes.

Also the raw-line reader every line-based format starts from. Blank lines (empty or only whitespace)
are not rows: they are dropped here and never counted.
"""

from __future__ import annotations

import atexit
import codecs
import glob
import io
import shutil
import sys
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import polars as pl
import zstandard

from analyzer import objstore
from analyzer.errors import InputError
from analyzer.schema import REJECT_REASON, SOURCE_FILE, SOURCE_LINE

RAW: Final = "_raw"
# A parser's word that a line was read although a field the analysis does not need was damaged (a user
# agent cut short): the field's name, null for a whole line. Counted in the input's notes.
DAMAGED: Final = "_damaged"
STDIN: Final = "-"  # the path that names standard input
SRC: Final = "src:"  # prefix of source-field columns, so a field named like `_line` cannot collide
SAMPLE_BYTES: Final = 256 * 1024
LINE_LIMIT: Final = 64 * 1024 * 1024  # a longer first line is not a log line
RAW_LIMIT: Final = 1000  # characters of a rejected line kept in the rejects table

# Compressed bytes fed to a decompressor at a time: the output of a chunk that holds damage is lost.
_CHUNK: Final = 16 * 1024
_GZIP: Final = b"\x1f\x8b"
_ZSTD: Final = b"\x28\xb5\x2f\xfd"
_PARQUET: Final = b"PAR1"
# The raw-line reader splits on a separator no text log uses; a line that does contain it comes back
# in up to three pieces that are glued together again; more pieces than that cannot be told apart.
_UNIT_SEP: Final = "\x1f"
_PIECES: Final = ("_piece2", "_piece3")
_OVERFLOW: Final = "_piece4"

# Names that make a file or folder an input of each kind inside a report directory.
_KIND_PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "gateway": ("gateway*", "access*", "alb*", "*.log", "*.log.gz", "*.log.zst"),
    "ledger": ("ledger*", "billing*"),
    "events": ("events*",),
}


@dataclass(frozen=True)
class Sniff:
    """What the first bytes of a file say: its compression and a sample of decompressed lines."""

    compression: str  # none | gzip | zstd | parquet
    sample: tuple[str, ...]
    wrapper: str | None = None  # the container wrapper taken off the sample's lines (module wrappers)


# Files a log folder often holds beside its logs (a README, checksums, pictures): skipped when a folder is
# expanded, never when named on their own. Hidden files are skipped too.
NOT_LOGS: Final = frozenset(
    {".md", ".rst", ".html", ".pdf", ".png", ".jpg", ".jpeg", ".gif", ".sha256", ".md5", ".sig", ".asc"}
)


def resolve(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files, folders and globs into input paths, each group sorted by name, duplicates once."""
    out: list[Path] = []
    for given in paths:
        out.extend(_expand(str(given)))
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def _expand(given: str) -> list[Path]:
    if given == STDIN:
        return [_spooled_stdin()]
    if (url := objstore.url_of(given)) is not None:
        given = objstore.localized(url)  # local copies of the objects, then read as local files
    p = Path(given)
    if glob.has_magic(given):
        matches = sorted(Path(m) for m in glob.glob(given, recursive=True))
        files = [m for m in matches if m.is_file() or is_parquet_dataset(m)]
        if not files:
            raise InputError("glob matches no file", path=given)
        return files
    if not p.exists():
        raise InputError("no such file or folder", path=given)
    if not p.is_dir() and not p.is_file():
        # A pipe (`--gateway <(zcat day.gz)`), a FIFO, a device: read once, into a file that can seek.
        with p.open("rb") as stream:
            return [_spool(stream, p.name)]
    if p.is_dir():
        if is_parquet_dataset(p):
            return [p]
        files = sorted(
            f
            for f in p.rglob("*")
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() not in NOT_LOGS
        )
        if not files:
            raise InputError("folder holds no file", path=given)
        return files
    return [p]


# The folder of spooled streams, removed when the process exits; standard input is read once.
_SPOOL: list[Path] = []
_STDIN_FILE: list[Path] = []


def _spool(stream: BinaryIO, name: str) -> Path:
    """Copy a stream that cannot seek to a temporary file (chunk by chunk) and return the file."""
    if not _SPOOL:
        folder = Path(tempfile.mkdtemp(prefix="analyzer-spool-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _SPOOL.append(folder)
    target = Path(tempfile.mkstemp(prefix=f"{name}-", dir=_SPOOL[0])[1])
    with target.open("wb") as out:
        shutil.copyfileobj(stream, out, _CHUNK * 64)
    return target


def transcoded(path: Path, encoding: str) -> Path:
    """`path`'s text (decompressed) decoded from `encoding` into a temporary UTF-8 file, chunk by chunk."""
    with path.open("rb") as f:
        compression = _compression(f.read(4))
    with path.open("rb") as raw:
        stream: BinaryIO = raw
        if compression != "none":
            reader = _Inflated(raw, compression)
            stream = reader  # type: ignore[assignment]
        text = codecs.getreader(encoding)(stream, "replace")
        out = _spool(io.BytesIO(b""), path.name)
        with out.open("w", encoding="utf-8", newline="") as w:
            shutil.copyfileobj(text, w, _CHUNK * 64)
    return out


class _Inflated(io.RawIOBase):
    """A gzip or zstd stream read as its decompressed bytes."""

    def __init__(self, raw: BinaryIO, compression: str) -> None:
        self._raw, self._compression = raw, compression
        self._inflate = _decompressor(compression)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                return 0
            self._left = self._inflate.decompress(chunk)
            while self._inflate.unused_data:
                rest = self._inflate.unused_data
                self._inflate = _decompressor(self._compression)
                self._left += self._inflate.decompress(rest)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _compression(head: bytes) -> str:
    return "gzip" if head.startswith(_GZIP) else "zstd" if head.startswith(_ZSTD) else "none"


def is_parquet_file(path: Path) -> bool:
    """A file starting with Parquet's magic bytes."""
    with path.open("rb") as f:
        return f.read(4) == _PARQUET


# Tried in order on a line that is not UTF-8; latin-1 decodes any byte, so it always answers.
_LEGACY: Final = ("cp1252", "latin-1")


def suggest_encoding(path: Path) -> str:
    """The legacy encoding that decodes the first non-UTF-8 line of `path`'s start (cp1252 or latin-1)."""
    with path.open("rb") as f:
        compression = _compression(f.read(4))
        f.seek(0)
        data, _, _ = _head(f, compression)
    for line in data.splitlines():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            for encoding in _LEGACY:
                try:
                    line.decode(encoding)
                    return encoding
                except UnicodeDecodeError:
                    continue
    return _LEGACY[0]


def _spooled_stdin() -> Path:
    if not _STDIN_FILE:
        _STDIN_FILE.append(_spool(sys.stdin.buffer, "stdin"))
    return _STDIN_FILE[0]


def is_parquet_dataset(p: Path) -> bool:
    """A folder of Parquet files (e.g. hive-partitioned `date=2026-04-22/part-0.parquet`)."""
    if not p.is_dir():
        return False
    files = [f for f in p.rglob("*") if f.is_file() and not f.name.startswith((".", "_"))]
    return bool(files) and all(f.suffix == ".parquet" for f in files)


def find_inputs(directory: Path) -> dict[str, list[Path]]:
    """Files and folders of each kind inside a report directory, found by name (sorted; may be empty)."""
    found: dict[str, list[Path]] = {kind: [] for kind in _KIND_PATTERNS}
    if not directory.is_dir():
        raise InputError("not a folder", path=str(directory))
    entries = sorted(e for e in directory.iterdir() if not e.name.startswith("."))
    for entry in entries:
        name = entry.name.lower()
        # Named kinds first: "ledger.log" is the ledger, though *.log would make it a gateway log.
        for kind, patterns in sorted(_KIND_PATTERNS.items(), key=lambda kv: kv[0] == "gateway"):
            if any(Path(name).match(pattern) for pattern in patterns):
                found[kind].append(entry)
                break
    return found


def sniff(path: Path) -> Sniff:
    """Read the magic bytes and a decompressed sample of lines from the start of `path`.

    The sample is at least SAMPLE_BYTES and at least one whole line (up to LINE_LIMIT): a file whose
    first line is a 5 MB prompt is still recognized, not taken for an empty file.
    """
    if path.is_dir():
        return Sniff("parquet", ())
    try:
        with path.open("rb") as f:
            head = f.read(4)
            f.seek(0)
            if head == _PARQUET:
                return Sniff("parquet", ())
            compression = "gzip" if head.startswith(_GZIP) else "zstd" if head.startswith(_ZSTD) else "none"
            data, whole, damaged = _head(f, compression)
    except OSError as e:
        raise InputError(f"cannot read: {e}", path=str(path)) from None
    if damaged and not data.strip():
        raise InputError(f"damaged {compression} stream: not one line could be decompressed", path=str(path))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # PowerShell's `>` writes UTF-16; decoded as UTF-8 every field name would be wrong.
        raise InputError(
            'UTF-16 text (byte-order mark): set encoding = "utf-16" for its kind', path=str(path)
        )
    if b"\n" not in data and b"\r" in data.rstrip(b"\r"):
        # The line readers split on LF only: read as one line, such a file would lose every row.
        raise InputError("lines end in a bare CR (classic Mac); convert them to LF", path=str(path))
    if not whole and b"\n" not in data:
        raise InputError(f"no line break in the first {LINE_LIMIT >> 20} MiB: not a log", path=str(path))
    # A leading byte-order mark (Excel, PowerShell) is not part of the first field's name.
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = text.splitlines()
    if not whole and lines:
        lines = lines[:-1]  # the last one is probably cut in the middle
    return Sniff(compression, tuple(line for line in lines if line.strip()))


def decompress_readable(path: Path, compression: str, out: Path) -> None:
    """Decompress a gzip or zstd file chunk by chunk into `out`, keeping all that precedes damage."""
    with path.open("rb") as f, out.open("wb") as w:
        inflate = _decompressor(compression)
        try:
            while chunk := f.read(_CHUNK):
                while chunk:
                    w.write(inflate.decompress(chunk))
                    chunk = inflate.unused_data  # the next gzip member, if any
                    if chunk:
                        inflate = _decompressor(compression)
        except (zlib.error, zstandard.ZstdError):
            pass  # the damaged rest cannot be read; what came before is already written


def _decompressor(compression: str) -> Any:
    if compression == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    return zstandard.ZstdDecompressor().decompressobj()


def _head(f: BinaryIO, compression: str) -> tuple[bytes, bool, bool]:
    """The first SAMPLE_BYTES (more until a line ends), whether that is the whole file, and damage."""
    # Decompressed by hand so a file cut short still yields its first lines.
    out = bytearray()
    inflate = None if compression == "none" else _decompressor(compression)
    line_ended = False  # looked for in each new piece only: a 64 MiB line must not be rescanned
    while len(out) < SAMPLE_BYTES or (not line_ended and len(out) < LINE_LIMIT):
        chunk = f.read(_CHUNK)
        if not chunk:
            return bytes(out), True, False
        try:
            piece = chunk if inflate is None else inflate.decompress(chunk)
        except (zlib.error, zstandard.ZstdError):
            return bytes(out), False, True
        line_ended = line_ended or b"\n" in piece
        out += piece
    return bytes(out), False, False


def scan_raw_lines(paths: Path | Sequence[Path]) -> pl.LazyFrame:
    """Lines of a text file (plain, gzip or zstd) as `_line` (Int64, 1-based) and `_raw`; blank lines dropped.

    Invalid UTF-8 bytes arrive as U+FFFD; `_reject` is `invalid_char` for a line cut into more pieces
    by the \\x1f byte than the reader can glue back, else null. Several files (a batch, see
    `numbered`) are read as one stream with each row's `_file`.
    """
    lf = pl.scan_csv(
        paths if isinstance(paths, Path) else list(paths),
        has_header=False,
        separator=_UNIT_SEP,
        quote_char=None,
        encoding="utf8-lossy",
        schema={RAW: pl.String, **{p: pl.String for p in (*_PIECES, _OVERFLOW)}},
        missing_columns="insert",
        extra_columns="ignore",
        truncate_ragged_lines=True,
        row_index_name=SOURCE_LINE,
        row_index_offset=1,
        glob=False,
        include_file_paths=None if isinstance(paths, Path) else SOURCE_FILE,
    )
    lf = numbered(lf, paths, first=1)
    glued = pl.concat_str([RAW, *_PIECES], separator=_UNIT_SEP, ignore_nulls=True)
    return (
        lf.with_columns(
            # CRLF files: the reader splits on \n only.
            pl.when(pl.col(_PIECES[0]).is_null())
            .then(pl.col(RAW))
            .otherwise(glued)
            .str.strip_suffix("\r")
            .alias(RAW),
            # A fourth piece means the reader dropped the rest: the line cannot be trusted.
            pl.when(pl.col(_OVERFLOW).is_not_null()).then(pl.lit("invalid_char")).alias(REJECT_REASON),
        )
        .drop(*_PIECES, _OVERFLOW)
        .filter(pl.col(RAW).str.strip_chars().str.len_bytes() > 0)
    )


def numbered(lf: pl.LazyFrame, paths: Path | Sequence[Path], *, first: int) -> pl.LazyFrame:
    """`_line` as an Int64 counted in each file from `first`, from a scan's row index.

    A scan of several files numbers their rows on from one file to the next: each file's numbers are
    shifted back by its first row's. That takes a window over the batch, which is held in memory
    (batches are small files; a single file streams).
    """
    line = pl.col(SOURCE_LINE).cast(pl.Int64)
    if not isinstance(paths, Path):
        line = line - line.min().over(SOURCE_FILE) + first
    return lf.with_columns(line.alias(SOURCE_LINE))
