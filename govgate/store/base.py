"""The state store interface: sessions, pre-MFA logins, failure counters and locks, used TOTP steps.

Two implementations keep the same contract (one test suite runs against both):
``MemoryStore`` (in-process, one gateway instance) and ``RedisStore`` (shared by many instances).
Every method may raise ``govgate.errors.StoreUnavailable``; callers fail closed (503 on staff paths).
The arithmetic (windows, lock ends, idle/absolute expiry) lives in ``govgate.core.lockout`` and
``govgate.core.sessions`` as pure functions; stores only keep state and apply it atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from govgate.core.policy.model import Login, SessionLimits
from govgate.core.sessions import SessionEnd


@dataclass(frozen=True, slots=True)
class Session:
    """A staff session after password + TOTP (Art. 30). ``id`` is a secret: never log it."""

    id: str
    account: str
    device: str | None  # the allowlisted device the session was opened on (account–device binding)
    client: str  # address at login
    created: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class SessionLookup:
    """What one round trip for a staff request returns."""

    session: Session | None  # None: no such session, or it just expired (then ``expired`` is True)
    expired: bool  # it existed but passed its idle or absolute timeout; it is now deleted
    account_locked_until: datetime | None  # the session's account is locked until then (None: not locked)
    expired_account: str | None = None  # whose session just expired (for the audit record, Art. 20)
    expired_why: SessionEnd | None = None  # idle or absolute timeout (for the audit record, Art. 20)


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """The short-lived state between a correct password and the TOTP step, bound to the browser."""

    id: str  # secret, carried in a cookie
    account: str
    next: str  # validated local path
    client: str
    created: datetime


@dataclass(frozen=True, slots=True)
class LockState:
    account_locked_until: datetime | None
    client_locked_until: datetime | None
    # Set by ``record_failure`` only: this very failure started the lock (for one "lockout" audit
    # event per lock, and to prove that concurrent gateways lock exactly once).
    account_lock_started: bool = False
    client_lock_started: bool = False

    @property
    def locked_until(self) -> datetime | None:
        ends = [t for t in (self.account_locked_until, self.client_locked_until) if t is not None]
        return max(ends) if ends else None

    @property
    def locked(self) -> bool:
        return self.locked_until is not None


class Store(Protocol):
    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""
        ...

    # Sessions (Art. 30: timeout logout).
    async def create_session(self, session: Session, limits: SessionLimits) -> None: ...

    async def touch_session(self, session_id: str, now: datetime, limits: SessionLimits) -> SessionLookup:
        """In one round trip: read the session, expire it (idle/absolute) or update ``last_seen``,
        and read its account's lock."""
        ...

    def touch_session_now(self, session_id: str, now: datetime, limits: SessionLimits) -> SessionLookup | None:
        """What ``touch_session`` would return, when the store can answer without I/O (the memory store always;
        Redis from its near cache of lookups); None: await ``touch_session``. The staff path asks this first, so
        that a request answered from it is decided without a task of its own (``govgate/dispatch.py``)."""
        ...

    async def delete_session(self, session_id: str) -> None: ...

    async def delete_account_sessions(self, account: str) -> int:
        """End every session of ``account``; returns how many."""
        ...

    # Between password and TOTP.
    async def put_pending_login(self, pending: PendingLogin, ttl: timedelta) -> None: ...

    async def get_pending_login(self, pending_id: str) -> PendingLogin | None: ...

    async def delete_pending_login(self, pending_id: str) -> None: ...

    # Login-failure limits (Art. 30). ``account`` is None for unknown user names: they count
    # against the client address only.
    async def record_failure(self, account: str | None, client: str, now: datetime, login: Login) -> LockState:
        """Count one failed password or TOTP attempt atomically; lock when a limit is reached."""
        ...

    async def lock_state(self, account: str | None, client: str, now: datetime) -> LockState: ...

    async def clear_failures(self, account: str) -> None:
        """After a successful login: the account's failure count starts again."""
        ...

    async def unlock(self, account: str) -> None:
        """Admin unlock: clears the account's lock and failure count."""
        ...

    async def account_locked_until(self, account: str, now: datetime) -> datetime | None: ...

    # TOTP codes are accepted once only.
    async def use_totp_step(self, account: str, step: int) -> bool:
        """Atomically record ``step`` as used if it is later than the last used step; False if not."""
        ...

    async def close(self) -> None: ...
