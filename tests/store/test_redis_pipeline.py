"""``touch_session`` pipelined (govgate/store/redis_pipeline.py): the lookups of one loop tick in one write on
one connection, each caller with its own answer or its own ``StoreUnavailable``, against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis as sync_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sessions import new_session_id
from govgate.errors import StoreUnavailable
from govgate.store.base import Session, SessionLookup
from govgate.store.memory import MemoryStore
from govgate.store.redis import SESSION, RedisStore, hash_id
from govgate.store.redis_pipeline import bulk, command
from tests.redis_server import RedisMonitor, RedisServer, silent_server

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMITS = SessionLimits(idle_timeout=timedelta(minutes=15), absolute_timeout=timedelta(hours=8))
LOGIN = Login(max_failures=2, failure_window=timedelta(minutes=15), lockout=timedelta(minutes=30), ip_max_failures=50)
TIMEOUT = timedelta(milliseconds=500)

pytestmark = pytest.mark.redis


def session_of(account: str, at: datetime = T0) -> Session:
    return Session(new_session_id(), account, None, "192.0.2.1", at, at)


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    from redis.asyncio.connection import Connection

    packed = b"".join(Connection().pack_command("EVALSHA", "ab" * 20, 1, "govgate:x", 12, "é"))
    assert command(b"EVALSHA", b"ab" * 20, b"1", b"govgate:x", b"12", "é".encode()) == packed
    assert bulk(b"") == b"$0\r\n\r\n"


async def test_lookups_made_together_go_out_on_one_connection_and_each_gets_its_own_answer(
    redis_server: RedisServer, redis_url: str, redis_stores: Callable[[], RedisStore]
) -> None:
    store = redis_stores()
    sessions = [session_of(f"user-{i}") for i in range(40)]
    for s in sessions:
        await store.create_session(s, LIMITS)
    await store.touch_session(sessions[0].id, T0, LIMITS)  # the script is loaded (SCRIPT LOAD) with the first
    monitor = RedisMonitor(redis_server.port)
    try:
        start = monitor.mark()
        lookups = await asyncio.gather(*(store.touch_session(s.id, T0 + timedelta(seconds=i), LIMITS)
                                         for i, s in enumerate(sessions)))
        end = monitor.mark()
        sent = [(addr, cmd) for addr, cmd in monitor.commands[start + 1:end]
                if addr != "lua" and addr not in monitor.own]
    finally:
        monitor.close()
    assert [lookup.session.account if lookup.session else None for lookup in lookups] == [s.account for s in sessions]
    assert [cmd for _, cmd in sent] == ["EVALSHA"] * 40
    assert len({addr for addr, _ in sent}) == 1  # one connection (redis-py's pool would have opened up to 40)


# Each session gets a state before the batch: fresh, touched long ago (idle), created long ago (absolute),
# never created, or its account locked.
states = st.sampled_from(["fresh", "idle", "absolute", "missing", "locked"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(states, st.integers(0, 10**9)), min_size=1, max_size=30))
def test_a_batch_answers_as_the_memory_store_answers_each_lookup_alone(
    redis_server: RedisServer, batch: list[tuple[str, int]]
) -> None:
    async def run() -> tuple[list[SessionLookup], list[SessionLookup]]:
        memory = MemoryStore()
        shared = RedisStore.from_url(redis_server.url, timedelta(seconds=5))
        try:
            ids: list[str] = []
            nows: list[datetime] = []
            run_tag = new_session_id()[:8]  # the server is shared by the examples: fresh names
            for i, (state, offset_us) in enumerate(batch):
                account = f"user-{run_tag}-{i}"
                start = T0 - {"idle": LIMITS.idle_timeout, "absolute": LIMITS.absolute_timeout}.get(
                    state, timedelta(0))
                session = Session(new_session_id(), account, f"dev-{i}" if i % 2 else None, "192.0.2.1",
                                  start - timedelta(seconds=1) if state == "absolute" else start,
                                  start)
                if state != "missing":
                    for s in (memory, shared):
                        await s.create_session(session, LIMITS)
                if state == "locked":
                    for s in (memory, shared):
                        for _ in range(LOGIN.max_failures):
                            await s.record_failure(account, "192.0.2.1", T0, LOGIN)
                ids.append(session.id)
                nows.append(T0 + timedelta(microseconds=offset_us % 10**6))
            expected = [await memory.touch_session(i, n, LIMITS) for i, n in zip(ids, nows, strict=True)]
            got = await asyncio.gather(*(shared.touch_session(i, n, LIMITS) for i, n in zip(ids, nows, strict=True)))
            return expected, list(got)
        finally:
            await shared.close()

    expected, got = asyncio.run(run())
    assert got == expected


async def test_a_cancelled_lookup_does_not_disturb_the_others_in_its_batch(
    redis_stores: Callable[[], RedisStore],
) -> None:
    store = redis_stores()
    sessions = [session_of(f"user-{i}") for i in range(30)]
    for s in sessions:
        await store.create_session(s, LIMITS)
    tasks = [asyncio.create_task(store.touch_session(s.id, T0, LIMITS)) for s in sessions]
    for t in tasks[:5]:
        t.cancel()  # before the batch is written
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the batch is on the wire now
    for t in tasks[10:15]:
        t.cancel()  # waiting for their replies
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, (s, result) in enumerate(zip(sessions, results, strict=True)):
        if 0 <= i < 5 or 10 <= i < 15:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert isinstance(result, SessionLookup)
            assert result.session is not None
            assert result.session.account == s.account  # its own reply, not a neighbour's
    # and the connection is still in step for the next batch
    again = await asyncio.gather(*(store.touch_session(s.id, T0, LIMITS) for s in sessions[::-1]))
    assert [lookup.session.account if lookup.session else None for lookup in again] == [
        s.account for s in sessions[::-1]]


async def test_one_lookups_error_reply_is_its_own(redis_url: str, redis_stores: Callable[[], RedisStore]) -> None:
    store = redis_stores()
    good = [session_of(f"user-{i}") for i in range(6)]
    for s in good:
        await store.create_session(s, LIMITS)
    broken = new_session_id()
    raw = sync_redis.Redis.from_url(redis_url)
    try:
        raw.set(SESSION + hash_id(broken), "not a hash")  # HMGET on it: WRONGTYPE
    finally:
        raw.close()
    ids = [s.id for s in good[:3]] + [broken] + [s.id for s in good[3:]]
    results = await asyncio.gather(*(store.touch_session(i, T0, LIMITS) for i in ids), return_exceptions=True)
    assert isinstance(results[3], StoreUnavailable)
    fine = results[:3] + results[4:]
    assert [r.session.account if isinstance(r, SessionLookup) and r.session else r for r in fine] == [
        s.account for s in good]


async def test_a_script_flush_is_met_by_loading_the_script_again(
    redis_url: str, redis_stores: Callable[[], RedisStore]
) -> None:
    store = redis_stores()
    sessions = [session_of(f"user-{i}") for i in range(10)]
    for s in sessions:
        await store.create_session(s, LIMITS)
    assert (await store.touch_session(sessions[0].id, T0, LIMITS)).session is not None
    raw = sync_redis.Redis.from_url(redis_url)
    try:
        raw.script_flush()
    finally:
        raw.close()
    lookups = await asyncio.gather(*(store.touch_session(s.id, T0, LIMITS) for s in sessions))
    assert [lookup.session.account if lookup.session else None for lookup in lookups] == [s.account for s in sessions]


async def test_the_first_lookups_after_a_redis_restart_work(own_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(own_redis_server.url, TIMEOUT)
    try:
        before = session_of("zhangsan")
        await store.create_session(before, LIMITS)
        assert (await store.touch_session(before.id, T0, LIMITS)).session is not None  # the connection is open
        own_redis_server.restart()  # empty, scripts flushed, the pipeline's connection dead
        lookups = await asyncio.gather(*(store.touch_session(before.id, T0, LIMITS) for _ in range(5)))
        assert all(lookup.session is None and not lookup.expired for lookup in lookups)  # gone with the restart
        after = session_of("lisi")
        await store.create_session(after, LIMITS)
        lookup = await store.touch_session(after.id, T0, LIMITS)
        assert lookup.session is not None
        assert lookup.session.account == "lisi"
    finally:
        await store.close()


async def test_a_frozen_redis_fails_every_lookup_in_flight_in_time_and_no_stale_reply_follows(
    own_redis_server: RedisServer,
) -> None:
    errors: list[None] = []
    store = RedisStore.from_url(own_redis_server.url, TIMEOUT, on_error=lambda: errors.append(None))
    try:
        a, b = session_of("a-account"), session_of("b-account")
        for s in (a, b):
            await store.create_session(s, LIMITS)
        assert (await store.touch_session(a.id, T0, LIMITS)).session is not None
        own_redis_server.pause()
        try:
            started = time.monotonic()
            results = await asyncio.gather(*(store.touch_session(a.id, T0, LIMITS) for _ in range(10)),
                                           return_exceptions=True)
            assert time.monotonic() - started < 2 * TIMEOUT.total_seconds()
        finally:
            own_redis_server.resume()
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert len(errors) == 10  # the metrics hook is told of each failed call
        # The frozen calls' replies (Redis may have run them) must not be read as these calls'.
        for _ in range(3):
            lookup = await store.touch_session(b.id, T0, LIMITS)
            assert lookup.session is not None
            assert lookup.session.account == "b-account"
    finally:
        await store.close()


async def test_a_redis_that_never_answers_fails_the_lookup_within_the_timeout() -> None:
    async with silent_server() as port:
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", timedelta(milliseconds=200))
        try:
            started = time.monotonic()
            results = await asyncio.gather(*(store.touch_session(new_session_id(), T0, LIMITS) for _ in range(3)),
                                           return_exceptions=True)
            assert all(isinstance(r, StoreUnavailable) for r in results)
            assert time.monotonic() - started < 1.0
        finally:
            await store.close()


async def test_redis_down_fails_the_lookup_as_store_unavailable(own_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(own_redis_server.url, TIMEOUT)
    try:
        own_redis_server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.touch_session(new_session_id(), T0, LIMITS)
        assert time.monotonic() - started < 2 * TIMEOUT.total_seconds()
    finally:
        await store.close()


async def test_closing_the_store_fails_the_lookups_in_flight_instead_of_leaving_them_waiting(
    redis_url: str,
) -> None:
    store = RedisStore.from_url(redis_url, TIMEOUT)
    s = session_of("zhangsan")
    await store.create_session(s, LIMITS)
    tasks = [asyncio.create_task(store.touch_session(s.id, T0, LIMITS)) for _ in range(5)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await store.close()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1)
    assert all(isinstance(r, (StoreUnavailable, SessionLookup)) for r in results)
    with pytest.raises(StoreUnavailable):
        await store.touch_session(s.id, T0, LIMITS)
