"""Valid policies load into the expected typed values: a full one, the reference example of ``docs/policy.md``,
the shipped sample."""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import trustme

from govgate.core.policy.model import (
    Allow,
    AuditAlgorithm,
    AuditOnFailure,
    DailyHours,
    DevicesMode,
    HostPort,
    RedirectMode,
    UnknownCountry,
)
from govgate.files import load_policy
from tests.policy.texts import GEOIP_DB, REPO, load, replace

FINGERPRINT = "0123456789ABCDEF" * 4

# Uses every key the schema table names (test_schema checks that), with non-default values.
FULL = f"""\
version: 1
gateway:
  listen: "[::]:443"
  upstream: "HTTPS://portal.internal:8443/"
  public_hosts: [portal.example.gov.cn, 门户.政务]
  tls:
    cert: certs/gateway.pem
    client_ca: certs/device-ca.pem
    request_client_cert: false
  insecure: false
  trusted_proxies: [192.0.2.0/24, "2001:db8:1::/48"]
  timezone: Asia/Urumqi
  prefix: /_gate/v1
  key_file: /etc/govgate/gateway.key
  upstream_timeout: 45s
  drain_timeout: 1m
  idle_timeout: 90s
  max_requests_per_connection: 500
  redirect_listen: "0.0.0.0:80"
  proxy_protocol: true
state:
  redis: rediss://redis.internal:6380/2
  timeout: 2s
geoip:
  database: geoip/GeoLite2-Country-Test.mmdb
  home_countries: [CN, HK, MO]
  unknown: home
networks:
  office: [10.0.0.0/8, "2001:db8::/32"]
  vpn: [172.16.0.0/12]
groups: [staff, admins]
accounts_file: data/accounts.yaml
devices_file: data/devices.yaml
devices:
  - id: zs-laptop
    account: zhangsan
    cert_sha256: "{FINGERPRINT}"
    token: lisi-browser-enrolment-token-1
    expires: 2027-06-30
access:
  - name: public site
    paths: ["/", "/news/**", "/static/*"]
    hosts: [portal.example.gov.cn]
    methods: [GET, HEAD]
    allow: public
  - name: admin
    paths: ["/admin/**"]
    allow: staff
    networks: [office, vpn]
    devices: none
    groups: [admins]
    bind_devices: true
  - {{name: the rest, paths: ["/**"], allow: deny}}
overseas:
  grants:
    - account: zhangsan
      devices: [zs-laptop]
      countries: [GB]
      from: 2026-12-01T09:00
      until: 2026-12-15T18:00+08:00
      daily: "08:00-22:00"
      reason: 参加国际会议
login:
  max_failures: 3
  failure_window: 10m
  lockout: 1h
  ip_max_failures: 30
session:
  idle_timeout: 10m
  absolute_timeout: 4h
outbound:
  government_suffixes: [gov.cn, 政务, org.cn]
  allow_hosts: [www.12377.cn, "*.example-partner.cn"]
  redirects: allow
audit:
  dir: logs/audit
  retention_days: 400
  algorithm: hmac-sm3
  on_failure: allow
  prune: true
  syslog: tcp://siem.internal:6514
metrics:
  listen: "127.0.0.1:9464"
"""

REFERENCE_EXAMPLE = """\
version: 1
gateway:
  listen: "0.0.0.0:8443"
  upstream: "http://127.0.0.1:8080"        # the portal
  public_hosts: [portal.example.gov.cn]    # names users reach the portal by: its own links stay untouched
  tls: {cert: certs/gateway.pem}           # one PEM file holding the private key and the certificate chain
  insecure: false                          # plain HTTP, for local trials; says so loudly at start
  trusted_proxies: []                      # CIDRs whose X-Forwarded-For is believed; nobody else's is
  timezone: Asia/Shanghai                  # for grant windows and daily hours
  prefix: /__govgate                       # the gate's own pages live under this path
  key_file: secrets/gateway.key            # signs cookies and links, encrypts TOTP secrets, MACs the audit log
state:
  redis: redis://127.0.0.1:6379/0          # absent: in-process memory, one instance only
geoip:
  database: geoip/GeoLite2-Country.mmdb
  home_countries: [CN]                     # HK, MO, TW are the operator's call
  unknown: overseas                        # addresses the database does not know
networks:                                  # named CIDR groups, IPv4 and IPv6
  office: [10.0.0.0/8, "2001:db8::/32"]
accounts_file: accounts.yaml               # written by `govgate account`; hashes and encrypted secrets only
devices:                                   # the device allowlist; each device belongs to one account
  - {id: zs-laptop, account: zhangsan, cert_sha256: "<SHA-256 of the DER certificate, hex, colons and case ignored>"}
  - {id: ls-browser, account: lisi, token: "<enrolment id>", expires: 2027-06-30}
access:                                    # first match wins; unmatched requests are denied
  - {name: public site, paths: ["/", "/news/**", "/static/**"], allow: public}
  - name: office system
    paths: ["/oa/**"]
    allow: staff                           # network-or-device check, overseas check, MFA session
    networks: [office]                     # staff may come from these ranges…
    devices: allowlisted                   # …or from any allowlisted device (`none` to forbid)
    groups: [staff]                        # optional
    bind_devices: false                    # true: the session's account must be using one of its own devices
  - {name: the rest, paths: ["/**"], allow: deny}
overseas:                                  # Art. 19; applies to addresses outside every listed network
  grants:
    - account: zhangsan                    # account and/or devices; at least one
      devices: [zs-laptop]
      countries: [GB]                      # optional
      from: 2026-12-01T00:00
      until: 2026-12-15T23:59
      daily: "08:00-22:00"                 # optional
      reason: 参加国际会议                  # required
login:
  max_failures: 5                          # per account within failure_window
  failure_window: 15m
  lockout: 30m
  ip_max_failures: 20                      # per source address, any accounts
session:
  idle_timeout: 15m
  absolute_timeout: 8h
outbound:
  government_suffixes: [gov.cn, 政务]
  allow_hosts: [www.12377.cn, "*.example-partner.cn"]
  redirects: warn                          # upstream 3xx to a non-government host goes through the warning page
audit:
  dir: audit/
  retention_days: 365                      # below 365 is refused (Art. 20)
metrics:
  listen: "127.0.0.1:9464"                 # Prometheus text format at /metrics; absent: no metrics endpoint
"""


def test_full_policy_round_trips_into_typed_values(tmp_path: Path) -> None:
    source = tmp_path / "policy.yaml"
    p = load(FULL, source=source)
    urumqi = ZoneInfo("Asia/Urumqi")
    assert p.version == 1
    assert p.source == source
    assert p.sha256 == hashlib.sha256(FULL.encode()).hexdigest()
    g = p.gateway
    assert g.listen == HostPort("::", 443)
    assert g.upstream == "https://portal.internal:8443"
    assert g.public_hosts == ("portal.example.gov.cn", "xn--zoup46i.xn--zfr164b")
    assert (g.tls_cert, g.client_ca, g.request_client_cert, g.insecure) == (
        tmp_path / "certs" / "gateway.pem", tmp_path / "certs" / "device-ca.pem", False, False)
    assert g.trusted_proxies == (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/48"))
    assert (g.timezone, g.prefix, g.key_file) == (urumqi, "/_gate/v1", Path("/etc/govgate/gateway.key"))
    assert (g.upstream_timeout, g.drain_timeout, g.max_requests_per_connection, g.redirect_listen) == (
        timedelta(seconds=45), timedelta(minutes=1), 500, HostPort("0.0.0.0", 80))
    assert g.proxy_protocol is True
    assert g.idle_timeout == timedelta(seconds=90)
    assert (p.state.redis_url, p.state.timeout) == ("rediss://redis.internal:6380/2", timedelta(seconds=2))
    assert p.geoip.database == tmp_path / "geoip" / "GeoLite2-Country-Test.mmdb"
    assert (p.geoip.home_countries, p.geoip.unknown) == (frozenset({"CN", "HK", "MO"}), UnknownCountry.HOME)
    assert [(n.name, n.cidrs) for n in p.networks] == [
        ("office", (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))),
        ("vpn", (ipaddress.ip_network("172.16.0.0/12"),))]
    assert p.groups == ("staff", "admins")
    assert p.accounts_file == tmp_path / "data" / "accounts.yaml"
    (device,) = p.devices
    assert (device.id, device.account, device.cert_sha256, device.token, device.expires) == (
        "zs-laptop", "zhangsan", bytes.fromhex(FINGERPRINT), "lisi-browser-enrolment-token-1", date(2027, 6, 30))
    public, admin, rest = p.access
    assert (public.hosts, public.methods, public.paths) == (
        ("portal.example.gov.cn",), frozenset({"GET", "HEAD"}), ("/", "/news/**", "/static/*"))
    assert (admin.allow, admin.networks, admin.devices, admin.groups, admin.bind_devices) == (
        Allow.STAFF, ("office", "vpn"), DevicesMode.NONE, ("admins",), True)
    assert (rest.index, rest.allow, rest.line) == (2, Allow.DENY, FULL.splitlines().index(
        '  - {name: the rest, paths: ["/**"], allow: deny}') + 1)
    (grant,) = p.grants
    assert grant.start == datetime(2026, 12, 1, 9, tzinfo=urumqi)
    # Given to the minute: through the end of 18:00 (+08:00).
    assert grant.end == datetime(2026, 12, 15, 18, 0, 59, 999999, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert grant.end.tzinfo == urumqi
    assert grant.daily == DailyHours(time(8), time(22))
    assert (p.login.max_failures, p.login.failure_window, p.login.lockout, p.login.ip_max_failures) == (
        3, timedelta(minutes=10), timedelta(hours=1), 30)
    assert (p.session.idle_timeout, p.session.absolute_timeout) == (timedelta(minutes=10), timedelta(hours=4))
    assert p.outbound.government_suffixes == ("gov.cn", "xn--zfr164b", "org.cn")
    assert p.outbound.redirects is RedirectMode.ALLOW
    a = p.audit
    assert (a.dir, a.retention_days, a.algorithm, a.on_failure, a.prune, a.syslog) == (
        tmp_path / "logs" / "audit", 400, AuditAlgorithm.HMAC_SM3, AuditOnFailure.ALLOW, True,
        "tcp://siem.internal:6514")
    assert p.metrics.listen == HostPort("127.0.0.1", 9464)


def test_full_policy_passes_the_file_checks_when_its_files_exist(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "geoip").mkdir()
    ca = trustme.CA()
    ca.issue_cert("portal.example.gov.cn").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "certs" / "gateway.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "certs" / "device-ca.pem"))
    shutil.copy(GEOIP_DB, tmp_path / "geoip" / GEOIP_DB.name)
    path = tmp_path / "policy.yaml"
    path.write_text(FULL, encoding="utf-8")
    policy = load_policy(path)
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_reference_example_validates() -> None:
    text = replace(REFERENCE_EXAMPLE, "<SHA-256 of the DER certificate, hex, colons and case ignored>",
                   ":".join(["ab"] * 32))
    text = replace(text, "<enrolment id>", "ls-browser-token-from-secrets-token-urlsafe")
    policy = load_policy(REPO / "policy.yaml", data=text.encode("utf-8"), check_files=False)
    assert [r.name for r in policy.access] == ["public site", "office system", "the rest"]
    assert policy.grants[0].end == datetime(2026, 12, 15, 23, 59, 59, 999999, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert policy.device("ls-browser") is not None
    # With files checked, only the files that the example names but this repo lacks are reported.
    adapted = replace(replace(text, "GeoLite2-Country.mmdb", "GeoLite2-Country-Test.mmdb"),
                      "insecure: false", "insecure: true")
    assert load_policy(REPO / "policy.yaml", data=adapted.encode("utf-8"), check_files=True).gateway.insecure


def test_shipped_policy_validates_with_its_files() -> None:
    policy = load_policy(REPO / "policy.yaml")
    assert policy.gateway.insecure
    assert str(policy.gateway.listen) == "127.0.0.1:8443"
    assert policy.gateway.upstream == "http://127.0.0.1:8080"
    assert policy.geoip.database == REPO / "geoip" / "GeoLite2-Country-Test.mmdb"
    assert {n.name for n in policy.networks} == {"office", "loopback"}
    assert [r.allow for r in policy.access] == [Allow.PUBLIC, Allow.STAFF, Allow.DENY]
    assert policy.access[1].networks == ("office", "loopback")
    assert len(policy.grants) == 1
    assert policy.audit.dir == REPO / "audit"
    assert policy.gateway.key_file == REPO / "secrets" / "gateway.key"
    assert policy.accounts_file == REPO / "accounts.yaml"


def test_relative_paths_resolve_against_the_policy_folder_not_the_working_directory(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "geoip").mkdir()
    shutil.copy(GEOIP_DB, folder / "geoip" / GEOIP_DB.name)
    from tests.policy.texts import BASE

    (folder / "policy.yaml").write_text(BASE, encoding="utf-8")
    policy = load_policy(folder / "policy.yaml")  # cwd is elsewhere: the database is still found
    assert policy.geoip.database == folder / "geoip" / GEOIP_DB.name
    assert policy.gateway.key_file == folder / "secrets" / "gateway.key"
