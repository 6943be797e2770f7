"""Validation: the YAML tree (with line numbers) to the frozen, typed ``Policy``, collecting every problem.

One collector, every section validated, then one ``PolicyError`` listing every problem as
``file:line: key.path: message`` (Authelia style). Allowed and required keys come from the table
in ``schema.py``, so ``govgate schema`` and this validator agree. Every message says what was
expected and what was found. Values are normalised here, once: host names to lower-case ASCII
(IDNA) without a trailing dot, CIDRs to ``ipaddress`` networks, durations to ``timedelta``,
grant times to aware datetimes in ``gateway.timezone``, paths resolved against the policy's folder.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from govgate.core.policy import schema
from govgate.core.policy.model import (
    SCHEMA_VERSION,
    AccessRule,
    Allow,
    Audit,
    AuditAlgorithm,
    AuditOnFailure,
    DailyHours,
    Device,
    DevicesMode,
    Gateway,
    GeoIP,
    Grant,
    IPNetwork,
    Login,
    Metrics,
    NetworkGroup,
    Outbound,
    Policy,
    RedirectMode,
    SessionLimits,
    State,
    UnknownCountry,
)
from govgate.core.policy.named_files import FileKind, NamedFile
from govgate.core.policy.parsers import (
    glob_problem,
    redis_url_problem,
    syslog_problem,
    upstream_problem,
)
from govgate.core.policy.readers import NAME, Reader, Section, found, join
from govgate.core.yaml_tree import YMap, YNode, YScalar, YSeq
from govgate.errors import PolicyError, PolicyProblem

DEFAULT_PREFIX = "/__govgate"
DEFAULT_GOVERNMENT_SUFFIXES = ("gov.cn", "xn--zfr164b")  # gov.cn, 政务
MIN_RETENTION_DAYS = 365  # Art. 20 (第二十条): access logs kept at least one year.

ANY = "any"  # `networks: any` on a staff rule: every address passes the network check
_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,128}$")
_DAILY = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


@dataclass(frozen=True, slots=True)
class PolicyReading:
    """What validating one policy found: the policy (None when anything is wrong), every problem, and the
    files it names that the files layer must read and check before the policy is used."""

    policy: Policy | None
    problems: tuple[PolicyProblem, ...]
    named_files: tuple[NamedFile, ...] = ()

    def policy_or_error(self, more: list[PolicyProblem] | None = None) -> Policy:
        """The policy; or ``PolicyError`` listing every problem, with ``more`` (found in the named files)."""
        problems = [*self.problems, *(more or [])]
        if problems or self.policy is None:
            raise PolicyError(problems)
        return self.policy


class Validator(Reader):
    """The section checks, reading through the toolkit of ``Reader``."""

    def build(self, root: YNode, source: Path, sha256: str) -> Policy | None:
        top = self.section(root, schema.POLICY, "", 1)
        if top is None:
            return None
        version = self.version(top)
        gateway = self.gateway(top)
        state = self.state(top)
        geoip = self.geoip(top)
        networks = self.networks(top)
        groups = self.groups(top)
        accounts_file = self.path_value(top.get("accounts_file"), "accounts_file", "accounts.yaml")
        devices = self.devices(top)
        access = self.access(top, networks, groups)
        grants = self.grants(top, devices)
        login = self.login(top)
        session = self.session(top)
        outbound = self.outbound(top)
        audit = self.audit(top)
        metrics = self.metrics(top)
        if self.p.items or gateway is None or geoip is None:
            return None
        return Policy(
            version=version,
            source=source,
            sha256=sha256,
            gateway=gateway,
            state=state,
            geoip=geoip,
            networks=networks,
            groups=tuple(groups) if groups is not None else None,
            accounts_file=accounts_file,
            devices=devices,
            access=access,
            grants=grants,
            login=login,
            session=session,
            outbound=outbound,
            audit=audit,
            metrics=metrics,
        )

    def version(self, top: Section) -> int:
        node = top.get("version")
        if node is None:
            return SCHEMA_VERSION  # reported as missing by section()
        if isinstance(node, YScalar) and node.kind == "int" and node.value == SCHEMA_VERSION:
            return SCHEMA_VERSION
        self.p.add(node, "version", f"expected {SCHEMA_VERSION} (the only policy schema version); found {found(node)}")
        return SCHEMA_VERSION

    def gateway(self, top: Section) -> Gateway | None:
        sec = self.section(top.get("gateway"), schema.GATEWAY, "gateway", top.line("gateway"))
        if sec is None:
            return None
        # Timezone first: grant times are read in it.
        tz_node = sec.get("timezone")
        if tz_node is not None:
            name = self.string(tz_node, sec.at("timezone"), "an IANA time zone name like Asia/Shanghai")
            if name is not None:
                try:
                    self.tz = ZoneInfo(name)
                except (ZoneInfoNotFoundError, ValueError, OSError):
                    self.p.add(tz_node, sec.at("timezone"),
                               f"expected an IANA time zone name like Asia/Shanghai; found unknown zone {name!r}")
        listen = self.hostport(sec.get("listen"), sec.at("listen"))
        upstream = self.upstream(sec)
        public_hosts: list[str] = []
        for _i, item, path in self.items(sec.get("public_hosts"), sec.at("public_hosts"), min_items=1,
                                         what="host names"):
            host = self.host(item, path, wildcard=False)
            if host is not None:
                public_hosts.append(host)
        insecure = self.boolean(sec.get("insecure"), sec.at("insecure"), False)
        tls_cert, client_ca, request_client_cert = self.tls(sec, insecure)
        trusted: list[IPNetwork] = []
        for _i, item, path in self.items(sec.get("trusted_proxies"), sec.at("trusted_proxies"), what="CIDRs"):
            net = self.cidr(item, path)
            if net is not None:
                trusted.append(net)
        prefix = self.prefix(sec)
        key_file = self.path_value(sec.get("key_file"), sec.at("key_file"), "secrets/gateway.key")
        upstream_timeout = self.duration(sec.get("upstream_timeout"), sec.at("upstream_timeout"),
                                         timedelta(seconds=60))
        drain_timeout = self.duration(sec.get("drain_timeout"), sec.at("drain_timeout"), timedelta(seconds=30))
        for key, value in (("upstream_timeout", upstream_timeout), ("drain_timeout", drain_timeout)):
            if sec.get(key) is not None and value <= timedelta(0):
                self.p.add(sec.where(key), sec.at(key), "expected a duration of at least 1s")
        max_requests = self.integer(sec.get("max_requests_per_connection"), sec.at("max_requests_per_connection"),
                                    1000, 1)
        redirect_listen = (self.hostport(sec.get("redirect_listen"), sec.at("redirect_listen"))
                           if sec.get("redirect_listen") is not None else None)
        if redirect_listen is not None and insecure:
            self.p.add(sec.where("redirect_listen"), sec.at("redirect_listen"),
                       "only meaningful with TLS; this gateway is insecure: true (plain HTTP already)")
        if listen is None or upstream is None:
            return None
        return Gateway(
            listen=listen,
            upstream=upstream,
            public_hosts=tuple(dict.fromkeys(public_hosts)),
            tls_cert=tls_cert,
            insecure=insecure,
            trusted_proxies=tuple(trusted),
            timezone=self.tz,
            prefix=prefix,
            key_file=key_file,
            request_client_cert=request_client_cert,
            client_ca=client_ca,
            upstream_timeout=upstream_timeout,
            drain_timeout=drain_timeout,
            max_requests_per_connection=max_requests,
            redirect_listen=redirect_listen,
        )

    def upstream(self, sec: Section) -> str | None:
        node = sec.get("upstream")
        if node is None:
            return None
        path = sec.at("upstream")
        text = self.string(node, path, "an http:// or https:// URL")
        if text is None:
            return None
        problem = upstream_problem(text)
        if problem:
            self.p.add(node, path, f"expected an http:// or https:// URL without path, like http://127.0.0.1:8080; "
                                   f"found {text!r} ({problem})")
            return None
        parts = urlsplit(text)
        return f"{parts.scheme.lower()}://{parts.netloc}"

    def tls(self, sec: Section, insecure: bool) -> tuple[Path | None, Path | None, bool]:
        node = sec.get("tls")
        if node is None:
            if not insecure:
                # Art. 29 (第二十九条): access must use secure connections.
                self.p.add(sec.own_line, sec.at("tls"), "required unless insecure: true (Art. 29: access must use "
                                                    "secure connections); expected {cert: path/to/gateway.pem}")
            return None, None, True
        tls = self.section(node, schema.TLS, sec.at("tls"), sec.line("tls"))
        if tls is None:
            return None, None, True
        cert_node = tls.get("cert")
        cert = self.path_value(cert_node, tls.at("cert"), "") if cert_node is not None else None
        if cert is not None and cert_node is not None and not insecure:
            self.name_file(cert_node, tls.at("cert"), cert, FileKind.TLS_CERT)
        ca_node = tls.get("client_ca")
        client_ca = self.path_value(ca_node, tls.at("client_ca"), "") if ca_node is not None else None
        if client_ca is not None and ca_node is not None and not insecure:
            self.name_file(ca_node, tls.at("client_ca"), client_ca, FileKind.CLIENT_CA)
        request = self.boolean(tls.get("request_client_cert"), tls.at("request_client_cert"), True)
        return cert, client_ca, request

    def prefix(self, sec: Section) -> str:
        node = sec.get("prefix")
        if node is None:
            return DEFAULT_PREFIX
        text = self.string(node, sec.at("prefix"), "a path like /__govgate")
        if text is None:
            return DEFAULT_PREFIX
        segments = text.split("/")
        if (not text.startswith("/") or text.endswith("/")
                or not all(_PREFIX_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments[1:])):
            self.p.add(node, sec.at("prefix"), f"expected a path starting with '/', without trailing slash, of "
                                               f"letters, digits and ._~- (like /__govgate); found {text!r}")
            return DEFAULT_PREFIX
        return text

    def state(self, top: Section) -> State:
        sec = self.section(top.get("state"), schema.STATE, "state", top.line("state"))
        if sec is None:
            return State(redis_url=None)
        url: str | None = None
        node = sec.get("redis")
        if node is not None and not (isinstance(node, YScalar) and node.kind == "null"):
            url = self.string(node, sec.at("redis"), "a redis://, rediss://, unix:// or redis+sentinel:// URL")
            if url is not None:
                problem = redis_url_problem(url)
                if problem:
                    self.p.add(node, sec.at("redis"), f"expected a redis://, rediss://, unix:// or redis+sentinel:// "
                                                      f"URL; found {problem}")
                    url = None
        timeout = self.duration(sec.get("timeout"), sec.at("timeout"), State(None).timeout)
        return State(redis_url=url, timeout=timeout)

    def geoip(self, top: Section) -> GeoIP | None:
        sec = self.section(top.get("geoip"), schema.GEOIP, "geoip", top.line("geoip"))
        if sec is None:
            return None
        node = sec.get("database")
        database = self.path_value(node, sec.at("database"), "")
        if node is not None:
            # Art. 19 (第十九条): the overseas check needs a country for every address; refuse to start blind.
            self.name_file(node, sec.at("database"), database, FileKind.GEOIP_DATABASE)
        home = ["CN"]
        home_node = sec.get("home_countries")
        if home_node is not None:
            home = self.countries(home_node, sec.at("home_countries"))
            if isinstance(home_node, YSeq) and not home_node.items:
                self.p.add(home_node, sec.at("home_countries"), "expected at least one country code like CN; "
                                                                "found an empty list")
        unknown = self.choice(sec.get("unknown"), sec.at("unknown"), UnknownCountry, UnknownCountry.OVERSEAS)
        if node is None:
            return None
        return GeoIP(database=database, home_countries=frozenset(home), unknown=unknown)

    def networks(self, top: Section) -> tuple[NetworkGroup, ...]:
        node = top.get("networks")
        if node is None or (isinstance(node, YScalar) and node.kind == "null"):
            return ()
        if not isinstance(node, YMap):
            self.p.add(node, "networks", f"expected a mapping of network names to lists of CIDRs; found {found(node)}")
            return ()
        groups: list[NetworkGroup] = []
        for key, value in node.items:
            name = key.text
            path = join("networks", name)
            if not NAME.fullmatch(name):
                self.p.add(key, path, f"expected a network name of letters, digits and _.- ; found {name!r}")
                continue
            if name == ANY:
                self.p.add(key, path, "`any` is reserved (a staff rule's `networks: any` admits every address); "
                                      "choose another name for this network")
                continue
            cidrs: list[IPNetwork] = []
            for _i, item, item_path in self.items(value, path, min_items=1, what="CIDRs"):
                net = self.cidr(item, item_path)
                if net is not None:
                    cidrs.append(net)
            if isinstance(value, YScalar) and value.kind == "null":
                self.p.add(value, path, "expected at least 1 of CIDRs; found nothing")
            groups.append(NetworkGroup(name, tuple(cidrs)))
        return tuple(groups)

    def groups(self, top: Section) -> list[str] | None:
        node = top.get("groups")
        if node is None:
            return None
        out: list[str] = []
        for text, item, path in self.name_list(node, "groups", "a group name"):
            if text in out:
                self.p.add(item, path, f"expected each group once; {text!r} is declared twice")
                continue
            out.append(text)
        return out

    def devices(self, top: Section) -> tuple[Device, ...]:
        out: list[Device] = []
        seen: dict[str, int] = {}
        for _i, item, path in self.items(top.get("devices"), "devices", what="devices"):
            sec = self.section(item, schema.DEVICE, path, item.line)
            if sec is None:
                continue
            dev_id = self.ident(sec, "id", "a device id")
            account = self.ident(sec, "account", "an account name")
            cert: bytes | None = None
            cert_node = sec.get("cert_sha256")
            if cert_node is not None:
                cert = self.fingerprint(cert_node, sec.at("cert_sha256"))
            token: str | None = None
            token_node = sec.get("token")
            if token_node is not None:
                token = self.string(token_node, sec.at("token"), "an enrolment id")
            if cert_node is None and token_node is None:
                self.p.add(item, path, "expected cert_sha256 or token (or both) to identify the device; found neither")
            expires_node = sec.get("expires")
            expires = self.day(expires_node, sec.at("expires")) if expires_node is not None else None
            if dev_id is None or account is None:
                continue
            if dev_id in seen:
                self.p.add(sec.where("id"), sec.at("id"), f"expected unique device ids; {dev_id!r} is already the "
                                                          f"id of the device at line {seen[dev_id]}")
                continue
            seen[dev_id] = item.line
            out.append(Device(id=dev_id, account=account, cert_sha256=cert, token=token, expires=expires))
        return tuple(out)

    def ident(self, sec: Section, key: str, what: str) -> str | None:
        node = sec.get(key)
        if node is None:
            return None  # reported as missing
        text = self.string(node, sec.at(key), what)
        if text is not None and not _ID.fullmatch(text):
            self.p.add(node, sec.at(key), f"expected {what} without spaces or control characters, at most 128 "
                                          f"characters; found {text!r}")
            return None
        return text

    def fingerprint(self, node: YNode, path: str) -> bytes | None:
        text = self.string(node, path, "a SHA-256 fingerprint: 64 hex digits")
        if text is None:
            return None
        digits = text.replace(":", "").replace(" ", "").lower()
        if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
            self.p.add(node, path, f"expected a SHA-256 fingerprint of the DER certificate: 64 hex digits (colons "
                                   f"and case ignored); found {len(digits)} characters {text[:80]!r}")
            return None
        return bytes.fromhex(digits)

    def access(self, top: Section, networks: tuple[NetworkGroup, ...], groups: list[str] | None) -> tuple[
            AccessRule, ...]:
        rules: list[AccessRule] = []
        names: dict[str, int] = {}
        known_networks = {n.name for n in networks}
        for index, item, path in self.items(top.get("access"), "access", min_items=1, what="access rules"):
            sec = self.section(item, schema.RULE, path, item.line)
            if sec is None:
                continue
            name = None
            name_node = sec.get("name")
            if name_node is not None:
                name = self.string(name_node, sec.at("name"), "a rule name")
            if name is not None:
                if name in names:
                    self.p.add(name_node or item, sec.at("name"), f"expected unique rule names; {name!r} is already "
                                                                  f"the name of the rule at line {names[name]}")
                names.setdefault(name, item.line)
            paths = self.globs(sec)
            hosts: list[str] | None = None
            if sec.get("hosts") is not None:
                hosts = []
                for _i, h_item, h_path in self.items(sec.get("hosts"), sec.at("hosts"), what="host names"):
                    host = self.host(h_item, h_path, wildcard=True)
                    if host is not None:
                        hosts.append(host)
            methods: list[str] | None = None
            if sec.get("methods") is not None:
                methods = [m.upper() for m, _n, _p in self.name_list(sec.get("methods"), sec.at("methods"),
                                                                     "an HTTP method like GET", _METHOD)]
            allow_node = sec.get("allow")
            allow = self.choice(allow_node, sec.at("allow"), Allow, Allow.DENY)
            if isinstance(allow_node, YScalar) and allow_node.text.strip() == allow.value and allow is not Allow.STAFF:
                # Network, device and group checks only run for staff rules (Art. 19); on a public or deny
                # rule they would mislead the operator into thinking something is restricted.
                for key in ("networks", "devices", "groups", "bind_devices"):
                    if sec.get(key) is not None:
                        self.p.add(sec.where(key), sec.at(key),
                                   f"only meaningful for allow: staff; this rule is allow: {allow.value}, so remove "
                                   f"{key!r} (or make the rule staff)")
            rule_networks: list[str] = []
            networks_node = sec.get("networks")
            any_network = False
            if allow is Allow.STAFF and networks_node is None:
                # Art. 19 (第十九条): staff functions only from allowed IP ranges or devices. A staff rule must
                # say where staff may come from: a policy cut off (or half written) after `allow: staff` must be
                # invalid, never a rule that admits every address.
                self.p.add(item, path, "a staff rule must name its networks: add `networks: [NAME, ...]` (the "
                                       "networks staff may come from) or `networks: any` to admit every address")
            if isinstance(networks_node, YScalar) and networks_node.kind == "str" and networks_node.text == ANY:
                any_network = True
                networks_node = None
            elif isinstance(networks_node, YSeq) and not networks_node.items:
                self.p.add(networks_node, sec.at("networks"), "expected at least one network name; an empty list "
                           "admits nobody by address (write `networks: any` to admit every address)")
            elif networks_node is not None and not isinstance(networks_node, YSeq):
                self.p.add(networks_node, sec.at("networks"), f"expected a list of network names or `any`; found "
                                                              f"{found(networks_node)}")
                networks_node = None
            for text, n_item, n_path in self.name_list(networks_node, sec.at("networks"), "a network name"):
                if text == ANY:
                    self.p.add(n_item, n_path, "`any` is not a network name: write `networks: any` (without a "
                                               "list) to admit every address, or list named networks only")
                    continue
                if text not in known_networks:
                    hint = difflib.get_close_matches(text, sorted(known_networks), n=1, cutoff=0.6)
                    declared = ", ".join(sorted(known_networks)) or "none"
                    self.p.add(n_item, n_path, f"unknown network {text!r}"
                                               + (f"; did you mean {hint[0]!r}?" if hint else
                                                  f"; expected one of the names under networks: {declared}"))
                    continue
                rule_networks.append(text)
            mode = self.choice(sec.get("devices"), sec.at("devices"), DevicesMode, DevicesMode.ALLOWLISTED)
            rule_groups: list[str] | None = None
            if sec.get("groups") is not None:
                rule_groups = []
                for text, g_item, g_path in self.name_list(sec.get("groups"), sec.at("groups"), "a group name"):
                    if groups is not None and text not in groups:
                        hint = difflib.get_close_matches(text, groups, n=1, cutoff=0.6)
                        self.p.add(g_item, g_path, f"unknown group {text!r}"
                                                   + (f"; did you mean {hint[0]!r}?" if hint else
                                                      f"; expected one of the declared groups: "
                                                      f"{', '.join(groups) or 'none'}"))
                        continue
                    rule_groups.append(text)
            bind = self.boolean(sec.get("bind_devices"), sec.at("bind_devices"), False)
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

    def globs(self, sec: Section) -> list[str]:
        out: list[str] = []
        for _i, item, path in self.items(sec.get("paths"), sec.at("paths"), min_items=1, what="path globs"):
            text = self.string(item, path, "a path glob starting with '/'")
            if text is None:
                continue
            problem = glob_problem(text)
            if problem:
                self.p.add(item, path, f"expected a path glob starting with '/' (* one segment, ** any); found "
                                       f"{text!r} ({problem})")
                continue
            out.append(text)
        return out

    def grants(self, top: Section, devices: tuple[Device, ...]) -> tuple[Grant, ...]:
        sec = self.section(top.get("overseas"), schema.OVERSEAS, "overseas", top.line("overseas"))
        if sec is None:
            return ()
        by_id = {d.id: d for d in devices}
        out: list[Grant] = []
        for index, item, path in self.items(sec.get("grants"), sec.at("grants"), what="grants"):
            g = self.section(item, schema.GRANT, path, item.line)
            if g is None:
                continue
            grant = self.grant(g, index, item, by_id)
            if grant is not None:
                out.append(grant)
        return tuple(out)

    def grant(self, g: Section, index: int, item: YNode, by_id: dict[str, Device]) -> Grant | None:
        # Art. 19 (第十九条): overseas access only by whitelist, for set times, devices or accounts.
        ok = True
        account = self.ident(g, "account", "an account name") if g.get("account") is not None else None
        grant_devices: list[str] = []
        dev_node = g.get("devices")
        if dev_node is not None:
            for _i, d_item, d_path in self.items(dev_node, g.at("devices"), min_items=1, what="device ids"):
                dev_id = self.string(d_item, d_path, "a device id")
                if dev_id is None:
                    ok = False
                    continue
                device = by_id.get(dev_id)
                if device is None:
                    hint = difflib.get_close_matches(dev_id, sorted(by_id), n=1, cutoff=0.6)
                    self.p.add(d_item, d_path, f"unknown device {dev_id!r}"
                                               + (f"; did you mean {hint[0]!r}?" if hint else
                                                  "; expected an id listed under devices"))
                    ok = False
                    continue
                if account is not None and device.account != account:
                    self.p.add(d_item, d_path, f"device {dev_id!r} belongs to account {device.account!r}, not to "
                                               f"this grant's account {account!r}; expected the account's own devices")
                    ok = False
                    continue
                grant_devices.append(dev_id)
            if isinstance(dev_node, YScalar) and dev_node.kind == "null":
                self.p.add(dev_node, g.at("devices"), "expected a non-empty list of device ids; found nothing")
                ok = False
        if g.get("account") is None and dev_node is None:
            self.p.add(item, g.path, "expected account and/or devices: whom the grant admits; found neither")
            ok = False
        countries: frozenset[str] | None = None
        if g.get("countries") is not None:
            countries = frozenset(self.countries(g.get("countries"), g.at("countries")))
        start = end = None
        from_node, until_node = g.get("from"), g.get("until")
        if from_node is not None:
            start = self.moment(from_node, g.at("from"), end_of_day=False)
        if until_node is not None:
            end = self.moment(until_node, g.at("until"), end_of_day=True)
        if start is not None and end is not None and start > end and from_node is not None:
            self.p.add(from_node, g.at("from"), f"expected from to be no later than until; found from "
                                                f"{start.isoformat()} after until {end.isoformat()}")
            ok = False
        daily = None
        daily_node = g.get("daily")
        if daily_node is not None:
            daily = self.daily(daily_node, g.at("daily"))
            ok = ok and daily is not None
        reason = None
        reason_node = g.get("reason")
        if reason_node is not None:
            reason = self.string(reason_node, g.at("reason"), "a reason (why this overseas access is needed)")
        if not ok or start is None or end is None or reason is None:
            return None
        return Grant(index=index, line=item.line, account=account, devices=tuple(grant_devices),
                     countries=countries, start=start, end=end, daily=daily, reason=reason)

    def daily(self, node: YNode, path: str) -> DailyHours | None:
        text = node.text.strip() if isinstance(node, YScalar) and node.kind == "str" else None
        m = _DAILY.fullmatch(text) if text is not None else None
        if m is None:
            self.p.add(node, path, f"expected daily hours as \"HH:MM-HH:MM\" like \"08:00-22:00\"; found {found(node)}")
            return None
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            self.p.add(node, path, f"expected hours 00-23 and minutes 00-59; found {text!r}")
            return None
        if (h1, m1) == (h2, m2):
            self.p.add(node, path, f"expected different start and end times; found {text!r}")
            return None
        return DailyHours(time(h1, m1), time(h2, m2))

    def login(self, top: Section) -> Login:
        # Art. 30 (第三十条): limit failed logins.
        sec = self.section(top.get("login"), schema.LOGIN, "login", top.line("login"))
        d = Login()
        if sec is None:
            return d
        return Login(
            max_failures=self.integer(sec.get("max_failures"), sec.at("max_failures"), d.max_failures, 1),
            failure_window=self.duration(sec.get("failure_window"), sec.at("failure_window"), d.failure_window),
            lockout=self.duration(sec.get("lockout"), sec.at("lockout"), d.lockout),
            ip_max_failures=self.integer(sec.get("ip_max_failures"), sec.at("ip_max_failures"), d.ip_max_failures, 1),
        )

    def session(self, top: Section) -> SessionLimits:
        # Art. 30 (第三十条): log out on timeout.
        sec = self.section(top.get("session"), schema.SESSION, "session", top.line("session"))
        d = SessionLimits()
        if sec is None:
            return d
        idle = self.duration(sec.get("idle_timeout"), sec.at("idle_timeout"), d.idle_timeout)
        absolute = self.duration(sec.get("absolute_timeout"), sec.at("absolute_timeout"), d.absolute_timeout)
        if idle > absolute:
            self.p.add(sec.where("idle_timeout"), sec.at("idle_timeout"),
                       f"expected idle_timeout no longer than absolute_timeout ({absolute}); found {idle}")
        return SessionLimits(idle_timeout=idle, absolute_timeout=absolute)

    def outbound(self, top: Section) -> Outbound:
        # Art. 15 (第十五条): warn before a link leaves for a non-government site.
        sec = self.section(top.get("outbound"), schema.OUTBOUND, "outbound", top.line("outbound"))
        if sec is None:
            return Outbound(DEFAULT_GOVERNMENT_SUFFIXES, (), RedirectMode.WARN)
        suffixes: list[str] = list(DEFAULT_GOVERNMENT_SUFFIXES)
        if sec.get("government_suffixes") is not None:
            suffixes = []
            for _i, item, path in self.items(sec.get("government_suffixes"), sec.at("government_suffixes"),
                                             what="domain suffixes"):
                if isinstance(item, YScalar) and item.text.startswith(".") and item.kind == "str":
                    item = YScalar(item.text[1:], item.text[1:], item.kind, item.line, item.quoted)
                host = self.host(item, path, wildcard=False)
                if host is not None:
                    suffixes.append(host)
        allow_hosts: list[str] = []
        for _i, item, path in self.items(sec.get("allow_hosts"), sec.at("allow_hosts"), what="host names"):
            host = self.host(item, path, wildcard=True)
            if host is not None:
                allow_hosts.append(host)
        redirects = self.choice(sec.get("redirects"), sec.at("redirects"), RedirectMode, RedirectMode.WARN)
        return Outbound(tuple(dict.fromkeys(suffixes)), tuple(dict.fromkeys(allow_hosts)), redirects)

    def audit(self, top: Section) -> Audit:
        # Art. 20 (第二十条): access logs kept at least one year, integrity assured.
        sec = self.section(top.get("audit"), schema.AUDIT, "audit", top.line("audit"))
        if sec is None:
            return Audit(dir=self.resolve("audit/"), retention_days=MIN_RETENTION_DAYS)
        syslog: str | None = None
        node = sec.get("syslog")
        if node is not None and not (isinstance(node, YScalar) and node.kind == "null"):
            syslog = self.string(node, sec.at("syslog"), "udp://host:port or tcp://host:port")
            if syslog is not None:
                problem = syslog_problem(syslog)
                if problem:
                    self.p.add(node, sec.at("syslog"), f"expected udp://host:port or tcp://host:port; found "
                                                       f"{syslog!r} ({problem})")
                    syslog = None
        return Audit(
            dir=self.path_value(sec.get("dir"), sec.at("dir"), "audit/"),
            retention_days=self.integer(sec.get("retention_days"), sec.at("retention_days"), MIN_RETENTION_DAYS,
                                        MIN_RETENTION_DAYS, " days (Art. 20: access logs are kept at least a year)"),
            algorithm=self.choice(sec.get("algorithm"), sec.at("algorithm"), AuditAlgorithm,
                                  AuditAlgorithm.HMAC_SHA256),
            on_failure=self.choice(sec.get("on_failure"), sec.at("on_failure"), AuditOnFailure, AuditOnFailure.DENY),
            prune=self.boolean(sec.get("prune"), sec.at("prune"), False),
            syslog=syslog,
        )

    def metrics(self, top: Section) -> Metrics:
        sec = self.section(top.get("metrics"), schema.METRICS, "metrics", top.line("metrics"))
        if sec is None:
            return Metrics(listen=None)
        return Metrics(listen=self.hostport(sec.get("listen"), sec.at("listen")))


def build_policy(tree: YNode, *, file: str, source: Path, sha256: str,
                 yaml_problems: list[PolicyProblem] | None = None) -> PolicyReading:
    """Validate the YAML tree into a ``Policy``: the reading holds it, or every problem found."""
    v = Validator(file, source)
    v.p.items.extend(yaml_problems or [])
    policy = v.build(tree, source, sha256)
    if v.p.items or policy is None:
        if not v.p.items:
            v.p.add(tree, "", "the policy is incomplete")  # defensive: every None above reported a problem
        policy = None
    return PolicyReading(policy, tuple(v.p.items), tuple(v.named_files))

