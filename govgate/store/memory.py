"""``MemoryStore``: the in-process state store, for a single gateway instance (``state.redis`` absent).

It owns plain dictionaries and applies the pure rules of ``govgate.core.lockout`` and
``govgate.core.sessions``, so it behaves exactly like ``RedisStore`` (one contract suite runs against
both). Asyncio-safe on one event loop: no method awaits between reading and writing its state, so
every method is atomic with respect to the others.

Memory stays bounded: entries expire lazily (on read) and, every ``PRUNE_EVERY`` writes, a sweep drops
every session, failure counter and pending login whose time is over. Failure counters are never
evicted early (that would let a flood of addresses reset an attacker's count); they live at most
``max(failure_window, lockout)`` after their last failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from govgate.core.lockout import FailureState, forget_at, lock_started, locked_until, register_failure
from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sessions import session_expires_at, session_verdict, touch_due, touched
from govgate.store.base import LockState, PendingLogin, Session, SessionLookup

PRUNE_EVERY = 256  # writes between sweeps


@dataclass(frozen=True, slots=True)
class _Counter:
    state: FailureState
    forget_at: datetime | None  # the state no longer matters from then on


@dataclass(frozen=True, slots=True)
class _StoredSession:
    session: Session
    expires_at: datetime  # as computed with the limits last applied


@dataclass(frozen=True, slots=True)
class _StoredPending:
    pending: PendingLogin
    deadline: float  # on the monotonic clock, like Redis's own TTL


class MemoryStore:
    """In-process ``Store``. ``monotonic`` is the clock for pending-login TTLs (as Redis's TTL is its
    own clock); every other time comes from the ``now`` the caller passes."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._sessions: dict[str, _StoredSession] = {}
        self._account_sessions: dict[str, set[str]] = {}
        self._pending: dict[str, _StoredPending] = {}
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._totp_steps: dict[str, int] = {}
        self._latest_now: datetime | None = None
        self._writes = 0

    async def ping(self) -> None:
        return None

    # -- sessions (Art. 30: 超时退出, timeout logout) ------------------------------------------------
    async def create_session(self, session: Session, limits: SessionLimits) -> None:
        self._sessions[session.id] = _StoredSession(session, session_expires_at(session, limits))
        self._account_sessions.setdefault(session.account, set()).add(session.id)
        self._wrote(session.last_seen)

    async def touch_session(self, session_id: str, now: datetime, limits: SessionLimits) -> SessionLookup:
        return self.touch_session_now(session_id, now, limits)

    def touch_session_now(self, session_id: str, now: datetime, limits: SessionLimits) -> SessionLookup:
        """``touch_session`` itself: the memory store needs no I/O."""
        stored = self._sessions.get(session_id)
        if stored is None:
            return SessionLookup(session=None, expired=False, account_locked_until=None)
        verdict = session_verdict(stored.session, now, limits)
        if not verdict.valid:
            self._forget_session(session_id)
            self._wrote(now)
            return SessionLookup(session=None, expired=True, account_locked_until=None,
                                 expired_account=stored.session.account, expired_why=verdict.end)
        session = stored.session
        if touch_due(session, now, limits):  # docs/state.md: last_seen moves in steps of 1 % of the idle timeout
            session = touched(session, now)
            self._sessions[session_id] = _StoredSession(session, session_expires_at(session, limits))
            self._wrote(now)
        counter = self._counters.get(("account", session.account))
        lock = locked_until(counter.state, now) if counter is not None else None
        return SessionLookup(session=session, expired=False, account_locked_until=lock)

    async def delete_session(self, session_id: str) -> None:
        self._forget_session(session_id)

    async def delete_account_sessions(self, account: str) -> int:
        ids = self._account_sessions.pop(account, set())
        count = 0
        for session_id in ids:
            if self._sessions.pop(session_id, None) is not None:
                count += 1
        return count

    # -- between password and TOTP ----------------------------------------------------------------
    async def put_pending_login(self, pending: PendingLogin, ttl: timedelta) -> None:
        self._pending[pending.id] = _StoredPending(pending, self._monotonic() + ttl.total_seconds())
        self._wrote(pending.created)

    async def get_pending_login(self, pending_id: str) -> PendingLogin | None:
        stored = self._pending.get(pending_id)
        if stored is None:
            return None
        if self._monotonic() >= stored.deadline:
            del self._pending[pending_id]
            return None
        return stored.pending

    async def delete_pending_login(self, pending_id: str) -> None:
        self._pending.pop(pending_id, None)

    # -- login-failure limits (Art. 30: 限制登录失败次数) --------------------------------------------
    async def record_failure(self, account: str | None, client: str, now: datetime, login: Login) -> LockState:
        account_until: datetime | None = None
        account_started = False
        if account is not None:
            # Unknown user names (None) count against the client address only.
            account_until, account_started = self._register(("account", account), now, login.max_failures, login)
        client_until, client_started = self._register(("client", client), now, login.ip_max_failures, login)
        self._wrote(now)
        return LockState(
            account_locked_until=account_until,
            client_locked_until=client_until,
            account_lock_started=account_started,
            client_lock_started=client_started,
        )

    async def lock_state(self, account: str | None, client: str, now: datetime) -> LockState:
        return LockState(
            account_locked_until=self._locked_until(("account", account), now) if account is not None else None,
            client_locked_until=self._locked_until(("client", client), now),
        )

    async def clear_failures(self, account: str) -> None:
        key = ("account", account)
        counter = self._counters.get(key)
        if counter is None:
            return
        if counter.state.locked_until is None:
            del self._counters[key]
            return
        # The failure count starts again; a lock in force stays (only `unlock` lifts it).
        state = FailureState(failures=(), locked_until=counter.state.locked_until)
        self._counters[key] = _Counter(state, state.locked_until)

    async def unlock(self, account: str) -> None:
        self._counters.pop(("account", account), None)

    async def account_locked_until(self, account: str, now: datetime) -> datetime | None:
        return self._locked_until(("account", account), now)

    # -- TOTP codes are accepted once only (Art. 30: 多因素鉴别) ------------------------------------
    async def use_totp_step(self, account: str, step: int) -> bool:
        last = self._totp_steps.get(account)
        if last is not None and step <= last:
            return False
        self._totp_steps[account] = step
        return True

    async def close(self) -> None:
        return None

    # -- internals --------------------------------------------------------------------------------
    def _register(self, key: tuple[str, str], now: datetime, max_failures: int, login: Login) -> tuple[
        datetime | None, bool
    ]:
        counter = self._counters.get(key)
        before = counter.state if counter is not None else None
        after = register_failure(before, now, max_failures, login.failure_window, login.lockout)
        self._counters[key] = _Counter(after, forget_at(after, login.failure_window))
        return locked_until(after, now), lock_started(before, after, now)

    def _locked_until(self, key: tuple[str, str], now: datetime) -> datetime | None:
        counter = self._counters.get(key)
        return locked_until(counter.state, now) if counter is not None else None

    def _forget_session(self, session_id: str) -> None:
        stored = self._sessions.pop(session_id, None)
        if stored is None:
            return
        ids = self._account_sessions.get(stored.session.account)
        if ids is not None:
            ids.discard(session_id)
            if not ids:
                del self._account_sessions[stored.session.account]

    def _wrote(self, now: datetime) -> None:
        if self._latest_now is None or now > self._latest_now:
            self._latest_now = now
        self._writes += 1
        if self._writes % PRUNE_EVERY == 0:
            self.prune()

    def prune(self) -> None:
        """Drop everything whose time is over, as of the latest ``now`` seen (and the monotonic clock)."""
        now = self._latest_now
        if now is not None:
            for key in [k for k, c in self._counters.items() if c.forget_at is None or c.forget_at <= now]:
                del self._counters[key]
            for session_id in [i for i, s in self._sessions.items() if s.expires_at <= now]:
                self._forget_session(session_id)
        mono = self._monotonic()
        for pending_id in [i for i, p in self._pending.items() if p.deadline <= mono]:
            del self._pending[pending_id]

    def sizes(self) -> dict[str, int]:
        """How many entries of each kind are held (for tests and metrics)."""
        return {
            "sessions": len(self._sessions),
            "pending": len(self._pending),
            "counters": len(self._counters),
            "totp_steps": len(self._totp_steps),
        }
