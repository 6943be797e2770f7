"""Login-failure arithmetic (Art. 30): failure counting within a sliding window, and locks.

Pure functions of (state, now); the stores (``govgate.store.memory``, ``govgate.store.redis``) keep
one ``FailureState`` per subject (an account, or a client address) and apply these rules atomically.

Semantics, exactly (the Redis Lua script implements the same rules on integer microseconds):

- A failure at time ``t`` still counts at ``now`` while ``now - t < window`` (a *sliding* window:
  there is no boundary an attacker could straddle to double the number of tries).
- A failure registered while the subject is locked (``now < locked_until``) is ignored: it neither
  counts nor extends the lock.
- When a registered failure brings the number of counted failures to ``max_failures``, the subject
  is locked from ``now`` for ``lockout``: ``locked_until = now + lockout``, and the counted failures
  are forgotten, so after the lock ends counting starts from zero.
- A subject is locked at ``now`` iff ``now < locked_until``: the lock ends exactly at its start plus
  ``lockout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class FailureState:
    """What is remembered about one subject (account or client address)."""

    failures: tuple[datetime, ...] = ()  # counted failure times, in the order they were registered
    locked_until: datetime | None = None  # end of the latest lock (it may lie in the past)


def locked_until(state: FailureState | None, now: datetime) -> datetime | None:
    """The end of the lock in force at ``now``, or None if the subject is not locked."""
    if state is None or state.locked_until is None:
        return None
    return state.locked_until if now < state.locked_until else None


def counted_failures(state: FailureState | None, now: datetime, window: timedelta) -> tuple[datetime, ...]:
    """The failures that still count at ``now`` (registered less than ``window`` ago)."""
    if state is None:
        return ()
    return tuple(t for t in state.failures if now - t < window)


def register_failure(
    state: FailureState | None, now: datetime, max_failures: int, window: timedelta, lockout: timedelta
) -> FailureState:
    """Register one failed attempt at ``now``; lock for ``lockout`` when ``max_failures`` is reached.

    Art. 30 (第三十条): 限制登录失败次数 — limit the number of failed logins.
    """
    if max_failures < 1:
        raise ValueError(f"max_failures must be at least 1, got {max_failures}")
    if state is not None and locked_until(state, now) is not None:
        return state  # ignored while locked: neither counted nor extending the lock
    failures = (*counted_failures(state, now, window), now)
    if len(failures) >= max_failures:
        return FailureState(failures=(), locked_until=now + lockout)
    previous_lock = state.locked_until if state is not None else None
    return FailureState(failures=failures, locked_until=previous_lock)


def lock_started(before: FailureState | None, after: FailureState, now: datetime) -> bool:
    """True when the failure that turned ``before`` into ``after`` started a lock."""
    return locked_until(before, now) is None and locked_until(after, now) is not None


def forget_at(state: FailureState, window: timedelta) -> datetime | None:
    """From when the state no longer matters (no lock in force, no failure counting) and may be
    dropped; None if it never mattered (empty)."""
    ends = [t + window for t in state.failures]
    if state.locked_until is not None:
        ends.append(state.locked_until)
    return max(ends) if ends else None
