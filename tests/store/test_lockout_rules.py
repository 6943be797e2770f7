"""Properties of the pure lockout arithmetic (govgate.core.lockout), Art. 30."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.lockout import (
    FailureState,
    counted_failures,
    forget_at,
    lock_started,
    locked_until,
    register_failure,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
US = timedelta(microseconds=1)

maxima = st.integers(min_value=1, max_value=8)
windows = st.integers(min_value=1, max_value=10**9).map(lambda n: n * US)
lockouts = st.integers(min_value=1, max_value=10**10).map(lambda n: n * US)


def run(times: list[datetime], max_failures: int, window: timedelta, lockout: timedelta) -> list[FailureState]:
    states: list[FailureState] = []
    state: FailureState | None = None
    for t in times:
        state = register_failure(state, t, max_failures, window, lockout)
        states.append(state)
    return states


@settings(max_examples=200)
@given(maxima, windows, lockouts, st.data())
def test_exactly_max_failures_within_the_window_lock_at_the_last_one(
    max_failures: int, window: timedelta, lockout: timedelta, data: st.DataObject
) -> None:
    span = window // US - 1  # all failures strictly less than one window apart
    offsets = sorted(data.draw(st.lists(st.integers(0, span), min_size=max_failures, max_size=max_failures)))
    times = [T0 + o * US for o in offsets]
    states = run(times, max_failures, window, lockout)
    for t, s in zip(times[:-1], states[:-1], strict=True):
        assert locked_until(s, t) is None
    last = times[-1]
    assert locked_until(states[-1], last) == last + lockout


@settings(max_examples=200)
@given(maxima, windows, lockouts, st.integers(0, 10**9))
def test_a_lock_ends_exactly_at_its_start_plus_lockout(
    max_failures: int, window: timedelta, lockout: timedelta, offset: int
) -> None:
    start = T0 + offset * US
    state = run([start] * max_failures, max_failures, window, lockout)[-1]
    end = start + lockout
    assert locked_until(state, start) == end
    assert locked_until(state, end - US) == end
    assert locked_until(state, end) is None
    assert locked_until(state, end + window) is None


@settings(max_examples=200)
@given(st.integers(2, 8), windows, lockouts, st.data())
def test_failures_spread_wider_than_the_window_never_lock(
    max_failures: int, window: timedelta, lockout: timedelta, data: st.DataObject
) -> None:
    # Any max_failures consecutive failures span at least one window.
    gaps = data.draw(st.lists(st.integers(0, 3 * (window // US)), min_size=1, max_size=30))
    times: list[datetime] = []
    at = T0
    for gap in gaps:
        at += gap * US
        if len(times) >= max_failures - 1 and at - times[-(max_failures - 1)] < window:
            at = times[-(max_failures - 1)] + window
        times.append(at)
    for t, s in zip(times, run(times, max_failures, window, lockout), strict=True):
        assert locked_until(s, t) is None


@settings(max_examples=200)
@given(maxima, windows, lockouts, st.lists(st.integers(0, 10**9), min_size=1, max_size=40))
def test_sliding_window_matches_a_brute_force_count(
    max_failures: int, window: timedelta, lockout: timedelta, offsets: list[int]
) -> None:
    times = [T0 + o * US for o in sorted(offsets)]
    counted: list[datetime] = []
    lock_end: datetime | None = None
    state: FailureState | None = None
    for t in times:
        before = state
        state = register_failure(state, t, max_failures, window, lockout)
        # The model: ignore while locked; else count the failures of the last window, this one included.
        if lock_end is not None and t < lock_end:
            assert state == before
            continue
        counted = [c for c in counted if t - c < window] + [t]
        if len(counted) >= max_failures:
            lock_end, counted = t + lockout, []
            assert lock_started(before, state, t)
        else:
            assert not lock_started(before, state, t)
        assert locked_until(state, t) == (lock_end if lock_end is not None and t < lock_end else None)
        assert list(counted_failures(state, t, window)) == counted
        assert len(state.failures) < max_failures


@given(maxima, windows, lockouts, st.integers(0, 10**6))
def test_a_failure_while_locked_changes_nothing(
    max_failures: int, window: timedelta, lockout: timedelta, later: int
) -> None:
    state = run([T0] * max_failures, max_failures, window, lockout)[-1]
    at = T0 + min(later * US, lockout - US)
    assert register_failure(state, at, max_failures, window, lockout) == state


def test_state_is_forgettable_once_neither_lock_nor_failures_matter() -> None:
    window, lockout = timedelta(minutes=15), timedelta(minutes=30)
    state = register_failure(None, T0, 3, window, lockout)
    assert forget_at(state, window) == T0 + window
    locked = run([T0] * 3, 3, window, lockout)[-1]
    assert forget_at(locked, window) == T0 + lockout
    assert forget_at(FailureState(), window) is None


def test_zero_max_failures_is_refused() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        register_failure(None, T0, 0, timedelta(minutes=1), timedelta(minutes=1))
