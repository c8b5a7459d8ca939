"""A local S3 server for tests: moto's server mode on the loopback address, never the network.

    def test_x(s3: S3) -> None:          # the environment points at the server for this test only
        s3.put("logs/a.jsonl", b"...")    # into a bucket of the test's own
        s3.upload(Path("sample_logs"), "sample_logs")
        analyzer report s3.url("sample_logs")   # s3://<bucket>/sample_logs

`s3_server` (session) starts one ThreadedMotoServer on 127.0.0.1 and a free port and gives its
endpoint; `s3` (per test) sets AWS_ENDPOINT_URL, dummy keys, a region and AWS_MAX_ATTEMPTS=1 with
monkeypatch (undone after the test) and makes a fresh bucket, so tests never see each other's
objects. Import both names into a test module (`from s3server import S3, s3, s3_server`) or use
them through conftest.py, which imports them for every module.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_BUCKETS = itertools.count()


@dataclass(frozen=True)
class S3:
    """One test's bucket on the local server."""

    endpoint: str
    bucket: str
    client: Any  # a boto3 S3 client on the server

    def url(self, key: str = "") -> str:
        """`s3://<bucket>/<key>`."""
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def put(self, key: str, body: bytes) -> str:
        """Write one object; its URL."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return self.url(key)

    def upload(self, folder: Path, prefix: str) -> str:
        """Every file under `folder` as objects under `prefix` (same relative keys); the prefix's URL."""
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            self.put(f"{prefix}/{file.relative_to(folder).as_posix()}", file.read_bytes())
        return self.url(prefix)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object's key under `prefix`, sorted (not the markers PyArrow leaves for emptied folders)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(
            o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")
        )


_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",  # an error is reported at once, not after the SDK's retries
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups from a test
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint (`http://127.0.0.1:PORT`) of a moto S3 server running for the whole test session."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request in the test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server._server.server_address  # port 0: the free port the OS gave
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket on the local server, with the environment pointing at it for this test."""
    import boto3

    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    for name, value in _ENV.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_server)
    bucket = f"test-{next(_BUCKETS)}"
    client.create_bucket(Bucket=bucket)
    return S3(s3_server, bucket, client)
