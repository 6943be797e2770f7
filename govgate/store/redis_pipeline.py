"""One Lua script's calls pipelined on one Redis connection: the calls of one event-loop tick go out in one write.

``RedisStore.touch_session`` runs on every staff request. Through redis-py's ``Script`` each call packs its
command, takes a pooled connection, writes, waits for its own answer and gives the connection back: one
socket write, one read wake-up and the pool's and redis-py's per-command machinery per call, on the gateway's
CPU, and one read and one write syscall per call on redis-server's. ``ScriptPipeline`` instead keeps one
connection of the client's pool and one task that serves it:

- a call packs its ``EVALSHA`` (the caller does, ``command``) and queues it with a future of its own;
- the task wakes up on the next loop iteration, so every call made in the same tick is already queued, and
  writes them all in one ``send_packed_command``; it then reads the replies, in order, and hands each to
  its caller (a reply, or that call's own error: one call's ``WRONGTYPE`` is not its neighbours'). Calls
  made while a batch is on the wire go out together in the next one, as soon as its replies are in;
- each caller waits for its own future only, under its own time limit (``RedisStore._run``); a caller that
  gives up or is cancelled (client disconnect) cancels its future, nothing else: its reply, if Redis
  already has the command, is read and dropped, so the replies of the others stay in step;
- failures: the whole batch is bounded by the store timeout (and redis-py's socket timeouts); a timeout
  drops the connection (a late reply must never be read as another call's) and fails the batch's
  unanswered calls; a connection error on a pooled connection that was already open (Redis restarted)
  drops it and sends the unanswered calls once more on a fresh connection (redis-py's ``Retry(NoBackoff(),
  1)`` does the same), a second one or one while connecting fails them; ``NOSCRIPT`` (Redis restarted
  empty, ``SCRIPT FLUSH``) sends ``SCRIPT LOAD`` ahead of the next batch and those calls once more (the
  first batch, and the first after a dropped connection, have ``SCRIPT LOAD`` ahead of them anyway).
  Every failure reaches the caller as the redis-py exception it was, for ``RedisStore._run`` to turn into
  ``StoreUnavailable``;
- nothing is cached: every call is one script run on Redis, answered from Redis's state at that moment.

The connection comes from, and goes back to, the client's own pool, so ``redis://``, ``rediss://``,
``unix://`` and Sentinel (whose pool finds the master on connect, and turns a demoted master's
``READONLY`` into a connection error) work as for any other command.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# The reads of a batch are bounded by the batch's own time limit (``_send``): no time limit of redis-py's own per
# reply (``math.inf`` is redis-py's "no read timeout"; a scope per reply was ~3 µs of CPU).
_BOUNDED_ABOVE = math.inf


def bulk(value: bytes) -> bytes:
    """One argument of a command in the Redis protocol (RESP bulk string)."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(*args: bytes) -> bytes:
    """A whole command in the Redis protocol, as redis-py's ``pack_command`` would send it."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


class _Call:
    __slots__ = ("command", "future", "reloaded", "retried")

    def __init__(self, packed: bytes, future: asyncio.Future[Any]) -> None:
        self.command = packed
        self.future = future
        self.retried = False  # sent once more after a dropped connection
        self.reloaded = False  # sent once more after NOSCRIPT


def _answer(call: _Call, reply: Any) -> None:
    if not call.future.done():  # a caller that gave up or was cancelled is simply not answered
        call.future.set_result(reply)


def _fail(call: _Call, error: BaseException) -> None:
    if not call.future.done():
        call.future.set_exception(error)


class ScriptPipeline:
    """Pipelined ``EVALSHA`` calls of one script on one pooled connection (see the module's docstring)."""

    def __init__(self, client: Redis, script: str, timeout: float) -> None:
        self._pool = client.connection_pool
        self._timeout = timeout
        self.sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()  # Redis names scripts so
        self._load = command(b"SCRIPT", b"LOAD", script.encode())
        self._queue: deque[_Call] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._conn: AbstractConnection | None = None
        self._must_load = True  # SCRIPT LOAD ahead of the first batch (and after a reconnect): no NOSCRIPT round
        self._closed = False

    def head(self, numkeys: int, nargs: int) -> bytes:
        """The start of an ``EVALSHA`` of this script with ``numkeys`` keys and ``nargs`` arguments; the
        caller appends the keys and arguments as ``bulk`` strings."""
        return b"*%d\r\n" % (3 + numkeys + nargs) + bulk(b"EVALSHA") + bulk(self.sha.encode()) + bulk(b"%d" % numkeys)

    async def call(self, packed: bytes) -> Any:
        """Run one packed ``EVALSHA`` (``head`` + keys + arguments); its reply, or its error (redis-py's)."""
        if self._closed:
            raise RedisConnectionError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Call(packed, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._serve(), name="govgate-redis-pipeline")
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    self._wakeup = loop.create_future()
                    await self._wakeup  # set by the first call of a tick; the others join before we run
                    self._wakeup = None
                    continue
                batch = [c for c in self._queue if not c.future.done()]  # a call given up is not sent
                self._queue.clear()
                if batch:
                    await self._send(batch)
        finally:
            self._wakeup = None
            error = RedisConnectionError("the store is closed")
            for c in self._queue:
                _fail(c, error)
            self._queue.clear()

    async def _send(self, batch: list[_Call]) -> None:
        answered = 0
        reused = self._conn is not None
        again: list[_Call] = []
        try:
            async with asyncio.timeout(self._timeout):
                if self._conn is None:
                    self._conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                conn = self._conn
                load = self._must_load
                packed = [c.command for c in batch]
                if load:
                    packed.insert(0, self._load)
                await conn.send_packed_command(b"".join(packed), check_health=False)
                if load:
                    try:
                        loaded = await conn.read_response(timeout=_BOUNDED_ABOVE)
                    except ResponseError:  # e.g. not allowed by an ACL: the EVALSHAs still answer for themselves
                        loaded = None
                    self._must_load = loaded != self.sha
                for c in batch:
                    try:
                        reply = await conn.read_response(timeout=_BOUNDED_ABOVE)
                    except NoScriptError as exc:
                        if c.reloaded:
                            _fail(c, exc)
                        else:
                            c.reloaded = True
                            self._must_load = True
                            again.append(c)
                    except ResponseError as exc:  # this call's own error reply; the next reply is the next call's
                        _fail(c, exc)
                    else:
                        _answer(c, reply)
                    answered += 1
        except (RedisTimeoutError, TimeoutError) as exc:
            await self._drop()
            for c in batch[answered:]:
                _fail(c, exc)
        except (RedisConnectionError, OSError) as exc:
            await self._drop()
            for c in batch[answered:]:
                if reused and not c.retried:
                    c.retried = True
                    again.append(c)
                else:
                    _fail(c, exc)
        except RedisError as exc:  # anything else from redis-py: nothing after it on this connection is trusted
            await self._drop()
            for c in batch[answered:]:
                _fail(c, exc)
        except asyncio.CancelledError:  # the store is closing
            await self._drop()
            for c in batch[answered:]:
                _fail(c, RedisConnectionError("the store is closed"))
            raise
        except Exception as exc:  # a bug: fail the batch (closed) rather than hang it, and keep serving
            await self._drop()
            for c in batch[answered:]:
                _fail(c, RedisConnectionError(f"the pipeline failed: {type(exc).__name__}"))
        self._queue.extendleft(reversed(again))

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._must_load = True  # the next connection may be to a Redis restarted empty
        # Never raises: the batch's callers are failed after this, and must not be left waiting for their limits.
        with contextlib.suppress(Exception):
            await conn.disconnect(nowait=True)
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()
