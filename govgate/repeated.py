"""Quiet failures: a failure that repeats (the store down, the portal down) is one log line, not one per request.

During a Redis outage every staff request used to log a warning — thousands of lines in seconds, two per
request when Redis was slow — burying everything else. ``RepeatedWarnings`` logs the first occurrence of an
event at once, then counts the same event silently and, once ``interval`` has passed, logs one line saying
how many more there were before it logs the next occurrence. The summary of a burst that has ended is
written by ``flush`` (called when the gateway stops) or with the next occurrence. Events are names such as
``store.unavailable``; the message of each logged line keeps its request id, so a line can still be matched
with an audit record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_SECONDS = 5.0


@dataclass(slots=True)
class _Burst:
    logger: logging.Logger
    since: float
    suppressed: int = 0


class RepeatedWarnings:
    def __init__(self, interval: float = INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._bursts: dict[str, _Burst] = {}
        self._lock = threading.Lock()  # the store and the audit thread may report too

    def warning(self, logger: logging.Logger, event: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` at WARNING, unless ``event`` was logged less than ``interval`` ago."""
        now = self.clock()
        with self._lock:
            burst = self._bursts.get(event)
            if burst is not None and now - burst.since < self.interval:
                burst.suppressed += 1
                return
            self._bursts[event] = _Burst(logger, now)
        if burst is not None:
            self._summarise(event, burst, now)
        logger.warning(msg, *args)

    def flush(self) -> None:
        """Write the summary of every burst that still has suppressed lines."""
        now = self.clock()
        with self._lock:
            bursts = list(self._bursts.items())
            self._bursts.clear()
        for event, burst in bursts:
            self._summarise(event, burst, now)

    @staticmethod
    def _summarise(event: str, burst: _Burst, now: float) -> None:
        if burst.suppressed:
            burst.logger.warning("%s repeated=%d more in the last %.0fs", event, burst.suppressed, now - burst.since)


REPEATED = RepeatedWarnings()  # the gateway's one instance: every addon and the store report through it
