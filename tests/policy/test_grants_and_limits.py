"""overseas grants (Art. 19), login and session limits (Art. 30), outbound (Art. 15), audit (Art. 20), metrics."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from govgate.core.policy.model import AuditAlgorithm, AuditOnFailure, RedirectMode
from tests.policy.texts import BASE, expect_problem, load, problems, replace

SHANGHAI = ZoneInfo("Asia/Shanghai")


def with_grant(body: str, *, tz: str | None = None) -> str:
    text = BASE if tz is None else replace(BASE, "  insecure: true\n", f"  insecure: true\n  timezone: {tz}\n")
    lines = "".join(f"      {line}\n" for line in body.strip().splitlines())
    return text + "overseas:\n  grants:\n    - " + lines.lstrip()


GOOD = """\
account: zhangsan
devices: [zs-laptop]
countries: [gb, NO]
from: 2026-12-01T00:00
until: 2026-12-15
daily: "22:00-06:00"
reason: 参加国际会议
"""


def test_a_grant_becomes_typed_with_times_in_the_gateway_timezone() -> None:
    text = with_grant(GOOD)
    (grant,) = load(text).grants
    assert (grant.index, grant.line) == (0, text.splitlines().index("    - account: zhangsan") + 1)
    assert grant.account == "zhangsan"
    assert grant.devices == ("zs-laptop",)
    assert grant.countries == frozenset({"GB", "NO"})
    assert grant.start == datetime(2026, 12, 1, tzinfo=SHANGHAI)
    assert grant.end == datetime(2026, 12, 15, 23, 59, 59, 999999, tzinfo=SHANGHAI)  # a date alone: end of day
    assert grant.daily is not None
    assert (grant.daily.start, grant.daily.end) == (time(22), time(6))
    assert grant.daily.contains(time(23, 30))
    assert grant.daily.contains(time(5))
    assert not grant.daily.contains(time(12))
    assert grant.reason == "参加国际会议"


def test_grant_times_follow_the_configured_timezone_and_explicit_offsets() -> None:
    text = with_grant(replace(GOOD, "until: 2026-12-15", "until: 2026-12-15T23:59+00:00"), tz="Europe/London")
    (grant,) = load(text).grants
    london = ZoneInfo("Europe/London")
    assert grant.start == datetime(2026, 12, 1, tzinfo=london)
    assert grant.end == datetime(2026, 12, 15, 23, 59, 59, 999999, tzinfo=london)  # through the end of 23:59
    assert grant.end.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("until", "end"), [
    ("2026-12-15T23:59", datetime(2026, 12, 15, 23, 59, 59, 999999, tzinfo=SHANGHAI)),
    ("2026-12-15 18:30", datetime(2026, 12, 15, 18, 30, 59, 999999, tzinfo=SHANGHAI)),
    ("2026-12-15T23:59:00", datetime(2026, 12, 15, 23, 59, tzinfo=SHANGHAI)),
    ("2026-12-15T23:59:30+08:00", datetime(2026, 12, 15, 23, 59, 30, tzinfo=SHANGHAI)),
])
def test_an_until_given_to_the_minute_includes_that_whole_minute(until: str, end: datetime) -> None:
    text = with_grant(replace(GOOD, "until: 2026-12-15", f'until: "{until}"'))
    assert load(text).grants[0].end == end


def test_yaml_timestamps_with_seconds_are_accepted() -> None:
    text = with_grant(replace(GOOD, "from: 2026-12-01T00:00", "from: 2026-12-01 08:00:00"))
    assert load(text).grants[0].start == datetime(2026, 12, 1, 8, tzinfo=SHANGHAI)


def test_grant_without_reason_is_an_error() -> None:
    text = with_grant(replace(GOOD, "reason: 参加国际会议\n", ""))
    expect_problem(text, "- account: zhangsan", "overseas.grants[0].reason", "required key missing")
    text = with_grant(replace(GOOD, "reason: 参加国际会议", 'reason: ""'))
    expect_problem(text, "reason:", "overseas.grants[0].reason", "found an empty string")


def test_grant_without_account_or_devices_is_an_error() -> None:
    text = with_grant(replace(replace(GOOD, "account: zhangsan\n", ""), "devices: [zs-laptop]\n", ""))
    expect_problem(text, "countries", "overseas.grants[0]", "expected account and/or devices")
    text = with_grant(replace(replace(GOOD, "account: zhangsan\n", ""), "devices: [zs-laptop]", "devices: []"))
    expect_problem(text, "devices: []", "overseas.grants[0].devices", "expected at least 1 of device ids")


def test_a_devices_only_grant_is_valid() -> None:
    (grant,) = load(with_grant(replace(GOOD, "account: zhangsan\n", ""))).grants
    assert grant.account is None
    assert grant.devices == ("zs-laptop",)


def test_grant_naming_a_device_not_listed_here_loads_for_the_device_registry_may_hold_it() -> None:
    # Issued and enrolled devices live in devices_file; `govgate check` warns when a grant names a device that is
    # neither listed nor issued (tests/policy/test_cli.py).
    policy = load(with_grant(replace(GOOD, "[zs-laptop]", "[zs-lapto]")))
    assert policy.grants[0].devices == ("zs-lapto",)


def test_grant_naming_another_accounts_device_is_an_error() -> None:
    text = with_grant(replace(GOOD, "[zs-laptop]", "[zs-laptop, ls-phone]"))
    expect_problem(text, "ls-phone]", "overseas.grants[0].devices[1]", "belongs to account 'lisi'")


def test_from_after_until_is_an_error() -> None:
    text = with_grant(replace(GOOD, "until: 2026-12-15", "until: 2026-11-30T12:00"))
    expect_problem(text, "from:", "overseas.grants[0].from", "no later than until",
                   "found from 2026-12-01T00:00:00+08:00")


@pytest.mark.parametrize("daily", ["24:00-06:00", "08:60-09:00", "8:00-22:00", "08:00", "08:00-08:00"])
def test_bad_daily_hours_are_errors(daily: str) -> None:
    text = with_grant(replace(GOOD, '"22:00-06:00"', f'"{daily}"'))
    expect_problem(text, "daily", "overseas.grants[0].daily", "expected")


def test_unquoted_sexagesimal_daily_is_an_error_not_a_number() -> None:
    text = with_grant(replace(GOOD, '"22:00-06:00"', "22:00"))
    expect_problem(text, "daily", "overseas.grants[0].daily", "expected daily hours as \"HH:MM-HH:MM\"",
                   "found the integer 22:00")


def test_bad_grant_times_and_countries_are_errors() -> None:
    text = with_grant(replace(replace(GOOD, "from: 2026-12-01T00:00", "from: next week"), "[gb, NO]", "[GBR]"))
    expect_problem(text, "from:", "overseas.grants[0].from", "expected an ISO 8601 date-time",
                   "found the string 'next week'")
    expect_problem(text, "countries", "overseas.grants[0].countries[0]", "two-letter country code")


def test_far_off_years_are_refused_instead_of_overflowing() -> None:
    text = with_grant(replace(GOOD, "until: 2026-12-15", "until: 9999-12-31T23:00-12:00"))
    expect_problem(text, "until:", "overseas.grants[0].until", "expected a year from 1970 to 9998; found 9999")
    token = "token: zhangsanEnrolmentToken0001"
    text = replace(BASE, token + "}", token + ", expires: 0001-01-01}")
    expect_problem(text, "zs-laptop", "devices[0].expires", "expected a year from 1970 to 9998; found 1")


def test_grants_must_be_a_list_of_mappings() -> None:
    text = BASE + "overseas:\n  grants: [zhangsan]\n"
    expect_problem(text, "grants", "overseas.grants[0]", "expected a mapping with keys account, devices",
                   "found the string 'zhangsan'")


def test_login_and_session_limits_are_typed() -> None:
    text = BASE + ("login: {max_failures: 3, failure_window: 10m, lockout: 1h30m, ip_max_failures: 50}\n"
                   "session: {idle_timeout: 30s, absolute_timeout: 7d}\n")
    policy = load(text)
    assert (policy.login.max_failures, policy.login.failure_window, policy.login.lockout,
            policy.login.ip_max_failures) == (3, timedelta(minutes=10), timedelta(minutes=90), 50)
    assert (policy.session.idle_timeout, policy.session.absolute_timeout) == (timedelta(seconds=30), timedelta(days=7))


def test_login_limits_must_be_positive_whole_numbers_and_durations() -> None:
    text = BASE + "login: {max_failures: 0, failure_window: 15, lockout: 30 minutes, ip_max_failures: true}\n"
    expect_problem(text, "login", "login.max_failures", "expected at least 1; found 0")
    expect_problem(text, "login", "login.failure_window", "expected a duration", "found the integer 15")
    expect_problem(text, "login", "login.lockout", "expected a duration", "'30 minutes'")
    expect_problem(text, "login", "login.ip_max_failures", "expected a whole number", "found the boolean true")


def test_idle_timeout_longer_than_absolute_is_an_error() -> None:
    text = BASE + "session:\n  idle_timeout: 9h\n  absolute_timeout: 8h\n"
    expect_problem(text, "idle_timeout", "session.idle_timeout", "no longer than absolute_timeout")


def test_outbound_hosts_are_normalised_and_defaulted() -> None:
    assert load(BASE).outbound.government_suffixes == ("gov.cn", "xn--zfr164b")
    text = BASE + ("outbound:\n  government_suffixes: [.GOV.CN, 政务]\n"
                   "  allow_hosts: [WWW.12377.cn, '*.Partner.例子.cn']\n")
    outbound = load(text).outbound
    assert outbound.government_suffixes == ("gov.cn", "xn--zfr164b")
    assert outbound.allow_hosts == ("www.12377.cn", "*.partner.xn--fsqu00a.cn")
    assert outbound.redirects is RedirectMode.WARN


def test_outbound_bad_values_are_errors() -> None:
    text = BASE + "outbound:\n  government_suffixes: ['*.gov.cn']\n  redirects: follow\n"
    expect_problem(text, "government_suffixes", "outbound.government_suffixes[0]", "expected a host name")
    expect_problem(text, "redirects", "outbound.redirects", "expected one of warn, allow")


def test_audit_retention_below_a_year_is_refused_citing_article_20() -> None:
    text = BASE + "audit:\n  retention_days: 364\n"
    expect_problem(text, "retention_days", "audit.retention_days", "expected at least 365 days", "Art. 20",
                   "found 364")


def test_audit_section_is_typed_with_defaults() -> None:
    policy = load(BASE)
    assert policy.audit.dir.name == "audit"
    assert policy.audit.retention_days == 365
    text = BASE + ("audit: {dir: /var/log/govgate, retention_days: 730, algorithm: hmac-sm3, on_failure: allow, "
                   "prune: true, syslog: 'udp://siem.example.gov.cn:514'}\n")
    audit = load(text).audit
    assert (str(audit.dir), audit.retention_days, audit.algorithm, audit.on_failure, audit.prune, audit.syslog) == (
        "/var/log/govgate", 730, AuditAlgorithm.HMAC_SM3, AuditOnFailure.ALLOW, True, "udp://siem.example.gov.cn:514")


def test_audit_bad_values_are_errors() -> None:
    text = BASE + "audit: {algorithm: md5, on_failure: ignore, prune: 1, syslog: 'http://siem'}\n"
    for key, fragment in [("algorithm", "expected one of hmac-sha256, hmac-sm3"), ("on_failure", "deny, allow"),
                          ("prune", "expected true or false"), ("syslog", "expected udp://host:port")]:
        expect_problem(text, "audit:", f"audit.{key}", fragment)


def test_metrics_listen_is_checked() -> None:
    assert load(BASE).metrics.listen is None
    listen = load(BASE + "metrics: {listen: '127.0.0.1:9464'}\n").metrics.listen
    assert listen is not None
    assert (listen.host, listen.port) == ("127.0.0.1", 9464)
    expect_problem(BASE + "metrics: {listen: 9464}\n", "metrics", "metrics.listen", "expected HOST:PORT")


def test_empty_optional_sections_mean_the_defaults() -> None:
    policy = load(BASE + "login:\nsession: ~\noverseas: {grants: }\n")
    assert policy.login.max_failures == 5
    assert policy.grants == ()


def test_a_section_of_the_wrong_type_is_one_problem() -> None:
    found = problems(BASE + "session: [15m, 8h]\n")
    assert len(found) == 1
    assert found[0].endswith("session: expected a mapping with keys idle_timeout, absolute_timeout; found a list")


@pytest.mark.parametrize(("limit", "fragment"), [
    ("session:\n  idle_timeout: 9999999999d\n", "session.idle_timeout: a duration must be at most 3650 days"),
    ("session:\n  idle_timeout: 99999999999999h\n", "session.idle_timeout: a duration must be at most 3650 days"),
    ("login:\n  lockout: 999999999d\n", "login.lockout: a duration must be at most 3650 days"),
    ("login:\n  max_failures: -0x" + "f" * 4000 + "\n", "login.max_failures:"),
    ("login:\n  max_failures: 99999999999999999999\n", "login.max_failures: expected at most"),
])
def test_absurd_numbers_are_refused_with_a_message_not_a_crash(limit: str, fragment: str) -> None:
    text = BASE + limit
    assert any(fragment in str(p) for p in problems(text)), problems(text)
