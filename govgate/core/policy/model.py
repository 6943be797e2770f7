"""The validated policy: frozen, typed objects. Nothing downstream of validation touches raw dicts.

Values are normalised here once: host names are lower-case ASCII (IDNA) without a trailing dot,
CIDRs are ``ipaddress`` networks, durations are ``timedelta``, times are aware ``datetime`` in
``gateway.timezone``, paths are resolved against the policy file's folder.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMA_VERSION = 1


class Allow(StrEnum):
    PUBLIC = "public"
    STAFF = "staff"
    DENY = "deny"


class DevicesMode(StrEnum):
    ALLOWLISTED = "allowlisted"  # any allowlisted device satisfies the network check
    NONE = "none"  # devices never satisfy the network check


class UnknownCountry(StrEnum):
    HOME = "home"
    OVERSEAS = "overseas"


class RedirectMode(StrEnum):
    WARN = "warn"
    ALLOW = "allow"


class AuditAlgorithm(StrEnum):
    HMAC_SHA256 = "hmac-sha256"
    HMAC_SM3 = "hmac-sm3"  # 国密, Art. 17


class AuditOnFailure(StrEnum):
    DENY = "deny"  # staff paths answer 503 while records cannot be written (Art. 20)
    ALLOW = "allow"


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Gateway:
    listen: HostPort
    upstream: str  # absolute http(s) URL of the portal, no path
    public_hosts: tuple[str, ...]  # normalised: lower-case ASCII, no port, no trailing dot
    tls_cert: Path | None  # PEM with key and chain; None only when insecure
    insecure: bool
    trusted_proxies: tuple[IPNetwork, ...]
    timezone: ZoneInfo
    prefix: str  # "/__govgate", no trailing slash
    key_file: Path
    request_client_cert: bool = True  # ask browsers for a client certificate (device identity, Art. 30)
    client_ca: Path | None = None  # device CA certificate(s) that client certificates must chain to
    upstream_timeout: timedelta = timedelta(seconds=60)  # no response head from the portal within this → 504
    drain_timeout: timedelta = timedelta(seconds=30)  # on SIGTERM: how long requests in flight may finish
    # A client connection with no request in flight for this long is closed: idle keep-alive, a request head
    # that never ends (slowloris), a TLS handshake never finished.
    idle_timeout: timedelta = timedelta(seconds=60)
    max_requests_per_connection: int = 1000  # then the connection is closed gracefully (as nginx does)
    redirect_listen: HostPort | None = None  # plain-HTTP listener (port 80) answering 308 to the HTTPS URL
    proxy_protocol: bool = False  # connections from trusted_proxies start with a PROXY protocol v1/v2 header


@dataclass(frozen=True, slots=True)
class State:
    redis_url: str | None  # None: in-process memory store, one instance only
    timeout: timedelta = timedelta(milliseconds=500)  # per Redis call


@dataclass(frozen=True, slots=True)
class GeoIP:
    database: Path
    home_countries: frozenset[str]  # ISO 3166-1 alpha-2, upper case
    unknown: UnknownCountry


@dataclass(frozen=True, slots=True)
class NetworkGroup:
    name: str
    cidrs: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    account: str
    cert_sha256: bytes | None  # 32 bytes, SHA-256 of the DER certificate
    token: str | None  # enrolment id carried by the enrolled-device cookie (written in policy.yaml by hand)
    expires: date | None
    token_sha256: bytes | None = None  # an enrolled browser of the device registry: its token's SHA-256 only


@dataclass(frozen=True, slots=True)
class AccessRule:
    name: str
    index: int  # position in `access`, from 0
    line: int  # line in policy.yaml, for explain and errors
    paths: tuple[str, ...]  # globs: `*` one segment, `**` any number
    hosts: tuple[str, ...] | None  # normalised host names (or `*.suffix`); None: any host
    methods: frozenset[str] | None  # upper case; None: any method
    allow: Allow
    networks: tuple[str, ...]  # names of NetworkGroups the network check accepts
    devices: DevicesMode
    groups: tuple[str, ...] | None  # None: any account
    bind_devices: bool
    # `networks: any`: every address passes the network check. Never implied by an absent or empty
    # `networks` (Art. 19): a staff rule must say where staff may come from, so a cut policy cannot open it.
    any_network: bool = False


@dataclass(frozen=True, slots=True)
class DailyHours:
    start: time
    end: time  # end < start means the window crosses midnight (22:00-06:00)

    def contains(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t <= self.end
        return t >= self.start or t <= self.end


@dataclass(frozen=True, slots=True)
class Grant:
    """Art. 19: overseas access by whitelist, for set times, devices or accounts."""

    index: int
    line: int
    account: str | None
    devices: tuple[str, ...]
    countries: frozenset[str] | None  # None: any country
    start: datetime  # aware
    end: datetime  # aware, inclusive
    daily: DailyHours | None
    reason: str


@dataclass(frozen=True, slots=True)
class Login:
    """Art. 30: login-failure limits."""

    max_failures: int = 5
    failure_window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=30)
    ip_max_failures: int = 20


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Art. 30: timeout logout."""

    idle_timeout: timedelta = timedelta(minutes=15)
    absolute_timeout: timedelta = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class Outbound:
    """Art. 15: warn before leaving for a non-government site."""

    government_suffixes: tuple[str, ...]  # normalised ASCII (IDNA): "gov.cn", "xn--zfr164b"
    allow_hosts: tuple[str, ...]  # normalised; may start with "*."
    redirects: RedirectMode


@dataclass(frozen=True, slots=True)
class Audit:
    """Art. 20: access logs kept at least one year, integrity assured."""

    dir: Path
    retention_days: int
    algorithm: AuditAlgorithm = AuditAlgorithm.HMAC_SHA256
    on_failure: AuditOnFailure = AuditOnFailure.DENY
    prune: bool = False
    syslog: str | None = None  # "udp://host:514" or "tcp://host:514" (RFC 5424); None: off


@dataclass(frozen=True, slots=True)
class Metrics:
    listen: HostPort | None


@dataclass(frozen=True, slots=True)
class Policy:
    version: int
    source: Path  # absolute path of policy.yaml (or "<embedded>")
    sha256: str  # hex digest of the file's bytes, for audit records and `health`
    gateway: Gateway
    state: State
    geoip: GeoIP
    networks: tuple[NetworkGroup, ...]
    groups: tuple[str, ...] | None  # declared account groups; None: not declared, not checked
    accounts_file: Path
    devices_file: Path  # the device registry `govgate device` and enrolment write
    devices: tuple[Device, ...]
    access: tuple[AccessRule, ...]
    grants: tuple[Grant, ...]
    login: Login
    session: SessionLimits
    outbound: Outbound
    audit: Audit
    metrics: Metrics

    def network(self, name: str) -> NetworkGroup | None:
        for group in self.networks:
            if group.name == name:
                return group
        return None

    def device(self, device_id: str) -> Device | None:
        for dev in self.devices:
            if dev.id == device_id:
                return dev
        return None
