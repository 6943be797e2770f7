"""The gateway's near cache of session lookups on a real redis-server (govgate/store/session_cache.py): a lookup
repeated within half a second is answered without a round trip, and every change made anywhere (another instance,
an admin command, an outage) is seen at once, not after the half second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis as sync_redis

from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sessions import new_session_id
from govgate.errors import StoreUnavailable
from govgate.store.base import Session
from govgate.store.redis import SESSION, RedisStore, hash_id, to_us
from govgate.store.session_cache import HEARD_WITHIN, MAX_AGE
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMITS = SessionLimits(idle_timeout=timedelta(minutes=15), absolute_timeout=timedelta(hours=8))
LOGIN = Login(max_failures=2, failure_window=timedelta(minutes=15), lockout=timedelta(minutes=30), ip_max_failures=50)
TIMEOUT = timedelta(seconds=5)


async def until(check: Callable[[], bool], what: str, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit} s: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[Callable[..., RedisStore]]:
    made: list[RedisStore] = []

    def make(url: str = redis_url, *, cached: bool = True) -> RedisStore:
        store = RedisStore.from_url(url, TIMEOUT, session_cache=cached)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def cached_session(store: RedisStore, account: str = "zhangsan") -> Session:
    """A session created through ``store`` and looked up until its lookup is kept (the reports are up)."""
    session = Session(new_session_id(), account, None, "192.0.2.1", T0, T0)
    await store.create_session(session, LIMITS)
    await store.touch_session(session.id, T0, LIMITS)  # starts the change reports
    await until(lambda: store.sessions.live, "the change reports are up")
    return await kept(store, session)


async def kept(store: RedisStore, session: Session) -> Session:
    """``session``, once a lookup of it at T0 is answered from ``store``'s cache."""
    # Kept now. On a machine loaded enough that a kept lookup ages out (MAX_AGE) or the report connection's pings
    # are late before the next one, that one goes to Redis and is kept again: a few tries, each one a real check.
    for _ in range(10):
        await store.touch_session(session.id, T0, LIMITS)
        if await answered_from_cache(store, store.touch_session(session.id, T0, LIMITS)):
            return session
    raise AssertionError("no lookup of the session was answered from the cache in 10 tries")


async def answered_from_cache(store: RedisStore, lookup: Awaitable[object]) -> bool:
    hits = store.sessions.hits
    await lookup
    return store.sessions.hits == hits + 1


async def test_a_lookup_repeated_within_half_a_second_is_answered_without_redis(
        stores: Callable[..., RedisStore]) -> None:
    store = stores()
    session = await cached_session(store)
    for _ in range(3):
        assert await answered_from_cache(store, store.touch_session(session.id, T0 + timedelta(seconds=1), LIMITS))
    lookup = await store.touch_session(session.id, T0 + timedelta(seconds=1), LIMITS)
    assert lookup.session is not None
    assert (lookup.session.account, lookup.session.last_seen, lookup.expired) == ("zhangsan", T0, False)
    # Past the touch step the script writes last_seen: that goes to Redis, as does anything after MAX_AGE.
    assert not await answered_from_cache(store, store.touch_session(session.id, T0 + timedelta(seconds=10), LIMITS))


async def test_a_kept_lookup_is_answered_without_awaiting_anything_and_only_a_kept_one(
        stores: Callable[..., RedisStore]) -> None:
    # The staff path asks ``touch_session_now`` first (govgate/addons/gate.py): a plain call, no I/O, so that the
    # request is decided without a task of its own. It answers only what the cache keeps, the same lookup
    # ``touch_session`` gives; anything else (not kept, past the touch step, ended elsewhere) is None: ask Redis.
    here, there = stores(), stores()
    never = Session(new_session_id(), "lisi", None, "192.0.2.1", T0, T0)
    await here.create_session(never, LIMITS)
    assert here.touch_session_now(never.id, T0, LIMITS) is None  # never looked up: not kept
    assert here.touch_session_now(new_session_id(), T0, LIMITS) is None  # unknown
    session = await cached_session(here)
    fresh = await here.touch_session(session.id, T0, LIMITS)
    now = here.touch_session_now(session.id, T0, LIMITS)
    if now is None:  # on a loaded machine the entry may have aged out in between: kept again, then read at once
        now = here.touch_session_now((await kept(here, session)).id, T0, LIMITS)
    assert now == fresh
    assert here.touch_session_now(session.id, T0 + timedelta(seconds=10), LIMITS) is None  # past the touch step
    await kept(here, session)
    await there.delete_session(session.id)  # logout on the other instance
    await asyncio.sleep(0.05)  # the loop reads the report
    assert here.touch_session_now(session.id, T0, LIMITS) is None
    assert (await here.touch_session(session.id, T0, LIMITS)).session is None


async def test_a_session_in_steady_use_stays_kept_past_half_a_second(stores: Callable[..., RedisStore]) -> None:
    # A kept record is fetched again in the background once it is REFRESH_AFTER old, while it is still used: a
    # session in use does not drop out at MAX_AGE, when every request of that moment would go to Redis at once
    # (the bench measured 7 % of a busy session's lookups going to Redis that way).
    store = stores()
    session = await cached_session(store)
    asked, kept = 0, 0
    deadline = time.monotonic() + 8 * MAX_AGE
    while time.monotonic() < deadline:
        asked += 1
        kept += await answered_from_cache(store, store.touch_session(session.id, T0, LIMITS))
        await asyncio.sleep(0.02)
    # Without the refresh: one lookup each MAX_AGE goes to Redis (7 here); a loaded machine may miss a ping or two.
    assert asked - kept <= 3, (asked, kept)


async def test_a_refresh_never_changes_a_session_and_drops_the_record_where_a_lookup_would(
        stores: Callable[..., RedisStore], redis_url: str) -> None:
    # ARGV[9] of _TOUCH_SESSION: where the real lookup would write last_seen or expire the session, the refresh
    # changes nothing and the record is dropped, so that a request does that lookup itself (and, for an expiry,
    # writes its audit record).
    store = stores()
    session = await cached_session(store)
    hashed = hash_id(session.id)
    admin = sync_redis.Redis.from_url(redis_url)
    try:
        before = admin.hgetall(SESSION + hashed)
        for later in (LIMITS.idle_timeout / 10, LIMITS.idle_timeout, LIMITS.absolute_timeout):  # step, idle, absolute
            await kept(store, session)
            await store._refresh(hashed, to_us(T0 + later), store._limits_args(LIMITS))
            assert len(store.sessions) == 0, later
            assert admin.hgetall(SESSION + hashed) == before, later  # not written, not deleted
        await kept(store, session)
        await store._refresh(hashed, to_us(T0), store._limits_args(LIMITS))  # where nothing changes: kept again
        assert len(store.sessions) == 1
        assert admin.hgetall(SESSION + hashed) == before
    finally:
        admin.close()


async def test_one_shot_stores_cache_nothing(stores: Callable[..., RedisStore]) -> None:
    store = stores(cached=False)
    session = Session(new_session_id(), "zhangsan", None, "192.0.2.1", T0, T0)
    await store.create_session(session, LIMITS)
    for _ in range(3):
        await store.touch_session(session.id, T0, LIMITS)
    await asyncio.sleep(0.1)
    assert not store.sessions.live
    assert len(store.sessions) == 0


async def test_a_session_ended_on_another_instance_is_gone_here_at_once(stores: Callable[..., RedisStore]) -> None:
    here, there = stores(), stores()
    session = await cached_session(here)
    other = await cached_session(here, "lisi")
    fetched = time.monotonic()
    await there.delete_session(session.id)  # logout on the other instance
    await asyncio.sleep(0.05)  # the loop reads the report
    assert (await here.touch_session(session.id, T0, LIMITS)).session is None
    await there.delete_account_sessions("lisi")  # `govgate account logout lisi`
    await asyncio.sleep(0.05)
    assert (await here.touch_session(other.id, T0, LIMITS)).session is None
    assert time.monotonic() - fetched < MAX_AGE  # seen through the reports, not by the entries growing old


async def test_a_lock_and_an_unlock_on_another_instance_hold_here_at_once(stores: Callable[..., RedisStore]) -> None:
    here, there = stores(), stores()
    session = await cached_session(here)
    fetched = time.monotonic()
    for n in range(LOGIN.max_failures):
        await there.record_failure("zhangsan", f"198.51.100.{n}", T0, LOGIN)
    await asyncio.sleep(0.05)
    locked = await here.touch_session(session.id, T0, LIMITS)
    assert locked.account_locked_until == T0 + LOGIN.lockout
    assert await answered_from_cache(here, here.touch_session(session.id, T0, LIMITS))  # the locked record is kept
    await there.unlock("zhangsan")  # `govgate account unlock zhangsan`
    await asyncio.sleep(0.05)
    assert (await here.touch_session(session.id, T0, LIMITS)).account_locked_until is None
    assert time.monotonic() - fetched < MAX_AGE


async def test_changes_made_here_are_dropped_without_waiting_for_the_report(
        stores: Callable[..., RedisStore]) -> None:
    store = stores()
    session = await cached_session(store)
    await store.delete_session(session.id)
    assert (await store.touch_session(session.id, T0, LIMITS)).session is None  # no await in between
    second = await cached_session(store)
    for n in range(LOGIN.max_failures):
        await store.record_failure("zhangsan", f"198.51.100.{n}", T0, LOGIN)
    assert (await store.touch_session(second.id, T0, LIMITS)).account_locked_until is not None


async def test_while_the_reports_are_cut_nothing_is_kept_and_they_come_back(
        stores: Callable[..., RedisStore], redis_url: str) -> None:
    store = stores()
    session = await cached_session(store)
    admin = sync_redis.Redis.from_url(redis_url)
    try:
        assert admin.client_kill_filter(_type="pubsub") >= 1  # the report connection, cut
    finally:
        admin.close()
    await until(lambda: not store.sessions.live, "the cut is noticed")
    assert len(store.sessions) == 0
    assert not await answered_from_cache(store, store.touch_session(session.id, T0, LIMITS))
    assert not await answered_from_cache(store, store.touch_session(session.id, T0, LIMITS))  # not kept either
    await until(lambda: store.sessions.live, "the reports are back", limit=10)
    await store.touch_session(session.id, T0, LIMITS)
    assert await answered_from_cache(store, store.touch_session(session.id, T0, LIMITS))


async def test_redis_going_down_fails_the_next_lookup_closed_not_from_the_cache(
        own_redis_server: RedisServer, stores: Callable[..., RedisStore]) -> None:
    store = stores(own_redis_server.url)
    session = await cached_session(store)
    own_redis_server.stop()
    await asyncio.sleep(0.1)  # the loop reads the closed connection
    with pytest.raises(StoreUnavailable):
        await store.touch_session(session.id, T0, LIMITS)
    assert not store.sessions.live
    own_redis_server.start()  # empty: the session is gone, and the cache comes back by itself
    await until(lambda: store.sessions.live, "the reports are back after the restart", limit=15)
    assert (await store.touch_session(session.id, T0, LIMITS)).session is None
    again = await cached_session(store)
    assert await answered_from_cache(store, store.touch_session(again.id, T0, LIMITS))


async def test_a_flushed_database_drops_everything(stores: Callable[..., RedisStore], redis_url: str) -> None:
    store = stores()
    session = await cached_session(store)
    admin = sync_redis.Redis.from_url(redis_url)
    try:
        admin.flushdb()
    finally:
        admin.close()
    await asyncio.sleep(0.05)
    assert (await store.touch_session(session.id, T0, LIMITS)).session is None


async def test_a_redis_that_hangs_stops_the_cache_within_a_moment(own_redis_server: RedisServer) -> None:
    # No closed connection to notice: the report connection's pings go unanswered, and the cache stops answering
    # within HEARD_WITHIN (0.15 s); the lookup then waits for Redis and fails closed at the state timeout.
    store = RedisStore.from_url(own_redis_server.url, timedelta(milliseconds=500), session_cache=True)
    try:
        session = await cached_session(store)
        hits = store.sessions.hits
        own_redis_server.pause()
        try:
            await asyncio.sleep(HEARD_WITHIN + 0.05)
            with pytest.raises(StoreUnavailable):
                await store.touch_session(session.id, T0, LIMITS)
            assert store.sessions.hits == hits
        finally:
            own_redis_server.resume()
    finally:
        await store.close()


async def test_a_change_reported_names_its_keys_and_drops_nothing_else(stores: Callable[..., RedisStore]) -> None:
    here, there = stores(), stores()
    kept = [await cached_session(here, name) for name in ("zhangsan", "lisi", "wangwu")]
    await there.create_session(Session(new_session_id(), "zhaoliu", None, "192.0.2.9", T0, T0), LIMITS)
    await there.delete_session(kept[0].id)
    await asyncio.sleep(0.05)
    assert len(here.sessions) == 2  # the logged-out one only (a RESP3 report would have emptied everything)
    assert await answered_from_cache(here, here.touch_session(kept[1].id, T0, LIMITS))


async def test_a_lookup_answered_while_this_process_deletes_the_session_is_not_kept(
        stores: Callable[..., RedisStore]) -> None:
    store = stores()
    for _ in range(20):
        session = await cached_session(store)
        await asyncio.sleep(MAX_AGE)  # aged out: the next lookup goes to Redis
        racing = asyncio.create_task(store.touch_session(session.id, T0, LIMITS))
        await store.delete_session(session.id)
        await racing
        assert (await store.touch_session(session.id, T0, LIMITS)).session is None


async def test_a_report_connection_whose_pings_go_unanswered_is_closed_and_opened_again(
        own_redis_server: RedisServer) -> None:
    # A hung Redis (or a connection that died without closing): after 1 s without an answer the connection is
    # closed (live goes False at once, not after TCP gives up) and a new one is opened once Redis answers again.
    store = RedisStore.from_url(own_redis_server.url, timedelta(milliseconds=500), session_cache=True)
    try:
        await cached_session(store)
        own_redis_server.pause()
        try:
            await until(lambda: not store.sessions.live, "the silent connection is given up", limit=3)
        finally:
            own_redis_server.resume()
        await until(lambda: store.sessions.live, "a new report connection", limit=10)
        again = await cached_session(store)
        assert await answered_from_cache(store, store.touch_session(again.id, T0, LIMITS))
    finally:
        await store.close()


async def test_the_report_connection_speaks_resp2_whatever_the_url_says(
        stores: Callable[..., RedisStore], redis_url: str) -> None:
    here, there = stores(redis_url + "?protocol=3"), stores()
    kept = [await cached_session(here, name) for name in ("zhangsan", "lisi", "wangwu")]
    await there.delete_session(kept[0].id)
    await asyncio.sleep(0.05)
    assert len(here.sessions) == 2  # a RESP3 report connection would have emptied the cache
    admin = sync_redis.Redis.from_url(redis_url)
    try:
        report = [c for c in admin.client_list() if "P" in c["flags"]]
    finally:
        admin.close()
    assert [c["resp"] for c in report] == ["2"]
