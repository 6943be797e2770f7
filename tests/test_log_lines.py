"""Log lines carry the time with its offset, in ``gateway.timezone``, as audit records do."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from govgate.log_lines import LogLineFormatter, use_timezone


@pytest.fixture(autouse=True)
def local_zone_after() -> Iterator[None]:
    yield
    use_timezone(None)


def record(created: datetime) -> logging.LogRecord:
    rec = logging.LogRecord("govgate.live_runtime", logging.INFO, __file__, 1, "policy.reload why=%s", ("poll",),
                            None)
    rec.created = created.timestamp()
    return rec


def test_a_log_line_starts_with_the_time_and_its_offset_in_the_policys_zone() -> None:
    use_timezone(ZoneInfo("Asia/Shanghai"))
    line = LogLineFormatter().format(record(datetime.fromisoformat("2026-11-25T02:00:00.250+00:00")))
    assert line == "2026-11-25T10:00:00.250+08:00 INFO govgate.live_runtime: policy.reload why=poll"


def test_another_zone_gives_its_own_offset_and_the_same_instant() -> None:
    use_timezone(ZoneInfo("Europe/London"))
    line = LogLineFormatter().format(record(datetime.fromisoformat("2026-07-01T12:00:00+08:00")))
    assert line.startswith("2026-07-01T05:00:00.000+01:00 INFO ")


def test_before_a_policy_is_loaded_the_local_zone_is_used_with_its_offset() -> None:
    use_timezone(None)
    line = LogLineFormatter().format(record(datetime.now().astimezone()))
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO ", line), line
