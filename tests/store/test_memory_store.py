"""What only MemoryStore has: bounded memory (lazy expiry and sweeps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sessions import new_session_id
from govgate.store.base import PendingLogin, Session
from govgate.store.memory import PRUNE_EVERY, MemoryStore

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LOGIN = Login(max_failures=3, failure_window=timedelta(minutes=15), lockout=timedelta(minutes=30), ip_max_failures=5)
LIMITS = SessionLimits(idle_timeout=timedelta(minutes=15), absolute_timeout=timedelta(hours=8))


class FakeMonotonic:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


async def test_counters_of_many_addresses_are_swept_once_their_time_is_over() -> None:
    store = MemoryStore()
    for i in range(PRUNE_EVERY * 4):
        await store.record_failure(None, f"10.0.{i // 256}.{i % 256}", T0, LOGIN)
    assert store.sizes()["counters"] == PRUNE_EVERY * 4
    later = T0 + LOGIN.failure_window
    for i in range(PRUNE_EVERY):
        await store.record_failure(None, f"10.9.{i // 256}.{i % 256}", later, LOGIN)
    assert store.sizes()["counters"] <= PRUNE_EVERY


async def test_a_lock_in_force_survives_a_sweep() -> None:
    store = MemoryStore()
    for _ in range(LOGIN.max_failures):
        await store.record_failure("zhangsan", "192.0.2.1", T0, LOGIN)
    later = T0 + LOGIN.failure_window  # failures no longer count, the lock still holds
    for i in range(PRUNE_EVERY):
        await store.record_failure(None, f"10.0.{i // 256}.{i % 256}", later, LOGIN)
    assert await store.account_locked_until("zhangsan", later) == T0 + LOGIN.lockout


async def test_expired_sessions_and_pending_logins_are_swept() -> None:
    clock = FakeMonotonic()
    store = MemoryStore(monotonic=clock)
    for _ in range(10):
        await store.create_session(Session(new_session_id(), "zhangsan", None, "192.0.2.1", T0, T0), LIMITS)
        await store.put_pending_login(PendingLogin(new_session_id(), "zhangsan", "/", "192.0.2.1", T0),
                                      timedelta(minutes=5))
    assert store.sizes()["sessions"] == 10
    assert store.sizes()["pending"] == 10
    clock.value += 301
    store.prune()
    assert store.sizes()["pending"] == 0
    assert store.sizes()["sessions"] == 10  # no later `now` seen yet: nothing is known to be over
    for i in range(PRUNE_EVERY):
        await store.record_failure(None, f"10.0.0.{i % 256}", T0 + LIMITS.idle_timeout, LOGIN)
    assert store.sizes()["sessions"] == 0
    assert await store.delete_account_sessions("zhangsan") == 0
