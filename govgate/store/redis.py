"""``RedisStore``: the state store shared by several gateway instances (``state.redis``), via ``redis.asyncio``.

It owns the Redis key layout, the Lua scripts that apply the rules of ``govgate.core.lockout`` and
``govgate.core.sessions`` atomically, and the translation of every Redis failure into
``StoreUnavailable`` (callers fail closed). See ``docs/state.md``.

- Every call is bounded: ``socket_timeout``/``socket_connect_timeout`` and ``asyncio.timeout`` around
  the whole call (retries included). Connection errors, timeouts and any other Redis error come out as
  ``StoreUnavailable``, never as a raw redis exception.
- No manual reconnect: a dropped connection is retried once on a fresh connection, so the first call
  after Redis returns works.
- Times are stored as integer microseconds since the Unix epoch (exact in Lua's doubles until the year
  2255), so the scripts and ``MemoryStore`` agree to the microsecond. Logic uses the ``now`` passed in;
  Redis TTLs only collect garbage, a little after the logical end.
- Session and pending-login ids are stored as SHA-256 hashes: a dump of Redis hands out no live session.
- ``touch_session`` (every staff request) is pipelined: the lookups of one loop tick go out in one write on
  one connection (``govgate/store/redis_pipeline.py``), each still its own script run. A session looked up less
  than half a second ago whose keys Redis has not reported changed is answered from ``SessionCache``
  (``govgate/store/session_cache.py``, which says why that is the same answer); the reports come on a connection
  of the store's own with client-side caching on in broadcast mode (``_follow_changes``), and while that
  connection is down nothing is cached.
- URLs: ``redis://``, ``rediss://``, ``unix://`` (as redis-py reads them), and Redis Sentinel as
  ``redis+sentinel://[user:password@]host1:26379,host2:26379/master-name[/db]`` (``rediss+sentinel`` for TLS).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sentinel_url import is_sentinel_url, parse_sentinel_url
from govgate.core.sessions import SessionEnd, session_expires_at, touch_step
from govgate.errors import StoreUnavailable
from govgate.repeated import REPEATED
from govgate.store.base import LockState, PendingLogin, Session, SessionLookup
from govgate.store.redis_pipeline import ScriptPipeline, bulk
from govgate.store.session_cache import Limits, Record, SessionCache

logger = logging.getLogger(__name__)

PREFIX: Final = "govgate:"
SESSION: Final = PREFIX + "session:"  # + sha256(id) → hash
ACCOUNT_SESSIONS: Final = PREFIX + "account-sessions:"  # + account → set of session hashes
PENDING: Final = PREFIX + "pending:"  # + sha256(id) → JSON string, TTL = the pending login's life
FAILURES: Final = PREFIX + "failures:"  # + "account:NAME" | "client:ADDR" → list of failure times (µs)
LOCK: Final = PREFIX + "lock:"  # + "account:NAME" | "client:ADDR" → lock end (µs)
TOTP_STEP: Final = PREFIX + "totp-step:"  # + account → last used TOTP step
INVALIDATE: Final = "__redis__:invalidate"  # the channel Redis reports changed keys on (client-side caching)
RETRY_CHANGES: Final = 1.0  # seconds between tries to open the change reports again after they stopped
PING_CHANGES: Final = 0.04  # seconds between pings on the report connection (SessionCache.heard_within: 0.15)
DEAD_CHANGES: Final = 1.0  # seconds a ping may go unanswered before the report connection is closed and reopened

GRACE: Final = timedelta(seconds=60)  # keys outlive their logical end by this much
TOTP_STEP_TTL: Final = timedelta(days=1)  # older codes are refused by TOTP verification anyway
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
HEALTH_KEY: Final = "govgate:health"  # written by ping (health): Redis takes writes
_MICROSECOND: Final = timedelta(microseconds=1)


def to_us(value: datetime | timedelta) -> int:
    """Microseconds since the epoch (for an aware datetime) or in a duration, exactly."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MICROSECOND
    return value // _MICROSECOND


def from_us(value: int, tz: tzinfo | None = None) -> datetime:
    moment = _EPOCH + timedelta(microseconds=value)
    return moment.astimezone(tz) if tz is not None else moment


def _ms(value: timedelta) -> int:
    return max(1, -(-value // timedelta(milliseconds=1)))  # rounded up, at least 1 ms


def hash_id(secret_id: str) -> str:
    """The form in which a session or pending-login id is kept in Redis."""
    return hashlib.sha256(secret_id.encode()).hexdigest()


# Art. 30 (第三十条): 限制登录失败次数. The rules of govgate.core.lockout, on integer microseconds:
# a failure counts while now - t < window; failures while locked are ignored; reaching the maximum
# locks until now + lockout and forgets the counted failures. Client first, then the account (if any).
_RECORD_FAILURE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local function register(fail_key, lock_key, max)
  local lock = redis.call('GET', lock_key)
  if lock and now < tonumber(lock) then
    return {lock, 0}
  end
  local kept = {}
  for _, t in ipairs(redis.call('LRANGE', fail_key, 0, -1)) do
    if now - tonumber(t) < window then kept[#kept + 1] = t end
  end
  kept[#kept + 1] = ARGV[1]
  redis.call('DEL', fail_key)
  if #kept >= max then
    redis.call('SET', lock_key, ARGV[3], 'PX', ARGV[7])
    return {ARGV[3], 1}
  end
  redis.call('RPUSH', fail_key, unpack(kept))
  redis.call('PEXPIRE', fail_key, ARGV[6])
  return {'', 0}
end
local result = register(KEYS[1], KEYS[2], tonumber(ARGV[4]))
if #KEYS == 4 then
  local account = register(KEYS[3], KEYS[4], tonumber(ARGV[5]))
  result[3] = account[1]
  result[4] = account[2]
end
return result
"""

# Art. 30 (第三十条): 超时退出. The rules of govgate.core.sessions, in one round trip: read the session,
# expire it (absolute, then idle) or move last_seen forward (never back, and only by at least ARGV[8], the
# touch step of docs/state.md) and its TTL, read the lock. ARGV[9] '1': a refresh of the near cache's record
# (``SessionCache``): where the lookup would expire the session or write last_seen it changes nothing and returns
# {3}, so that the request that does so is a real one (and its audit record is written).
_TOUCH_SESSION = """
local s = redis.call('HMGET', KEYS[1], 'account', 'device', 'client', 'created', 'last_seen')
if not s[1] or not s[4] or not s[5] then return {0} end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local created = tonumber(s[4])
local last = tonumber(s[5])
local refresh = ARGV[9] == '1'
if now >= created + absolute or now >= last + idle then
  if refresh then return {3} end
  redis.call('DEL', KEYS[1])
  redis.call('SREM', ARGV[6] .. s[1], ARGV[7])
  if now >= created + absolute then return {2, s[1], 'absolute'} end
  return {2, s[1], 'idle'}
end
local last_text = s[5]
if now - last >= tonumber(ARGV[8]) and now > last then
  if refresh then return {3} end
  last = now
  last_text = ARGV[1]
  redis.call('HSET', KEYS[1], 'last_seen', last_text)
  local ends = math.min(created + absolute, last + idle)
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil((ends - now) / 1000) + tonumber(ARGV[4])))
end
local lock = redis.call('GET', ARGV[5] .. s[1])
if not lock then lock = '' end
return {1, s[1], s[2] or '', s[3] or '', s[4], last_text, lock}
"""

_CREATE_SESSION = """
redis.call('HSET', KEYS[1], 'account', ARGV[1], 'device', ARGV[2], 'client', ARGV[3],
           'created', ARGV[4], 'last_seen', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
-- The account's session index would otherwise keep members whose sessions simply timed out: drop up to 32
-- such members per login, so an account that logs in often never collects an ever-growing index.
for _, m in ipairs(redis.call('SRANDMEMBER', KEYS[2], 32)) do
  if redis.call('EXISTS', ARGV[9] .. m) == 0 then redis.call('SREM', KEYS[2], m) end
end
redis.call('SADD', KEYS[2], ARGV[7])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[8]) then redis.call('PEXPIRE', KEYS[2], ARGV[8]) end
return 1
"""

_DELETE_SESSION = """
local account = redis.call('HGET', KEYS[1], 'account')
redis.call('DEL', KEYS[1])
if account then redis.call('SREM', ARGV[1] .. account, ARGV[2]) end
return 1
"""

_DELETE_ACCOUNT_SESSIONS = """
local n = 0
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
return n
"""

# TOTP codes are accepted once only: compare-and-set, greater than the last used step.
_USE_TOTP_STEP = """
local last = redis.call('GET', KEYS[1])
if last and tonumber(last) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


_LOOKUP, _REFRESH = bulk(b"0"), bulk(b"1")  # _TOUCH_SESSION's ARGV[9]


def _lock_time(text: str | bytes, now: datetime) -> datetime | None:
    """A stored lock end, if the lock is in force at ``now``."""
    if not text:
        return None
    end = int(text)
    return from_us(end, now.tzinfo) if to_us(now) < end else None


class RedisStore:
    """``Store`` on Redis (or Redis Sentinel). Safe to share between gateway instances."""

    def __init__(self, client: Redis, timeout: timedelta, *, on_error: Callable[[], None] | None = None,
                 session_cache: bool = False, changes_client: Redis | None = None) -> None:
        """``changes_client``: the same server, speaking RESP2 (``protocol=2``), for the change reports that the
        session cache needs (``from_url`` makes it); without it, ``client`` (reports then come as RESP3 pushes that
        redis-py does not hand over: every report empties the whole cache, which is safe but keeps little)."""
        self._redis = client
        self._changes_client = changes_client if changes_client is not None else client
        self._timeout = timeout.total_seconds()
        self._on_error = on_error  # told of each call that failed (``/metrics``)
        self._record_failure = client.register_script(_RECORD_FAILURE)
        # The hot path of every staff request: pipelined, the lookups of one loop tick in one write
        # (govgate/store/redis_pipeline.py). The command is packed here, its fixed parts once.
        self._touch_session = ScriptPipeline(client, _TOUCH_SESSION, self._timeout)
        self._touch_head = self._touch_session.head(numkeys=1, nargs=9)
        self._touch_fixed = bulk(b"%d" % _ms(GRACE)) + bulk((LOCK + "account:").encode()) + bulk(
            ACCOUNT_SESSIONS.encode())
        self._touch_limits = self._touch_limits_args(SessionLimits())
        # Lookups answered without a round trip (govgate/store/session_cache.py), when ``session_cache`` is asked for:
        # by the gateway (govgate/live_runtime.py), not by one-shot commands.
        self.sessions = SessionCache()
        self._follow = session_cache
        self._changes: asyncio.Task[None] | None = None  # _follow_changes, started by the first lookup
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # session hash -> its record's refresh (_refresh)
        self._closed = False
        self._create_session = client.register_script(_CREATE_SESSION)
        self._delete_session = client.register_script(_DELETE_SESSION)
        self._delete_account_sessions = client.register_script(_DELETE_ACCOUNT_SESSIONS)
        self._use_totp_step = client.register_script(_USE_TOTP_STEP)

    @classmethod
    def from_url(cls, url: str, timeout: timedelta, *, on_error: Callable[[], None] | None = None,
                 session_cache: bool = False) -> RedisStore:
        """Build the store (no connection is made until the first call). ``ValueError`` on a bad URL."""
        seconds = timeout.total_seconds()
        options: dict[str, Any] = {
            "socket_timeout": seconds,
            "socket_connect_timeout": seconds,
            "decode_responses": True,
            # A dropped connection (Redis restarted) is retried once on a fresh one: recovery needs no
            # manual reconnect. The whole call stays bounded by asyncio.timeout in _run.
            "retry": Retry(NoBackoff(), 1),
        }
        build: Callable[..., Redis]
        if is_sentinel_url(url):
            parsed = parse_sentinel_url(url)
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(parsed.sentinels),
                sentinel_kwargs={"socket_timeout": seconds, "socket_connect_timeout": seconds},
                **options,
            )

            def build(**extra: Any) -> Redis:
                made: Redis = sentinel.master_for(parsed.master, db=parsed.db, username=parsed.username,
                                                  password=parsed.password, ssl=parsed.ssl, **extra)
                return made
        else:
            def build(**extra: Any) -> Redis:
                return Redis.from_url(url, **options, **extra)
        client = build()
        # The change reports arrive as pub/sub messages naming the keys on a RESP2 connection (redis-py reads RESP3
        # reports as pushes it hands to nobody): a client of its own for that one connection.
        changes = build(protocol=2) if session_cache else None
        if changes is not None:  # over a ?protocol= in the URL, which redis-py would let win
            changes.connection_pool.connection_kwargs["protocol"] = 2
        return cls(client, timeout, on_error=on_error, session_cache=session_cache, changes_client=changes)

    async def _run[T](self, operation: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            # Never log the arguments: they may hold session hashes or account names.
            REPEATED.warning(logger, "store.unavailable.redis", "store.unavailable operation=%s error=%s", operation,
                             type(exc).__name__)
            if self._on_error is not None:
                self._on_error()
            raise StoreUnavailable(f"Redis {operation} failed: {type(exc).__name__}") from None

    async def ping(self) -> None:
        """Reachable and taking writes: a Redis out of memory (``noeviction``) or a read-only replica after a
        failover answers PING but refuses every login and session write (found in review: logins got 503 while
        health said ok). A short-lived key outside the prefixes the session cache follows."""
        await self._run("ping", self._redis.set(HEALTH_KEY, "1", px=10_000))

    # -- sessions (Art. 30: 超时退出, timeout logout) ------------------------------------------------
    async def create_session(self, session: Session, limits: SessionLimits) -> None:
        member = hash_id(session.id)
        # The TTL counts from last_seen (the caller's now at creation) to the logical end, plus grace.
        ttl = session_expires_at(session, limits) - session.last_seen + GRACE
        await self._run(
            "create_session",
            self._create_session(
                keys=[SESSION + member, ACCOUNT_SESSIONS + session.account],
                args=[
                    session.account,
                    "=" + session.device if session.device is not None else "",
                    session.client,
                    to_us(session.created),
                    to_us(session.last_seen),
                    _ms(ttl),
                    member,
                    _ms(limits.absolute_timeout + GRACE),
                    SESSION,
                ],
            ),
        )

    def _limits_args(self, limits: SessionLimits) -> tuple[SessionLimits, bytes, bytes, Limits]:
        cached = self._touch_limits
        if cached[0] != limits:
            cached = self._touch_limits = self._touch_limits_args(limits)
        return cached

    def touch_session_now(self, session_id: str, now: datetime, limits: SessionLimits) -> SessionLookup | None:
        """The lookup kept by the near cache (``SessionCache``: what ``_TOUCH_SESSION`` would return now), without a
        round trip; None when there is none: ``touch_session`` asks Redis. A record past ``REFRESH_AFTER`` is
        fetched again in the background (``_refresh``), so that a session in use is not dropped from the cache at
        ``MAX_AGE`` with every request of that moment going to Redis at once."""
        hashed = hash_id(session_id)
        cached = self._limits_args(limits)
        now_us, mono = to_us(now), time.monotonic()
        sessions = self.sessions
        kept = sessions.get(hashed, now_us, cached[3], mono)
        if kept is None:
            return None
        if sessions.due(hashed, mono) and hashed not in self._refreshing and not self._closed:
            self._refreshing[hashed] = asyncio.get_running_loop().create_task(
                self._refresh(hashed, now_us, cached), name="govgate-session-refresh")
        return self._found(session_id, kept, now)

    def _touch_command(self, member: bytes, now_us: int, cached: tuple[SessionLimits, bytes, bytes, Limits], *,
                       refresh: bool) -> bytes:
        # EVALSHA sha 1 KEYS[1]=SESSION+member; ARGV: now, idle, absolute, grace (ms), the account lock's key
        # prefix, the account index's key prefix, member, touch step, refresh (the layout _TOUCH_SESSION reads).
        return b"".join((self._touch_head, bulk(SESSION.encode() + member), bulk(b"%d" % now_us), cached[1],
                         self._touch_fixed, bulk(member), cached[2], _REFRESH if refresh else _LOOKUP))

    async def _refresh(self, hashed: str, now_us: int, cached: tuple[SessionLimits, bytes, bytes, Limits]) -> None:
        """Fetch a kept record again for the lookup at ``now_us`` that found it due, and keep the answer under the
        cache's rules (sent before any change reported since). Where the real lookup would change the session
        (expire it, write ``last_seen``) or finds none, or Redis fails, the record is dropped instead: the next
        request goes to Redis itself."""
        sessions = self.sessions
        try:
            generation, sent = sessions.generation, time.monotonic()
            reply = await self._run("touch_session", self._touch_session.call(
                self._touch_command(hashed.encode(), now_us, cached, refresh=True)))
            record = tuple(str(v) for v in reply[1:7]) if int(reply[0]) == 1 else ()
            if len(record) == 6:
                sessions.put(hashed, record, cached[3], sent, generation)
            else:
                sessions.forget(hashed)
        except Exception:  # StoreUnavailable (logged by _run), a malformed reply: the next request asks Redis
            sessions.forget(hashed)
        finally:
            self._refreshing.pop(hashed, None)

    async def touch_session(self, session_id: str, now: datetime, limits: SessionLimits) -> SessionLookup:
        kept = self.touch_session_now(session_id, now, limits)
        if kept is not None:
            return kept
        hashed = hash_id(session_id)
        cached = self._limits_args(limits)
        sessions = self.sessions
        if self._changes is None and self._follow and not self._closed:
            self._changes = asyncio.get_running_loop().create_task(self._follow_changes(),
                                                                   name="govgate-redis-changes")
        generation, sent = sessions.generation, time.monotonic()
        packed = self._touch_command(hashed.encode(), to_us(now), cached, refresh=False)
        reply = await self._run("touch_session", self._touch_session.call(packed))
        try:
            status = int(reply[0])
            if status == 0:
                return SessionLookup(session=None, expired=False, account_locked_until=None)
            if status == 2:
                return SessionLookup(session=None, expired=True, account_locked_until=None,
                                     expired_account=str(reply[1]) if len(reply) > 1 else None,
                                     expired_why=SessionEnd(str(reply[2])) if len(reply) > 2 else None)
            record: Record = tuple(str(v) for v in reply[1:7])  # type: ignore[assignment]  # length: _found
            found = self._found(session_id, record, now)
        except (ValueError, TypeError, IndexError):
            raise StoreUnavailable("Redis touch_session: malformed session record") from None
        sessions.put(hashed, record, cached[3], sent, generation)
        return found

    @staticmethod
    def _found(session_id: str, record: Record, now: datetime) -> SessionLookup:
        """The lookup of a found session from the script's record (fresh, or kept by ``SessionCache``)."""
        if len(record) != 6:
            raise IndexError(len(record))
        account, device, client, created, last_seen, lock = record
        session = Session(
            id=session_id,
            account=account,
            device=device[1:] if device else None,
            client=client,
            created=from_us(int(created), now.tzinfo),
            last_seen=from_us(int(last_seen), now.tzinfo),
        )
        return SessionLookup(session=session, expired=False, account_locked_until=_lock_time(lock, now))

    async def _follow_changes(self) -> None:
        """Keep a connection of our own on which Redis reports every change to a session or account-lock key
        (``CLIENT TRACKING ... BCAST``, redirected to the connection itself, which subscribes to ``INVALIDATE``),
        and tell ``self.sessions``; while it is not up, nothing is cached. The connection speaks RESP2 (a client of
        its own, ``self._changes_client``: reports come as pub/sub messages naming the keys) and is pinged every
        ``PING_CHANGES`` seconds; ``SessionCache`` answers only while it was heard from recently, so a Redis that
        hangs or a connection that died without closing stops the cache too. Reopened after ``RETRY_CHANGES``
        when it fails (Redis down, restarted, failed over, or a server or ACL without client-side caching)."""
        pool = self._changes_client.connection_pool
        while not self._closed:
            conn: Any = None
            pinger: asyncio.Task[None] | None = None
            try:
                conn = await pool.get_connection()  # type: ignore[no-untyped-call]
                async with asyncio.timeout(self._timeout):
                    await conn.send_command("CLIENT", "ID", check_health=False)
                    own_id = await conn.read_response()
                    await conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST",
                                            "PREFIX", SESSION, "PREFIX", LOCK + "account:", check_health=False)
                    if await conn.read_response() != "OK":
                        raise RedisError("CLIENT TRACKING refused")
                    subscribe_sent = time.monotonic()
                    await conn.send_command("SUBSCRIBE", INVALIDATE, check_health=False)
                    # hiredis may read pub/sub replies as push notifications: asked for as such (a list either way)
                    subscribed = await conn.read_response(push_request=True)
                    if not (isinstance(subscribed, list) and subscribed[:2] == ["subscribe", INVALIDATE]):
                        raise RedisError("SUBSCRIBE refused")
                # "Heard at" is when the request was *sent*: every change made before that was reported ahead of its
                # answer on this connection, however late the answer is read (a slow network, a stalled loop).
                self.sessions.mark_live(subscribe_sent)
                pings: collections.deque[float] = collections.deque()
                pinger = asyncio.get_running_loop().create_task(self._ping_changes(conn, pings),
                                                                name="govgate-redis-ping")
                while True:
                    message = await conn.read_response(timeout=math.inf, push_request=True)
                    if isinstance(message, list) and message == ["pong", ""] and pings:
                        self.sessions.heard(pings.popleft())  # the answer to _ping_changes, in order
                    elif isinstance(message, list) and len(message) == 3 and message[:2] == ["message", INVALIDATE]:
                        keys = message[2]
                        if not isinstance(keys, list):  # None: the database was flushed
                            self.sessions.changed(None)
                        else:
                            for key in keys:
                                self.sessions.changed(str(key))
                    else:  # not what a subscribed, tracking RESP2 connection sends: start again
                        raise RedisError("unexpected message on the change report connection")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever stops the reports: nothing kept is used
                REPEATED.warning(logger, "store.changes.redis", "store.session_cache.off error=%s (lookups go to "
                                 "Redis until the change reports are back)", type(exc).__name__)
            finally:
                self.sessions.mark_down()
                if pinger is not None:
                    pinger.cancel()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.disconnect(nowait=True)
                    with contextlib.suppress(Exception):
                        await pool.release(conn)
            await asyncio.sleep(RETRY_CHANGES)

    async def _ping_changes(self, conn: Any, pings: collections.deque[float]) -> None:
        """PING the report connection (allowed while subscribed; answered ``["pong", ""]``) until it closes, noting
        when each was sent in ``pings``; close it when no answer came for ``DEAD_CHANGES`` (a connection that died
        without closing), so that the reader fails and opens a new one."""
        while conn.is_connected:
            await asyncio.sleep(PING_CHANGES)
            if not conn.is_connected:
                return  # never reopened from here: the reader's failure ends this connection
            if pings and time.monotonic() - pings[0] > DEAD_CHANGES:
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
                return
            try:
                pings.append(time.monotonic())
                await conn.send_command("PING", check_health=False)
            except Exception:  # the reader sees the same failure and marks the cache down
                return

    @staticmethod
    def _touch_limits_args(limits: SessionLimits) -> tuple[SessionLimits, bytes, bytes, Limits]:
        """The arguments of ``_TOUCH_SESSION`` that depend on the session limits only, packed; and as numbers
        (µs) for ``SessionCache``."""
        idle, absolute, step = to_us(limits.idle_timeout), to_us(limits.absolute_timeout), to_us(touch_step(limits))
        return (limits, bulk(b"%d" % idle) + bulk(b"%d" % absolute), bulk(b"%d" % step), (idle, absolute, step))

    async def delete_session(self, session_id: str) -> None:
        member = hash_id(session_id)
        self.sessions.forget(member)
        try:
            await self._run(
                "delete_session", self._delete_session(keys=[SESSION + member], args=[ACCOUNT_SESSIONS, member])
            )
        finally:  # and a lookup of it answered meanwhile (Redis reports it too), even if the reply was lost
            self.sessions.forget(member)

    async def delete_account_sessions(self, account: str) -> int:
        self.sessions.forget_account(account)
        try:
            count = await self._run(
                "delete_account_sessions",
                self._delete_account_sessions(keys=[ACCOUNT_SESSIONS + account], args=[SESSION]),
            )
        finally:
            self.sessions.forget_account(account)  # and what was looked up meanwhile (Redis reports it too)
        return int(count)

    # -- between password and TOTP ----------------------------------------------------------------
    async def put_pending_login(self, pending: PendingLogin, ttl: timedelta) -> None:
        record = json.dumps(
            {"account": pending.account, "next": pending.next, "client": pending.client,
             "created": to_us(pending.created)},
            ensure_ascii=False,
        )
        await self._run("put_pending_login", self._redis.set(PENDING + hash_id(pending.id), record, px=_ms(ttl)))

    async def get_pending_login(self, pending_id: str) -> PendingLogin | None:
        raw = await self._run("get_pending_login", self._redis.get(PENDING + hash_id(pending_id)))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            return PendingLogin(
                id=pending_id,
                account=str(record["account"]),
                next=str(record["next"]),
                client=str(record["client"]),
                created=from_us(int(record["created"])),
            )
        except (ValueError, TypeError, KeyError):
            raise StoreUnavailable("Redis get_pending_login: malformed record") from None

    async def delete_pending_login(self, pending_id: str) -> None:
        await self._run("delete_pending_login", self._redis.delete(PENDING + hash_id(pending_id)))

    # -- login-failure limits (Art. 30: 限制登录失败次数) --------------------------------------------
    async def record_failure(self, account: str | None, client: str, now: datetime, login: Login) -> LockState:
        keys = [FAILURES + "client:" + client, LOCK + "client:" + client]
        if account is not None:
            # Unknown user names (None) count against the client address only.
            keys += [FAILURES + "account:" + account, LOCK + "account:" + account]
        now_us = to_us(now)
        reply = await self._run(
            "record_failure",
            self._record_failure(
                keys=keys,
                args=[
                    now_us,
                    to_us(login.failure_window),
                    now_us + to_us(login.lockout),
                    login.ip_max_failures,
                    login.max_failures,
                    _ms(login.failure_window + GRACE),
                    _ms(login.lockout + GRACE),
                ],
            ),
        )
        try:
            client_lock, client_started = str(reply[0]), int(reply[1]) == 1
            account_lock, account_started = (str(reply[2]), int(reply[3]) == 1) if account is not None else ("", False)
            if account_started and account is not None:
                self.sessions.forget_account(account)  # locked here: not after Redis's report only
            return LockState(
                account_locked_until=_lock_time(account_lock, now),
                client_locked_until=_lock_time(client_lock, now),
                account_lock_started=account_started,
                client_lock_started=client_started,
            )
        except (ValueError, TypeError, IndexError):
            raise StoreUnavailable("Redis record_failure: malformed reply") from None

    async def lock_state(self, account: str | None, client: str, now: datetime) -> LockState:
        keys = [LOCK + "client:" + client] + ([LOCK + "account:" + account] if account is not None else [])
        values = await self._run("lock_state", self._redis.mget(keys))
        try:
            client_lock = _lock_time(values[0] or "", now)
            account_lock = _lock_time(values[1] or "", now) if account is not None else None
        except (ValueError, TypeError, IndexError):
            raise StoreUnavailable("Redis lock_state: malformed lock") from None
        return LockState(account_locked_until=account_lock, client_locked_until=client_lock)

    async def clear_failures(self, account: str) -> None:
        # The failure count starts again; a lock in force stays (only `unlock` lifts it).
        await self._run("clear_failures", self._redis.delete(FAILURES + "account:" + account))

    async def unlock(self, account: str) -> None:
        self.sessions.forget_account(account)
        try:
            await self._run("unlock", self._redis.delete(FAILURES + "account:" + account, LOCK + "account:" + account))
        finally:
            self.sessions.forget_account(account)

    async def account_locked_until(self, account: str, now: datetime) -> datetime | None:
        value = await self._run("account_locked_until", self._redis.get(LOCK + "account:" + account))
        try:
            return _lock_time(value or "", now)
        except ValueError:
            raise StoreUnavailable("Redis account_locked_until: malformed lock") from None

    # -- TOTP codes are accepted once only (Art. 30: 多因素鉴别) ------------------------------------
    async def use_totp_step(self, account: str, step: int) -> bool:
        used = await self._run(
            "use_totp_step", self._use_totp_step(keys=[TOTP_STEP + account], args=[step, _ms(TOTP_STEP_TTL)])
        )
        return int(used) == 1

    async def close(self) -> None:
        self._closed = True
        changes, self._changes = self._changes, None
        for task in [*self._refreshing.values(), *([changes] if changes is not None else [])]:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.sessions.mark_down()
        try:
            await self._touch_session.close()
            if self._changes_client is not self._redis:
                await self._changes_client.aclose()
            await self._redis.aclose()
        except (RedisError, OSError) as exc:
            logger.warning("store.close_failed error=%s", type(exc).__name__)
