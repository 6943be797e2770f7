"""Overseas grants (Art. 19): time windows, daily hours, who a grant admits, and the grant index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.grants import (
    GrantIndex,
    could_admit_before_login,
    grant_active,
    grant_admits,
    grant_could_admit,
)
from tests.policies import TZ, at, make_grant


def test_grant_is_active_inside_its_window_bounds_included() -> None:
    g = make_grant(start="2026-12-01 00:00", end="2026-12-15 23:59")
    assert grant_active(g, at("2026-12-01 00:00"))
    assert grant_active(g, at("2026-12-15 23:59"))
    assert not grant_active(g, at("2026-11-30 23:59"))
    assert not grant_active(g, at("2026-12-15 23:59") + timedelta(seconds=1))


def test_grant_window_is_compared_as_instants_whatever_the_timezone_of_now() -> None:
    g = make_grant(start="2026-12-01 08:00", end="2026-12-02 08:00")
    # 2026-12-01 00:30 UTC is 08:30 in Shanghai.
    assert grant_active(g, datetime(2026, 12, 1, 0, 30, tzinfo=UTC))
    assert not grant_active(g, datetime(2026, 11, 30, 23, 30, tzinfo=UTC))


def test_daily_hours_are_read_on_the_gateways_wall_clock() -> None:
    g = make_grant(daily=("08:00", "22:00"))
    assert grant_active(g, at("2026-12-05 08:00"))
    assert grant_active(g, at("2026-12-05 22:00"))
    assert not grant_active(g, at("2026-12-05 07:59"))
    # 15:00 UTC is 23:00 in Shanghai: outside the hours although 15:00 looks inside.
    assert not grant_active(g, datetime(2026, 12, 5, 15, 0, tzinfo=UTC))


def test_daily_hours_may_cross_midnight() -> None:
    g = make_grant(daily=("22:00", "06:00"))
    assert grant_active(g, at("2026-12-05 23:30"))
    assert grant_active(g, at("2026-12-06 05:59"))
    assert not grant_active(g, at("2026-12-05 12:00"))


def test_grant_naming_only_an_account_admits_that_account_from_any_device() -> None:
    g = make_grant(account="zhangsan")
    now = at("2026-12-05 10:00")
    assert grant_admits(g, "zhangsan", None, "GB", now)
    assert grant_admits(g, "zhangsan", "any-device", "GB", now)
    assert not grant_admits(g, "lisi", None, "GB", now)
    assert not grant_admits(g, None, None, "GB", now)


def test_grant_naming_only_devices_admits_any_account_on_one_of_them() -> None:
    g = make_grant(devices=("kiosk-1", "kiosk-2"))
    now = at("2026-12-05 10:00")
    assert grant_admits(g, "lisi", "kiosk-2", "GB", now)
    assert not grant_admits(g, "lisi", "laptop", "GB", now)
    assert not grant_admits(g, "lisi", None, "GB", now)


def test_grant_naming_account_and_devices_requires_both() -> None:
    g = make_grant(account="zhangsan", devices=("zs-laptop",))
    now = at("2026-12-05 10:00")
    assert grant_admits(g, "zhangsan", "zs-laptop", "GB", now)
    assert not grant_admits(g, "zhangsan", None, "GB", now)
    assert not grant_admits(g, "lisi", "zs-laptop", "GB", now)


def test_grant_with_countries_admits_only_from_them() -> None:
    g = make_grant(account="zhangsan", countries=frozenset({"GB", "FR"}))
    now = at("2026-12-05 10:00")
    assert grant_admits(g, "zhangsan", None, "FR", now)
    assert not grant_admits(g, "zhangsan", None, "US", now)
    assert not grant_admits(g, "zhangsan", None, None, now)  # unknown country matches no list


def test_before_login_a_grant_could_admit_when_its_device_condition_is_met() -> None:
    now = at("2026-12-05 10:00")
    assert grant_could_admit(make_grant(account="zhangsan"), None, "GB", now)
    assert not grant_could_admit(make_grant(account="zhangsan", devices=("zs-laptop",)), None, "GB", now)
    assert grant_could_admit(make_grant(account="zhangsan", devices=("zs-laptop",)), "zs-laptop", "GB", now)
    assert not grant_could_admit(make_grant(account="zhangsan", countries=frozenset({"JP"})), None, "GB", now)
    assert not grant_could_admit(make_grant(account="zhangsan"), None, "GB", at("2027-01-01 00:00"))


def test_could_admit_before_login_returns_the_first_possible_grant() -> None:
    grants = [make_grant(index=0, account="a", countries=frozenset({"JP"})), make_grant(index=1, account="b")]
    found = could_admit_before_login(grants, None, "GB", at("2026-12-05 10:00"))
    assert found is not None
    assert found.index == 1
    assert could_admit_before_login(grants[:1], None, "GB", at("2026-12-05 10:00")) is None


def test_index_finds_the_first_admitting_grant_in_policy_order() -> None:
    index = GrantIndex([
        make_grant(index=0, account="zhangsan", countries=frozenset({"JP"})),
        make_grant(index=1, devices=("zs-laptop",)),
        make_grant(index=2, account="zhangsan"),
    ])
    now = at("2026-12-05 10:00")
    found = index.admitting("zhangsan", "zs-laptop", "GB", now)
    assert found is not None
    assert found.index == 1
    found = index.admitting("zhangsan", None, "GB", now)
    assert found is not None
    assert found.index == 2
    assert index.admitting("lisi", None, "GB", now) is None


def test_index_before_login_considers_account_grants_by_country_and_device_grants() -> None:
    index = GrantIndex([
        make_grant(index=0, account="zhangsan", countries=frozenset({"JP"})),
        make_grant(index=1, devices=("zs-laptop",)),
    ])
    now = at("2026-12-05 10:00")
    assert index.could_admit(None, "GB", now) is None
    found = index.could_admit(None, "JP", now)
    assert found is not None
    assert found.index == 0
    found = index.could_admit("zs-laptop", "GB", now)
    assert found is not None
    assert found.index == 1


def test_index_with_a_thousand_grants_agrees_with_a_plain_scan() -> None:
    grants = [make_grant(index=i, account=f"user{i % 300}" if i % 3 else None,
                    devices=(f"dev{i % 200}",) if i % 2 else (),
                    countries=frozenset({["GB", "US", "JP"][i % 3]}) if i % 5 else None,
                    start=f"2026-12-{1 + i % 20:02d} 00:00", end=f"2026-12-{5 + i % 20:02d} 12:00")
              for i in range(1000) if (i % 3) or (i % 2)]
    index = GrantIndex(grants)
    now = at("2026-12-10 10:00")
    for k in range(200):
        account, device, country = f"user{k % 310}", (f"dev{k % 210}" if k % 4 else None), ["GB", "US", "FR"][k % 3]
        plain = next((g for g in grants if grant_admits(g, account, device, country, now)), None)
        assert index.admitting(account, device, country, now) == plain
        plain_pre = next((g for g in grants if grant_could_admit(g, device, country, now)), None)
        assert index.could_admit(device, country, now) == plain_pre


times = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(TZ))
hours = st.times().map(lambda t: t.replace(second=0, microsecond=0).isoformat(timespec="minutes"))


@settings(max_examples=300, deadline=None)
@given(start=times, length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)), now=times,
       daily=st.one_of(st.none(), st.tuples(hours, hours)), device=st.sampled_from([None, "zs-laptop"]))
def test_a_grant_never_admits_outside_its_window(start: datetime, length: timedelta, now: datetime,
                                                 daily: tuple[str, str] | None, device: str | None) -> None:
    end = start + length
    g = make_grant(account="zhangsan", devices=("zs-laptop",), start=start.replace(tzinfo=None).isoformat(),
              end=end.replace(tzinfo=None).isoformat(), daily=daily)
    admitted = grant_admits(g, "zhangsan", device, "GB", now)
    could = grant_could_admit(g, device, "GB", now)
    inside = g.start <= now <= g.end and (g.daily is None or g.daily.contains(now.astimezone(TZ).time()))
    if not inside:
        assert not admitted
        assert not could
        assert GrantIndex([g]).admitting("zhangsan", device, "GB", now) is None
    else:
        assert admitted == (device == "zs-laptop")


def test_daily_hours_follow_the_gateway_timezone_even_for_a_grant_written_in_utc() -> None:
    g = make_grant(daily=("08:00", "22:00"))
    utc_grant = type(g)(index=0, line=1, account="zhangsan", devices=(), countries=None,
                        start=g.start.astimezone(UTC), end=g.end.astimezone(UTC), daily=g.daily, reason="r")
    # 23:00 in Shanghai is 15:00 UTC: outside the hours on the gateway's clock.
    late = at("2026-12-05 23:00")
    assert not grant_active(utc_grant, late, TZ)
    assert not GrantIndex([utc_grant], TZ).admitting("zhangsan", None, "GB", late)
    assert grant_active(utc_grant, at("2026-12-05 10:00"), TZ)
