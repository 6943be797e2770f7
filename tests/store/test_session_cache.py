"""``SessionCache`` (govgate/store/session_cache.py), pure: what it keeps, for how long, and what drops it; and, against
a real redis-server, that an entry is only ever used where ``_TOUCH_SESSION`` would answer the same record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govgate.core.policy.model import SessionLimits
from govgate.store.base import Session
from govgate.store.redis import LOCK, SESSION, RedisStore, from_us, hash_id, to_us
from govgate.store.session_cache import (
    ACCOUNT_LOCK_KEY,
    HEARD_WITHIN,
    MAX_AGE,
    SESSION_KEY,
    Limits,
    Record,
    SessionCache,
    unchanged_by_touch,
)

MIN = 60_000_000  # one minute in µs
LIMITS: Limits = (15 * MIN, 480 * MIN, 9_000_000)  # idle 15 min, absolute 8 h, step 9 s (1 % of idle)
T0 = 1_800_000_000_000_000  # µs since the epoch


def record(account: str = "zhangsan", created: int = T0, last: int = T0, lock: str = "") -> Record:
    return (account, "", "192.0.2.1", str(created), str(last), lock)


def live(**kwargs: float) -> SessionCache:
    """A cache whose report connection is up, and heard from forever after (``heard_within`` is infinite unless
    the test sets it)."""
    cache = SessionCache(**{"heard_within": float("inf"), **kwargs})  # type: ignore[arg-type]
    cache.mark_live(0.0)
    return cache


def test_the_key_prefixes_are_the_stores() -> None:
    assert SESSION_KEY == SESSION
    assert ACCOUNT_LOCK_KEY == LOCK + "account:"


def test_nothing_is_kept_or_used_while_the_change_reports_are_not_up() -> None:
    cache = SessionCache()
    cache.put("a", record(), LIMITS, 1.0, cache.generation)
    assert cache.get("a", T0, LIMITS, 1.0) is None
    assert len(cache) == 0
    cache.mark_live(1.0)
    cache.put("a", record(), LIMITS, 1.0, cache.generation)
    assert cache.get("a", T0, LIMITS, 1.1) == record()
    cache.mark_down()  # the reports stopped: everything kept goes
    assert cache.get("a", T0, LIMITS, 1.1) is None
    assert len(cache) == 0


def test_an_entry_is_due_for_a_refresh_after_refresh_after_and_a_refreshed_one_lives_on() -> None:
    cache = live(max_age=0.5, refresh_after=0.25)
    assert not cache.due("a", 1.0)  # nothing kept
    cache.put("a", record(), LIMITS, 1.0, cache.generation)
    assert not cache.due("a", 1.2)
    assert cache.due("a", 1.25)
    cache.put("a", record(), LIMITS, 1.3, cache.generation)  # the refresh's answer, sent at 1.3
    assert not cache.due("a", 1.5)
    assert cache.get("a", T0, LIMITS, 1.7) == record()  # past 0.5 s from the first lookup, not from the refresh
    assert cache.get("a", T0, LIMITS, 1.8) is None  # 0.5 s from the refresh: gone


def test_a_lookup_sent_before_a_change_or_before_the_reports_came_up_is_not_kept() -> None:
    cache = SessionCache()
    before_up = cache.generation
    cache.mark_live(1.0)
    cache.put("a", record(), LIMITS, 1.0, before_up)
    assert len(cache) == 0
    sent = cache.generation
    cache.changed(SESSION_KEY + "other")  # any change reported between sending and answering
    cache.put("a", record(), LIMITS, 1.0, sent)
    assert len(cache) == 0
    sent = cache.generation
    cache.put("a", record(), LIMITS, 1.0, sent)
    assert cache.get("a", T0, LIMITS, 1.0) == record()
    assert cache.hits == 1


def test_nothing_is_answered_unless_the_report_connection_was_heard_from_just_now() -> None:
    # A Redis that hangs, or a connection that died without closing, answers no ping: the cache stops.
    assert HEARD_WITHIN < MAX_AGE
    cache = SessionCache()
    cache.mark_live(10.0)
    cache.put("a", record(), LIMITS, 10.0, cache.generation)
    assert cache.get("a", T0, LIMITS, 10.0 + HEARD_WITHIN - 0.001) == record()
    assert cache.get("a", T0, LIMITS, 10.0 + HEARD_WITHIN) is None
    cache.put("a", record(), LIMITS, 10.0, cache.generation)
    cache.heard(10.2)  # a pong
    assert cache.answering(10.3)
    assert cache.get("a", T0, LIMITS, 10.3) == record()
    cache.heard(10.1)  # heard out of order: the latest counts
    assert cache.answering(10.3)
    assert not cache.answering(10.1)  # a clock that went back: not trusted


def test_an_entry_is_used_for_at_most_max_age_whatever_the_reports_say() -> None:
    assert MAX_AGE <= 1.0  # issue 11: a revocation or an unlock takes effect within 1 s on every instance
    cache = live()
    cache.put("a", record(), LIMITS, 10.0, cache.generation)
    assert cache.get("a", T0, LIMITS, 10.0 + MAX_AGE - 0.001) == record()
    assert cache.get("a", T0, LIMITS, 10.0 + MAX_AGE) is None
    assert len(cache) == 0
    cache.put("a", record(), LIMITS, 10.0, cache.generation)
    assert cache.get("a", T0, LIMITS, 9.0) is None  # a clock that went back: not trusted either


def test_other_limits_or_a_now_at_which_the_script_would_write_or_expire_go_to_redis() -> None:
    idle, absolute, step = LIMITS
    created, last = T0, T0 + 10 * MIN
    for now, used in [(last, True), (last + step - 1, True), (last + step, False), (created + absolute, False),
                      (last - 5 * MIN, True)]:  # a request stamped before last_seen: no write, same record
        cache = live()
        cache.put("a", record(created=created, last=last), LIMITS, 1.0, cache.generation)
        assert (cache.get("a", now, LIMITS, 1.0) is not None) is used, now
    cache = live()
    cache.put("a", record(), LIMITS, 1.0, cache.generation)
    assert cache.get("a", T0, (idle, absolute, step + 1), 1.0) is None  # a reload changed the limits


def test_reported_changes_drop_what_they_touch() -> None:
    cache = live()
    for member, account in [("s1", "zhangsan"), ("s2", "zhangsan"), ("s3", "lisi")]:
        cache.put(member, record(account), LIMITS, 1.0, cache.generation)
    cache.changed(SESSION_KEY + "s1")
    assert cache.get("s1", T0, LIMITS, 1.0) is None
    assert cache.get("s2", T0, LIMITS, 1.0) is not None
    cache.changed(ACCOUNT_LOCK_KEY + "zhangsan")  # a lock set or lifted: every session of the account
    assert cache.get("s2", T0, LIMITS, 1.0) is None
    assert cache.get("s3", T0, LIMITS, 1.0) is not None
    cache.changed(None)  # FLUSHDB / FLUSHALL
    assert len(cache) == 0
    cache.put("s3", record("lisi"), LIMITS, 1.0, cache.generation)
    cache.changed("govgate:something-else")  # not asked about: nothing kept is trusted
    assert len(cache) == 0


def test_what_this_process_changes_itself_is_dropped_at_once() -> None:
    cache = live()
    cache.put("s1", record("zhangsan"), LIMITS, 1.0, cache.generation)
    cache.put("s2", record("zhangsan"), LIMITS, 1.0, cache.generation)
    cache.put("s3", record("lisi"), LIMITS, 1.0, cache.generation)
    sent = cache.generation
    cache.forget("s1")
    assert cache.get("s1", T0, LIMITS, 1.0) is None
    cache.put("s1", record("zhangsan"), LIMITS, 1.0, sent)  # looked up before the delete: not kept
    assert cache.get("s1", T0, LIMITS, 1.0) is None
    cache.forget_account("zhangsan")
    assert cache.get("s2", T0, LIMITS, 1.0) is None
    assert cache.get("s3", T0, LIMITS, 1.0) is not None


def test_the_oldest_entry_goes_first_and_the_bound_holds() -> None:
    cache = live(max_entries=3)
    for m in "abcd":
        cache.put(m, record(), LIMITS, 1.0, cache.generation)
    assert len(cache) == 3
    assert cache.get("a", T0, LIMITS, 1.0) is None
    assert all(cache.get(m, T0, LIMITS, 1.0) is not None for m in "bcd")
    cache.put("b", record(), LIMITS, 1.0, cache.generation)  # kept again: now the newest
    cache.put("e", record(), LIMITS, 1.0, cache.generation)
    assert cache.get("c", T0, LIMITS, 1.0) is None
    assert cache.get("b", T0, LIMITS, 1.0) is not None


def test_a_record_whose_times_do_not_read_as_numbers_is_not_kept() -> None:
    cache = live()
    cache.put("a", ("zhangsan", "", "192.0.2.1", "soon", str(T0), ""), LIMITS, 1.0, cache.generation)
    assert len(cache) == 0


# Against the real script: wherever the cache would answer, Redis answers the same record and writes nothing.
offsets = st.integers(min_value=-2 * MIN, max_value=500 * MIN)


@pytest.mark.redis
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(age=st.integers(min_value=0, max_value=500 * MIN), idle_since=st.integers(min_value=0, max_value=20 * MIN),
       later=offsets, idle_minutes=st.integers(min_value=1, max_value=60),
       absolute_minutes=st.integers(min_value=1, max_value=600))
async def test_where_the_cache_answers_the_script_returns_the_same_record_and_writes_nothing(
        redis_url: str, age: int, idle_since: int, later: int, idle_minutes: int, absolute_minutes: int) -> None:
    limits = SessionLimits(idle_timeout=timedelta(minutes=idle_minutes),
                           absolute_timeout=timedelta(minutes=absolute_minutes))
    store = RedisStore.from_url(redis_url, timedelta(seconds=5))  # no near cache: the script's own answer
    try:
        created = T0
        last = created + min(age, idle_since)
        now = last + later
        numbers = store._touch_limits_args(limits)[3]
        session = Session("id-" + str(now), "zhangsan", None, "192.0.2.1", from_us(created, UTC), from_us(last, UTC))
        await store._redis.delete(SESSION + hash_id(session.id))
        await store.create_session(session, limits)
        if not unchanged_by_touch(created, last, now, numbers):
            return
        before = await store._redis.hgetall(SESSION + hash_id(session.id))
        ttl_before = await store._redis.pttl(SESSION + hash_id(session.id))
        lookup = await store.touch_session(session.id, from_us(now, UTC), limits)
        assert lookup.session is not None
        assert not lookup.expired
        assert (to_us(lookup.session.created), to_us(lookup.session.last_seen)) == (created, last)
        assert await store._redis.hgetall(SESSION + hash_id(session.id)) == before
        assert await store._redis.pttl(SESSION + hash_id(session.id)) <= ttl_before  # not renewed
    finally:
        await store.close()


def test_unchanged_by_touch_reads_the_script_s_conditions() -> None:
    idle, absolute, step = LIMITS
    assert unchanged_by_touch(T0, T0, T0, LIMITS)
    assert not unchanged_by_touch(T0, T0, T0 + step, LIMITS)
    assert not unchanged_by_touch(T0, T0, T0 + absolute, (idle, absolute, absolute + 1))
    assert not unchanged_by_touch(T0, T0, T0 + idle, (idle, absolute, idle + 1))
    assert unchanged_by_touch(T0, T0 + MIN, T0, LIMITS)  # now before last_seen
    assert datetime.fromtimestamp(T0 / 1e6, UTC).year >= 2027
