"""Waiting in tests: poll a condition until it holds or a deadline passes, never a bare sleep.

A test that needs time itself to pass (an idle timeout, a lock running out) says so beside its wait;
everything else waits for the state it needs, so it is as fast as the machine allows and fails with a
message naming what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable

POLL = 0.01  # seconds between polls


def wait_for(condition: Callable[[], bool], timeout: float = 10.0,
             what: str | Callable[[], str] = "condition") -> None:
    """Return as soon as ``condition()`` is true; raise ``AssertionError`` naming ``what`` after ``timeout`` s.

    ``what`` may be a function, called only on failure: for a message that shows the state at the deadline
    (a process's output so far), not the state when the wait began."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(POLL)
