"""What only RedisStore has: atomicity across instances, outage and recovery, key layout, URLs."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis as sync_redis

from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sessions import new_session_id
from govgate.errors import StoreUnavailable
from govgate.store.base import LockState, PendingLogin, Session
from govgate.store.memory import MemoryStore
from govgate.store.redis import RedisStore, hash_id
from tests.redis_server import RedisServer, silent_server

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMITS = SessionLimits()
LOGIN = Login(max_failures=5, failure_window=timedelta(minutes=15), lockout=timedelta(minutes=30), ip_max_failures=20)
TIMEOUT = timedelta(milliseconds=500)

pytestmark = pytest.mark.redis


async def test_two_instances_hammering_one_account_lock_after_exactly_max_failures(
    redis_stores: Callable[[], RedisStore],
) -> None:
    a, b = redis_stores(), redis_stores()
    attempts = 40
    # Distinct clients, so that only the account limit can be reached.
    calls = [
        (a if i % 2 else b).record_failure("zhangsan", f"198.51.100.{i}", T0 + timedelta(milliseconds=i), LOGIN)
        for i in range(attempts)
    ]
    results: list[LockState] = await asyncio.gather(*calls)
    assert sum(r.account_lock_started for r in results) == 1
    assert sum(r.account_locked_until is None for r in results) == LOGIN.max_failures - 1
    locks = {r.account_locked_until for r in results if r.account_locked_until is not None}
    assert len(locks) == 1  # every instance sees the same lock end


async def test_two_instances_hammering_one_client_lock_it_exactly_once(
    redis_stores: Callable[[], RedisStore],
) -> None:
    a, b = redis_stores(), redis_stores()
    calls = [(a if i % 2 else b).record_failure(None, "203.0.113.9", T0, LOGIN) for i in range(60)]
    results: list[LockState] = await asyncio.gather(*calls)
    assert sum(r.client_lock_started for r in results) == 1
    assert sum(r.client_locked_until is None for r in results) == LOGIN.ip_max_failures - 1


async def test_a_totp_step_raced_by_two_instances_is_accepted_once(redis_stores: Callable[[], RedisStore]) -> None:
    a, b = redis_stores(), redis_stores()
    results = await asyncio.gather(*[(a if i % 2 else b).use_totp_step("zhangsan", 5000) for i in range(20)])
    assert results.count(True) == 1


async def test_a_session_opened_on_one_instance_is_seen_and_ended_by_another(
    redis_stores: Callable[[], RedisStore],
) -> None:
    a, b = redis_stores(), redis_stores()
    session = Session(new_session_id(), "zhangsan", None, "192.0.2.1", T0, T0)
    await a.create_session(session, LIMITS)
    assert (await b.touch_session(session.id, T0 + timedelta(minutes=1), LIMITS)).session is not None
    assert await b.delete_account_sessions("zhangsan") == 1
    assert (await a.touch_session(session.id, T0 + timedelta(minutes=2), LIMITS)).session is None


async def test_redis_holds_no_raw_session_or_pending_id_and_every_key_is_prefixed_and_expiring(
    redis_url: str, redis_stores: Callable[[], RedisStore]
) -> None:
    store = redis_stores()
    session = Session(new_session_id(), "zhangsan", "zs-laptop", "192.0.2.1", T0, T0)
    pending = PendingLogin(new_session_id(), "zhangsan", "/oa/", "192.0.2.1", T0)
    await store.create_session(session, LIMITS)
    await store.put_pending_login(pending, timedelta(minutes=5))
    await store.record_failure("zhangsan", "192.0.2.1", T0, LOGIN)
    await store.use_totp_step("zhangsan", 1)
    raw = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [str(k) for k in raw.keys("*")]
        assert keys
        parts: list[str] = list(keys)
        for key in keys:
            assert key.startswith("govgate:")
            assert int(raw.pttl(key)) > 0, key  # nothing lives forever
            kind = str(raw.type(key))
            if kind == "string":
                parts.append(str(raw.get(key)))
            elif kind == "hash":
                parts.extend(str(k) + "=" + str(v) for k, v in raw.hgetall(key).items())
            elif kind == "set":
                parts.extend(str(m) for m in raw.smembers(key))
            elif kind == "list":
                parts.extend(str(m) for m in raw.lrange(key, 0, -1))
        dump = "\n".join(parts)
        for secret in (session.id, pending.id):
            assert secret not in dump
        assert hash_id(session.id) in dump
    finally:
        raw.close()


async def test_session_key_ttl_follows_the_idle_timeout(redis_url: str, redis_stores: Callable[[], RedisStore]) -> None:
    store = redis_stores()
    limits = SessionLimits(idle_timeout=timedelta(minutes=15), absolute_timeout=timedelta(hours=8))
    session = Session(new_session_id(), "zhangsan", None, "192.0.2.1", T0, T0)
    await store.create_session(session, limits)
    await store.touch_session(session.id, T0 + timedelta(minutes=1), limits)
    raw = sync_redis.Redis.from_url(redis_url)
    try:
        ttl = raw.pttl(f"govgate:session:{hash_id(session.id)}")
    finally:
        raw.close()
    # 15 minutes of idle time plus the grace period, give or take the test's own run time.
    assert timedelta(minutes=15) < timedelta(milliseconds=ttl) <= timedelta(minutes=16)


async def test_store_down_raises_store_unavailable_quickly_then_recovers_by_itself(
    own_redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(own_redis_server.url, TIMEOUT)
    try:
        session = Session(new_session_id(), "zhangsan", None, "192.0.2.1", T0, T0)
        await store.create_session(session, LIMITS)
        own_redis_server.stop()
        for call in (
            store.ping(),
            store.touch_session(session.id, T0, LIMITS),
            store.record_failure("zhangsan", "192.0.2.1", T0, LOGIN),
            store.lock_state("zhangsan", "192.0.2.1", T0),
            store.use_totp_step("zhangsan", 1),
            store.get_pending_login("x"),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert time.monotonic() - started < 2 * TIMEOUT.total_seconds()
        own_redis_server.start()  # same port, empty (nothing persisted)
        deadline = time.monotonic() + 5
        while True:
            try:
                await store.ping()
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store did not recover after Redis came back"
        # Scripts were flushed with the restart: they are loaded again transparently.
        state = await store.record_failure("zhangsan", "192.0.2.1", T0, LOGIN)
        assert not state.locked
        assert (await store.touch_session(session.id, T0, LIMITS)).session is None
    finally:
        await store.close()


async def test_first_call_after_a_restart_works_without_reconnecting(own_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(own_redis_server.url, TIMEOUT)
    try:
        await store.ping()  # a pooled connection now exists
        own_redis_server.restart()
        await store.ping()  # the stale connection is dropped and the call retried on a fresh one
    finally:
        await store.close()


async def test_a_frozen_redis_times_out_and_no_stale_reply_reaches_the_next_call(
    own_redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(own_redis_server.url, TIMEOUT)
    try:
        assert await store.use_totp_step("zhangsan", 1)
        for _ in range(LOGIN.max_failures):
            await store.record_failure("lisi", "192.0.2.1", T0, LOGIN)
        own_redis_server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.use_totp_step("zhangsan", 2)
            assert time.monotonic() - started < 2 * TIMEOUT.total_seconds()
        finally:
            own_redis_server.resume()
        # The frozen call's reply (whether or not Redis ran it) must not be read as this call's.
        # (A stale integer reply of the TOTP script would read as "not locked".)
        assert await store.account_locked_until("lisi", T0) == T0 + LOGIN.lockout
        assert await store.use_totp_step("zhangsan", 3)
        assert not await store.use_totp_step("zhangsan", 3)
    finally:
        await store.close()


async def test_an_unanswering_redis_times_out_as_store_unavailable() -> None:
    # A listening socket that never answers: the call must give up within the timeout.
    async with silent_server() as port:
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", timedelta(milliseconds=200))
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.ping()
            assert time.monotonic() - started < 1.0
        finally:
            await store.close()


async def test_memory_and_redis_agree_on_random_failure_sequences(redis_stores: Callable[[], RedisStore]) -> None:
    # The lockout rules are implemented twice (Python, Lua): any difference shows up here.
    login = Login(max_failures=3, failure_window=timedelta(seconds=60), lockout=timedelta(seconds=90),
                  ip_max_failures=4)
    rng = random.Random(20261201)
    for round_ in range(4):
        memory, shared = MemoryStore(), redis_stores()
        accounts = [f"zhangsan-{round_}", f"lisi-{round_}", None]  # fresh names: Redis is shared by the rounds
        clients = [f"192.0.2.{round_}", f"198.51.100.{round_}"]
        at = T0
        locks_started = 0
        for _ in range(80):
            at += timedelta(microseconds=rng.choice([0, 1, rng.randrange(10**6), rng.randrange(80 * 10**6)]))
            account = rng.choice(accounts)
            client = rng.choice(clients)
            op = rng.random()
            if op < 0.8:
                expected = await memory.record_failure(account, client, at, login)
                got = await shared.record_failure(account, client, at, login)
                locks_started += got.account_lock_started + got.client_lock_started
            elif op < 0.9 and account is not None:
                await memory.clear_failures(account)
                await shared.clear_failures(account)
                continue
            else:
                expected = await memory.lock_state(account, client, at)
                got = await shared.lock_state(account, client, at)
            assert got == expected
        assert locks_started >= 2  # the sequence did reach the limits


def test_sentinel_store_is_built_without_connecting() -> None:
    store = RedisStore.from_url("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/0", TIMEOUT)
    assert isinstance(store, RedisStore)


async def test_sentinel_store_with_no_sentinel_answering_is_unavailable() -> None:
    store = RedisStore.from_url("redis+sentinel://127.0.0.1:1/mymaster/0", TIMEOUT)
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()


async def test_a_store_reached_through_redis_sentinel_works(redis_url: str, redis_sentinel: RedisServer) -> None:
    store = RedisStore.from_url(f"redis+sentinel://127.0.0.1:{redis_sentinel.port}/mymaster/0", TIMEOUT)
    try:
        await store.ping()
        session = Session(new_session_id(), "zhangsan", None, "192.0.2.1", T0, T0)
        await store.create_session(session, LIMITS)
        for _ in range(LOGIN.max_failures):
            state = await store.record_failure("zhangsan", "192.0.2.1", T0, LOGIN)
        assert state.account_lock_started
        lookup = await store.touch_session(session.id, T0, LIMITS)
        assert lookup.account_locked_until == T0 + LOGIN.lockout
    finally:
        await store.close()
    # It is the same data as on the master, reached directly.
    direct = RedisStore.from_url(redis_url, TIMEOUT)
    try:
        assert await direct.account_locked_until("zhangsan", T0) == T0 + LOGIN.lockout
    finally:
        await direct.close()


async def test_the_session_index_drops_sessions_that_timed_out_in_redis(redis_url: str) -> None:
    import redis as sync_redis

    from govgate.store.redis import ACCOUNT_SESSIONS, SESSION

    store = RedisStore.from_url(redis_url, TIMEOUT)
    raw = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        old = [Session(new_session_id(), "busy", None, "192.0.2.1", T0, T0) for _ in range(5)]
        for s in old:
            await store.create_session(s, LIMITS)
        # They time out in Redis (as a TTL would remove them), without anyone touching them.
        for key in raw.keys(SESSION + "*"):
            raw.delete(key)
        assert raw.scard(ACCOUNT_SESSIONS + "busy") == 5
        await store.create_session(Session(new_session_id(), "busy", None, "192.0.2.1", T0, T0), LIMITS)
        assert raw.scard(ACCOUNT_SESSIONS + "busy") == 1
    finally:
        raw.close()
        await store.close()



async def test_a_redis_that_refuses_writes_is_not_healthy(own_redis_server: RedisServer) -> None:
    # Found in review: with Redis out of memory (noeviction) logins got 503 while health said ok: PING still answers.
    store = RedisStore.from_url(own_redis_server.url, TIMEOUT)
    admin = sync_redis.Redis.from_url(own_redis_server.url)
    try:
        await store.ping()
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        with pytest.raises(StoreUnavailable):
            await store.ping()
        admin.config_set("maxmemory", "0")
        await store.ping()
    finally:
        admin.config_set("maxmemory", "0")
        admin.close()
        await store.close()
