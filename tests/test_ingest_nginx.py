"""nginx parser: literal lines with known fields, custom log_format, sniffing, and properties."""

from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analyzer.ingest.nginx import compile_log_format, looks_like_nginx, nginx_fields, parse_nginx

CUSTOM = (
    '$remote_addr [$time_local] "$request" $status $request_time $upstream_addr $upstream_status '
    "$http_x_request_id $http_x_model $http_x_account"
)
T = "[12/Mar/2026:10:00:00 +0000]"


def _parse(lines: list[str | None], log_format: str | None = None) -> pl.DataFrame:
    frame = pl.LazyFrame(
        {"_line": list(range(1, len(lines) + 1)), "_raw": lines},
        schema={"_line": pl.Int64, "_raw": pl.String},
    )
    return parse_nginx(frame, log_format).collect()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            f'10.0.0.1 - acct_1 {T} "POST /v1/chat/completions?x=1 HTTP/1.1" 502 0 "-" "curl/8" 0.120 0.010, 0.020',
            {
                "remote_user": "acct_1",
                "status": "502",
                "request_time": "0.120",
                "upstream_response_time": "0.010, 0.020",
                "upstream_response_time_last": "0.020",
                "request_path": "/v1/chat/completions",
                "request_method": "POST",
                "http_referer": None,
            },
            id="retried-upstream-list",
        ),
        pytest.param(
            f'1.2.3.4 - - {T} "GET / HTTP/1.1" 499 0 "-" "ua" 0.001 -',
            {"upstream_response_time": None, "upstream_response_time_last": None, "remote_user": None},
            id="dash-upstream",
        ),
        pytest.param(
            f'1.2.3.4 - - {T} "GET / HTTP/1.1" 200 5 "-" "Mozilla \\x22evil\\x22 [x] (y; z) \\"q\\"" 0.5 0.4',
            {"http_user_agent": 'Mozilla "evil" [x] (y; z) "q"', "request_time": "0.5"},
            id="escaped-quotes-hostile-agent",
        ),
        pytest.param(
            f'1.2.3.4 - - {T} "GET /a?b HTTP/1.1" 200 5 "-" "curl/8"',
            {"request_time": None, "request_uri": "/a?b", "server_protocol": "HTTP/1.1"},
            id="plain-combined",
        ),
        pytest.param(
            f'1.2.3.4 - - {T} "GET / HTTP/1.1" 200 5 "-" "curl/8" "9.9.9.9"',
            {"request_time": None, "http_user_agent": "curl/8"},
            id="main-format-trailing-field-ignored",
        ),
        pytest.param(
            f'1.2.3.4 - - {T} "\\x16\\x03\\x01" 400 150 "-" "-" 0.000 -',
            {"status": "400", "request_method": None, "request_path": None},
            id="junk-request-line-400",
        ),
    ],
)
def test_default_format_fields(line: str, expected: dict[str, str | None]) -> None:
    row = _parse([line]).row(0, named=True)
    assert row["_reject"] is None
    assert {k: row[k] for k in expected} == expected


def test_rejects_and_rows_kept_in_order() -> None:
    ok = f'1.2.3.4 - - {T} "GET / HTTP/1.1" 200 5 "-" "ua" 0.1 0.1'
    out = _parse(["garbage", ok, "", None, "   "])
    assert_frame_equal(
        out.select("_line", "_reject", "status"),
        pl.DataFrame(
            {
                "_line": [1, 2, 3, 4, 5],
                "_reject": ["unparsable_line", None, "blank", "blank", "blank"],
                "status": [None, "200", None, None, None],
            }
        ),
    )


def test_custom_log_format() -> None:
    line = '1.2.3.4 [12/Mar/2026:10:00:00 +0000] "POST /v1/x HTTP/1.1" 200 0.5 10.0.0.1:80, 10.0.0.2:80 502, 200 req-1 gpt-x acct'
    row = _parse([line, line + " extra"], CUSTOM).row(0, named=True)
    assert row["upstream_addr_last"] == "10.0.0.2:80"
    assert row["upstream_status"] == "502, 200"
    assert row["upstream_status_last"] == "200"
    assert (row["http_x_request_id"], row["http_x_model"], row["http_x_account"]) == (
        "req-1",
        "gpt-x",
        "acct",
    )
    assert _parse([line + " extra"], CUSTOM)["_reject"].to_list() == ["unparsable_line"]


def test_compile_handles_braces_duplicates_and_vars_inside_quotes() -> None:
    p = compile_log_format('"${request_method} $uri" $status $status')
    assert p.fields == ("request_method", "uri", "status", "status_2")
    row = _parse(['"GET /a" 200 201'], '"${request_method} $uri" $status $status').row(0, named=True)
    assert (row["request_method"], row["uri"], row["status"], row["status_2"]) == ("GET", "/a", "200", "201")


def test_nginx_fields_keep_what_the_format_yields() -> None:
    assert nginx_fields() == {
        "ts": "time_local",
        "status": "status",
        "latency_ms": "request_time",
        "endpoint": "request_path",
        "account_id": "remote_user",
    }
    assert nginx_fields(CUSTOM)["upstream"] == "upstream_addr_last"
    assert nginx_fields(CUSTOM)["account_id"] == "http_x_account"


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        pytest.param([f'1.2.3.4 - - {T} "GET / HTTP/1.1" 200 5 "-" "ua"'] * 3, True, id="combined"),
        pytest.param(['{"ts": 1}'] * 3, False, id="jsonl"),
        pytest.param([], False, id="empty"),
    ],
)
def test_looks_like_nginx(sample: list[str], expected: bool) -> None:
    assert looks_like_nginx(sample) is expected


# --- properties --------------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30).filter(
    lambda s: s != "-"
)
_TOKEN = st.from_regex(r"[A-Za-z0-9_.@:]{1,20}", fullmatch=True)
_NUM = st.integers(0, 99999).map(lambda n: f"{n / 1000:.3f}")


def _escape(value: str | None, json_style: bool) -> str:
    if value is None:
        return "-"
    table = {'"': '\\"', "\\": "\\\\"} if json_style else {'"': "\\x22", "\\": "\\x5C"}
    return "".join(table.get(c, c) for c in value)


@st.composite
def _records(draw: st.DrawFn) -> dict[str, str | None]:
    path = "/" + draw(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Z")), max_size=20))
    ts = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))
    return {
        "remote_addr": draw(_TOKEN),
        "remote_user": draw(st.none() | _TOKEN),
        "time_local": ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "request": f"{draw(st.sampled_from(['GET', 'POST']))} {path} HTTP/1.1",
        "status": str(draw(st.integers(100, 599))),
        "body_bytes_sent": str(draw(st.integers(0, 10**9))),
        "http_referer": draw(st.none() | _TEXT),
        "http_user_agent": draw(st.none() | _TEXT),
        "request_time": draw(_NUM),
        "upstream_response_time": draw(st.none() | st.lists(_NUM, min_size=1, max_size=3).map(", ".join)),
    }


def _render(r: dict[str, str | None], json_style: bool) -> str:
    e = {k: _escape(v, json_style) for k, v in r.items()}
    return (
        f'{e["remote_addr"]} - {e["remote_user"]} [{e["time_local"]}] "{e["request"]}" {e["status"]} '
        f'{e["body_bytes_sent"]} "{e["http_referer"]}" "{e["http_user_agent"]}" {e["request_time"]} '
        f"{e['upstream_response_time']}"
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records(), min_size=1, max_size=8), st.booleans())
def test_generated_lines_round_trip(records: list[dict[str, str | None]], json_style: bool) -> None:
    out = _parse([_render(r, json_style) for r in records])
    assert out["_reject"].null_count() == len(records)
    assert out.select(list(records[0])).to_dicts() == records
    paths = [r["request"].split(" ", 1)[1].rsplit(" ", 1)[0].split("?")[0].split("#")[0] for r in records]  # type: ignore[union-attr]
    assert out["request_path"].to_list() == paths


_JUNK = st.text(max_size=300) | st.text(st.sampled_from('"[]\\ -0a\u00e9\u4e2d'), max_size=80)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.none() | _JUNK, min_size=1, max_size=10), st.sampled_from([None, CUSTOM]))
def test_any_text_is_parsed_or_rejected(lines: list[str | None], log_format: str | None) -> None:
    out = _parse(lines, log_format)
    assert out["_line"].to_list() == list(range(1, len(lines) + 1))
    assert set(out["_reject"].drop_nulls()) <= {"blank", "unparsable_line"}
    fields = compile_log_format(log_format).fields
    rejected = out.filter(pl.col("_reject").is_not_null())
    assert rejected.select(pl.all_horizontal(pl.col(fields).is_null())).to_series().all()


def test_very_long_line_does_not_crash() -> None:
    long_ua = "x [y] \\x22 " * 20_000
    out = _parse([f'1.2.3.4 - - {T} "GET / HTTP/1.1" 200 5 "-" "{long_ua}" 0.1 0.1'])
    assert out["_reject"].to_list() == [None]
    assert out["http_user_agent"].str.len_chars().to_list() == [len(long_ua.replace("\\x22", '"'))]
