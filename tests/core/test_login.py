"""A login attempt's steps and keys (``govgate.core.login``), without a proxy or a store: the order of gate, lock,
admission, verification and counting; the address failures count against; the half-done login's validity."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, timedelta
from ipaddress import ip_address

import pytest

from govgate.core.decide import LoginGate, Reason
from govgate.core.login import (
    PENDING_TTL,
    Attempt,
    AttemptLocks,
    AttemptSteps,
    Outcome,
    PendingState,
    account_usable,
    attempt,
    client_key,
    failure_key,
    pending_state,
    pending_still_valid,
    typed_name,
)
from tests.accounts.builders import make_account
from tests.policies import at

NOW = at("2026-12-05 10:00")
LOCK_END = NOW + timedelta(minutes=30)
OPEN = LoginGate(open=True, overseas=False, reason=None, detail="office")
ABROAD = LoginGate(open=True, overseas=True, reason=None, detail="a grant could admit it")


class Steps:
    """Steps that record which of them an attempt took, with the answers a test gives them."""

    def __init__(self, *, locked: datetime | None = None, right: bool = False,
                 locks_now: datetime | None = None) -> None:
        self.taken: list[str] = []
        self.locked, self.right, self.locks_now = locked, right, locks_now

    def steps(self) -> AttemptSteps:
        async def locked_until() -> datetime | None:
            self.taken.append("lock")
            return self.locked

        async def stand_in() -> None:
            self.taken.append("stand-in")

        async def verify() -> bool:
            self.taken.append("verify")
            return self.right

        async def count_failure() -> datetime | None:
            self.taken.append("count")
            return self.locks_now

        return AttemptSteps(locked_until=locked_until, stand_in=stand_in, verify=verify, count_failure=count_failure)


def run(gate: LoginGate, admitted: bool, steps: Steps) -> Attempt:
    return asyncio.run(attempt(gate, admitted, steps.steps()))


@pytest.mark.parametrize("reason", [Reason.NETWORK, Reason.OVERSEAS])
def test_from_where_no_staff_rule_could_admit_anyone_nothing_is_looked_at_or_counted(reason: Reason) -> None:
    steps = Steps(locked=LOCK_END, right=True)
    closed = LoginGate(open=False, overseas=reason is Reason.OVERSEAS, reason=reason, detail="")
    assert run(closed, True, steps) == Attempt(Outcome.REFUSED, reason=reason)
    assert steps.taken == []


def test_a_locked_account_or_address_is_answered_before_the_credentials_are_looked_at() -> None:
    steps = Steps(locked=LOCK_END, right=True)
    assert run(OPEN, True, steps) == Attempt(Outcome.LOCKED, locked_until=LOCK_END)
    assert steps.taken == ["lock"]


def test_from_abroad_an_account_no_grant_admits_gets_a_stand_in_and_is_neither_verified_nor_counted() -> None:
    steps = Steps(right=True)
    assert run(ABROAD, False, steps) == Attempt(Outcome.NOT_ADMITTED)
    assert steps.taken == ["lock", "stand-in"]


def test_right_credentials_are_verified_and_not_counted() -> None:
    steps = Steps(right=True)
    assert run(ABROAD, True, steps) == Attempt(Outcome.VERIFIED)
    assert steps.taken == ["lock", "verify"]


def test_wrong_credentials_are_counted_and_the_failure_that_locks_says_until_when() -> None:
    steps = Steps()
    assert run(OPEN, True, steps) == Attempt(Outcome.FAILED)
    assert steps.taken == ["lock", "verify", "count"]
    assert run(OPEN, True, Steps(locks_now=LOCK_END)) == Attempt(Outcome.FAILED, locked_until=LOCK_END)


def test_ipv6_failures_count_against_the_whole_slash_64() -> None:
    assert client_key(ip_address("2001:db8:1:2:aaaa:bbbb:cccc:dddd")) == "2001:db8:1:2::/64"
    assert client_key(ip_address("10.1.2.3")) == "10.1.2.3"


def test_a_typed_name_is_stripped_and_cut_and_an_empty_one_counts_as_dash() -> None:
    assert typed_name("  zhangsan ") == "zhangsan"
    assert typed_name("x" * 100) == "x" * 64
    assert typed_name(None) == ""
    assert failure_key("") == "-"
    assert failure_key("nobody") == "nobody"


def test_an_account_stops_being_usable_after_its_last_day_or_when_disabled() -> None:
    assert account_usable(make_account("a", expires=date(2026, 12, 5)), NOW)
    assert not account_usable(make_account("a", expires=date(2026, 12, 4)), NOW)
    assert not account_usable(make_account("a", disabled=True), NOW)


def test_a_half_done_login_is_void_once_the_password_changes_or_an_admin_logs_the_account_out() -> None:
    account = make_account("halfway")
    started = NOW - timedelta(minutes=1)
    assert pending_still_valid(account, started, NOW)
    assert not pending_still_valid(replace(account, password_changed=started), started, NOW)
    assert not pending_still_valid(replace(account, logged_out_at=NOW), started, NOW)
    assert pending_still_valid(replace(account, logged_out_at=started - timedelta(seconds=1)), started, NOW)
    assert not pending_still_valid(replace(account, disabled=True), started, NOW)


def test_a_half_done_login_belongs_to_its_address_and_lives_five_minutes() -> None:
    account = make_account("pending")
    client = ip_address("10.20.2.1")
    assert timedelta(minutes=5) == PENDING_TTL
    assert pending_state("10.20.2.1", NOW, client, account, NOW + PENDING_TTL) is PendingState.USABLE
    assert pending_state("10.20.2.1", NOW, client, account, NOW + PENDING_TTL + timedelta(microseconds=1)) \
        is PendingState.VOID
    assert pending_state("10.20.2.2", NOW, client, account, NOW) is PendingState.OTHER_CLIENT
    assert pending_state("10.20.2.1", NOW, client, None, NOW) is PendingState.VOID


def test_attempts_for_one_account_run_one_at_a_time_and_locks_are_dropped_after() -> None:
    locks = AttemptLocks()
    inside = 0
    most = 0

    async def one(client: str) -> None:
        nonlocal inside, most
        async with locks.hold(*AttemptLocks.keys("a", ip_address(f"10.0.0.{client}"))):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)  # let the other attempts run: the interleaving is what is under test
            inside -= 1

    async def main() -> None:
        await asyncio.gather(*(one(str(i)) for i in range(20)))

    asyncio.run(main())
    assert most == 1
    assert locks._locks == {}
    assert AttemptLocks.keys("", ip_address("2001:db8::1")) == ("", "client:2001:db8::/64")
