"""Section checks of how the gateway serves and what it keeps: ``gateway`` (listen, upstream, TLS,
timeouts), ``state``, ``login``, ``session``, ``outbound``, ``audit`` and ``metrics``.

Each check reads its section through the reader toolkit (``readers.py``) and returns the model's
value, the default when the section is absent, or None when a required part is wrong (reported).
Art. 29 (TLS), Art. 30 (login failures, session timeouts), Art. 15 (outbound links) and Art. 20
(the audit log) are cited beside the rules they shape.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from govgate.core.policy import schema
from govgate.core.policy.model import (
    Audit,
    AuditAlgorithm,
    AuditOnFailure,
    Gateway,
    IPNetwork,
    Login,
    Metrics,
    Outbound,
    RedirectMode,
    SessionLimits,
    State,
)
from govgate.core.policy.named_files import FileKind
from govgate.core.policy.parsers import redis_url_problem, syslog_problem, upstream_problem
from govgate.core.policy.readers import Reader, Section
from govgate.core.yaml_tree import YScalar

DEFAULT_PREFIX = "/__govgate"
DEFAULT_GOVERNMENT_SUFFIXES = ("gov.cn", "xn--zfr164b")  # gov.cn, 政务
MIN_RETENTION_DAYS = 365  # Art. 20 (第二十条): access logs kept at least one year.
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


def gateway(r: Reader, top: Section) -> Gateway | None:
    sec = r.section(top.get("gateway"), schema.GATEWAY, "gateway", top.line("gateway"))
    if sec is None:
        return None
    # Timezone first: grant times are read in it.
    tz_node = sec.get("timezone")
    if tz_node is not None:
        name = r.string(tz_node, sec.at("timezone"), "an IANA time zone name like Asia/Shanghai")
        if name is not None:
            try:
                r.tz = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                r.p.add(tz_node, sec.at("timezone"),
                        f"expected an IANA time zone name like Asia/Shanghai; found unknown zone {name!r}")
    listen = r.hostport(sec.get("listen"), sec.at("listen"))
    upstream = _upstream(r, sec)
    public_hosts: list[str] = []
    for _i, item, path in r.items(sec.get("public_hosts"), sec.at("public_hosts"), min_items=1,
                                  what="host names"):
        host = r.host(item, path, wildcard=False)
        if host is not None:
            public_hosts.append(host)
    insecure = r.boolean(sec.get("insecure"), sec.at("insecure"), False)
    tls_cert, client_ca, request_client_cert = _tls(r, sec, insecure)
    trusted: list[IPNetwork] = []
    for _i, item, path in r.items(sec.get("trusted_proxies"), sec.at("trusted_proxies"), what="CIDRs"):
        net = r.cidr(item, path)
        if net is not None:
            trusted.append(net)
    prefix = _prefix(r, sec)
    key_file = r.path_value(sec.get("key_file"), sec.at("key_file"), "secrets/gateway.key")
    upstream_timeout = r.duration(sec.get("upstream_timeout"), sec.at("upstream_timeout"),
                                  timedelta(seconds=60))
    drain_timeout = r.duration(sec.get("drain_timeout"), sec.at("drain_timeout"), timedelta(seconds=30))
    idle_timeout = r.duration(sec.get("idle_timeout"), sec.at("idle_timeout"), timedelta(seconds=60))
    for key, value in (("upstream_timeout", upstream_timeout), ("drain_timeout", drain_timeout),
                       ("idle_timeout", idle_timeout)):
        if sec.get(key) is not None and value <= timedelta(0):
            r.p.add(sec.where(key), sec.at(key), "expected a duration of at least 1s")
    max_requests = r.integer(sec.get("max_requests_per_connection"), sec.at("max_requests_per_connection"),
                             1000, 1)
    redirect_listen = (r.hostport(sec.get("redirect_listen"), sec.at("redirect_listen"))
                       if sec.get("redirect_listen") is not None else None)
    if redirect_listen is not None and insecure:
        r.p.add(sec.where("redirect_listen"), sec.at("redirect_listen"),
                "only meaningful with TLS; this gateway is insecure: true (plain HTTP already)")
    proxy_protocol = r.boolean(sec.get("proxy_protocol"), sec.at("proxy_protocol"), False)
    if proxy_protocol and not trusted:
        # Art. 19: the header sets the address the rules judge; only the operator's own balancers may send it.
        r.p.add(sec.where("proxy_protocol"), sec.at("proxy_protocol"),
                "needs gateway.trusted_proxies: the load balancers whose PROXY protocol headers are believed")
    if listen is None or upstream is None:
        return None
    return Gateway(
        listen=listen,
        upstream=upstream,
        public_hosts=tuple(dict.fromkeys(public_hosts)),
        tls_cert=tls_cert,
        insecure=insecure,
        trusted_proxies=tuple(trusted),
        timezone=r.tz,
        prefix=prefix,
        key_file=key_file,
        request_client_cert=request_client_cert,
        client_ca=client_ca,
        upstream_timeout=upstream_timeout,
        drain_timeout=drain_timeout,
        idle_timeout=idle_timeout,
        max_requests_per_connection=max_requests,
        redirect_listen=redirect_listen,
        proxy_protocol=proxy_protocol,
    )


def _upstream(r: Reader, sec: Section) -> str | None:
    node = sec.get("upstream")
    if node is None:
        return None
    path = sec.at("upstream")
    text = r.string(node, path, "an http:// or https:// URL")
    if text is None:
        return None
    problem = upstream_problem(text)
    if problem:
        r.p.add(node, path, f"expected an http:// or https:// URL without path, like http://127.0.0.1:8080; "
                            f"found {text!r} ({problem})")
        return None
    parts = urlsplit(text)
    return f"{parts.scheme.lower()}://{parts.netloc}"


def _tls(r: Reader, sec: Section, insecure: bool) -> tuple[Path | None, Path | None, bool]:
    node = sec.get("tls")
    if node is None:
        if not insecure:
            # Art. 29 (第二十九条): access must use secure connections.
            r.p.add(sec.own_line, sec.at("tls"), "required unless insecure: true (Art. 29: access must use "
                                                "secure connections); expected {cert: path/to/gateway.pem}")
        return None, None, True
    tls = r.section(node, schema.TLS, sec.at("tls"), sec.line("tls"))
    if tls is None:
        return None, None, True
    cert_node = tls.get("cert")
    cert = r.path_value(cert_node, tls.at("cert"), "") if cert_node is not None else None
    if cert is not None and cert_node is not None and not insecure:
        r.name_file(cert_node, tls.at("cert"), cert, FileKind.TLS_CERT)
    ca_node = tls.get("client_ca")
    client_ca = r.path_value(ca_node, tls.at("client_ca"), "") if ca_node is not None else None
    if client_ca is not None and ca_node is not None and not insecure:
        r.name_file(ca_node, tls.at("client_ca"), client_ca, FileKind.CLIENT_CA)
    request = r.boolean(tls.get("request_client_cert"), tls.at("request_client_cert"), True)
    return cert, client_ca, request


def _prefix(r: Reader, sec: Section) -> str:
    node = sec.get("prefix")
    if node is None:
        return DEFAULT_PREFIX
    text = r.string(node, sec.at("prefix"), "a path like /__govgate")
    if text is None:
        return DEFAULT_PREFIX
    segments = text.split("/")
    if (not text.startswith("/") or text.endswith("/")
            or not all(_PREFIX_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments[1:])):
        r.p.add(node, sec.at("prefix"), f"expected a path starting with '/', without trailing slash, of "
                                        f"letters, digits and ._~- (like /__govgate); found {text!r}")
        return DEFAULT_PREFIX
    return text


def state(r: Reader, top: Section) -> State:
    sec = r.section(top.get("state"), schema.STATE, "state", top.line("state"))
    if sec is None:
        return State(redis_url=None)
    url: str | None = None
    node = sec.get("redis")
    if node is not None and not (isinstance(node, YScalar) and node.kind == "null"):
        url = r.string(node, sec.at("redis"), "a redis://, rediss://, unix:// or redis+sentinel:// URL")
        if url is not None:
            problem = redis_url_problem(url)
            if problem:
                r.p.add(node, sec.at("redis"), f"expected a redis://, rediss://, unix:// or redis+sentinel:// "
                                               f"URL; found {problem}")
                url = None
    timeout = r.duration(sec.get("timeout"), sec.at("timeout"), State(None).timeout)
    return State(redis_url=url, timeout=timeout)


def login(r: Reader, top: Section) -> Login:
    # Art. 30 (第三十条): limit failed logins.
    sec = r.section(top.get("login"), schema.LOGIN, "login", top.line("login"))
    d = Login()
    if sec is None:
        return d
    return Login(
        max_failures=r.integer(sec.get("max_failures"), sec.at("max_failures"), d.max_failures, 1),
        failure_window=r.duration(sec.get("failure_window"), sec.at("failure_window"), d.failure_window),
        lockout=r.duration(sec.get("lockout"), sec.at("lockout"), d.lockout),
        ip_max_failures=r.integer(sec.get("ip_max_failures"), sec.at("ip_max_failures"), d.ip_max_failures, 1),
    )


def session(r: Reader, top: Section) -> SessionLimits:
    # Art. 30 (第三十条): log out on timeout.
    sec = r.section(top.get("session"), schema.SESSION, "session", top.line("session"))
    d = SessionLimits()
    if sec is None:
        return d
    idle = r.duration(sec.get("idle_timeout"), sec.at("idle_timeout"), d.idle_timeout)
    absolute = r.duration(sec.get("absolute_timeout"), sec.at("absolute_timeout"), d.absolute_timeout)
    if idle > absolute:
        r.p.add(sec.where("idle_timeout"), sec.at("idle_timeout"),
                f"expected idle_timeout no longer than absolute_timeout ({absolute}); found {idle}")
    return SessionLimits(idle_timeout=idle, absolute_timeout=absolute)


def outbound(r: Reader, top: Section) -> Outbound:
    # Art. 15 (第十五条): warn before a link leaves for a non-government site.
    sec = r.section(top.get("outbound"), schema.OUTBOUND, "outbound", top.line("outbound"))
    if sec is None:
        return Outbound(DEFAULT_GOVERNMENT_SUFFIXES, (), RedirectMode.WARN)
    suffixes: list[str] = list(DEFAULT_GOVERNMENT_SUFFIXES)
    if sec.get("government_suffixes") is not None:
        suffixes = []
        for _i, item, path in r.items(sec.get("government_suffixes"), sec.at("government_suffixes"),
                                      what="domain suffixes"):
            if isinstance(item, YScalar) and item.text.startswith(".") and item.kind == "str":
                item = YScalar(item.text[1:], item.text[1:], item.kind, item.line, item.quoted)
            host = r.host(item, path, wildcard=False)
            if host is not None:
                suffixes.append(host)
    allow_hosts: list[str] = []
    for _i, item, path in r.items(sec.get("allow_hosts"), sec.at("allow_hosts"), what="host names"):
        host = r.host(item, path, wildcard=True)
        if host is not None:
            allow_hosts.append(host)
    redirects = r.choice(sec.get("redirects"), sec.at("redirects"), RedirectMode, RedirectMode.WARN)
    return Outbound(tuple(dict.fromkeys(suffixes)), tuple(dict.fromkeys(allow_hosts)), redirects)


def audit(r: Reader, top: Section) -> Audit:
    # Art. 20 (第二十条): access logs kept at least one year, integrity assured.
    sec = r.section(top.get("audit"), schema.AUDIT, "audit", top.line("audit"))
    if sec is None:
        return Audit(dir=r.resolve("audit/"), retention_days=MIN_RETENTION_DAYS)
    syslog: str | None = None
    node = sec.get("syslog")
    if node is not None and not (isinstance(node, YScalar) and node.kind == "null"):
        syslog = r.string(node, sec.at("syslog"), "udp://host:port or tcp://host:port")
        if syslog is not None:
            problem = syslog_problem(syslog)
            if problem:
                r.p.add(node, sec.at("syslog"), f"expected udp://host:port or tcp://host:port; found "
                                                f"{syslog!r} ({problem})")
                syslog = None
    return Audit(
        dir=r.path_value(sec.get("dir"), sec.at("dir"), "audit/"),
        retention_days=r.integer(sec.get("retention_days"), sec.at("retention_days"), MIN_RETENTION_DAYS,
                                 MIN_RETENTION_DAYS, " days (Art. 20: access logs are kept at least a year)"),
        algorithm=r.choice(sec.get("algorithm"), sec.at("algorithm"), AuditAlgorithm,
                           AuditAlgorithm.HMAC_SHA256),
        on_failure=r.choice(sec.get("on_failure"), sec.at("on_failure"), AuditOnFailure, AuditOnFailure.DENY),
        prune=r.boolean(sec.get("prune"), sec.at("prune"), False),
        syslog=syslog,
    )


def metrics(r: Reader, top: Section) -> Metrics:
    sec = r.section(top.get("metrics"), schema.METRICS, "metrics", top.line("metrics"))
    if sec is None:
        return Metrics(listen=None)
    return Metrics(listen=r.hostport(sec.get("listen"), sec.at("listen")))
