"""Times across a summer-time change (``govgate.core.wall_time``): the gateway's clock gives wall-clock times with
the instant's fixed UTC offset, so that grant windows (Art. 19), idle and absolute timeouts and lockouts (Art. 30)
are reckoned in real time where ``gateway.timezone`` has summer time. With ``ZoneInfo`` times Python compared and
subtracted wall clocks: a session idle 40 minutes read as idle 10 at the autumn change, a 30-minute lockout ended
after 16 at the spring change, and a grant admitted a login from abroad 44 minutes after its end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.accounts import Accounts
from govgate.core.grants import grant_active
from govgate.core.wall_time import WallClock, wall_time
from tests.accounts.builders import PASSWORD, SECRET, make_account
from tests.addons.gateway import PREFIX, Browser, InProcessGateway
from tests.policies import grant, load, policy_data
from tests.runtime import Clock, InProcessRuntime

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Shanghai")]
# Around the changes of 2027 in Berlin: 28 March 01:00 UTC (02:00 CET → 03:00 CEST), 31 October 01:00 UTC (03:00
# CEST → 02:00 CET), and Lord Howe's half-hour changes.
instants = st.one_of(
    st.datetimes(min_value=datetime(2027, 3, 27), max_value=datetime(2027, 3, 29), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2027, 10, 30), max_value=datetime(2027, 11, 8), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2027, 4, 3), max_value=datetime(2027, 4, 4), timezones=st.just(UTC)),
)


@settings(max_examples=300)
@given(a=instants, b=instants, zone=st.sampled_from(ZONES))
def test_wall_times_compare_and_subtract_as_the_instants_do(a: datetime, b: datetime, zone: ZoneInfo) -> None:
    wa, wb = wall_time(a, zone), wall_time(b, zone)
    assert wa - wb == a - b
    assert (wa < wb) == (a < b)
    assert wa == a
    assert wa + (b - a) == b
    local = a.astimezone(zone)  # and it reads as the zone's wall clock does, offset included
    assert (wa.isoformat(), wa.date(), wa.time()) == (local.isoformat(), local.date(), local.time())


def test_a_grant_ends_at_its_instant_in_the_hour_the_clock_repeats() -> None:
    # until 2027-10-31T02:30+02:00 is 00:30 UTC; at 01:15 UTC the wall clock reads 02:15 again (CET).
    data = policy_data(overseas={"grants": [grant(account="zhangsan", start="2027-10-30T00:00",
                                                  end="2027-10-31T02:30+02:00")]})
    data["gateway"]["timezone"] = "Europe/Berlin"
    (window,) = load(data).grants
    assert grant_active(window, wall_time(datetime(2027, 10, 31, 0, 29, tzinfo=UTC), BERLIN))
    assert not grant_active(window, wall_time(datetime(2027, 10, 31, 1, 15, tzinfo=UTC), BERLIN))


def berlin_runtime(start: datetime) -> InProcessRuntime:
    data = policy_data()
    data["gateway"]["timezone"] = "Europe/Berlin"
    return InProcessRuntime(policy=load(data), accounts=Accounts((make_account("zhangsan"),)), clock=Clock(start))


@pytest.mark.parametrize("idle_minutes", [16, 40, 70])
async def test_an_idle_session_ends_after_its_real_minutes_in_the_hour_the_clock_repeats(idle_minutes: int) -> None:
    runtime = berlin_runtime(datetime(2027, 10, 31, 0, 50, tzinfo=UTC))  # 02:50 CEST; idle_timeout 15m
    async with InProcessGateway(runtime) as gateway:
        browser = Browser(gateway, "10.1.2.3")
        await browser.login("zhangsan", PASSWORD, SECRET)
        assert (await browser.get("/oa/")).status_code == 200
        runtime.clock.advance(timedelta(minutes=idle_minutes))
        answer = await browser.get("/oa/")
        assert answer.status_code == 303
        assert answer.location is not None
        assert answer.location.startswith(f"{PREFIX}/login")


async def test_a_lockout_lasts_its_real_minutes_in_the_hour_the_clock_skips() -> None:
    start = datetime(2027, 3, 28, 0, 45, tzinfo=UTC)  # 01:45 CET; max_failures 3, lockout 30m
    runtime = berlin_runtime(start)
    async with InProcessGateway(runtime) as gateway:
        for _ in range(3):
            await Browser(gateway, "10.1.2.3").password("zhangsan", "Wrong-pass-123x")
        runtime.clock.set(start + timedelta(minutes=16))  # 03:01 CEST: 76 minutes by the wall clock
        assert (await Browser(gateway, "10.1.2.4").password("zhangsan", PASSWORD)).status_code == 429
        runtime.clock.set(start + timedelta(minutes=31))
        assert (await Browser(gateway, "10.1.2.4").password("zhangsan", PASSWORD)).status_code == 303


@settings(max_examples=200)
@given(start=instants, steps=st.lists(st.floats(min_value=-3600, max_value=5400), min_size=1, max_size=40),
       zone=st.sampled_from(ZONES))
def test_the_live_clock_reads_as_wall_time_with_its_offset_reused_only_where_it_holds(
        start: datetime, steps: list[float], zone: ZoneInfo) -> None:
    # The live runtime's clock reuses the offset it found until an hour before it could change: every reading,
    # across the changes too, and with the clock set back, is the one wall_time gives.
    clock = WallClock()
    t = start.timestamp()
    for step in steps:
        t += step
        expected = wall_time(datetime.fromtimestamp(t, UTC), zone)
        read = clock.at(t, zone)
        assert (read, read.isoformat(), read.tzinfo) == (expected, expected.isoformat(), expected.tzinfo)
    other = ZoneInfo("Asia/Shanghai") if zone.key != "Asia/Shanghai" else BERLIN  # a reload to another zone
    assert clock.at(t, other) == wall_time(datetime.fromtimestamp(t, UTC), other)
    assert clock.at(t, other).utcoffset() == datetime.fromtimestamp(t, other).utcoffset()
