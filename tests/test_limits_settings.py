"""The [limits] section: read, resolved relative to the config file, and every bad value one line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from analyzer.config import load_settings
from analyzer.errors import ConfigError
from analyzer.limits import Limit, Tier

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[limits]
accounts = "accounts.csv"
default_tier = "tier1"
day_reset = "08:30"
per_model = true
count_rejected = true
tolerance = 0.1
[limits.tiers.tier0]
concurrency = 1
rpm = 3
tpm = 500000
tpd = 1500000
[limits.tiers.tier1]
concurrency = 50
rpm = 200
tpm = 2000000
"""


def _write(
    d: Path, toml: str, accounts: str | None = "account_id,tier\nacct-1,tier0\nacct-2,tier1\n"
) -> Path:
    (d / "conf").mkdir(exist_ok=True)
    path = d / "conf" / "analyzer.toml"
    path.write_text(toml, encoding="utf-8")
    if accounts is not None:
        (d / "conf" / "accounts.csv").write_text(accounts, encoding="utf-8")
    return path


def test_a_good_section_is_read_with_the_accounts_file_beside_the_config(tmp_path: Path) -> None:
    limits = load_settings(_write(tmp_path, GOOD)).limits
    assert limits is not None
    assert limits.tiers == {"tier0": Tier(1, 3, 500_000, 1_500_000), "tier1": Tier(50, 200, 2_000_000, 0)}
    assert limits.tiers["tier0"].limit(Limit.TPD) == 1_500_000
    assert limits.account_tiers == {"acct-1": "tier0", "acct-2": "tier1"}
    assert limits.accounts == str(tmp_path / "conf" / "accounts.csv")
    assert limits.day_reset == timedelta(hours=8, minutes=30)
    assert (limits.default_tier, limits.per_model, limits.count_rejected, limits.tolerance) == (
        "tier1",
        True,
        True,
        0.1,
    )


def test_no_section_is_no_limits() -> None:
    assert load_settings(None).limits is None


@pytest.mark.parametrize(
    ("edit", "accounts", "field", "message"),
    [
        pytest.param(
            ('default_tier = "tier1"', 'default_tier = "gold"'),
            None,
            "limits.default_tier",
            "unknown tier 'gold'",
            id="unknown-default-tier",
        ),
        pytest.param(
            ("rpm = 3", "rpm = -3"), None, "limits.tiers.tier0.rpm", "must be >= 0", id="negative-limit"
        ),
        pytest.param(
            ("rpm = 3", 'rpm = "3"'), None, "limits.tiers.tier0.rpm", "whole number", id="limit-not-a-number"
        ),
        pytest.param(
            ("rpm = 3", "rpm = 3\nrph = 9"), None, "limits.tiers.tier0.rph", "unknown key", id="unknown-limit"
        ),
        pytest.param(
            ('day_reset = "08:30"', 'day_reset = "8am"'), None, "limits.day_reset", "HH:MM", id="bad-reset"
        ),
        pytest.param(
            ("tolerance = 0.1", "tolerance = 1.5"), None, "limits.tolerance", "[0, 1)", id="bad-tolerance"
        ),
        pytest.param(
            ("per_model = true", "per_model = 1"), None, "limits.per_model", "true or false", id="bad-bool"
        ),
        pytest.param(
            ("per_model = true", "per_model = true\nwindow = 5"),
            None,
            "limits.window",
            "unknown key",
            id="unknown-key",
        ),
        pytest.param(
            ("", ""),
            "account_id,tier\nacct-1,platinum\n",
            "tier",
            "unknown tier 'platinum'",
            id="unknown-tier-in-accounts",
        ),
        pytest.param(("", ""), "id,level\n", None, "account_id,tier", id="accounts-header"),
    ],
)
def test_each_bad_value_is_one_line_naming_the_key(
    tmp_path: Path, edit: tuple[str, str], accounts: str | None, field: str | None, message: str
) -> None:
    kw = {} if accounts is None else {"accounts": accounts}
    path = _write(tmp_path, GOOD.replace(*edit) if edit[0] else GOOD, **kw)
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert e.value.field == field and message in e.value.message
    assert "\n" not in e.value.one_line()


def test_the_unknown_tier_of_an_account_names_the_accounts_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, "account_id,tier\nacct-1,tier0\nacct-2,gold\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert e.value.path == str(tmp_path / "conf" / "accounts.csv") and e.value.line == 3


def test_a_missing_accounts_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, accounts=None)
    with pytest.raises(ConfigError, match="accounts file not found") as e:
        load_settings(path)
    assert e.value.path == str(tmp_path / "conf" / "accounts.csv")


def test_several_tiers_need_a_default_or_an_accounts_file(tmp_path: Path) -> None:
    text = GOOD.replace('accounts = "accounts.csv"\n', "").replace('default_tier = "tier1"\n', "")
    with pytest.raises(ConfigError, match="default_tier") as e:
        load_settings(_write(tmp_path, text))
    assert e.value.field == "limits.default_tier"
    one = "[limits]\n[limits.tiers.only]\nrpm = 5\n"
    limits = load_settings(_write(tmp_path, one)).limits
    assert limits is not None and limits.default_tier == "only"


@pytest.mark.parametrize("name", ["moonshot-tiers.toml"])
def test_the_shipped_tier_files_read(name: str) -> None:
    limits = load_settings(ROOT / "docs" / "limits" / name).limits
    assert limits is not None
    assert [limits.tiers[f"tier{i}"].rpm for i in range(6)] == [3, 200, 500, 5000, 5000, 10000]
    assert [limits.tiers[f"tier{i}"].concurrency for i in range(6)] == [1, 50, 100, 200, 400, 1000]
    assert [limits.tiers[f"tier{i}"].tpm for i in range(6)] == [
        500_000,
        2_000_000,
        3_000_000,
        3_000_000,
        4_000_000,
        5_000_000,
    ]
    assert [limits.tiers[f"tier{i}"].tpd for i in range(6)] == [1_500_000, 0, 0, 0, 0, 0]


def test_the_sample_limits_read() -> None:
    limits = load_settings(ROOT / "sample_logs" / "limits.toml").limits
    assert limits is not None and len(limits.account_tiers) == 200
