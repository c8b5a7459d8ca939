"""ALB parser: literal entries with known fields, older and newer layouts, sniffing, and properties."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.ingest.alb import ALB_FIELD_NAMES, looks_like_alb, parse_alb

HEAD = "https 2018-07-02T22:23:00.186641Z app/lb/50dc 192.168.131.39:2817"
ARN = "arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/t/73e2"
MODERN = (
    f'{HEAD} 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 "GET https://api.example.com:443/v1/chat?x=1 HTTP/1.1" '
    f'"curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 {ARN} "Root=1-5833" "api.example.com" "arn:cert" 1 '
    '2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1 "newer field"'
)
BAD_GATEWAY = (
    f'{HEAD} - -1 -1 -1 502 - 34 366 "POST https://api.example.com:443/v1/x HTTP/1.1" "ua" - - - "Root=1-9"'
)


def _parse(lines: list[str | None]) -> pl.DataFrame:
    frame = pl.LazyFrame(
        {"_line": list(range(1, len(lines) + 1)), "_raw": lines},
        schema={"_line": pl.Int64, "_raw": pl.String},
    )
    return parse_alb(frame).collect()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            MODERN,
            {
                "target_port": "10.0.0.1:80",
                "latency_s": "0.171",
                "request_path": "/v1/chat",
                "request_method": "GET",
                "conn_trace_id": "TID_1",
                "redirect_url": None,
            },
            id="modern-with-newer-trailing-field",
        ),
        pytest.param(
            BAD_GATEWAY,
            {"elb_status_code": "502", "target_status_code": None, "latency_s": None, "domain_name": None},
            id="502-with-minus-one-times",
        ),
        pytest.param(
            MODERN.split(' "api.example.com"')[0],
            {"trace_id": "Root=1-5833", "domain_name": None, "latency_s": "0.171"},
            id="older-format-stops-at-trace-id",
        ),
        pytest.param(
            MODERN.replace('"curl/7.46.0"', '"Evil \\"agent\\" [x] (y z)"'),
            {"user_agent": 'Evil "agent" [x] (y z)', "ssl_protocol": "TLSv1.2"},
            id="escaped-quotes-hostile-agent",
        ),
        pytest.param(
            MODERN.replace('"GET https://api.example.com:443/v1/chat?x=1 HTTP/1.1"', '"- - - "'),
            {"request_method": None, "request_path": None, "elb_status_code": "200"},
            id="dash-request",
        ),
    ],
)
def test_alb_fields(line: str, expected: dict[str, str | None]) -> None:
    row = _parse([line]).row(0, named=True)
    assert row["_reject"] is None
    assert {k: row[k] for k in expected} == expected


def test_non_numeric_time_and_blank_are_rejected() -> None:
    out = _parse([MODERN.replace("0.086", "fast"), "", None, MODERN])
    assert out["_reject"].to_list() == ["unparsable_line", "blank", "blank", None]


def test_looks_like_alb() -> None:
    assert looks_like_alb([MODERN, BAD_GATEWAY])
    assert not looks_like_alb(['1.2.3.4 - - [12/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"'])
    assert not looks_like_alb([])


_QUOTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(
    lambda s: s != "-"
)
_TOKEN = st.from_regex(r"[A-Za-z0-9_.:/=-]{2,20}", fullmatch=True)
_QUOTED = {"request", "user_agent", "trace_id", "domain_name", "chosen_cert_arn", "actions_executed"}
_QUOTED |= {"redirect_url", "error_reason", "target_port_list", "target_status_code_list"}
_QUOTED |= {"classification", "classification_reason"}
_TIMES = ("request_processing_time", "target_processing_time", "response_processing_time")


@st.composite
def _entry(draw: st.DrawFn) -> dict[str, str]:
    keep = draw(st.integers(18, len(ALB_FIELD_NAMES)))
    values: dict[str, str] = {}
    for name in ALB_FIELD_NAMES[:keep]:
        if name in _TIMES:
            values[name] = f"{draw(st.integers(0, 99999)) / 1000:.3f}"
        else:
            values[name] = draw(_QUOTABLE if name in _QUOTED else _TOKEN)
    return values


def _render(values: dict[str, str]) -> str:
    def one(name: str, v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' if name in _QUOTED else v

    return " ".join(one(n, v) for n, v in values.items())


@settings(max_examples=20, deadline=None)
@given(st.lists(_entry(), min_size=1, max_size=6))
def test_generated_entries_round_trip(entries: list[dict[str, str]]) -> None:
    out = _parse([_render(e) for e in entries])
    assert out["_reject"].null_count() == len(entries)
    for row, entry in zip(out.to_dicts(), entries, strict=True):
        assert {n: row[n] for n in ALB_FIELD_NAMES} == {n: entry.get(n) for n in ALB_FIELD_NAMES}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.none() | st.text(max_size=400), min_size=1, max_size=10))
def test_any_text_is_parsed_or_rejected(lines: list[str | None]) -> None:
    out = _parse(lines)
    assert out["_line"].to_list() == list(range(1, len(lines) + 1))
    assert set(out["_reject"].drop_nulls()) <= {"blank", "unparsable_line"}
    rejected = out.filter(pl.col("_reject").is_not_null())
    assert rejected.select(pl.all_horizontal(pl.col(list(ALB_FIELD_NAMES)).is_null())).to_series().all()
