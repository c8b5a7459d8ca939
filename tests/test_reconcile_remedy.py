"""The quota reset as a remedy, on small hand-made ledgers whose answers were worked out by hand."""

from __future__ import annotations

import polars as pl
import pytest

from analyzer.config import Settings
from analyzer.reconcile import reconcile
from analyzer.reconcile.remedy import Remedy
from tests.test_reconcile import _gateway, _ledger, _t


def _remedy(
    gw_rows: list[tuple[float, str | None, str, str, int, int | None, int | None]],
    lg_rows: list[tuple[float, str, str, str | None, str, int, int | None]],
) -> Remedy:
    r = reconcile(_gateway(gw_rows), _ledger(lg_rows), Settings())
    assert all(i.holds for i in r.invariants), r.invariants
    assert r.remedy is not None
    return r.remedy


def _row(rem: Remedy, account: str) -> dict[str, object]:
    return rem.accounts.filter(pl.col("account_id") == account).row(0, named=True)


# Account a: quota 1000; overcharged 20 at minute 10 (expected 10, charged 30), reset at 30 sets 1000 back:
# balance before 1000 - 30 - 10 = 960, restored 40, owed 20 before it, 20 beyond; then overcharged 5
# after it (charged 15 for 10): owed after the reset 5, not made whole.
GW_A = [(10, "r1", "a", "m", 200, 10, 0), (20, "r2", "a", "m", 200, 10, 0), (40, "r3", "a", "m", 200, 10, 0)]
LG_A = [
    (1, "a0", "a", None, "grant", 1000, 1000),
    (10, "a1", "a", "r1", "deduct", 30, 970),
    (20, "a2", "a", "r2", "deduct", 10, 960),
    (30, "a3", "a", None, "reset", 0, 1000),
    (40, "a4", "a", "r3", "deduct", 15, 985),
]


def test_a_reset_covers_what_came_before_it_and_not_what_came_after() -> None:
    rem = _remedy(GW_A, LG_A)
    assert _row(rem, "a") == {
        "account_id": "a",
        "resets": 1,
        "owed_before_reset": 20,
        "restored_by_reset": 40,
        "not_covered": 0,
        "owed_after_reset": 5,
        "still_owed": 5,
        "restored_beyond_owed": 20,
        "made_whole": False,
    }
    assert (rem.accounts_made_whole, rem.accounts_not_made_whole) == (0, 1)
    assert (rem.tokens_owed_after_reset, rem.tokens_restored_beyond_owed) == (5, 20)
    assert rem.accounts_owed_after_reset == 1 and rem.accounts_without_reset_owed == 0
    [event] = rem.events
    assert (event.start, event.accounts, event.restored_tokens, event.owed_tokens) == (_t(30), 1, 40, 20)


def test_a_reset_that_restored_less_than_was_owed_leaves_the_rest_not_covered() -> None:
    # b had a top-up (grant 5000) so its balance before the reset (5000 + 1000 - 130) is above the 1000
    # the reset sets: it restored -4870, which covers nothing of the 120 owed.
    gw = [(10, "r1", "b", "m", 200, 10, 0)]
    lg = [
        (1, "b0", "b", None, "grant", 1000, 1000),
        (5, "b1", "b", None, "grant", 5000, 6000),
        (10, "b2", "b", "r1", "deduct", 130, 5870),
        (30, "b3", "b", None, "reset", 1000, 1000),
    ]
    row = _row(_remedy(gw, lg), "b")
    assert (row["restored_by_reset"], row["not_covered"], row["still_owed"], row["made_whole"]) == (
        -4870,
        120,
        120,
        False,
    )
    assert row["restored_beyond_owed"] == 0


def test_a_reset_restoring_part_of_what_was_owed() -> None:
    # Balance before 1000 - 130 + 100 (grant) = 970: the reset restores 30 of the 120 owed.
    gw = [(10, "r1", "b", "m", 200, 10, 0)]
    lg = [
        (1, "b0", "b", None, "grant", 1000, 1000),
        (10, "b2", "b", "r1", "deduct", 130, 870),
        (20, "b3", "b", None, "grant", 100, 970),
        (30, "b4", "b", None, "reset", 1000, 1000),
    ]
    rem = _remedy(gw, lg)
    row = _row(rem, "b")
    assert (row["restored_by_reset"], row["not_covered"], row["made_whole"]) == (30, 90, False)
    assert (rem.accounts_not_covered, rem.tokens_not_covered) == (1, 90)


def test_several_resets_each_cover_what_came_since_the_one_before() -> None:
    # Reset 1 at 30 restores 40 (owed 20 before it); the 5 owed at 40 belongs to reset 2 at 50, which
    # restores 1000 - 985 = 15 (10 beyond); nothing after: made whole.
    rows = [*LG_A, (50, "a5", "a", None, "reset", 1000, 1000)]
    rem = _remedy(GW_A, rows)
    row = _row(rem, "a")
    assert (row["resets"], row["owed_before_reset"], row["restored_by_reset"]) == (2, 25, 55)
    assert (row["owed_after_reset"], row["restored_beyond_owed"], row["made_whole"]) == (0, 30, True)
    assert [(e.start, e.owed_tokens, e.restored_tokens) for e in rem.events] == [
        (_t(30), 20, 40),
        (_t(50), 5, 15),
    ]


def test_an_account_with_no_reset_is_still_owed_everything() -> None:
    gw = [*GW_A, (15, "c1", "c", "m", 200, 10, 0)]
    lg = [*LG_A, (1, "c0", "c", None, "grant", 500, 500), (15, "c2", "c", "c1", "deduct", 17, 483)]
    rem = _remedy(gw, lg)
    row = _row(rem, "c")
    assert (row["resets"], row["owed_before_reset"], row["owed_after_reset"], row["made_whole"]) == (
        0,
        0,
        7,
        False,
    )
    assert (rem.accounts_without_reset_owed, rem.tokens_owed_without_reset) == (1, 7)
    assert rem.tokens_owed_after_reset == 5 + 7
    assert rem.accounts["account_id"].to_list() == ["c", "a"]  # most still owed first


@pytest.mark.parametrize(
    ("minute", "made_whole"),
    [
        pytest.param(29.99, True, id="just-before"),
        pytest.param(30, True, id="at-the-reset"),
        pytest.param(30.01, False, id="just-after"),
    ],
)
def test_a_charge_at_the_reset_time_is_covered_by_it(minute: float, made_whole: bool) -> None:
    gw = [(minute, "r1", "d", "m", 200, 10, 0)]
    lg = [
        (1, "d0", "d", None, "grant", 1000, 1000),
        (minute, "d1", "d", "r1", "deduct", 12, 988),
        (30, "d2", "d", None, "reset", 0, 1000),
    ]
    if minute > 30:  # the deduction follows the reset
        lg = [lg[0], lg[2], (minute, "d1", "d", "r1", "deduct", 12, 988)]
    assert _row(_remedy(gw, lg), "d")["made_whole"] is made_whole


def test_accounts_reset_and_owed_nothing_are_whole_and_restored_beyond_owed() -> None:
    gw = [(10, "r1", "e", "m", 200, 10, 0)]
    lg = [
        (1, "e0", "e", None, "grant", 1000, 1000),
        (10, "e1", "e", "r1", "deduct", 10, 990),
        (30, "e2", "e", None, "reset", 0, 1000),
    ]
    rem = _remedy(gw, lg)
    assert (rem.accounts_made_whole, rem.accounts_not_made_whole, rem.tokens_restored_beyond_owed) == (
        1,
        0,
        10,
    )


def test_a_reset_with_no_balance_before_it_restores_nothing_counted() -> None:
    gw = [(10, "r1", "f", "m", 200, 10, 0)]
    lg = [(5, "f0", "f", None, "reset", 1000, 1000), (10, "f1", "f", "r1", "deduct", 11, 989)]
    rem = _remedy(gw, lg)
    assert rem.resets_before_unknown == 1
    assert _row(rem, "f")["restored_by_reset"] == 0 and rem.tokens_owed_after_reset == 1


def test_the_coverage_sentence_of_several_resets() -> None:
    from analyzer.reconcile.compensation import Compensation
    from analyzer.report.compensation import coverage_sentence
    from analyzer.report.formatting import Clock

    rem = _remedy(GW_A, [*LG_A, (50, "a5", "a", None, "reset", 1000, 1000)])
    comp = Compensation(remedy=rem, sla=None, accounts=rem.accounts)
    assert coverage_sentence(comp, Clock(_t(0).date())) == (
        "The 2 resets (09:30, 09:50) made 1 of 1 accounts whole; none is still owed. "
        "They restored 30 tokens beyond what was owed."
    )
