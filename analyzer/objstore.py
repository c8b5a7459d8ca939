"""Inputs and outputs in object storage: `s3://`, `gs://`, `az://` (and `abfs://`) URLs.

    s3://logs/2026-04-22/*.jsonl.gz ──listing──▶ objects (a glob over the listing, a prefix, an object)
          │
          ▼ localized: each object streamed once (its bytes as stored, still compressed) to
    <spool>/s3/logs/2026-04-22/gateway-…T09.jsonl.gz   a local copy with the object's mtime
          │
          ▼ the reader as for local files (sniffing, every format, gzip/zstd, damaged streams, batches)
    label(): a copy's path is named by its URL again, in every report, reject and error

Why copies and not Polars' cloud scans: the reader sniffs each input's start, reads a gzip trailer,
re-reads a damaged stream up to its break, transcodes legacy encodings and scans batches of small
files; all of that wants a local file that can seek. One GET per object fetches exactly its bytes
(Polars' cloud scan of one gzip object made a HEAD and three ranged GETs), and the copy is the
compressed object: the disk it needs is the input's stored size, removed when the process exits.

Listing and byte streams are PyArrow's filesystems (S3FileSystem, GcsFileSystem, AzureFileSystem), with
credentials from the environment as the cloud SDKs take them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, instance roles; GOOGLE_APPLICATION_CREDENTIALS; AZURE_STORAGE_ACCOUNT_NAME and
AZURE_STORAGE_ACCOUNT_KEY). AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) points S3 at another server
(MinIO, moto), AWS_MAX_ATTEMPTS bounds the retries. A bucket that does not exist, credentials that are
refused or an endpoint that cannot be reached is one InputError naming the URL.

`pathlib.Path("s3://b/k")` is `s3:/b/k`; `url_of` reads both spellings, so a URL can travel through
the CLI's Path options unchanged.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow.fs as pafs  # type: ignore[import-untyped]  # (no type stubs)

from analyzer.errors import AnalyzerError, InputError, OutputError

# The schemes read; abfs(s) carries its account in the URL, az takes it from the environment.
SCHEMES: Final = ("s3", "gs", "gcs", "az", "abfs", "abfss")
_URL: Final = re.compile(rf"^({'|'.join(SCHEMES)}):/+(?=[^/])")
_CHUNK: Final = 1 << 20  # bytes copied at a time: an object is never held in memory whole
_MAGIC: Final = re.compile(r"[*?[]")
_AWS_ATTEMPTS: Final = 3  # the AWS SDKs' standard retry mode's default


def url_of(given: str | Path) -> str | None:
    """The object-storage URL `given` names (also as pathlib spells it, `s3:/b/k`), else None."""
    text = str(given)
    m = _URL.match(text)
    return None if m is None else f"{m[1]}://{text[m.end() :]}"


def is_url(given: str | Path) -> bool:
    """Whether `given` names an object in object storage rather than a local path."""
    return url_of(given) is not None


@dataclass(frozen=True)
class _Where:
    scheme: str
    bucket: str  # the bucket (S3, GCS) or container (Azure; abfs: container@account...)
    key: str  # without a leading slash; "" for the bucket itself

    @property
    def url(self) -> str:
        return (
            f"{self.scheme}://{self.bucket}/{self.key}".rstrip("/")
            if self.key
            else f"{self.scheme}://{self.bucket}"
        )

    @property
    def fs_path(self) -> str:
        return f"{self.bucket}/{self.key}".rstrip("/")


def _where(url: str) -> _Where:
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    return _Where(scheme, bucket, key.strip("/"))


# ---------------------------------------------------------------------------------------------------
# Filesystems and their errors


# The environment variables a filesystem is made from: a filesystem is made again when they change.
_ENVIRONMENT: Final = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_MAX_ATTEMPTS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def _filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    return _made(scheme, bucket, tuple(os.environ.get(n) for n in _ENVIRONMENT))


@functools.cache
def _made(scheme: str, bucket: str, _environment: tuple[str | None, ...]) -> pafs.FileSystem:
    if scheme == "s3":
        return _s3(bucket)
    if scheme in ("gs", "gcs"):
        return pafs.GcsFileSystem()
    if scheme == "az":
        account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME") or os.environ.get("AZURE_STORAGE_ACCOUNT")
        if not account:
            raise InputError(
                "az:// needs the storage account in AZURE_STORAGE_ACCOUNT_NAME", path=f"az://{bucket}"
            )
        return pafs.AzureFileSystem(
            account_name=account, account_key=os.environ.get("AZURE_STORAGE_ACCOUNT_KEY") or None
        )
    filesystem, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}/")
    return filesystem


def _s3(bucket: str) -> pafs.S3FileSystem:
    """S3 as the AWS SDKs configure it from the environment (PyArrow's own constructor reads keys,
    profile and roles, but not the endpoint or the retry count)."""
    kw: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        kw.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region is None and not endpoint:
        try:
            region = pafs.resolve_s3_region(bucket)
        except OSError as e:
            raise _failure(f"s3://{bucket}", e) from None
    attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or _AWS_ATTEMPTS)
    return pafs.S3FileSystem(
        region=region or "us-east-1",
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=max(1, attempts)),
        # An output smaller than a part is one PutObject, not a multipart upload of one part.
        allow_delayed_open=True,
        **kw,
    )


# The AWS SDK's error names (as PyArrow reports them) in a sentence of our own.
_AWS_ERRORS: Final = {
    "NO_SUCH_BUCKET": "no such bucket",
    "NETWORK_CONNECTION": "cannot reach the storage endpoint",
    "NETWORK_CONNECT": "cannot reach the storage endpoint",
    "ACCESS_DENIED": "access denied",
    "INVALID_ACCESS_KEY_ID": "credentials refused (unknown access key)",
    "SIGNATURE_DOES_NOT_MATCH": "credentials refused (wrong secret key)",
    "EXPIRED_TOKEN": "credentials refused (expired token)",
}
_CREDENTIALS: Final = {
    "s3": (
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ),
    "gs": ("GOOGLE_APPLICATION_CREDENTIALS",),
    "gcs": ("GOOGLE_APPLICATION_CREDENTIALS",),
}


def _failure(url: str, e: OSError, *, doing: str = "cannot read") -> InputError:
    """One line for a storage error: what failed, in words, and where credentials were looked for."""
    text = str(e)
    code = re.search(r"AWS Error ([A-Z_]+)", text)
    if code and code[1] in _AWS_ERRORS:
        reason = _AWS_ERRORS[code[1]]
        if reason.startswith("cannot reach"):
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            reason += f" {endpoint}" if endpoint else ""
    else:
        # PyArrow's text: "When listing objects under key 'k' in bucket 'b': AWS Error X during Op: why (Request ID: …)"
        reason = re.sub(r"\s*\(Request ID:[^)]*\)", "", text.split(": ", 1)[-1]).strip() or type(e).__name__
    scheme = url.split("://", 1)[0]
    names = _CREDENTIALS.get(scheme, ())
    if names and not any(os.environ.get(n) for n in names) and not (Path.home() / ".aws").is_dir():
        if code is None or code[1] not in ("NO_SUCH_BUCKET", "NETWORK_CONNECTION", "NETWORK_CONNECT"):
            reason += f" (no credentials in the environment: set {names[0]}" + (
                " and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)" if scheme == "s3" else ")"
            )
    return InputError(f"{doing}: {reason}".replace("\n", " "), path=url)


@contextmanager
def _storage(url: str, doing: str = "cannot read") -> Iterator[None]:
    try:
        yield
    except AnalyzerError:
        raise
    except (OSError, ValueError) as e:  # ValueError: PyArrow on a malformed URL or option
        raise _failure(url, e if isinstance(e, OSError) else OSError(str(e)), doing=doing) from None


# ---------------------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class Object:
    """One object: its URL, size in bytes and last modification (seconds since the epoch)."""

    url: str
    size: int
    mtime: float


def listing(url: str) -> list[Object]:
    """The objects `url` names, sorted by URL: a glob's matches, every object under a prefix, or one.

    `*` and `?` match within a path segment, `**` any number of segments, as local globs do. A glob
    that matches nothing, or a URL that is neither an object nor a prefix, is an InputError.
    """
    where = _where(url)
    magic = _MAGIC.search(where.key)
    with _storage(where.url, "cannot list"):
        filesystem = _filesystem(where.scheme, where.bucket)
        if magic is not None:
            base = where.key[: magic.start()].rpartition("/")[0]
            pattern = _pattern(where.key)
            found = [o for o in _walk(filesystem, where, base) if pattern.match(_where(o.url).key)]
            if not found:
                raise InputError("glob matches no object", path=url)
            return found
        info = filesystem.get_file_info(where.fs_path)
        if info.type == pafs.FileType.File:
            return [_object(where, info)]
        found = _walk(filesystem, where, where.key)
        if not found:
            raise InputError("no such object or prefix" if where.key else "bucket holds no object", path=url)
        return found


def _walk(filesystem: pafs.FileSystem, where: _Where, key: str) -> list[Object]:
    selector = pafs.FileSelector(f"{where.bucket}/{key}".rstrip("/"), recursive=True)
    try:
        infos = filesystem.get_file_info(selector)
    except FileNotFoundError:  # no such prefix (a bucket that does not exist is another error)
        return []
    return sorted((_object(where, i) for i in infos if i.type == pafs.FileType.File), key=lambda o: o.url)


def _object(where: _Where, info: pafs.FileInfo) -> Object:
    key = info.path.partition("/")[2]
    mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
    return Object(f"{where.scheme}://{where.bucket}/{key}", int(info.size or 0), mtime)


def _pattern(glob: str) -> re.Pattern[str]:
    """A key glob as a regex: `*`/`?` within a segment, `**` across segments (also none)."""
    segments = glob.split("/")
    out = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment(segment) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z")


def _segment(segment: str) -> str:
    """One path segment of a glob as a regex that never crosses a `/`."""
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := segment.find("]", i + 2)) != -1:
            inner = segment[i + 1 : end]
            out.append(
                "[^" + re.escape(inner[1:]) + "]" if inner.startswith("!") else "[" + re.escape(inner) + "]"
            )
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# Local copies, and their names


# The folder of local copies, made on first use and removed when the process exits.
_ROOT: list[Path] = []


def _root() -> Path:
    if not _ROOT:
        folder = Path(tempfile.mkdtemp(prefix="analyzer-objects-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _ROOT.append(folder)
    return _ROOT[0]


def copies_folder() -> Path | None:
    """The folder of this process's local copies (None: nothing was fetched)."""
    return _ROOT[0] if _ROOT else None


def use_copies_folder(folder: Path) -> None:
    """Keep this process's copies in `folder`, another process's (a Ray driver's): a path there is a
    copy of the same URL here, and `local_path` fetches one this machine lacks. Not removed at exit:
    the process that made it removes it."""
    if not _ROOT:
        folder.mkdir(parents=True, exist_ok=True)
        _ROOT.append(folder)


def _copy_of(url: str) -> Path:
    where = _where(url)
    return _root() / where.scheme / where.bucket / where.key


def localized(url: str) -> str:
    """Fetch what `url` names into local copies; the local path (or glob) that names the same copies.

    Each object is fetched once per process (a second call finds its copy); a prefix becomes a
    folder of copies laid out as the keys are (hive partitions stay folders), a glob a local glob
    that matches exactly the copies of its matches.
    """
    for item in listing(url):
        fetch(item)
    where = _where(url)
    local = _root() / where.scheme / where.bucket / where.key
    return str(local)


def fetch(item: Object) -> Path:
    """The local copy of one object, streamed on first use (its stored bytes, its mtime)."""
    target = _copy_of(item.url)
    if target.is_file():
        stat = target.stat()
        if stat.st_size == item.size and abs(stat.st_mtime - item.mtime) < 1e-3:
            return target
    where = _where(item.url)
    partial = target.with_name(f".{target.name}.part")
    with _storage(item.url):
        target.parent.mkdir(parents=True, exist_ok=True)
        # compression=None: PyArrow would otherwise inflate a .gz by its name; the reader sniffs bytes.
        with _filesystem(where.scheme, where.bucket).open_input_stream(
            where.fs_path, compression=None
        ) as src:
            with partial.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
    partial.replace(target)
    os.utime(target, (item.mtime, item.mtime))
    return target


def local_path(given: str | Path) -> Path:
    """A local path for `given`: a URL's object (or prefix) fetched, a local path as it is.

    A path inside a fetched prefix that was not fetched (a config's accounts file next to it) is
    fetched from the URL it stands for.
    """
    url = url_of(given)
    if url is not None:
        return Path(localized(url))
    copied = _url_of_copy(str(given))
    if copied is not None and not Path(given).exists():
        return Path(localized(copied))
    return Path(given)


def label(path: str | Path) -> str:
    """How a path is named in reports, rejects and errors: a local copy by its URL, else as given."""
    return _url_of_copy(str(path)) or str(path)


def labelled(column: pl.Expr) -> pl.Expr:
    """`label` on a column of paths (a batch's `_file`)."""
    if not _ROOT:
        return column
    return column.str.replace(f"^{re.escape(str(_ROOT[0]))}/([^/]+)/", "${1}://")


def _url_of_copy(text: str) -> str | None:
    if not _ROOT:
        return None
    root = f"{_ROOT[0]}/"
    if not text.startswith(root):
        return None
    scheme, _, rest = text[len(root) :].partition("/")
    return f"{scheme}://{rest}" if rest else None


@contextmanager
def named_by_url() -> Iterator[None]:
    """Errors raised inside name a local copy by its URL."""
    try:
        yield
    except AnalyzerError as e:
        if e.path is not None and (url := _url_of_copy(e.path)) is not None:
            e.path = url
            e.args = (e.one_line(),)
        raise


# ---------------------------------------------------------------------------------------------------
# Writing a folder of outputs


def keys_under(url: str) -> list[str]:
    """The keys under a prefix, relative to it (empty when it holds nothing)."""
    where = _where(url)
    with _storage(url, "cannot list"):
        filesystem = _filesystem(where.scheme, where.bucket)
        objects = _walk(filesystem, where, where.key)
    return [o.url.removeprefix(where.url).lstrip("/") for o in objects]


def upload_tree(folder: Path, url: str, *, replace: Sequence[str]) -> None:
    """Copy every file under `folder` to the prefix `url` (same relative keys), after deleting what
    the prefix holds under each of the names in `replace` (an earlier run's outputs)."""
    where = _where(url)
    with _storage(url, "cannot write"):
        filesystem = _filesystem(where.scheme, where.bucket)
        # A folder whole (delete_file would leave a marker object behind for each emptied folder).
        for name in sorted({rel.split("/", 1)[0] for rel in keys_under(url)} & set(replace)):
            info = filesystem.get_file_info(f"{where.fs_path}/{name}")
            if info.type == pafs.FileType.Directory:
                filesystem.delete_dir(info.path)
            else:
                filesystem.delete_file(info.path)
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            key = f"{where.fs_path}/{file.relative_to(folder).as_posix()}"
            with file.open("rb") as src, filesystem.open_output_stream(key, compression=None) as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)


def check_writable(url: str, inputs: Sequence[str], *, marker: str) -> None:
    """An output prefix may hold nothing, or an earlier run's outputs (`marker`), and no input."""
    target = url.rstrip("/") + "/"
    for given in inputs:
        if label(given).startswith(target):
            raise OutputError(
                f"refusing to write into a prefix that holds an input ({label(given)})", path=url
            )
    keys = keys_under(url)
    if keys and marker not in keys:
        raise OutputError("prefix is not empty and holds no earlier conversion", path=url)
