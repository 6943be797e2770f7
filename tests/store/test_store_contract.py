"""The store contract: one suite, run against MemoryStore and a real redis-server (see conftest)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sessions import SessionEnd, new_session_id, touch_step
from govgate.store.base import PendingLogin, Session, Store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMITS = SessionLimits(idle_timeout=timedelta(minutes=15), absolute_timeout=timedelta(hours=8))
LOGIN = Login(max_failures=3, failure_window=timedelta(minutes=15), lockout=timedelta(minutes=30), ip_max_failures=5)
CLIENT = "203.0.113.7"


def make_session(account: str = "zhangsan", at: datetime = T0, device: str | None = "zs-laptop") -> Session:
    return Session(id=new_session_id(), account=account, device=device, client=CLIENT, created=at, last_seen=at)


# -- sessions ---------------------------------------------------------------------------------------
async def test_created_session_is_found_and_touch_moves_last_seen(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    later = T0 + timedelta(minutes=5)
    lookup = await store.touch_session(session.id, later, LIMITS)
    assert lookup.session == Session(session.id, "zhangsan", "zs-laptop", CLIENT, T0, later)
    assert not lookup.expired
    assert lookup.account_locked_until is None


async def test_session_without_device_keeps_none(store: Store) -> None:
    session = make_session(device=None)
    await store.create_session(session, LIMITS)
    lookup = await store.touch_session(session.id, T0, LIMITS)
    assert lookup.session is not None
    assert lookup.session.device is None


async def test_unknown_session_id_is_neither_found_nor_expired(store: Store) -> None:
    lookup = await store.touch_session(new_session_id(), T0, LIMITS)
    assert lookup.session is None
    assert not lookup.expired


async def test_session_idle_for_exactly_the_idle_timeout_expires_and_is_deleted(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    assert (await store.touch_session(session.id, T0 + LIMITS.idle_timeout - timedelta(microseconds=1), LIMITS)).session
    idle_end = T0 + LIMITS.idle_timeout * 2 - timedelta(microseconds=1)
    lookup = await store.touch_session(session.id, idle_end, LIMITS)
    assert lookup.session is None
    assert lookup.expired
    assert lookup.expired_account == session.account  # whose session ended, for the audit record
    assert lookup.expired_why is SessionEnd.IDLE  # and which timeout ended it
    again = await store.touch_session(session.id, idle_end, LIMITS)
    assert again.session is None
    assert not again.expired


async def test_touching_keeps_a_session_alive_until_its_absolute_timeout(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    at = T0
    while at + timedelta(minutes=10) < T0 + LIMITS.absolute_timeout:
        at += timedelta(minutes=10)
        assert (await store.touch_session(session.id, at, LIMITS)).session is not None
    lookup = await store.touch_session(session.id, T0 + LIMITS.absolute_timeout, LIMITS)
    assert lookup.session is None
    assert lookup.expired
    assert lookup.expired_why is SessionEnd.ABSOLUTE  # touched ten minutes ago: not idle


async def test_a_session_past_both_timeouts_ended_by_the_absolute_one(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    lookup = await store.touch_session(session.id, T0 + LIMITS.absolute_timeout + LIMITS.idle_timeout, LIMITS)
    assert lookup.expired
    assert lookup.expired_why is SessionEnd.ABSOLUTE


async def test_an_older_now_never_moves_last_seen_backwards(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    await store.touch_session(session.id, T0 + timedelta(minutes=10), LIMITS)
    lookup = await store.touch_session(session.id, T0 + timedelta(minutes=2), LIMITS)
    assert lookup.session is not None
    assert lookup.session.last_seen == T0 + timedelta(minutes=10)


async def test_deleted_session_is_gone(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    await store.delete_session(session.id)
    assert (await store.touch_session(session.id, T0, LIMITS)).session is None
    assert await store.delete_account_sessions("zhangsan") == 0


async def test_delete_account_sessions_ends_every_session_of_that_account_only(store: Store) -> None:
    mine = [make_session("zhangsan") for _ in range(3)]
    other = make_session("lisi")
    for s in [*mine, other]:
        await store.create_session(s, LIMITS)
    assert await store.delete_account_sessions("zhangsan") == 3
    for s in mine:
        assert (await store.touch_session(s.id, T0, LIMITS)).session is None
    assert (await store.touch_session(other.id, T0, LIMITS)).session is not None
    assert await store.delete_account_sessions("zhangsan") == 0


async def test_expired_session_is_not_counted_by_delete_account_sessions(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    assert (await store.touch_session(session.id, T0 + LIMITS.absolute_timeout, LIMITS)).expired
    assert await store.delete_account_sessions("zhangsan") == 0


async def test_lock_of_the_sessions_account_is_visible_through_touch_session(store: Store) -> None:
    session = make_session()
    await store.create_session(session, LIMITS)
    for i in range(LOGIN.max_failures):
        await store.record_failure("zhangsan", f"198.51.100.{i}", T0, LOGIN)
    lookup = await store.touch_session(session.id, T0 + timedelta(minutes=1), LIMITS)
    assert lookup.session is not None
    assert lookup.account_locked_until == T0 + LOGIN.lockout
    await store.unlock("zhangsan")
    lookup = await store.touch_session(session.id, T0 + timedelta(minutes=2), LIMITS)
    assert lookup.account_locked_until is None


# -- pending logins ---------------------------------------------------------------------------------
async def test_pending_login_round_trips_and_can_be_deleted(store: Store) -> None:
    pending = PendingLogin(id=new_session_id(), account="zhangsan", next="/oa/?a=1&b=中", client=CLIENT, created=T0)
    await store.put_pending_login(pending, timedelta(minutes=5))
    assert await store.get_pending_login(pending.id) == pending
    assert await store.get_pending_login(new_session_id()) is None
    await store.delete_pending_login(pending.id)
    assert await store.get_pending_login(pending.id) is None


async def test_pending_login_is_gone_after_its_ttl(store: Store) -> None:
    pending = PendingLogin(id=new_session_id(), account="zhangsan", next="/oa/", client=CLIENT, created=T0)
    await store.put_pending_login(pending, timedelta(milliseconds=150))
    assert await store.get_pending_login(pending.id) == pending
    deadline = time.monotonic() + 5
    while await store.get_pending_login(pending.id) is not None:
        assert time.monotonic() < deadline, "pending login outlived its TTL"


# -- failures and locks (Art. 30) -------------------------------------------------------------------
async def test_account_locks_after_exactly_max_failures(store: Store) -> None:
    for i in range(LOGIN.max_failures - 1):
        state = await store.record_failure("zhangsan", f"198.51.100.{i}", T0 + timedelta(seconds=i), LOGIN)
        assert not state.locked
        assert not state.account_lock_started
    at = T0 + timedelta(seconds=LOGIN.max_failures)
    state = await store.record_failure("zhangsan", "198.51.100.99", at, LOGIN)
    assert state.account_locked_until == at + LOGIN.lockout
    assert state.account_lock_started
    assert state.client_locked_until is None
    assert await store.account_locked_until("zhangsan", at) == at + LOGIN.lockout
    lock = await store.lock_state("zhangsan", "192.0.2.1", at)
    assert lock.account_locked_until == at + LOGIN.lockout
    assert lock.client_locked_until is None


async def test_lock_ends_exactly_at_its_start_plus_lockout(store: Store) -> None:
    for _ in range(LOGIN.max_failures):
        await store.record_failure("zhangsan", CLIENT, T0, LOGIN)
    end = T0 + LOGIN.lockout
    assert await store.account_locked_until("zhangsan", end - timedelta(microseconds=1)) == end
    assert await store.account_locked_until("zhangsan", end) is None
    assert not (await store.lock_state("zhangsan", CLIENT, end)).locked


async def test_failures_while_locked_neither_count_nor_extend_the_lock(store: Store) -> None:
    for _ in range(LOGIN.max_failures):
        await store.record_failure("zhangsan", "198.51.100.1", T0, LOGIN)
    state = await store.record_failure("zhangsan", "198.51.100.2", T0 + timedelta(minutes=10), LOGIN)
    assert state.account_locked_until == T0 + LOGIN.lockout
    assert not state.account_lock_started
    # After the lock, counting starts from zero: one failure does not lock again.
    after = T0 + LOGIN.lockout
    state = await store.record_failure("zhangsan", "198.51.100.3", after, LOGIN)
    assert state.account_locked_until is None


async def test_failures_spread_wider_than_the_window_never_lock(store: Store) -> None:
    at = T0
    for _ in range(LOGIN.max_failures * 3):
        state = await store.record_failure("zhangsan", CLIENT, at, LOGIN)
        assert state.account_locked_until is None
        at += LOGIN.failure_window / (LOGIN.max_failures - 1)


async def test_a_failure_stops_counting_exactly_one_window_later(store: Store) -> None:
    # Sliding window: a failure at t counts at now while now - t < failure_window.
    await store.record_failure("zhangsan", CLIENT, T0, LOGIN)
    at = T0 + LOGIN.failure_window
    for _ in range(LOGIN.max_failures - 1):
        state = await store.record_failure("zhangsan", CLIENT, at, LOGIN)
    assert state.account_locked_until is None
    await store.unlock("zhangsan")
    await store.record_failure("zhangsan", CLIENT, T0, LOGIN)
    at = T0 + LOGIN.failure_window - timedelta(microseconds=1)
    for _ in range(LOGIN.max_failures - 1):
        state = await store.record_failure("zhangsan", CLIENT, at, LOGIN)
    assert state.account_locked_until == at + LOGIN.lockout


async def test_client_locks_after_ip_max_failures_across_accounts(store: Store) -> None:
    for i in range(LOGIN.ip_max_failures - 1):
        state = await store.record_failure(f"user{i}", CLIENT, T0, LOGIN)
        assert not state.locked
    state = await store.record_failure("another", CLIENT, T0, LOGIN)
    assert state.client_locked_until == T0 + LOGIN.lockout
    assert state.client_lock_started
    assert state.account_locked_until is None
    lock = await store.lock_state(None, CLIENT, T0)
    assert lock.client_locked_until == T0 + LOGIN.lockout
    assert lock.locked_until == T0 + LOGIN.lockout
    assert not (await store.lock_state(None, "192.0.2.1", T0)).locked


async def test_unknown_account_counts_only_for_the_client(store: Store) -> None:
    for _ in range(LOGIN.ip_max_failures - 1):
        state = await store.record_failure(None, CLIENT, T0, LOGIN)
        assert state.account_locked_until is None
        assert not state.locked
    state = await store.record_failure(None, CLIENT, T0, LOGIN)
    assert state.client_locked_until == T0 + LOGIN.lockout
    assert state.account_locked_until is None
    assert (await store.lock_state(None, CLIENT, T0)).client_locked_until == T0 + LOGIN.lockout


async def test_unlock_lifts_the_lock_and_forgets_the_failures(store: Store) -> None:
    for _ in range(LOGIN.max_failures):
        await store.record_failure("zhangsan", "198.51.100.1", T0, LOGIN)
    await store.unlock("zhangsan")
    assert await store.account_locked_until("zhangsan", T0) is None
    for _ in range(LOGIN.max_failures - 1):
        state = await store.record_failure("zhangsan", "198.51.100.2", T0, LOGIN)
        assert state.account_locked_until is None


async def test_clear_failures_restarts_the_count(store: Store) -> None:
    for _ in range(LOGIN.max_failures - 1):
        await store.record_failure("zhangsan", "198.51.100.1", T0, LOGIN)
    await store.clear_failures("zhangsan")
    for _ in range(LOGIN.max_failures - 1):
        state = await store.record_failure("zhangsan", "198.51.100.2", T0, LOGIN)
        assert state.account_locked_until is None
    state = await store.record_failure("zhangsan", "198.51.100.2", T0, LOGIN)
    assert state.account_locked_until == T0 + LOGIN.lockout


async def test_clear_failures_does_not_lift_a_lock(store: Store) -> None:
    for _ in range(LOGIN.max_failures):
        await store.record_failure("zhangsan", "198.51.100.1", T0, LOGIN)
    await store.clear_failures("zhangsan")
    assert await store.account_locked_until("zhangsan", T0) == T0 + LOGIN.lockout


async def test_accounts_are_counted_apart(store: Store) -> None:
    for _ in range(LOGIN.max_failures - 1):
        await store.record_failure("zhangsan", "198.51.100.1", T0, LOGIN)
    state = await store.record_failure("lisi", "198.51.100.2", T0, LOGIN)
    assert state.account_locked_until is None


# -- TOTP steps -------------------------------------------------------------------------------------
async def test_totp_step_is_accepted_once_and_only_forwards(store: Store) -> None:
    assert await store.use_totp_step("zhangsan", 1000)
    assert not await store.use_totp_step("zhangsan", 1000)
    assert not await store.use_totp_step("zhangsan", 999)
    assert await store.use_totp_step("zhangsan", 1001)
    assert await store.use_totp_step("lisi", 1000)


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_last_seen_moves_in_steps_of_the_touch_step_and_never_lets_a_session_outlive_its_idle_timeout(
        store: Store) -> None:
    # docs/state.md: last_seen is written when it moves by at least 1 % of the idle timeout; the bounded error
    # is an idle expiry up to one step early, never late.
    step = touch_step(LIMITS)
    session = make_session()
    await store.create_session(session, LIMITS)
    near = await store.touch_session(session.id, T0 + step - timedelta(microseconds=1), LIMITS)
    assert near.session is not None
    assert near.session.last_seen == T0  # within the step: not written
    moved = await store.touch_session(session.id, T0 + step, LIMITS)
    assert moved.session is not None
    assert moved.session.last_seen == T0 + step
    # Used just under the step apart, the session still ends no later than idle_timeout after its last use.
    last_use = T0 + step + step - timedelta(microseconds=1)
    assert (await store.touch_session(session.id, last_use, LIMITS)).session is not None
    ended = await store.touch_session(session.id, last_use + LIMITS.idle_timeout, LIMITS)
    assert ended.session is None
    assert ended.expired
