"""Times as the gateway hands them around: aware datetimes on the wall clock of ``gateway.timezone`` that carry
the fixed UTC offset of their instant (a ``datetime.timezone``), not the zone itself.

Why (Art. 19, 第十九条: overseas access only inside a grant's time window; Art. 30, 第三十条: timeout logout and
login-failure limits): Python compares and subtracts two aware datetimes that share one ``tzinfo`` object by their
wall-clock fields alone, ignoring the UTC offset and ``fold``. Where ``gateway.timezone`` has summer time (any IANA
zone may be chosen) the wall clock repeats an hour each autumn and skips one each spring: with ``ZoneInfo`` times a
session idle for 70 minutes read as idle for 10, a lockout ended 14 minutes into 30, and a grant admitted an hour
past its end. With a fixed offset, wall-clock arithmetic is arithmetic on instants; two times either side of a
change carry different ``tzinfo`` objects, which Python compares as instants (as it compares them with a grant's
``ZoneInfo`` times). The wall clock reads as in the zone: the date of a daily audit file, a grant's daily hours, an
account's expiry day, the offset an audit record shows.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone, tzinfo


def wall_time(moment: datetime, zone: tzinfo) -> datetime:
    """``moment`` (aware) on ``zone``'s wall clock, with that instant's fixed UTC offset as its ``tzinfo``."""
    local = moment.astimezone(zone)
    return local.replace(tzinfo=_fixed(local.utcoffset()))


@functools.cache
def _fixed(offset: timedelta | None) -> timezone:
    """One ``timezone`` object per offset (the audit record's time text is memoised by ``tzinfo`` identity)."""
    return timezone(offset or timedelta(0))


TRANSITION_WATCH = 3600.0  # seconds: a UTC offset found unchanged this far ahead is used without looking it up again


class WallClock:
    """``wall_time`` of a POSIX timestamp, fast: the zone's UTC offset is looked up once and reused until an hour
    before it could change (found the same an hour ahead: no zone changes its offset twice within an hour); in the
    hour before a change, and for another zone, it is looked up every time. Not thread-safe: one event loop."""

    __slots__ = ("_fixed", "_from", "_until", "_zone")

    def __init__(self) -> None:
        self._zone: tzinfo | None = None
        self._fixed: timezone = UTC
        self._from = self._until = float("-inf")  # the span the offset is known for (a clock set back leaves it)

    def at(self, timestamp: float, zone: tzinfo) -> datetime:
        if zone is self._zone and self._from <= timestamp < self._until:
            return datetime.fromtimestamp(timestamp, self._fixed)
        local = datetime.fromtimestamp(timestamp, zone)
        offset = local.utcoffset()
        fixed = _fixed(offset)
        ahead = datetime.fromtimestamp(timestamp + TRANSITION_WATCH, zone).utcoffset()
        self._zone, self._fixed, self._from = zone, fixed, timestamp
        self._until = timestamp + TRANSITION_WATCH if ahead == offset else float("-inf")
        return local.replace(tzinfo=fixed)
