"""Overseas grants (Art. 19): when a grant is active and whom it admits.

# Art. 19 (第十九条): where access from outside the country is truly needed, open it by whitelist,
# for specific time windows, specific devices or specific accounts.

A grant is active only inside ``[start, end]`` (both inclusive) and, if it has ``daily`` hours,
inside them, evaluated on the wall clock of the grant's timezone (``gateway.timezone``: the
timezone its ``start`` carries). ``now`` must be aware.

Who a grant admits (``docs/decisions.md`` §3: "a grant matching the account and/or device"):

- a grant naming an account **and** devices admits that account on one of those devices (both);
- a grant naming only an account admits that account from any device;
- a grant naming only devices admits any account on one of those devices;
- ``countries``, when set, must contain the client's country (an unknown country matches none).

Before login the account is unknown: ``could_admit_before_login`` is true when some active grant
could still admit the client once its account is known: its country matches, and its device
condition (if it names devices) is already met.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

from govgate.core.policy.model import Grant, Policy
from govgate.errors import PolicyProblem


def grant_active(grant: Grant, now: datetime, tz: tzinfo | None = None) -> bool:
    """Inside ``[start, end]`` and, if set, inside the daily hours on the wall clock of ``tz``.

    ``tz`` is ``gateway.timezone``; by default the timezone the grant's ``start`` carries (the
    policy loader gives every grant time in ``gateway.timezone``).
    """
    if not (grant.start <= now <= grant.end):
        return False
    if grant.daily is None:
        return True
    local = now.astimezone(tz if tz is not None else grant.start.tzinfo)
    return grant.daily.contains(local.time().replace(tzinfo=None))


def _country_ok(grant: Grant, country: str | None) -> bool:
    return grant.countries is None or (country is not None and country in grant.countries)


def _identity_ok(grant: Grant, account: str | None, device: str | None) -> bool:
    account_ok = grant.account is not None and account == grant.account
    device_ok = device is not None and device in grant.devices
    if grant.account is not None and grant.devices:
        return account_ok and device_ok
    if grant.account is not None:
        return account_ok
    return device_ok


def grant_admits(grant: Grant, account: str | None, device: str | None, country: str | None,
                 now: datetime, tz: tzinfo | None = None) -> bool:
    """Whether this grant lets ``account`` on ``device`` in from ``country`` at ``now``."""
    return (_identity_ok(grant, account, device) and _country_ok(grant, country)
            and grant_active(grant, now, tz))


def grant_shortfalls(grant: Grant, account: str | None, device: str | None, country: str | None,
                     now: datetime, tz: tzinfo | None = None, *, before_login: bool = False) -> list[str]:
    """Every condition of ``grant`` this request fails, in words (empty: the grant admits it), for
    ``govgate explain``: window, daily hours, country, account, device. ``before_login``: the account is not
    known yet, so only the conditions a client can already meet are checked (as ``grant_could_admit``)."""
    out: list[str] = []
    when = now.astimezone(tz if tz is not None else grant.start.tzinfo)
    if not (grant.start <= now <= grant.end):
        out.append(f"window: {when.isoformat(timespec='minutes')} is outside "
                   f"{grant.start.isoformat(timespec='minutes')} – {grant.end.isoformat(timespec='minutes')}")
    if grant.daily is not None and not grant.daily.contains(when.time().replace(tzinfo=None)):
        out.append(f"daily hours: {when.strftime('%H:%M')} is outside {grant.daily.start.strftime('%H:%M')}-"
                   f"{grant.daily.end.strftime('%H:%M')}")
    if not _country_ok(grant, country):
        named = ", ".join(sorted(grant.countries or ()))
        out.append(f"country: {country or 'unknown'} is not one of {named}")
    if grant.account is not None and not before_login and account != grant.account:
        out.append(f"account: the grant names '{grant.account}', not " + (f"'{account}'" if account else "no account"))
    if grant.devices and (device is None or device not in grant.devices):
        named = ", ".join(f"'{d}'" for d in grant.devices)
        out.append(f"device: the grant names {named}, the request comes from "
                   + (f"'{device}'" if device else "no allowlisted device"))
    return out


def grant_could_admit(grant: Grant, device: str | None, country: str | None, now: datetime,
                      tz: tzinfo | None = None) -> bool:
    """Before login: whether this grant could admit the client once its account is known."""
    if grant.devices and (device is None or device not in grant.devices):
        return False
    return _country_ok(grant, country) and grant_active(grant, now, tz)


def could_admit_before_login(grants: Iterable[Grant], device: str | None, country: str | None,
                             now: datetime, tz: tzinfo | None = None) -> Grant | None:
    """The first grant that could admit this client after login, or None (refused at once)."""
    for grant in grants:
        if grant_could_admit(grant, device, country, now, tz):
            return grant
    return None


class GrantIndex:
    """Grants indexed by account and device, so a request looks at its own few grants, not all of them."""

    __slots__ = ("_account_only", "_by_account", "_by_device", "grants", "tz")

    def __init__(self, grants: Iterable[Grant], tz: tzinfo | None = None) -> None:
        self.tz = tz  # gateway.timezone, for daily hours
        self.grants: tuple[Grant, ...] = tuple(sorted(grants, key=lambda g: g.index))
        self._by_account: dict[str, list[Grant]] = {}
        self._by_device: dict[str, list[Grant]] = {}
        # Grants naming no devices, by country (None: any country): what could admit an unknown account.
        self._account_only: dict[str | None, list[Grant]] = {}
        for grant in self.grants:
            if grant.account is not None:
                self._by_account.setdefault(grant.account, []).append(grant)
            for device in dict.fromkeys(grant.devices):
                self._by_device.setdefault(device, []).append(grant)
            if not grant.devices:
                for country in grant.countries if grant.countries is not None else (None,):
                    self._account_only.setdefault(country, []).append(grant)

    def admitting(self, account: str | None, device: str | None, country: str | None,
                  now: datetime) -> Grant | None:
        """The first grant (policy order) admitting this account/device/country now, or None."""
        best: Grant | None = None
        lists = (self._by_account.get(account, ()) if account is not None else (),
                 self._by_device.get(device, ()) if device is not None else ())
        for grants in lists:  # each list is in policy order: its first admitting grant is its best
            for grant in grants:
                if best is not None and grant.index >= best.index:
                    break
                if grant_admits(grant, account, device, country, now, self.tz):
                    best = grant
                    break
        return best

    def could_admit(self, device: str | None, country: str | None, now: datetime) -> Grant | None:
        """Before login: the first grant that could admit this client once its account is known."""
        best: Grant | None = None
        lists = (self._by_device.get(device, ()) if device is not None else (),
                 self._account_only.get(None, ()),
                 self._account_only.get(country, ()) if country is not None else ())
        for grants in lists:
            for grant in grants:
                if best is not None and grant.index >= best.index:
                    break
                if grant_could_admit(grant, device, country, now, self.tz):
                    best = grant
                    break
        return best


def grant_warnings(policy: Policy, accounts: frozenset[str] | None, devices: frozenset[str],
                   now: datetime, *, file: str | None = None) -> list[PolicyProblem]:
    """What makes a valid grant silently dead (for ``govgate check``): it names an account the accounts file
    does not hold (``accounts`` None: there is no accounts file yet) or a device nobody has listed or
    issued, or its window is already over. Warnings, not errors: an account may be added later."""
    file = file if file is not None else str(policy.source)
    out: list[PolicyProblem] = []
    for grant in policy.grants:
        path = f"overseas.grants[{grant.index}]"
        if grant.account is not None and (accounts is None or grant.account not in accounts):
            where = "there is no accounts file yet" if accounts is None else f"it is not in {policy.accounts_file.name}"
            out.append(PolicyProblem(file, grant.line, f"{path}.account", f"account {grant.account!r} does not exist "
                                     f"({where}); the grant admits nobody until it is added", warning=True))
        for device in grant.devices:
            if device not in devices:
                out.append(PolicyProblem(file, grant.line, f"{path}.devices", f"device {device!r} is neither listed "
                                         "under devices nor issued; the grant cannot admit it", warning=True))
        if grant.end < now:
            out.append(PolicyProblem(file, grant.line, f"{path}.until", f"the grant ended on "
                                     f"{grant.end.isoformat(timespec='minutes')}; it admits nobody any more",
                                     warning=True))
    return out
