"""The Redis store's near cache of session lookups: a staff request whose session was looked up less than half a
second ago, and whose keys Redis has not reported changed since, is answered without a round trip
(``docs/state.md``, "Session lookups cached for half a second").

Pure: no I/O, no clock (the caller passes the times in), no Redis. ``govgate.store.redis`` owns the invalidation
channel (Redis's client-side caching in broadcast mode: every change to a ``govgate:session:`` or
``govgate:lock:account:`` key is pushed to a connection of the gateway's own) and tells this cache what it hears.

Art. 30 (第三十条: 超时退出, and a logout or lock that must hold on every instance): the cache never lets a session
live past either timeout (``unchanged_by_touch``) and never outlives a change by more than ``MAX_AGE``.

Why a cached lookup gives what Redis would give (``_TOUCH_SESSION`` in ``govgate/store/redis.py``): the script's
answer is a function of the session's hash, the account's lock key and the request's ``now`` and limits. An entry
is used only
- while the invalidation channel is up and has been since the entry was fetched (``mark_down`` empties the cache and
  a lookup fetched across a change of channel is not kept), and was heard from within ``HEARD_WITHIN`` seconds: the
  store pings it several times within that span, so a Redis that hangs, or a connection that died without closing,
  stops the cache as surely as one that closed;
- if neither key changed since the lookup was sent (every change reported bumps ``generation``; a lookup sent
  before a change and answered after it is not kept, and one kept before is dropped);
- for the same limits, and a ``now`` at which the script would neither expire the session (``now`` before both
  timeouts) nor write ``last_seen`` (less than the touch step since it): then the script returns the same
  record, and the lock is read against the request's own ``now`` by the caller, as for a fresh answer;
- for at most ``MAX_AGE`` seconds after its lookup was sent, whatever the channel says: a change whose report was
  lost is seen within half a second on every instance. That is the bound issue 11 sets (a revoked session or an
  unlock takes effect within 1 s on every instance).
Only found, unexpired sessions are kept (status 1); an unknown or expired one always goes to Redis.

An entry in use is fetched again once it is ``REFRESH_AFTER`` old (``due``; the store's ``_refresh``, in the
background, one per session): its answer replaces the entry under the same rules, so that a busy session does not
drop out at ``MAX_AGE`` with every lookup of that moment going to Redis together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_AGE: Final = 0.5  # seconds an entry is used for at most (from when its lookup was sent), reports or not
REFRESH_AFTER: Final = 0.25  # seconds after which an entry in use is fetched again in the background
HEARD_WITHIN: Final = 0.15  # seconds: nothing is answered unless the report connection was heard from this recently
MAX_ENTRIES: Final = 16_384  # per process (about 10 MB when full); the oldest goes first

SESSION_KEY: Final = "govgate:session:"  # + the session's hash (govgate.store.redis.SESSION)
ACCOUNT_LOCK_KEY: Final = "govgate:lock:account:"  # + account name (govgate.store.redis.LOCK + "account:")

type Record = tuple[str, str, str, str, str, str]  # account, device, client, created (µs), last_seen (µs), lock
type Limits = tuple[int, int, int]  # idle timeout, absolute timeout, touch step (µs)


def unchanged_by_touch(created_us: int, last_us: int, now_us: int, limits: Limits) -> bool:
    """Whether ``_TOUCH_SESSION`` at ``now_us`` leaves the session as it is and returns it as stored: not past
    either timeout (no expiry) and less than the touch step since ``last_seen`` (no write)."""
    idle, absolute, step = limits
    return now_us < created_us + absolute and now_us < last_us + idle and now_us - last_us < step


@dataclass(frozen=True, slots=True)
class _Entry:
    record: Record
    created_us: int
    last_us: int
    limits: Limits
    fetched: float  # monotonic seconds


class SessionCache:
    """Session records by session hash, valid as the module says. Not thread-safe: one event loop uses it."""

    def __init__(self, *, max_age: float = MAX_AGE, max_entries: int = MAX_ENTRIES,
                 heard_within: float = HEARD_WITHIN, refresh_after: float = REFRESH_AFTER) -> None:
        self.max_age = max_age
        self.refresh_after = refresh_after
        self.max_entries = max_entries
        self.heard_within = heard_within
        self._entries: dict[str, _Entry] = {}
        self._live = False
        self._heard = float("-inf")  # monotonic seconds: when the last ping the report connection answered was sent
        self.generation = 0  # changes with every reported change, and whenever the channel goes up or down
        self.hits = 0

    @property
    def live(self) -> bool:
        return self._live

    def __len__(self) -> int:
        return len(self._entries)

    def mark_live(self, mono: float) -> None:
        """The invalidation channel is up (tracking on, subscribed; heard at ``mono``): entries may be kept."""
        self._entries.clear()
        self.generation += 1
        self._live = True
        self._heard = mono

    def heard(self, mono: float) -> None:
        """The report connection answered a ping or reported a change at ``mono``."""
        self._heard = max(self._heard, mono)

    def answering(self, mono: float) -> bool:
        """Whether the channel is up and was heard from within ``heard_within`` of ``mono``."""
        return self._live and 0 <= mono - self._heard < self.heard_within

    def mark_down(self) -> None:
        """The channel is gone or was never up: nothing kept is used, nothing new is kept."""
        self._entries.clear()
        self.generation += 1
        self._live = False

    def get(self, member: str, now_us: int, limits: Limits, mono: float) -> Record | None:
        """The record ``_TOUCH_SESSION`` would return for this session now, or None: ask Redis."""
        entry = self._entries.get(member)
        if entry is None:
            return None
        if (not self.answering(mono) or mono - entry.fetched >= self.max_age or mono < entry.fetched
                or entry.limits != limits or not unchanged_by_touch(entry.created_us, entry.last_us, now_us, limits)):
            del self._entries[member]
            return None
        self.hits += 1
        return entry.record

    def due(self, member: str, mono: float) -> bool:
        """Whether the entry kept for ``member`` was fetched ``refresh_after`` seconds or more before ``mono``: the
        store fetches it again in the background while it is still used, so that a session in use does not drop
        out at ``max_age`` with every lookup of that moment going to Redis."""
        entry = self._entries.get(member)
        return entry is not None and mono - entry.fetched >= self.refresh_after

    def put(self, member: str, record: Record, limits: Limits, fetched: float, generation: int) -> None:
        """Keep a record Redis returned for a lookup sent at ``fetched`` (monotonic) and ``generation`` (both read
        before sending), unless anything changed in between. Its age counts from ``fetched``: a reply that took long
        is not kept any longer for it."""
        if not self._live or generation != self.generation:
            return
        try:
            created_us, last_us = int(record[3]), int(record[4])
        except ValueError:
            return
        self._entries.pop(member, None)
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[member] = _Entry(record, created_us, last_us, limits, fetched)

    def forget(self, member: str) -> None:
        """This process changes the session itself (deletes it): dropped now, before Redis reports it."""
        self.generation += 1
        self._entries.pop(member, None)

    def forget_account(self, account: str) -> None:
        self.generation += 1
        for member in [m for m, e in self._entries.items() if e.record[0] == account]:
            del self._entries[member]

    def changed(self, key: str | None) -> None:
        """Redis reported ``key`` changed (None: the whole database was flushed)."""
        self.generation += 1
        if key is None:
            self._entries.clear()
        elif key.startswith(SESSION_KEY):
            self._entries.pop(key[len(SESSION_KEY):], None)
        elif key.startswith(ACCOUNT_LOCK_KEY):
            self.forget_account(key[len(ACCOUNT_LOCK_KEY):])
        else:
            self._entries.clear()  # a key the channel was not asked about: trust nothing kept
