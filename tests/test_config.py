"""Settings: defaults, TOML loading, and one-line errors naming the file and key."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analyzer.config import Settings, load_settings, parse_duration
from analyzer.errors import ConfigError

MAPPING = """
[gateway]
clock_offset = "-2s"
[gateway.fields]
ts = "@timestamp"
request_id = "req"
account_id = "user"
model = "llm.model"
latency_ms = "duration_s"
prompt_tokens = "usage.prompt_tokens"
[gateway.units]
ts = "epoch_ms"
latency_ms = "s"
[ledger.fields]
account_id = "customer"
tokens = "debit_tokens"
[bursts]
window = "2m"
statuses = [502, 503]
[weights."kimi-k2.6"]
completion = 2
[prices."kimi-k2.6"]
input_per_million = 0.6
output_per_million = 2.5
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "analyzer.toml"
    p.write_text(text)
    return p


def test_defaults_without_a_file() -> None:
    s = load_settings(None)
    assert s == Settings()
    assert s.bursts.statuses == (500, 502, 503, 504)
    assert s.weights_for("any").prompt == 1


def test_issue_mapping_shape_loads(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, MAPPING))
    assert s.gateway.fields["model"] == "llm.model"
    assert s.gateway.units == {"ts": "epoch_ms", "latency_ms": "s"}
    assert s.gateway.clock_offset == timedelta(seconds=-2)
    assert s.ledger.fields == {"account_id": "customer", "tokens": "debit_tokens"}
    assert s.bursts.window == timedelta(minutes=2)
    assert s.bursts.statuses == (502, 503)
    assert s.weights_for("kimi-k2.6").completion == 2
    assert s.prices["kimi-k2.6"].output_per_million == Decimal("2.5")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("[nope]\n", "unknown table [nope]", id="unknown-table"),
        pytest.param("[bursts]\nwindw = '1m'\n", "field 'bursts.windw'", id="unknown-key"),
        pytest.param("[bursts]\nmin_errors = 'many'\n", "field 'bursts.min_errors'", id="wrong-type"),
        pytest.param("[gateway.units]\nts = 'fortnights'\n", "field 'gateway.units.ts'", id="bad-unit"),
        pytest.param(
            "[gateway.fields]\nnot_a_column = 'x'\n", "not a canonical gateway column", id="bad-column"
        ),
        pytest.param("[gateway]\nclock_offset = 'soon'\n", "not a duration", id="bad-duration"),
        pytest.param("[slo]\ntarget = 1.5\n", "field 'slo.target'", id="bad-slo"),
        pytest.param(
            "[bursts]\nmax_slice_values = 0\n", "field 'bursts.max_slice_values'", id="no-slice-values"
        ),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    msg = e.value.one_line()
    assert str(p) in msg and needle in msg and "\n" not in msg


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "[bursts]\nwindow = '1m'\nthis is not toml\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert e.value.line == 3
    assert f"{p}:3:" in e.value.one_line()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("-2s", -2.0), ("1m", 60.0), ("250ms", 0.25), ("1.5h", 5400.0), ("3d", 259200.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


def test_settings_to_dict_is_plain_json() -> None:
    import json

    d = Settings().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["bursts"]["window"] == 60.0
