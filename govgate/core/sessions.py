"""Session arithmetic (Art. 30, 超时退出 — timeout logout): ids, idle and absolute expiry, touching.

Pure functions of (session, now, limits); the stores keep sessions and apply these rules (the Redis
Lua script implements the same rules on integer microseconds).

Semantics, exactly:

- A session is valid at ``now`` iff ``now < created + absolute_timeout`` and
  ``now < last_seen + idle_timeout``. When both have passed, the verdict is ``absolute_expired``.
- Touching a valid session sets ``last_seen`` to ``max(last_seen, now)``: a request carrying an
  older ``now`` (a gateway instance whose clock lags) never moves ``last_seen`` backwards.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from govgate.core.policy.model import SessionLimits

SESSION_ID_BYTES = 32  # 256 bits of randomness


class SessionTimes(Protocol):
    """What the arithmetic needs of a session (``govgate.store.base.Session`` has it)."""

    @property
    def created(self) -> datetime: ...

    @property
    def last_seen(self) -> datetime: ...



class SessionStatus(StrEnum):
    VALID = "valid"
    IDLE_EXPIRED = "idle_expired"
    ABSOLUTE_EXPIRED = "absolute_expired"


class SessionEnd(StrEnum):
    """Why a session a request carried is over: the ``reason`` of its ``session.expired`` audit record (Art. 20)."""

    IDLE = "idle"  # Art. 30: idle_timeout passed since the last request
    ABSOLUTE = "absolute"  # Art. 30: absolute_timeout passed since login
    REVOKED = "revoked"  # `govgate account logout` (or passwd, reset-totp, disable) ended it
    DEVICE = "device"  # Art. 30: used without the device it was opened on (account–device binding)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: SessionStatus

    @property
    def valid(self) -> bool:
        return self.status is SessionStatus.VALID

    @property
    def end(self) -> SessionEnd | None:
        """Which timeout ended the session (None while it is valid)."""
        if self.status is SessionStatus.ABSOLUTE_EXPIRED:
            return SessionEnd.ABSOLUTE
        if self.status is SessionStatus.IDLE_EXPIRED:
            return SessionEnd.IDLE
        return None


def new_session_id() -> str:
    """A fresh 256-bit random session id (URL-safe base64). A secret: never log it."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def session_verdict(session: SessionTimes, now: datetime, limits: SessionLimits) -> Verdict:
    """Whether ``session`` is still valid at ``now`` (Art. 30: timeout logout)."""
    if now >= session.created + limits.absolute_timeout:
        return Verdict(SessionStatus.ABSOLUTE_EXPIRED)
    if now >= session.last_seen + limits.idle_timeout:
        return Verdict(SessionStatus.IDLE_EXPIRED)
    return Verdict(SessionStatus.VALID)


def touched[T: SessionTimes](session: T, now: datetime) -> T:
    """The session after a request at ``now``: ``last_seen`` never moves backwards."""
    if now <= session.last_seen:
        return session
    as_dataclass: Any = session  # every session type is a dataclass with a ``last_seen`` field
    result: T = dataclasses.replace(as_dataclass, last_seen=now)
    return result


TOUCH_STEP_FRACTION = 100  # last_seen is written when it would move by at least idle_timeout / 100


def touch_step(limits: SessionLimits) -> timedelta:
    """How far ``last_seen`` must move before a store writes it (docs/state.md: 1 % of the idle timeout).

    A staff page is a burst of requests within a second; writing ``last_seen`` (and, in Redis, the key's TTL)
    for each of them changes nothing that matters. The bounded error: the stored ``last_seen`` lags the last
    request by less than this step, so a session in use idle-expires up to this much *before* its exact idle
    timeout (9 s of 15 minutes), never after; the absolute timeout is unaffected."""
    return limits.idle_timeout / TOUCH_STEP_FRACTION


def touch_due(session: SessionTimes, now: datetime, limits: SessionLimits) -> bool:
    """Whether a request at ``now`` moves the stored ``last_seen`` (by at least ``touch_step``)."""
    due: bool = now - session.last_seen >= touch_step(limits)
    return due


def session_expires_at(session: SessionTimes, limits: SessionLimits) -> datetime:
    """The first moment the session is no longer valid, unless touched before."""
    return min(session.created + limits.absolute_timeout, session.last_seen + limits.idle_timeout)
