"""Inputs and outputs as object-storage URLs, against a local S3 server (tests/s3server.py).

The same bytes read from a bucket give the same report as read from disk, apart from the names of the
inputs (their URLs); storage errors are one line naming the URL and exit code 2.
"""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path

import pytest
import zstandard
from s3server import S3
from typer.testing import CliRunner

from analyzer import objstore
from analyzer.cli import app
from analyzer.errors import InputError

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"
FORMATS = Path(__file__).resolve().parent / "fixtures" / "ingest" / "formats"
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one `analyzer` call."""
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def _unnamed(text: str, *prefixes: str) -> str:
    """`text` with each prefix of an input's name taken out (a local folder, a bucket's URL)."""
    for prefix in prefixes:
        text = text.replace(prefix, "")
    return text


@pytest.fixture(scope="module")
def local_report() -> str:
    code, out, err = run("report", SAMPLE, "--json", "-", "--quiet")
    assert code == 0, err
    return _unnamed(out, f"{SAMPLE.parent}/")


def test_the_sample_in_a_bucket_gives_the_local_report(s3: S3, local_report: str) -> None:
    url = s3.upload(SAMPLE, "sample_logs")
    code, out, err = run("report", url, "--json", "-", "--quiet")
    assert code == 0, err
    doc = json.loads(out)
    assert f"{url}/gateway/gateway-2026-04-22T06.jsonl.gz" in [i["path"] for i in doc["inputs"]]
    assert all(i["path"].startswith(f"{url}/") for i in doc["inputs"])
    assert _unnamed(out, f"{s3.url()}/") == local_report


def test_explicit_urls_and_a_glob_over_many_objects(s3: S3) -> None:
    s3.upload(SAMPLE / "gateway", "day/gateway")
    s3.put("day/gateway/README.md", b"not a log\n")
    glob = s3.url("day/gateway/*T1?.jsonl.gz")
    code, out, err = run("inspect", glob, "--json")
    assert code == 0, err
    local = json.loads(run("inspect", SAMPLE / "gateway" / "*T1?.jsonl.gz", "--json")[1])
    remote = json.loads(out)
    assert [r["path"] for r in remote] == [
        s3.url(f"day/gateway/gateway-2026-04-22T{h}.jsonl.gz") for h in range(10, 20)
    ]
    assert [{**r, "path": None} for r in remote] == [{**r, "path": None} for r in local]
    assert {r["compression"] for r in remote} == {"gzip"}
    # `**` crosses folders; `*` does not.
    assert len(objstore.listing(s3.url("day/**/*.gz"))) == 18
    with pytest.raises(InputError, match="glob matches no object"):
        objstore.listing(s3.url("day/*.gz"))


def test_a_text_format_and_zstd_objects(s3: S3) -> None:
    text = (FORMATS / "haproxy.log").read_bytes()
    url = s3.put("lb/haproxy.log.zst", zstandard.ZstdCompressor().compress(text))
    code, out, err = run("inspect", url, "--json")
    assert code == 0, err
    [remote] = json.loads(out)
    [local] = json.loads(run("inspect", FORMATS / "haproxy.log", "--json")[1])
    assert (remote["path"], remote["format"], remote["compression"]) == (url, "haproxy", "zstd")
    assert {**remote, "path": None, "compression": None} == {**local, "path": None, "compression": None}
    assert remote["rows_read"] > 0


def test_a_broken_object_keeps_its_url_and_line_in_the_rejects(s3: S3, tmp_path: Path) -> None:
    lines = [
        b'{"timestamp": "2026-04-22T09:00:01Z", "status": 200, "model": "m"}',
        b'{"timestamp": "2026-04-22T09:00:02Z", "status": 502, "model": "m"}',
        b'{"timestamp": "2026-04-22T09:00:03Z", "status": "OK?", "model": "m"}',
        b'{"timestamp": "not a time", "status": 200, "model": "m"}',
    ]
    url = s3.put("broken/gateway.jsonl.gz", gzip.compress(b"\n".join(lines) + b"\n"))
    rejects = tmp_path / "rejects.csv"
    code, out, err = run("inspect", url, "--json", "--rejects", rejects)
    assert code == 0, err
    [report] = json.loads(out)
    assert (report["rows_read"], report["rows_rejected"]) == (4, 2)
    rows = rejects.read_text().splitlines()
    assert rows[0].startswith("file,line,reason")
    assert [r.split(",")[:3] for r in rows[1:]] == [
        [url, "3", "bad_value:status"],
        [url, "4", "bad_value:ts"],
    ]


def test_a_gzip_object_cut_short_is_read_up_to_the_cut(s3: S3) -> None:
    whole = (SAMPLE / "gateway" / "gateway-2026-04-22T09.jsonl.gz").read_bytes()
    url = s3.put("cut/gateway.jsonl.gz", whole[: len(whole) // 2])
    code, out, err = run("report", "--gateway", url, "--json", "-", "--quiet")
    assert code == 0, err
    doc = json.loads(out)
    assert 0 < doc["inputs"][0]["rows_read"] < 2000
    assert any(url in n and "truncated" in n for n in doc["notes"])


def test_convert_to_a_url_then_report_from_it(s3: S3, tmp_path: Path) -> None:
    # Two hours of the sample's gateway logs: enough for every file convert writes, fast to convert.
    given = ["--gateway", SAMPLE / "gateway" / "*T1[01].jsonl.gz", "--events", SAMPLE / "events.jsonl"]
    local_out = tmp_path / "canonical"
    assert run("convert", *given, "--out", local_out, "--quiet")[0] == 0
    code, local, err = run("report", local_out, "--json", "-", "--quiet")
    assert code == 0, err
    out = s3.url("canonical")
    code, _, err = run("convert", *given, "--out", out, "--quiet")
    assert code == 0, err
    keys = s3.keys("canonical/")
    assert "canonical/manifest.json" in keys and "canonical/rejects.parquet" in keys
    assert {k.split("/")[2] for k in keys if k.startswith("canonical/gateway/")} == {
        "hour=2026-04-22T10",
        "hour=2026-04-22T11",
    }
    code, remote, err = run("report", out, "--json", "-", "--quiet")
    assert code == 0, err
    # The manifest names the original inputs (the same local files both times).
    assert remote == local
    # A second conversion replaces the first; a prefix holding something else is refused.
    assert run("convert", "--gateway", SAMPLE / "gateway" / "*T12.jsonl.gz", "--out", out, "--quiet")[0] == 0
    assert {k.split("/")[2] for k in s3.keys("canonical/gateway/")} == {"hour=2026-04-22T12"}
    assert "canonical/events.parquet" not in s3.keys("canonical/")
    s3.put("other/notes.txt", b"mine\n")
    code, _, err = run("convert", *given, "--out", s3.url("other"), "--quiet")
    assert code == 2
    assert err.strip() == f"error: {s3.url('other')}: prefix is not empty and holds no earlier conversion"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_bucket_that_does_not_exist(s3: S3) -> None:
    code, _, err = run("report", "--gateway", "s3://no-such-bucket/logs/*.gz", "--quiet")
    assert code == 2
    assert _one_line(err) == "error: s3://no-such-bucket/logs/*.gz: cannot list: no such bucket"


def test_an_object_that_does_not_exist(s3: S3) -> None:
    s3.put("logs/a.jsonl", b'{"ts": 1}\n')
    code, _, err = run("inspect", s3.url("logs/b.jsonl"))
    assert (code, _one_line(err)) == (2, f"error: {s3.url('logs/b.jsonl')}: no such object or prefix")


def test_an_endpoint_that_cannot_be_reached(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    code, _, err = run("report", s3.url("sample_logs"), "--quiet")
    assert code == 2
    assert _one_line(err) == (
        f"error: {s3.url('sample_logs')}: cannot list: cannot reach the storage endpoint http://127.0.0.1:{port}"
    )


def test_credentials_refused_and_missing(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import settings

    s3.put("logs/a.jsonl", b'{"ts": 1}\n')
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server checks keys from now on
    code, _, err = run("inspect", s3.url("logs/a.jsonl"))
    assert (code, _one_line(err)) == (
        2,
        f"error: {s3.url('logs/a.jsonl')}: cannot list: access denied",
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.aws either
    code, _, err = run("inspect", s3.url("logs/a.jsonl"))
    assert code == 2
    line = _one_line(err)
    assert line.startswith(f"error: {s3.url('logs/a.jsonl')}: cannot list: ")
    assert line.endswith(
        "(no credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    )


@pytest.mark.parametrize(
    ("given", "url"),
    [
        pytest.param("s3://b/k/x.gz", "s3://b/k/x.gz", id="url"),
        pytest.param(Path("s3://b/k/x.gz"), "s3://b/k/x.gz", id="as-pathlib-spells-it"),
        pytest.param("gs://b/k", "gs://b/k", id="gcs"),
        pytest.param("az://container/k", "az://container/k", id="azure"),
        pytest.param("logs/s3/x.gz", None, id="local"),
        pytest.param("s3:", None, id="no-bucket"),
    ],
)
def test_url_of(given: str | Path, url: str | None) -> None:
    assert objstore.url_of(given) == url


@pytest.mark.parametrize(
    ("glob", "key", "matches"),
    [
        pytest.param("a/*.gz", "a/x.gz", True, id="star"),
        pytest.param("a/*.gz", "a/b/x.gz", False, id="star-within-a-segment"),
        pytest.param("a/**/x.gz", "a/x.gz", True, id="double-star-none"),
        pytest.param("a/**/x.gz", "a/b/c/x.gz", True, id="double-star-many"),
        pytest.param("a/x?.gz", "a/x1.gz", True, id="question"),
        pytest.param("a/x[0-2].gz", "a/x3.gz", False, id="class"),
        pytest.param("a/x[!0-2].gz", "a/x3.gz", True, id="negated-class"),
    ],
)
def test_glob_over_keys(glob: str, key: str, matches: bool) -> None:
    assert bool(objstore._pattern(glob).match(key)) is matches
