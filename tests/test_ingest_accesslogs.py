"""Access logs of known proxies and load balancers, text and JSON, and the container wrappers around them.

Each fixture under tests/fixtures/ingest/formats/ is written from the format's own documentation (its
example lines, with LLM-gateway paths and failure cases added in the same layout); each loads detected
from content, every line analyzed, with the canonical values checked line by line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from analyzer import config
from analyzer.config import Settings, SourceConfig
from analyzer.ingest import accesslogs, formats, load
from analyzer.report.notes import sentences

FIXTURES = Path(__file__).parent / "fixtures" / "ingest" / "formats"
COLUMNS = ("ts", "status", "latency_ms", "request_id", "upstream", "endpoint")
# The documentation's own examples are dated 2000-2016 beside 2026 lines: each row is analyzed.
SPREAD = Settings()

CHAT = "/v1/chat/completions"
EXPECTED: dict[str, list[tuple[object, ...]]] = {
    # ts, status, latency_ms, request_id, upstream, endpoint (+ the format's extra columns)
    "envoy": [
        (
            "2016-04-15T20:17:00.310",
            204,
            226.0,
            "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
            "tcp://10.0.2.1:80",
            "/api/v1/locations",
            None,
        ),
        ("2026-04-22T09:00:01.020", 503, 2.0, "0c3a9d0e-1f52-4c1f-9d7a-3f1d2c5e8b10", None, CHAT, "UH"),
        (
            "2026-04-22T09:00:02.500",
            200,
            1532.0,
            "5f4e2b1a-0d9c-4e8f-a7b6-1c2d3e4f5a6b",
            "10.244.1.12:8000",
            CHAT,
            None,
        ),
        (
            "2026-04-22T09:00:03",
            0,
            61.0,
            "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "10.244.1.13:8000",
            "/v1/embeddings",
            "DC",
        ),
    ],
    "haproxy": [
        ("2009-02-06T12:14:14.655", 200, 109.0, None, "static/srv1", "/index.html", "----"),
        ("2009-02-06T12:14:15.012", 503, 0.0, None, None, CHAT, "SC--"),
        ("2009-02-06T12:14:16.100", 200, 2406.0, None, "llm/gpu2", CHAT, "----"),
        ("2009-02-06T12:14:17.250", 504, 30001.0, None, "llm/gpu1", "/v1/completions", "sH--"),
    ],
    "cloudfront": [
        (
            "2019-12-04T21:02:31",
            200,
            1.0,
            "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
            None,
            "/index.html",
            "Hit",
        ),
        (
            "2019-12-04T21:02:32",
            502,
            30004.0,
            "k6WGMNkEzR5BEM_SaF47gjtX9zBDO2m349OY2an0QPEaUum1ZOLrow==",
            None,
            CHAT,
            "Error",
        ),
        (
            "2014-05-23T01:13:11",
            200,
            2.0,
            "MRVMF7KydIvxMWfJIglgwHQwZsbG2IhRJ07sn9AkKUFSHS9EXAMPLE==",
            None,
            "/view/my/file.html",
            "RefreshHit",
        ),
    ],
    "elb": [
        ("2015-05-13T23:39:43.945958", 200, 1.178, None, "10.0.0.1:80", "/", 200),
        ("2015-05-13T23:39:44.945958", 200, 2.471, None, "10.0.0.1:80", "/", 200),
        ("2015-05-13T23:39:45.945958", 504, None, None, None, CHAT, None),
        ("2014-02-15T23:39:43.945958", 502, 2511.124, None, "10.0.0.2:80", "/v1/models", 502),
    ],
    "traefik": [
        ("2023-10-10T13:55:36", 200, 15.0, None, "http://172.17.0.3:8080", "/api/users"),
        ("2023-10-10T11:55:37", 502, 30002.0, None, "http://10.0.0.5:8000", CHAT),
    ],
    "ingress_nginx": [
        (
            "2026-04-22T09:00:01",
            200,
            1532.0,
            "3f2a9c1d7e5b4a6f8091a2b3c4d5e6f7",
            "10.244.1.12:8000",
            CHAT,
            200,
            1,
        ),
        (
            "2026-04-22T09:00:02",
            502,
            104.0,
            "8e7d6c5b4a39281706f5e4d3c2b1a090",
            "10.244.1.13:8000",
            CHAT,
            502,
            2,
        ),
        ("2026-04-22T09:00:03", 200, 0.0, "0b1c2d3e4f5a69788796a5b4c3d2e1f0", None, "/healthz", None, None),
    ],
    "vhost_combined": [
        ("2000-10-10T20:55:36", 200, None, None, None, "/apache_pb.gif"),
        ("2026-04-22T09:00:01", 504, None, None, None, CHAT),
    ],
    "common": [
        ("2000-10-10T20:55:36", 200, None, None, None, "/apache_pb.gif"),
        ("2026-04-22T09:00:01", 500, None, None, None, CHAT),
    ],
    "envoy_json": [
        ("2026-04-22T09:00:01.020", 503, 2.0, "0c3a9d0e-1f52-4c1f-9d7a-3f1d2c5e8b10", None, CHAT, "UH"),
        (
            "2026-04-22T09:00:02.500",
            200,
            1532.0,
            "5f4e2b1a-0d9c-4e8f-a7b6-1c2d3e4f5a6b",
            "10.244.1.12:8000",
            CHAT,
            None,
        ),
        (
            "2026-04-22T09:00:03",
            503,
            61.0,
            "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "10.244.1.13:8000",
            "/v1/embeddings",
            "URX,UF",
        ),
    ],
    "gcp_lb": [
        (
            "2026-04-22T09:00:01.123456",
            200,
            1532.104,
            "projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736",
            "llm-backend",
            CHAT,
            "response_sent_by_backend",
        ),
        (
            "2026-04-22T09:00:02",
            502,
            4.0,
            "projects/my-project/traces/7a1c9e2b5d3f4a6c8e0b1d2f3a4c5e6f",
            "llm-backend",
            CHAT,
            "failed_to_connect_to_backend",
        ),
    ],
    "cloudflare": [
        ("2026-04-22T09:00:01.123", 200, 1530.0, "7d2a8c1e9f3b4a56", "10.0.0.5", CHAT, 200),
        ("2026-04-22T09:00:02", 524, 30000.0, "7d2a8c1e9f3b4a57", "10.0.0.6", CHAT, 0),
    ],
    "caddy": [
        ("2022-03-09T21:30:01.524102", 200, 0.93, None, None, "/"),
        ("2026-04-22T09:00:02.250", 502, 30001.0, None, None, CHAT),
    ],
    "traefik_json": [
        ("2023-10-10T13:55:36.123456", 200, 15.123, None, "172.17.0.3:8080", "/api/users", 200),
        (
            "2023-10-10T13:55:37",
            502,
            30002.0,
            "f00dfeed-0000-4000-8000-000000000001",
            "10.0.0.5:8000",
            CHAT,
            0,
        ),
    ],
    "kong": [
        (
            "2015-06-02T01:50:22.425",
            200,
            1921.0,
            "1d4f6a7c-2b3e-4f5a-8b9c-0d1e2f3a4b5c",
            "httpbin.org",
            "/get",
        ),
        ("2026-04-22T09:00:01", 504, 60010.0, "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d", "llm.internal", CHAT),
    ],
}
EXTRA: dict[str, tuple[str, ...]] = {
    "envoy": ("response_flags",),
    "haproxy": ("response_flags",),
    "cloudfront": ("response_flags",),
    "elb": ("upstream_status",),
    "ingress_nginx": ("upstream_status", "upstream_attempts"),
    "envoy_json": ("response_flags",),
    "gcp_lb": ("response_flags",),
    "cloudflare": ("upstream_status",),
    "traefik_json": ("upstream_status",),
}


@pytest.mark.parametrize("name", list(EXPECTED), ids=list(EXPECTED))
def test_fixture_is_detected_and_every_line_analyzed(name: str) -> None:
    loaded = load("gateway", [FIXTURES / f"{name}.log"], SPREAD)
    (report,) = loaded.inputs
    assert report.format == name
    assert report.rows_rejected == 0 and report.rows_read == len(EXPECTED[name])
    # Latency to the microsecond: "2.511124" s times 1000 is 2511.1240000000003 in floats.
    columns = [
        pl.col(c).round(3) if c == "latency_ms" else pl.col(c) for c in (*COLUMNS, *EXTRA.get(name, ()))
    ]
    got = loaded.frame.sort("_line").select(columns).collect().rows()
    expected = [(datetime.fromisoformat(ts).replace(tzinfo=UTC), *rest) for ts, *rest in EXPECTED[name]]
    assert got == expected


@pytest.mark.parametrize(
    ("wrapped", "inner", "fmt", "lines"),
    [
        pytest.param("docker_nginx", None, "nginx", [(200, 1532.0), (502, 104.0)], id="docker-json-file"),
        pytest.param("cri_envoy", "envoy", "envoy", None, id="cri"),
        pytest.param("compose_caddy", "caddy", "caddy", None, id="compose-prefix"),
        pytest.param("message_envoy", "envoy", "envoy", None, id="json-message"),
    ],
)
def test_container_wrappers_are_taken_off_before_detection(
    wrapped: str, inner: str | None, fmt: str, lines: list[tuple[int, float]] | None
) -> None:
    loaded = load("gateway", [FIXTURES / f"{wrapped}.log"], SPREAD)
    (report,) = loaded.inputs
    assert (report.format, report.rows_rejected) == (fmt, 0)
    wrapper = wrapped.split("_")[0]  # what `inspect` says of the file
    assert f"gateway: {FIXTURES / wrapped}.log: {fmt} lines inside {wrapper} container logs" in sentences(
        loaded.notes
    )
    got = loaded.frame.sort("_line").select(*COLUMNS).collect()
    if inner is None:
        assert got.select("status", "latency_ms").rows() == lines
    else:
        # The same canonical rows as the unwrapped log's first lines.
        plain = (
            load("gateway", [FIXTURES / f"{inner}.log"], SPREAD)
            .frame.sort("_line")
            .select(*COLUMNS)
            .collect()
        )
        assert got.rows() == [r for r in plain.rows() if r in got.rows()] and got.height >= 2
        assert set(got.rows()) <= set(plain.rows())


def test_a_json_message_that_is_no_access_line_stays_json(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    path.write_text('{"ts": "2026-04-22T09:00:00Z", "status": 200, "message": "served in 3 ms"}\n' * 3)
    assert load("gateway", [path], Settings()).inputs[0].format == "jsonl"


def test_wrapper_needs_most_lines(tmp_path: Path) -> None:
    nginx_line = '10.0.0.1 - - [22/Apr/2026:09:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" 0.010 0.009'
    cri = f"2026-04-22T09:00:00.1Z stdout F {nginx_line}"
    path = tmp_path / "mixed.log"
    path.write_text("\n".join([cri, nginx_line, nginx_line]) + "\n")
    (report,) = load("gateway", [path], Settings()).inputs
    # One wrapped line of three: nothing is unwrapped, the wrapped line is not nginx's.
    assert (report.format, report.rejects_by_reason) == ("nginx", {"unparsable_line": 1})
    path.write_text("\n".join([cri, cri, nginx_line]) + "\n")
    (report,) = load("gateway", [path], Settings()).inputs
    assert (report.format, report.rows_rejected) == ("nginx", 0)


def test_cloudfront_header_lines_are_not_rows() -> None:
    lines = pl.LazyFrame({"_line": [1, 2, 3], "_raw": ["#Version: 1.0", "#Fields: date time", "garbage"]})
    out = accesslogs.parse(lines, accesslogs.BY_NAME["cloudfront"]).collect()
    assert out["_line"].to_list() == [3] and out["_reject"].to_list() == ["unparsable_line"]


@pytest.mark.parametrize(
    ("line", "fmt"),
    [
        pytest.param(
            '1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" 7 "r@docker" "http://s" 3ms',
            "traefik",
            id="traefik-before-nginx",
        ),
        pytest.param(
            '1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" 0.010 0.009',
            "nginx",
            id="nginx",
        ),
        pytest.param(
            '1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5',
            "common",
            id="common-after-nginx",
        ),
    ],
)
def test_detection_order(tmp_path: Path, line: str, fmt: str) -> None:
    path = tmp_path / "access.log"
    path.write_text(line + "\n")
    assert load("gateway", [path], Settings()).inputs[0].format == fmt


def test_ingress_lines_are_nginx_when_a_log_format_is_configured(tmp_path: Path) -> None:
    from analyzer.ingest import nginx

    settings = Settings(gateway=SourceConfig(log_format=nginx.INGRESS_LOG_FORMAT))
    loaded = load("gateway", [FIXTURES / "ingress_nginx.log"], settings)
    assert loaded.inputs[0].format == "nginx" and loaded.inputs[0].rows_rejected == 0


def test_haproxy_timers_and_truncated_request() -> None:
    raw = [
        "10.0.1.3:1 [06/Feb/2009:12:14:16.100] fe be/s1 5/0/1/-1/-1 200 10 - - CD-- 1/1/1/1/0 0/0",
        '10.0.1.3:1 [06/Feb/2009:12:14:16.100] fe be/s1 5/0/1/2/+9 200 10 - - ---- 1/1/1/1/0 0/0 "POST /v1/chat/compl',
    ]
    out = accesslogs.parse(
        pl.LazyFrame({"_line": [1, 2], "_raw": raw}), accesslogs.BY_NAME["haproxy"]
    ).collect()
    # No request at all is no HAProxy HTTP line; a request cut by the log length still is one.
    assert out["_reject"].to_list() == ["unparsable_line", None]
    assert out["latency"].to_list() == [None, "9"] and out["request_path"].to_list() == [
        None,
        "/v1/chat/compl",
    ]


def test_config_knows_every_format_of_the_table() -> None:
    assert set(config.FORMATS) == {f.name for f in formats.FORMATS}


def _readme_samples() -> list[tuple[str, str]]:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    table = text.split("| format | sample line |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `(.+?)`(?: \(.*\))? \|$", table, flags=re.MULTILINE)
    return [(name, line.replace("␉", "\t")) for name, line in rows]


def test_readme_lists_a_sample_line_of_every_text_format(tmp_path: Path) -> None:
    samples = dict(_readme_samples())
    binary_or_headed = {"parquet", "jsonl", "csv", "tsv"}  # no one line says what these are
    assert set(samples) == {f.name for f in formats.FORMATS} - binary_or_headed
    for name, line in samples.items():
        path = tmp_path / f"{name}.log"
        path.write_text(line + "\n")
        (report,) = load("gateway", [path], Settings()).inputs
        assert (report.format, report.rows_rejected) == (name, 0), line


def test_damaged_combined_lines_are_analyzed_and_counted_in_the_notes() -> None:
    path = FIXTURES / "damaged_combined.log"
    loaded = load("gateway", [path], Settings())
    (report,) = loaded.inputs
    # The user agent (line 6) and the referer (line 7) are cut; line 8 stops before its bytes.
    assert (report.format, report.rows_analyzed, report.rejects_by_reason) == (
        "nginx",
        7,
        {"unparsable_line": 1},
    )
    got = (
        loaded.frame.filter(pl.col("_line") >= 6)
        .select("_line", "status", "latency_ms", "endpoint")
        .collect()
    )
    assert got.rows() == [(6, 502, None, CHAT), (7, 200, None, "/v1/models")]
    assert (
        f"gateway: {path}: 2 lines analyzed with a damaged http_referer or http_user_agent (cut short)"
        in sentences(loaded.notes)
    )


def test_a_whole_log_has_no_damage_note_and_common_lines_stay_common() -> None:
    assert not [
        n
        for n in sentences(load("gateway", [FIXTURES / "ingress_nginx.log"], Settings()).notes)
        if "damaged" in n
    ]
    (report,) = load("gateway", [FIXTURES / "common.log"], Settings()).inputs
    assert report.format == "common"


def test_damage_is_counted_per_file_in_a_batch(tmp_path: Path) -> None:
    text = (FIXTURES / "damaged_combined.log").read_text()
    (tmp_path / "a.log").write_text(text)
    (tmp_path / "b.log").write_text(
        text.replace("10.0.0.", "10.0.9.") + text.splitlines()[0].replace("09:00:01", "09:01:01") + "\n"
    )
    notes = [n for n in sentences(load("gateway", [tmp_path], Settings()).notes) if "damaged" in n]
    assert notes == [
        f"gateway: {tmp_path / name}: 2 lines analyzed with a damaged http_referer or http_user_agent (cut short)"
        for name in ("a.log", "b.log")
    ]
