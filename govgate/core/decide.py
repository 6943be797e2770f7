"""The access decision: a pure function of (request facts, compiled policy, now): ``docs/decisions.md`` §2.

``compile_policy(policy)`` builds, once per policy load, everything a decision needs (network sets,
rule matchers, grant and device indexes); ``decide(facts, compiled, now)`` then runs, in order:

1. rule: the first ``access`` rule matching host, path and method; none → refuse ``denied``;
   ``public`` → forward; ``deny`` → refuse ``denied``; ``staff`` → the checks below.
2. network (Art. 19): the address is in one of the rule's networks (``networks: any``: every
   address), or the request comes from an allowlisted device when the rule allows devices, or the
   client is overseas (step 3) and an active grant admits it: from abroad, a grant is the way in for
   the accounts and devices it names, whatever the rule's networks. A grant never admits a
   home-country address. A staff rule always names its networks (the validator requires it).
3. overseas (Art. 19): an address outside every listed network, not always-home, whose country is
   not a home country (unknown country: ``geoip.unknown``) needs an active grant admitting the
   account/device/country; before login, one that *could* admit it.
4. session (Art. 30): no session → ``login`` (303 to the login page).
5. account (Art. 30): disabled or expired → ``account``; locked → ``locked``; not in the rule's groups →
   ``group``; ``bind_devices`` and not on one of the account's own devices → ``device``.
6. forward.

Step 1 is also ``match_rule`` on its own: the gate matches once, and decides with that match before and after
the session lookup (``decide(..., matched)`` is the same decision as ``decide`` matching again).

Every check appends a ``Check`` with a human-readable detail, for ``govgate explain`` and the audit.
A refusal is a ``Decision``, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from govgate.core.access import CompiledRule, compile_rules, match_normalised, normalise_path
from govgate.core.devices import DeviceIndex
from govgate.core.geoip import is_always_home
from govgate.core.grants import GrantIndex
from govgate.core.hosts import host_of
from govgate.core.networks import NamedNetworks, NetworkSet
from govgate.core.policy.model import (
    AccessRule,
    Allow,
    Device,
    DevicesMode,
    Grant,
    IPAddress,
    Policy,
    UnknownCountry,
)

ART_19 = "Art. 19"
ART_30 = "Art. 30"


class Reason(StrEnum):
    """Refusal categories named on the 403 page and in the audit log (``docs/decisions.md`` §2)."""

    NETWORK = "network"
    OVERSEAS = "overseas"
    DEVICE = "device"
    GROUP = "group"
    ACCOUNT = "account"
    LOCKED = "locked"
    DENIED = "denied"


class Outcome(StrEnum):
    FORWARD = "forward"
    REFUSE = "refuse"
    LOGIN = "login"  # no valid session: 303 to the login page


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """The account of a valid session, as the accounts file and the lockout store describe it."""

    name: str
    groups: frozenset[str]
    disabled: bool
    expires: date | None  # last day the account works (inclusive)
    locked_until: datetime | None
    devices: frozenset[str]  # ids of the allowlisted devices this account owns


@dataclass(frozen=True, slots=True)
class RequestFacts:
    client: IPAddress
    country: str | None  # ISO code from GeoIP; None: unknown
    host: str  # the Host, with or without port: compared as ``hosts.host_of`` reads it
    path: str  # as requested (a query is ignored)
    method: str
    device: str | None  # an allowlisted, unexpired device id the glue has verified
    account: AccountFacts | None  # from a valid session; None: no session


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # rule, network, overseas, session, account, locked, group, device
    passed: bool
    detail: str


# Checks whose words never change, built once: a Check is immutable, so sharing one is the same as building it.
_ANY_NETWORK = Check("network", True, "the rule admits every address (networks: any)")
_NO_SESSION = Check("session", False, "no valid session: login required")


def _rule_check(rule: AccessRule) -> Check:
    return Check("rule", True, f"rule #{rule.index} '{rule.name}' (line {rule.line}): allow {rule.allow}")


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    status: int  # 200 forward, 403 refuse, 303 login
    rule: AccessRule | None
    reason: Reason | None
    article: str | None
    checks: tuple[Check, ...]
    grant: Grant | None = None  # the overseas grant that admitted (or could admit) the request

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.FORWARD


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """What ``decide`` needs from one policy, built once by ``compile_policy``."""

    policy: Policy
    rules: tuple[CompiledRule, ...]
    networks: NamedNetworks
    rule_networks: tuple[NetworkSet, ...]  # by rule index: the union of the rule's named networks
    rule_checks: tuple[Check, ...]  # by rule index: the passed "rule" check naming it
    listed: NetworkSet  # every network of the policy: inside it nobody is "overseas"
    grants: GrantIndex
    devices: DeviceIndex
    home_countries: frozenset[str]
    unknown_is_home: bool
    # Whether some rule names ``hosts``: when none does, the Host cannot change which rule matches and
    # ``decide`` skips reading it (``docs/decisions.md`` §7).
    host_rules: bool = True


def compile_policy(policy: Policy, registered: Iterable[Device] = ()) -> CompiledPolicy:
    """Everything ``decide`` needs, once per load. ``registered``: the device registry's active devices
    (``govgate.core.device_registry``), allowlisted beside the policy's own ``devices``."""
    networks = NamedNetworks(policy.networks)
    rules = compile_rules(policy.access)
    return CompiledPolicy(
        policy=policy,
        rules=rules,
        networks=networks,
        rule_networks=tuple(networks.union(rule.networks) for rule in policy.access),
        rule_checks=tuple(_rule_check(rule) for rule in policy.access),
        listed=NetworkSet(cidr for group in policy.networks for cidr in group.cidrs),
        grants=GrantIndex(policy.grants, policy.gateway.timezone),
        devices=DeviceIndex((*policy.devices, *registered)),
        home_countries=frozenset(c.upper() for c in policy.geoip.home_countries),
        unknown_is_home=policy.geoip.unknown is UnknownCountry.HOME,
        host_rules=any(rule.exact_hosts is not None for rule in rules),
    )


def _refuse(rule: AccessRule | None, reason: Reason, article: str | None, checks: list[Check],
            grant: Grant | None = None) -> Decision:
    return Decision(Outcome.REFUSE, 403, rule, reason, article, tuple(checks), grant)


def _grant_text(grant: Grant) -> str:
    return f"grant #{grant.index} ({grant.reason}) active until {grant.end.isoformat(timespec='minutes')}"


def _rule_networks(compiled: CompiledPolicy, rule: AccessRule) -> NetworkSet:
    if rule.index < len(compiled.rule_networks) and compiled.policy.access[rule.index] is rule:
        return compiled.rule_networks[rule.index]
    return compiled.networks.union(rule.networks)


def whereabouts(client: IPAddress, country: str | None, compiled: CompiledPolicy) -> tuple[bool, str]:
    """(whether ``client`` is overseas, a phrase saying why or why not) — ``docs/decisions.md`` §2 step 4: outside every
    listed network, not private/loopback, and in no home country (unknown country: ``geoip.unknown``)."""
    if compiled.listed.contains(client):
        return False, "is in a listed network: not overseas"
    if is_always_home(client):
        return False, "is a private/loopback/link-local address: always home"
    if country is None:
        if compiled.unknown_is_home:
            return False, "has no GeoIP country; geoip.unknown is home"
        return True, "of unknown country (geoip.unknown: overseas)"
    if country in compiled.home_countries:
        return False, f"is in {country}, a home country"
    return True, f"in {country}"


def _grant_for(compiled: CompiledPolicy, account: AccountFacts | None, device: str | None, country: str | None,
               now: datetime) -> Grant | None:
    """The active grant admitting this overseas client: before login (``account`` None), one that could."""
    if account is None:
        return compiled.grants.could_admit(device, country, now)
    return compiled.grants.admitting(account.name, device, country, now)


def _no_grant(account: AccountFacts | None, device: str | None) -> str:
    if account is None:
        return "no active grant could admit it" + (f" (device '{device}')" if device else "")
    who = f"account '{account.name}'" + (f" on device '{device}'" if device else "")
    return f"no active grant admits {who}"


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Step 1 of a decision on its own: the rule for a request's host, path and method (None: no rule, or a path
    that cannot be normalised safely: denied), and the check saying so. It does not depend on the account or the
    device, so the glue matches once and decides with it before and after the session lookup."""

    rule: AccessRule | None
    check: Check


_UNSAFE_PATH = Check("rule", False, "the path cannot be normalised safely (encoded '/', '..;', bad escape)")


def match_rule(compiled: CompiledPolicy, host: str, path: str, method: str) -> RuleMatch:
    """Step 1: the first ``access`` rule matching ``host`` (with or without port), ``path`` (as requested) and
    ``method``."""
    return RuleMatch(*_match(compiled, host, path, method))


def _match(compiled: CompiledPolicy, host: str, path: str, method: str) -> tuple[AccessRule | None, Check]:
    normalised = normalise_path(path)
    if normalised is None:
        return None, _UNSAFE_PATH
    host = host_of(host) if compiled.host_rules else ""  # no rule names hosts: every host matches alike
    rule = match_normalised(compiled.rules, host, normalised, method.upper())
    if rule is None:
        return None, Check("rule", False, f"no access rule matches {method.upper()} {normalised}: denied")
    return rule, (compiled.rule_checks[rule.index] if rule.index < len(compiled.rule_checks)
                  and compiled.policy.access[rule.index] is rule else _rule_check(rule))


def decide(facts: RequestFacts, compiled: CompiledPolicy, now: datetime, matched: RuleMatch | None = None) -> Decision:
    """Contract §4 steps 2–6, in order; see the module docstring. ``matched``: ``match_rule`` for these facts' host,
    path and method when the caller has it already (the same decision, without matching again)."""
    if matched is None:
        rule, check = _match(compiled, facts.host, facts.path, facts.method)
    else:
        rule, check = matched.rule, matched.check
    checks: list[Check] = [check]
    if rule is None:
        return _refuse(None, Reason.DENIED, None, checks)
    if rule.allow is Allow.PUBLIC:
        return Decision(Outcome.FORWARD, 200, rule, None, None, tuple(checks))
    if rule.allow is Allow.DENY:
        return _refuse(rule, Reason.DENIED, None, checks)

    client = facts.client
    client_text = str(client)  # formatted once: it appears in several checks
    account = facts.account
    device = facts.device
    country = facts.country.upper() if facts.country else None
    overseas, where = whereabouts(client, country, compiled)
    grant: Grant | None = None

    # Art. 19 (第十九条): staff functions only from allowed IP ranges or devices; from abroad, an overseas
    # grant (step 3) is the way in for the accounts and devices it names, whatever the rule's networks.
    if rule.any_network:
        checks.append(_ANY_NETWORK)
    elif _rule_networks(compiled, rule).contains(client):
        name = next((n for n in rule.networks if compiled.networks.in_group(client, n)), rule.networks[0])
        checks.append(Check("network", True, f"{client_text} is in network '{name}'"))
    elif rule.devices is DevicesMode.ALLOWLISTED and device is not None:
        checks.append(Check("network", True, f"{client_text} is outside the rule's networks; device '{device}' "
                                             "is allowlisted"))
    elif overseas and (grant := _grant_for(compiled, account, device, country, now)) is not None:
        checks.append(Check("network", True, f"{client_text} is outside the rule's networks and {where}: "
                                             f"{_grant_text(grant)} is the way in from abroad"))
    else:
        wanted = ", ".join(f"'{n}'" for n in rule.networks)
        how = "and no allowlisted device" if rule.devices is DevicesMode.ALLOWLISTED else "(devices: none)"
        abroad = f"; it is {where} and {_no_grant(account, device)}" if overseas else ""
        checks.append(Check("network", False, f"{client_text} is in none of {wanted} {how}{abroad}"))
        return _refuse(rule, Reason.NETWORK, ART_19, checks)

    # Art. 19 (第十九条): overseas access only by whitelist, for set times, devices or accounts.
    if not overseas:
        checks.append(Check("overseas", True, f"{client_text} {where}"))
    else:
        if grant is None:
            grant = _grant_for(compiled, account, device, country, now)
        if grant is None:
            checks.append(Check("overseas", False, f"{client_text} is {where}; {_no_grant(account, device)}"))
            return _refuse(rule, Reason.OVERSEAS, ART_19, checks)
        if account is None:
            checks.append(Check("overseas", True, f"{client_text} is {where}; {_grant_text(grant)} could admit it "
                                                  "after login"))
        else:
            checks.append(Check("overseas", True, f"{client_text} is {where}; {_grant_text(grant)} admits "
                                                  f"account '{account.name}'"))

    # Art. 30 (第三十条): multi-factor login at the gate.
    if account is None:
        checks.append(_NO_SESSION)
        return Decision(Outcome.LOGIN, 303, rule, None, ART_30, tuple(checks), grant)
    checks.append(Check("session", True, f"valid session for account '{account.name}'"))

    # Art. 25 (第二十五条) / Art. 30: expired or disabled accounts stop working; failed logins lock.
    if account.disabled:
        checks.append(Check("account", False, f"account '{account.name}' is disabled"))
        return _refuse(rule, Reason.ACCOUNT, ART_30, checks, grant)
    if account.expires is not None and now.date() > account.expires:
        checks.append(Check("account", False, f"account '{account.name}' expired on {account.expires.isoformat()}"))
        return _refuse(rule, Reason.ACCOUNT, ART_30, checks, grant)
    checks.append(Check("account", True, f"account '{account.name}' is enabled"
                                         + (f" until {account.expires.isoformat()}" if account.expires else "")))
    if account.locked_until is not None and account.locked_until > now:
        checks.append(Check("locked", False, f"account '{account.name}' is locked until "
                                             f"{account.locked_until.isoformat(timespec='seconds')}"))
        return _refuse(rule, Reason.LOCKED, ART_30, checks, grant)

    if rule.groups is not None:
        shared = sorted(account.groups.intersection(rule.groups))
        if not shared:
            wanted = ", ".join(f"'{g}'" for g in rule.groups)
            checks.append(Check("group", False, f"account '{account.name}' is in none of the groups {wanted}"))
            return _refuse(rule, Reason.GROUP, ART_19, checks, grant)
        checks.append(Check("group", True, f"account '{account.name}' is in group '{shared[0]}'"))

    # Art. 30 (第三十条): bind accounts to terminals.
    if rule.bind_devices:
        if device is None or device not in account.devices:
            on = f"device '{device}'" if device else "no allowlisted device"
            checks.append(Check("device", False, f"account '{account.name}' is bound to its own devices; "
                                                 f"the request comes from {on}"))
            return _refuse(rule, Reason.DEVICE, ART_30, checks, grant)
        checks.append(Check("device", True, f"device '{device}' belongs to account '{account.name}'"))

    return Decision(Outcome.FORWARD, 200, rule, None, ART_19, tuple(checks), grant)


@dataclass(frozen=True, slots=True)
class LoginGate:
    """Whether a password or TOTP attempt from this client may go ahead at all (``docs/decisions.md`` §3, "No password
    guessing from where nobody may enter").

    Art. 30 counts failed logins and locks accounts; Art. 19 says where staff may come from. Together:
    nobody may guess a password, or lock a staff member out, from where that account could not get in
    anyway. ``open`` is False when no staff rule could admit the client by network, device or any active
    grant (``reason`` then says which: ``overseas`` from abroad, else ``network``). From abroad
    (``overseas``) only a grant lets anyone in, so the account named decides: see ``account_admitted``.
    """

    open: bool
    overseas: bool
    reason: Reason | None
    detail: str


def login_gate(client: IPAddress, country: str | None, device: str | None, compiled: CompiledPolicy,
               now: datetime) -> LoginGate:
    """Could any staff rule admit this client once logged in (by network, device or an active grant)?"""
    code = country.upper() if country else None
    overseas, where = whereabouts(client, code, compiled)
    if overseas:
        grant = compiled.grants.could_admit(device, code, now)
        if grant is None:
            return LoginGate(False, True, Reason.OVERSEAS, f"{client} is {where}; {_no_grant(None, device)}")
        return LoginGate(True, True, None, f"{client} is {where}; {_grant_text(grant)} could admit it")
    for c in compiled.rules:
        rule = c.rule
        if rule.allow is not Allow.STAFF:
            continue
        if rule.any_network or _rule_networks(compiled, rule).contains(client):
            return LoginGate(True, False, None, f"{client} may reach rule '{rule.name}' by network")
        if rule.devices is DevicesMode.ALLOWLISTED and device is not None:
            return LoginGate(True, False, None, f"device '{device}' may reach rule '{rule.name}'")
    return LoginGate(False, False, Reason.NETWORK, f"{client} {where}, but no staff rule admits it by network "
                                                   "or device")


def account_admitted(gate: LoginGate, account: str, client_device: str | None, country: str | None,
                     compiled: CompiledPolicy, now: datetime) -> bool:
    """Once the account is named: may this account get in from where the client is? At home every account
    may try (the network does not depend on it); from abroad only one that an active grant admits."""
    if not gate.open:
        return False
    if not gate.overseas:
        return True
    code = country.upper() if country else None
    return compiled.grants.admitting(account, client_device, code, now) is not None


def on_allowed_network(client: IPAddress, country: str | None, compiled: CompiledPolicy) -> bool:
    """Art. 19: whether ``client`` is at home and inside a staff rule's networks (``networks: any`` counts) —
    where a staff member may enrol a browser as a device. Devices and overseas grants do not count here: a
    device cannot vouch for itself, and enrolment from abroad is not what a grant allows."""
    overseas, _where = whereabouts(client, country.upper() if country else None, compiled)
    if overseas:
        return False
    return any(c.rule.allow is Allow.STAFF and (c.rule.any_network or _rule_networks(compiled, c.rule).contains(client))
               for c in compiled.rules)
