"""Quiet failures (``govgate.repeated``): a repeated event is one log line, then a count, never one per request."""

from __future__ import annotations

import logging

import pytest

from govgate.repeated import RepeatedWarnings

log = logging.getLogger("tests.repeated")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_the_same_event_is_one_line_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    repeated = RepeatedWarnings(interval=5.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="tests.repeated"):
        for i in range(1000):
            repeated.warning(log, "store.unavailable", "store.unavailable request_id=%s", f"r{i}")
        assert [r.getMessage() for r in caplog.records] == ["store.unavailable request_id=r0"]
        clock.now += 5.0
        repeated.warning(log, "store.unavailable", "store.unavailable request_id=%s", "r1000")
    assert [r.getMessage() for r in caplog.records] == [
        "store.unavailable request_id=r0",
        "store.unavailable repeated=999 more in the last 5s",
        "store.unavailable request_id=r1000",
    ]


def test_different_events_are_each_logged(caplog: pytest.LogCaptureFixture) -> None:
    repeated = RepeatedWarnings(clock=Clock())
    with caplog.at_level(logging.WARNING, logger="tests.repeated"):
        repeated.warning(log, "store.unavailable", "store down")
        repeated.warning(log, "upstream.error", "portal down")
        repeated.warning(log, "store.unavailable", "store down")
    assert [r.getMessage() for r in caplog.records] == ["store down", "portal down"]


def test_flush_writes_the_count_of_a_burst_that_ended(caplog: pytest.LogCaptureFixture) -> None:
    repeated = RepeatedWarnings(clock=Clock())
    with caplog.at_level(logging.WARNING, logger="tests.repeated"):
        for _ in range(3):
            repeated.warning(log, "upstream.error", "portal down")
        repeated.flush()
        repeated.flush()  # nothing twice
    assert [r.getMessage() for r in caplog.records] == ["portal down", "upstream.error repeated=2 more in the last 0s"]
