"""RedisStore's pure parts: Redis (Sentinel) URLs and the time encoding. No server needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from govgate.store.redis import from_us, parse_sentinel_url, to_us


def test_epoch_microseconds_round_trip_exactly() -> None:
    moment = datetime(2026, 12, 1, 9, 0, 0, 123457, tzinfo=UTC)
    assert from_us(to_us(moment)) == moment
    assert to_us(timedelta(minutes=15)) == 15 * 60 * 10**6


# -- URLs -------------------------------------------------------------------------------------------
def test_sentinel_url_names_sentinels_master_and_db() -> None:
    parsed = parse_sentinel_url("redis+sentinel://h1:26379,h2:26380/mymaster/2")
    assert parsed.sentinels == (("h1", 26379), ("h2", 26380))
    assert parsed.master == "mymaster"
    assert parsed.db == 2
    assert parsed.password is None
    assert not parsed.ssl


def test_sentinel_url_defaults_port_and_db_and_reads_credentials_and_ipv6() -> None:
    parsed = parse_sentinel_url("rediss+sentinel://app:p%40ss@[2001:db8::1],h2/my%20master")
    assert parsed.sentinels == (("2001:db8::1", 26379), ("h2", 26379))
    assert parsed.master == "my master"
    assert parsed.db == 0
    assert parsed.username == "app"
    assert parsed.password == "p@ss"
    assert parsed.ssl


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1:26379",
        "redis+sentinel://h1:26379/",
        "redis+sentinel://h1:26379/m/x",
        "redis+sentinel://h1:26379/m/0/extra",
        "redis+sentinel://h1:notaport/m",
        "redis+sentinel://h1:70000/m",
        "redis+sentinel://,h2/m",
        "redis+sentinel://2001:db8::1/m",
        "redis://h1/m",
    ],
)
def test_malformed_sentinel_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Sentinel"):
        parse_sentinel_url(url)
