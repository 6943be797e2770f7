"""A login attempt at the gate: the order of its steps and the keys it is counted and held under.

Art. 30 (第三十条): multi-factor login (a password, then a TOTP code) and a limit on failed logins; Art. 19
(第十九条): staff functions only from where the policy allows. Both steps of a login are *attempts*, and an
attempt goes through these steps in this order (``attempt``), the first that decides ending it:

1. gate (Art. 19): from where no staff rule could admit anyone — by network, device or an active grant
   (``decide.login_gate``) — the attempt is ``REFUSED`` (403), nothing looked at and nothing counted: nobody
   can guess a password, or lock a staff member out, from where no one may enter.
2. lock (Art. 30): while the account or the client's address is locked, ``LOCKED`` (429, with when the lock
   ends), before the credentials are looked at, so the answer never tells whether they were right.
3. admitted (Art. 19 + Art. 30): from abroad only an account an active grant admits may try
   (``decide.account_admitted``). Any other gets ``NOT_ADMITTED``: exactly what a failed attempt gets (the same
   page, and the same work done as a stand-in), its credentials unverified and nothing counted.
4. verify: the password (Argon2id; a dummy hash for a name that is no account, so both cost the same) or the
   TOTP code (each time step accepted once only): ``VERIFIED``.
5. count: a failure (``FAILED``) counts against the account name and the address (``client_key``); the one
   reaching ``login.max_failures`` or ``login.ip_max_failures`` locks (``govgate.core.lockout``) and is
   answered as locked.

``attempt`` awaits the store calls and the verification it is given (``AttemptSteps``) and does nothing else;
everything else here is a pure function of values. Attempts on one account name or one address run one at a
time in a gateway instance (``AttemptLocks``), or a burst would pass step 2 before its first failure is
counted at step 5.

Between the two steps the login is *pending* (``pending_state``): bound to the address the password came from,
void once the account is disabled, expired, logged out by an administrator or given a new password, and after
``PENDING_TTL``. ``docs/decisions.md`` ("No password guessing from where nobody may enter") says it for operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from ipaddress import IPv6Address, IPv6Network

from govgate.core.accounts import Account
from govgate.core.decide import LoginGate, Reason
from govgate.core.keys import GatewayKeys, Purpose
from govgate.core.policy.model import IPAddress

PENDING_TTL = timedelta(minutes=5)  # the half-done login lives 5 minutes
MAX_USERNAME = 64  # characters of a typed user name that are looked at


class Outcome(StrEnum):
    """What an attempt led to."""

    REFUSED = "refused"  # 403: no staff rule could admit the client (Art. 19); nothing looked at or counted
    LOCKED = "locked"  # 429: the account or address is locked; the credentials were not looked at
    NOT_ADMITTED = "not_admitted"  # from abroad, an account no grant admits: a failed attempt, unverified, uncounted
    FAILED = "failed"  # wrong credentials, counted (``locked_until`` set when this failure locked)
    VERIFIED = "verified"  # right credentials


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: Outcome
    reason: Reason | None = None  # REFUSED: ``network`` or ``overseas``
    locked_until: datetime | None = None  # LOCKED, and FAILED when this failure locked the account or address


@dataclass(frozen=True, slots=True)
class AttemptSteps:
    """The parts of an attempt that touch the store or cost work, as the login page gives them to ``attempt``."""

    locked_until: Callable[[], Awaitable[datetime | None]]  # the end of a lock in force on the account or address
    stand_in: Callable[[], Awaitable[None]]  # the work a verification costs, for an attempt not verified
    verify: Callable[[], Awaitable[bool]]  # the credentials are right (a TOTP step is used up by it)
    count_failure: Callable[[], Awaitable[datetime | None]]  # count one failure; the lock's end if it locked


async def attempt(gate: LoginGate, admitted: bool, steps: AttemptSteps) -> Attempt:
    """One password or TOTP attempt, its steps in the order the module docstring gives.

    ``gate`` is ``login_gate`` for the client; ``admitted`` is ``account_admitted`` for the account it names."""
    if not gate.open:
        return Attempt(Outcome.REFUSED, reason=gate.reason or Reason.DENIED)
    until = await steps.locked_until()
    if until is not None:
        return Attempt(Outcome.LOCKED, locked_until=until)
    if not admitted:
        await steps.stand_in()
        return Attempt(Outcome.NOT_ADMITTED)
    if await steps.verify():
        return Attempt(Outcome.VERIFIED)
    return Attempt(Outcome.FAILED, locked_until=await steps.count_failure())


def client_key(client: IPAddress) -> str:
    """The address failures count against (Art. 30): IPv4 as is, IPv6 by its /64, since one subscriber usually
    holds a whole /64 and could otherwise rotate addresses freely."""
    if isinstance(client, IPv6Address):
        return str(IPv6Network((int(client) >> 64 << 64, 64)))
    return str(client)


def typed_name(field: str | None) -> str:
    """The user name as it is looked up and counted: stripped, at most ``MAX_USERNAME`` characters."""
    return (field or "").strip()[:MAX_USERNAME]


def failure_key(username: str) -> str:
    """The name a failed password counts against. A name that is no account counts too, under itself, so that
    lockout behaves the same for every name and cannot tell which accounts exist."""
    return username or "-"


def unknown_name_hash(keys: GatewayKeys, username: str) -> str:
    """What the audit keeps of a typed name that is no account: a keyed hash (it may be a mistyped password)."""
    return keys.mac(Purpose.IDENTIFIER_HASH, username.encode()).hex()[:16]


def account_usable(account: Account, now: datetime) -> bool:
    """Not disabled and not past its last day (Art. 25: authorisation withdrawn when it expires)."""
    return not account.disabled and not account.is_expired(now.date())


def pending_still_valid(account: Account, created: datetime, now: datetime) -> bool:
    """A password step done before the account was disabled, expired, logged out by an administrator, or given a
    new password (passwd, reset-totp and disable also log out) must not turn into a session (Art. 30)."""
    if not account_usable(account, now):
        return False
    return all(changed is None or changed < created for changed in (account.logged_out_at, account.password_changed))


class PendingState(StrEnum):
    USABLE = "usable"
    OTHER_CLIENT = "other_client"  # started from another address: not for this request (it is kept)
    VOID = "void"  # the account changed since, or it is too old: to be dropped


def pending_state(started_from: str, created: datetime, client: IPAddress, account: Account | None,
                  now: datetime) -> PendingState:
    """Whether a pending login started from ``started_from`` at ``created`` may be finished by ``client`` now."""
    if not hmac.compare_digest(started_from.encode(), str(client).encode()):
        return PendingState.OTHER_CLIENT  # the password step was done from another address: start again
    if account is None or not pending_still_valid(account, created, now):
        return PendingState.VOID
    if now - created > PENDING_TTL:
        return PendingState.VOID
    return PendingState.USABLE


class AttemptLocks:
    """Serialises login and MFA attempts per account name and per client address in this gateway instance.

    Lock check → verify → count must not interleave: otherwise a burst of concurrent attempts all pass the lock
    check before the first failure is counted, and many passwords are tried per lockout window. Locks are made on
    demand and dropped when nobody holds or waits for them. Across several instances sharing Redis, at most one
    extra attempt per instance can slip past the limit.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @staticmethod
    def keys(account: str, client: IPAddress) -> tuple[str, str]:
        """What an attempt naming ``account`` from ``client`` holds (no account lock for an empty name)."""
        return (f"account:{account}" if account else "", f"client:{client_key(client)}")

    @contextlib.asynccontextmanager
    async def hold(self, *names: str) -> AsyncIterator[None]:
        keys = sorted({n for n in names if n})  # one global order: no deadlocks
        for key in keys:
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        acquired: list[asyncio.Lock] = []
        try:
            for key in keys:
                lock = self._locks[key][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for key in keys:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
