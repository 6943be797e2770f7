"""Properties of the pure session arithmetic (govgate.core.sessions), Art. 30: timeout logout."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.policy.model import SessionLimits
from govgate.core.sessions import (
    SessionStatus,
    new_session_id,
    session_expires_at,
    session_verdict,
    touched,
)
from govgate.store.base import Session

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
US = timedelta(microseconds=1)

durations = st.integers(min_value=1, max_value=10**11).map(lambda n: n * US)
offsets = st.integers(min_value=0, max_value=10**11)


def session_at(created: datetime, last_seen: datetime) -> Session:
    return Session(id=new_session_id(), account="zhangsan", device=None, client="192.0.2.1", created=created,
                   last_seen=last_seen)


@settings(max_examples=300)
@given(durations, durations, offsets, offsets)
def test_verdict_is_valid_exactly_before_both_timeouts(
    idle: timedelta, absolute: timedelta, seen_after: int, now_after: int
) -> None:
    limits = SessionLimits(idle_timeout=idle, absolute_timeout=absolute)
    session = session_at(T0, T0 + seen_after * US)
    now = T0 + now_after * US
    verdict = session_verdict(session, now, limits)
    if now >= T0 + absolute:
        assert verdict.status is SessionStatus.ABSOLUTE_EXPIRED
    elif now >= session.last_seen + idle:
        assert verdict.status is SessionStatus.IDLE_EXPIRED
    else:
        assert verdict.valid
    assert verdict.valid == (now < session_expires_at(session, limits))


@given(offsets, offsets)
def test_touching_never_moves_last_seen_backwards(seen_after: int, now_after: int) -> None:
    session = session_at(T0, T0 + seen_after * US)
    now = T0 + now_after * US
    after = touched(session, now)
    assert after.last_seen == max(session.last_seen, now)
    assert (after.id, after.account, after.created) == (session.id, session.account, session.created)


@settings(max_examples=100)
@given(st.integers(min_value=2, max_value=10**9).map(lambda n: n * US), st.integers(min_value=1, max_value=50),
       st.data())
def test_a_session_touched_within_its_idle_time_stays_valid_until_its_absolute_timeout_and_no_longer(
    idle: timedelta, steps: int, data: st.DataObject
) -> None:
    absolute = idle * steps
    limits = SessionLimits(idle_timeout=idle, absolute_timeout=absolute)
    gaps = data.draw(st.lists(st.integers(1, idle // US - 1), max_size=60))
    session = session_at(T0, T0)
    now = T0
    for gap in gaps:
        now += gap * US
        if now >= T0 + absolute:
            break
        assert session_verdict(session, now, limits).valid
        session = touched(session, now)
    assert session_verdict(session, T0 + absolute, limits).status is SessionStatus.ABSOLUTE_EXPIRED


def test_idle_ends_exactly_at_last_seen_plus_idle_timeout() -> None:
    limits = SessionLimits(idle_timeout=timedelta(minutes=15), absolute_timeout=timedelta(hours=8))
    session = session_at(T0, T0 + timedelta(minutes=1))
    end = session.last_seen + limits.idle_timeout
    assert session_verdict(session, end - US, limits).valid
    assert session_verdict(session, end, limits).status is SessionStatus.IDLE_EXPIRED


def test_session_ids_are_256_bit_url_safe_and_distinct() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    for session_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session_id)
