"""Section checks of who may reach staff functions, and from where (Art. 19, Art. 30): ``geoip``,
``networks``, ``groups``, ``devices``, the ``access`` rules and the ``overseas`` grants.

Each check reads its section through the reader toolkit (``readers.py``); the later ones are given
what the earlier ones found (rules name networks and groups, grants name devices), so a name that
refers to nothing is reported where it is used, with a "did you mean".
"""

from __future__ import annotations

import difflib
import re
from datetime import time

from govgate.core.policy import schema
from govgate.core.policy.model import (
    AccessRule,
    Allow,
    DailyHours,
    Device,
    DevicesMode,
    GeoIP,
    Grant,
    IPNetwork,
    NetworkGroup,
    UnknownCountry,
)
from govgate.core.policy.named_files import FileKind
from govgate.core.policy.parsers import glob_problem
from govgate.core.policy.readers import NAME, Reader, Section, found, join
from govgate.core.yaml_tree import YMap, YNode, YScalar, YSeq

ANY = "any"  # `networks: any` on a staff rule: every address passes the network check
_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,128}$")
_DAILY = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def geoip(r: Reader, top: Section) -> GeoIP | None:
    sec = r.section(top.get("geoip"), schema.GEOIP, "geoip", top.line("geoip"))
    if sec is None:
        return None
    node = sec.get("database")
    database = r.path_value(node, sec.at("database"), "")
    if node is not None:
        # Art. 19 (第十九条): the overseas check needs a country for every address; refuse to start blind.
        r.name_file(node, sec.at("database"), database, FileKind.GEOIP_DATABASE)
    home = ["CN"]
    home_node = sec.get("home_countries")
    if home_node is not None:
        home = r.countries(home_node, sec.at("home_countries"))
        if isinstance(home_node, YSeq) and not home_node.items:
            r.p.add(home_node, sec.at("home_countries"), "expected at least one country code like CN; "
                                                         "found an empty list")
    unknown = r.choice(sec.get("unknown"), sec.at("unknown"), UnknownCountry, UnknownCountry.OVERSEAS)
    if node is None:
        return None
    return GeoIP(database=database, home_countries=frozenset(home), unknown=unknown)


def networks(r: Reader, top: Section) -> tuple[NetworkGroup, ...]:
    node = top.get("networks")
    if node is None or (isinstance(node, YScalar) and node.kind == "null"):
        return ()
    if not isinstance(node, YMap):
        r.p.add(node, "networks", f"expected a mapping of network names to lists of CIDRs; found {found(node)}")
        return ()
    groups: list[NetworkGroup] = []
    for key, value in node.items:
        name = key.text
        path = join("networks", name)
        if not NAME.fullmatch(name):
            r.p.add(key, path, f"expected a network name of letters, digits and _.- ; found {name!r}")
            continue
        if name == ANY:
            r.p.add(key, path, "`any` is reserved (a staff rule's `networks: any` admits every address); "
                                  "choose another name for this network")
            continue
        cidrs: list[IPNetwork] = []
        for _i, item, item_path in r.items(value, path, min_items=1, what="CIDRs"):
            net = r.cidr(item, item_path)
            if net is not None:
                cidrs.append(net)
        if isinstance(value, YScalar) and value.kind == "null":
            r.p.add(value, path, "expected at least 1 of CIDRs; found nothing")
        groups.append(NetworkGroup(name, tuple(cidrs)))
    return tuple(groups)


def groups(r: Reader, top: Section) -> list[str] | None:
    node = top.get("groups")
    if node is None:
        return None
    out: list[str] = []
    for text, item, path in r.name_list(node, "groups", "a group name"):
        if text in out:
            r.p.add(item, path, f"expected each group once; {text!r} is declared twice")
            continue
        out.append(text)
    return out


_STRONG_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,}")  # 22 x 6 bits >= 128 bits


def devices(r: Reader, top: Section) -> tuple[Device, ...]:
    out: list[Device] = []
    seen: dict[str, int] = {}
    for _i, item, path in r.items(top.get("devices"), "devices", what="devices"):
        sec = r.section(item, schema.DEVICE, path, item.line)
        if sec is None:
            continue
        dev_id = _ident(r, sec, "id", "a device id")
        account = _ident(r, sec, "account", "an account name")
        cert: bytes | None = None
        cert_node = sec.get("cert_sha256")
        if cert_node is not None:
            cert = _fingerprint(r, cert_node, sec.at("cert_sha256"))
        token: str | None = None
        token_node = sec.get("token")
        if token_node is not None:
            token = r.string(token_node, sec.at("token"), "an enrolment token")
            if token is not None and not _STRONG_TOKEN.fullmatch(token):
                # Art. 30: the device cookie is a bearer credential; a guessable one is no binding at all.
                r.p.add(token_node, sec.at("token"), "expected at least 128 bits of randomness: 22 or more "
                                                     "characters of A-Z a-z 0-9 _ - (for example from "
                                                     "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                                                     f"); found {len(token)} characters")
                token = None
        if cert_node is None and token_node is None:
            r.p.add(item, path, "expected cert_sha256 or token (or both) to identify the device; found neither")
        expires_node = sec.get("expires")
        expires = r.day(expires_node, sec.at("expires")) if expires_node is not None else None
        if dev_id is None or account is None:
            continue
        if dev_id in seen:
            r.p.add(sec.where("id"), sec.at("id"), f"expected unique device ids; {dev_id!r} is already the "
                                                   f"id of the device at line {seen[dev_id]}")
            continue
        seen[dev_id] = item.line
        out.append(Device(id=dev_id, account=account, cert_sha256=cert, token=token, expires=expires))
    return tuple(out)


def _ident(r: Reader, sec: Section, key: str, what: str) -> str | None:
    node = sec.get(key)
    if node is None:
        return None  # reported as missing
    text = r.string(node, sec.at(key), what)
    if text is not None and not _ID.fullmatch(text):
        r.p.add(node, sec.at(key), f"expected {what} without spaces or control characters, at most 128 "
                                   f"characters; found {text!r}")
        return None
    return text


def _fingerprint(r: Reader, node: YNode, path: str) -> bytes | None:
    text = r.string(node, path, "a SHA-256 fingerprint: 64 hex digits")
    if text is None:
        return None
    digits = text.replace(":", "").replace(" ", "").lower()
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        r.p.add(node, path, f"expected a SHA-256 fingerprint of the DER certificate: 64 hex digits (colons "
                            f"and case ignored); found {len(digits)} characters {text[:80]!r}")
        return None
    return bytes.fromhex(digits)


def access(r: Reader, top: Section, networks: tuple[NetworkGroup, ...], groups: list[str] | None) -> tuple[
        AccessRule, ...]:
    rules: list[AccessRule] = []
    names: dict[str, int] = {}
    known_networks = {n.name for n in networks}
    for index, item, path in r.items(top.get("access"), "access", min_items=1, what="access rules"):
        sec = r.section(item, schema.RULE, path, item.line)
        if sec is None:
            continue
        name = None
        name_node = sec.get("name")
        if name_node is not None:
            name = r.string(name_node, sec.at("name"), "a rule name")
        if name is not None:
            if name in names:
                r.p.add(name_node or item, sec.at("name"), f"expected unique rule names; {name!r} is already "
                                                           f"the name of the rule at line {names[name]}")
            names.setdefault(name, item.line)
        paths = _globs(r, sec)
        hosts: list[str] | None = None
        if sec.get("hosts") is not None:
            hosts = []
            for _i, h_item, h_path in r.items(sec.get("hosts"), sec.at("hosts"), what="host names"):
                host = r.host(h_item, h_path, wildcard=True)
                if host is not None:
                    hosts.append(host)
        methods: list[str] | None = None
        if sec.get("methods") is not None:
            methods = [m.upper() for m, _n, _p in r.name_list(sec.get("methods"), sec.at("methods"),
                                                              "an HTTP method like GET", _METHOD)]
        allow_node = sec.get("allow")
        allow = r.choice(allow_node, sec.at("allow"), Allow, Allow.DENY)
        if isinstance(allow_node, YScalar) and allow_node.text.strip() == allow.value and allow is not Allow.STAFF:
            # Network, device and group checks only run for staff rules (Art. 19); on a public or deny
            # rule they would mislead the operator into thinking something is restricted.
            for key in ("networks", "devices", "groups", "bind_devices"):
                if sec.get(key) is not None:
                    r.p.add(sec.where(key), sec.at(key),
                            f"only meaningful for allow: staff; this rule is allow: {allow.value}, so remove "
                            f"{key!r} (or make the rule staff)")
        rule_networks: list[str] = []
        networks_node = sec.get("networks")
        any_network = False
        if allow is Allow.STAFF and networks_node is None:
            # Art. 19 (第十九条): staff functions only from allowed IP ranges or devices. A staff rule must
            # say where staff may come from: a policy cut off (or half written) after `allow: staff` must be
            # invalid, never a rule that admits every address.
            r.p.add(item, path, "a staff rule must name its networks: add `networks: [NAME, ...]` (the "
                                "networks staff may come from) or `networks: any` to admit every address")
        if isinstance(networks_node, YScalar) and networks_node.kind == "str" and networks_node.text == ANY:
            any_network = True
            networks_node = None
        elif isinstance(networks_node, YSeq) and not networks_node.items:
            r.p.add(networks_node, sec.at("networks"), "expected at least one network name; an empty list "
                    "admits nobody by address (write `networks: any` to admit every address)")
        elif networks_node is not None and not isinstance(networks_node, YSeq):
            r.p.add(networks_node, sec.at("networks"), f"expected a list of network names or `any`; found "
                                                       f"{found(networks_node)}")
            networks_node = None
        for text, n_item, n_path in r.name_list(networks_node, sec.at("networks"), "a network name"):
            if text == ANY:
                r.p.add(n_item, n_path, "`any` is not a network name: write `networks: any` (without a "
                                        "list) to admit every address, or list named networks only")
                continue
            if text not in known_networks:
                hint = difflib.get_close_matches(text, sorted(known_networks), n=1, cutoff=0.6)
                declared = ", ".join(sorted(known_networks)) or "none"
                r.p.add(n_item, n_path, f"unknown network {text!r}"
                                        + (f"; did you mean {hint[0]!r}?" if hint else
                                              f"; expected one of the names under networks: {declared}"))
                continue
            rule_networks.append(text)
        mode = r.choice(sec.get("devices"), sec.at("devices"), DevicesMode, DevicesMode.ALLOWLISTED)
        rule_groups: list[str] | None = None
        if sec.get("groups") is not None:
            rule_groups = []
            for text, g_item, g_path in r.name_list(sec.get("groups"), sec.at("groups"), "a group name"):
                if groups is not None and text not in groups:
                    hint = difflib.get_close_matches(text, groups, n=1, cutoff=0.6)
                    r.p.add(g_item, g_path, f"unknown group {text!r}"
                                            + (f"; did you mean {hint[0]!r}?" if hint else
                                                  f"; expected one of the declared groups: "
                                                  f"{', '.join(groups) or 'none'}"))
                    continue
                rule_groups.append(text)
        bind = r.boolean(sec.get("bind_devices"), sec.at("bind_devices"), False)
        rules.append(AccessRule(
            name=name or "",
            index=index,
            line=item.line,
            paths=tuple(paths),
            hosts=tuple(hosts) if hosts is not None else None,
            methods=frozenset(methods) if methods is not None else None,
            allow=allow,
            networks=tuple(dict.fromkeys(rule_networks)),
            devices=mode,
            groups=tuple(rule_groups) if rule_groups is not None else None,
            bind_devices=bind,
            any_network=any_network,
        ))
    return tuple(rules)


def _globs(r: Reader, sec: Section) -> list[str]:
    out: list[str] = []
    for _i, item, path in r.items(sec.get("paths"), sec.at("paths"), min_items=1, what="path globs"):
        text = r.string(item, path, "a path glob starting with '/'")
        if text is None:
            continue
        problem = glob_problem(text)
        if problem:
            r.p.add(item, path, f"expected a path glob starting with '/' (* one segment, ** any); found "
                                f"{text!r} ({problem})")
            continue
        out.append(text)
    return out


def grants(r: Reader, top: Section, devices: tuple[Device, ...]) -> tuple[Grant, ...]:
    sec = r.section(top.get("overseas"), schema.OVERSEAS, "overseas", top.line("overseas"))
    if sec is None:
        return ()
    by_id = {d.id: d for d in devices}
    out: list[Grant] = []
    for index, item, path in r.items(sec.get("grants"), sec.at("grants"), what="grants"):
        g = r.section(item, schema.GRANT, path, item.line)
        if g is None:
            continue
        grant = _grant(r, g, index, item, by_id)
        if grant is not None:
            out.append(grant)
    return tuple(out)


def _grant(r: Reader, g: Section, index: int, item: YNode, by_id: dict[str, Device]) -> Grant | None:
    # Art. 19 (第十九条): overseas access only by whitelist, for set times, devices or accounts.
    ok = True
    account = _ident(r, g, "account", "an account name") if g.get("account") is not None else None
    grant_devices: list[str] = []
    dev_node = g.get("devices")
    if dev_node is not None:
        for _i, d_item, d_path in r.items(dev_node, g.at("devices"), min_items=1, what="device ids"):
            dev_id = r.string(d_item, d_path, "a device id")
            if dev_id is None:
                ok = False
                continue
            device = by_id.get(dev_id)
            if device is None:
                # Not listed here: it may be issued or enrolled (the device registry); `govgate check` warns
                # when it is neither.
                grant_devices.append(dev_id)
                continue
            if account is not None and device.account != account:
                r.p.add(d_item, d_path, f"device {dev_id!r} belongs to account {device.account!r}, not to "
                                        f"this grant's account {account!r}; expected the account's own devices")
                ok = False
                continue
            grant_devices.append(dev_id)
        if isinstance(dev_node, YScalar) and dev_node.kind == "null":
            r.p.add(dev_node, g.at("devices"), "expected a non-empty list of device ids; found nothing")
            ok = False
    if g.get("account") is None and dev_node is None:
        r.p.add(item, g.path, "expected account and/or devices: whom the grant admits; found neither")
        ok = False
    countries: frozenset[str] | None = None
    if g.get("countries") is not None:
        countries = frozenset(r.countries(g.get("countries"), g.at("countries")))
    start = end = None
    from_node, until_node = g.get("from"), g.get("until")
    if from_node is not None:
        start = r.moment(from_node, g.at("from"), end_of_day=False)
    if until_node is not None:
        end = r.moment(until_node, g.at("until"), end_of_day=True)
    if start is not None and end is not None and start > end and from_node is not None:
        r.p.add(from_node, g.at("from"), f"expected from to be no later than until; found from "
                                         f"{start.isoformat()} after until {end.isoformat()}")
        ok = False
    daily = None
    daily_node = g.get("daily")
    if daily_node is not None:
        daily = _daily(r, daily_node, g.at("daily"))
        ok = ok and daily is not None
    reason = None
    reason_node = g.get("reason")
    if reason_node is not None:
        reason = r.string(reason_node, g.at("reason"), "a reason (why this overseas access is needed)")
    if not ok or start is None or end is None or reason is None:
        return None
    return Grant(index=index, line=item.line, account=account, devices=tuple(grant_devices),
                 countries=countries, start=start, end=end, daily=daily, reason=reason)


def _daily(r: Reader, node: YNode, path: str) -> DailyHours | None:
    text = node.text.strip() if isinstance(node, YScalar) and node.kind == "str" else None
    m = _DAILY.fullmatch(text) if text is not None else None
    if m is None:
        r.p.add(node, path, f"expected daily hours as \"HH:MM-HH:MM\" like \"08:00-22:00\"; found {found(node)}")
        return None
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        r.p.add(node, path, f"expected hours 00-23 and minutes 00-59; found {text!r}")
        return None
    if (h1, m1) == (h2, m2):
        r.p.add(node, path, f"expected different start and end times; found {text!r}")
        return None
    return DailyHours(time(h1, m1), time(h2, m2))
